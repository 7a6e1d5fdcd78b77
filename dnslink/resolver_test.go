package dnslink

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
)

// fakeDNS serves canned records on loopback over UDP and TCP, chasing
// CNAMEs inside one answer up to chase times, like a recursive resolver.
type fakeDNS struct {
	records map[string][]dns.RR // by lower-case FQDN
	chase   int
}

func (f *fakeDNS) add(t testing.TB, zonefile string) {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(zonefile), ".", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		n := dns.CanonicalName(rr.Header().Name)
		f.records[n] = append(f.records[n], rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	for i := 0; i <= f.chase; i++ {
		var cname dns.RR
		found := false
		for _, rr := range f.records[name] {
			switch rr.Header().Rrtype {
			case q.Qtype:
				m.Answer = append(m.Answer, rr)
				found = true
			case dns.TypeCNAME:
				cname = rr
			}
		}
		if found || cname == nil {
			if !found && len(f.records[name]) == 0 && i == 0 {
				m.Rcode = dns.RcodeNameError
			}
			break
		}
		m.Answer = append(m.Answer, cname)
		name = dns.CanonicalName(cname.(*dns.CNAME).Target)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(1232)
	}
	w.WriteMsg(m)
}

func startFake(t testing.TB, f *fakeDNS) string {
	t.Helper()
	for try := 0; try < 10; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		started := make(chan struct{}, 2)
		u := &dns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: func() { started <- struct{}{} }}
		tc := &dns.Server{Listener: ln, Handler: f, NotifyStartedFunc: func() { started <- struct{}{} }}
		done := make(chan struct{}, 2)
		go func() { u.ActivateAndServe(); done <- struct{}{} }()
		go func() { tc.ActivateAndServe(); done <- struct{}{} }()
		<-started
		<-started
		t.Cleanup(func() { u.Shutdown(); tc.Shutdown(); <-done; <-done })
		return pc.LocalAddr().String()
	}
	t.Fatal("no free port for UDP and TCP")
	return ""
}

func newFake(t testing.TB, chase int, zonefile string) *Resolver {
	f := &fakeDNS{records: map[string][]dns.RR{}, chase: chase}
	f.add(t, zonefile)
	addr := startFake(t, f)
	r, err := NewResolver(ResolverConfig{Servers: []string{addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolverHostile(t *testing.T) {
	var zf strings.Builder
	// 64 KiB TXT in one record: arrives over TCP, refused by size.
	fmt.Fprintf(&zf, "_dnslink.big.test. 60 IN TXT %s\n", strings.Repeat(`"`+strings.Repeat("a", 250)+`" `, 260))
	// 1,000 records.
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&zf, "_dnslink.many.test. 60 IN TXT \"dnslink=/ipns/n%d.example\"\n", i)
	}
	// CNAME loop and long chain.
	zf.WriteString("_dnslink.loop.test. 60 IN CNAME a.loop.test.\na.loop.test. 60 IN CNAME _dnslink.loop.test.\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&zf, "%s 60 IN CNAME c%d.chain.test.\n", map[bool]string{true: "_dnslink.chain.test.", false: fmt.Sprintf("c%d.chain.test.", i-1)}[i == 0], i)
	}
	// Deep and looping /dnsaddr.
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&zf, "_dnsaddr.d%d.test. 60 IN TXT \"dnsaddr=/dnsaddr/d%d.test\"\n", i, i+1)
	}
	zf.WriteString("_dnsaddr.x.test. 60 IN TXT \"dnsaddr=/dnsaddr/y.test\"\n_dnsaddr.y.test. 60 IN TXT \"dnsaddr=/dnsaddr/x.test\"\n")
	for _, chase := range []int{0, 20} { // CNAMEs answered one by one, and chased by the server
		r := newFake(t, chase, zf.String())
		tests := []struct {
			name string
			run  func() error
			want string
		}{
			{"64KiB TXT", func() error { _, err := r.ResolveDNSLink(testCtx(t), "big.test"); return err }, "more than 4096"},
			{"1000 records", func() error { _, err := r.ResolveDNSLink(testCtx(t), "many.test"); return err }, "more than 64"},
			{"CNAME loop", func() error { _, err := r.ResolveDNSLink(testCtx(t), "loop.test"); return err }, "loop"},
			{"CNAME chain", func() error { _, err := r.ResolveDNSLink(testCtx(t), "chain.test"); return err }, "longer than 8"},
			{"deep dnsaddr", func() error { _, err := r.ResolveDNSAddr(testCtx(t), "d0.test", ""); return err }, "deeper than 8"},
			{"dnsaddr loop", func() error { _, err := r.ResolveDNSAddr(testCtx(t), "x.test", ""); return err }, "loop"},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/chase=%d", tt.name, chase), func(t *testing.T) {
				err := tt.run()
				if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want ErrLimit mentioning %q", err, tt.want)
				}
			})
		}
	}
}

func TestResolverRecords(t *testing.T) {
	zf := `
_dnslink.multi.test. 60 IN TXT "dnslink=/ipns/zzz.example"
_dnslink.multi.test. 60 IN TXT "v=spf1 -all"
_dnslink.multi.test. 60 IN TXT "dnslink=/ipfs/` + testCID + `/docs"
_dnslink.multi.test. 60 IN TXT "dnslink=/ipfs/broken"
_dnslink.alias.test. 60 IN CNAME _dnslink.multi.test.
_dnslink.none.test. 60 IN TXT "hello"
_dnsaddr.peers.test. 60 IN TXT "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/` + testPeer + `"
_dnsaddr.peers.test. 60 IN TXT "dnsaddr=/ip4/127.0.0.1/tcp/4002/p2p/` + testPeer2 + `"
_dnsaddr.peers.test. 60 IN TXT "dnsaddr=/dnsaddr/sub.test/p2p/` + testPeer + `"
_dnsaddr.peers.test. 60 IN TXT "dnsaddr=garbage"
_dnsaddr.sub.test. 60 IN TXT "dnsaddr=/ip6/::1/udp/4001/quic-v1/p2p/` + testPeer + `"
_dnsaddr.sub.test. 60 IN TXT "dnsaddr=/ip6/::1/udp/4009/quic-v1/p2p/` + testPeer2 + `"
_pcnode.cloud.test. 60 IN TXT "pcnode=v1 cloud=abc"
_pcnode.two.test. 60 IN TXT "pcnode=v1 cloud=abc"
_pcnode.two.test. 60 IN TXT "pcnode=v1 cloud=def"
`
	for _, chase := range []int{0, 20} {
		r := newFake(t, chase, zf)
		ctx := testCtx(t)
		for _, d := range []string{"multi.test", "alias.test"} {
			res, err := r.ResolveDNSLink(ctx, d)
			if err != nil || res.Link.TXT() != "dnslink=/ipfs/"+testCID+"/docs" || res.Validated {
				t.Errorf("chase=%d %s: got %+v, %v", chase, d, res, err)
			}
			if res.Name != "_dnslink.multi.test." {
				t.Errorf("chase=%d %s: owner %q", chase, d, res.Name)
			}
		}
		for _, d := range []string{"none.test", "nxdomain.test"} {
			if _, err := r.ResolveDNSLink(ctx, d); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: got %v, want ErrNotFound", d, err)
			}
		}
		all, err := r.ResolveDNSAddr(ctx, "peers.test", "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range all.Addrs {
			got = append(got, a.String())
		}
		want := []string{
			"/ip4/127.0.0.1/tcp/4001/p2p/" + testPeer,
			"/ip4/127.0.0.1/tcp/4002/p2p/" + testPeer2,
			"/ip6/::1/udp/4001/quic-v1/p2p/" + testPeer, // the nested record for another peer is dropped
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("dnsaddr all:\n got %v\nwant %v", got, want)
		}
		id, _ := peer.Decode(testPeer2)
		one, err := r.ResolveDNSAddr(ctx, "peers.test", id)
		if err != nil || len(one.Addrs) != 1 || one.Addrs[0].String() != want[1] {
			t.Errorf("dnsaddr for %s: %v %v", id, one.Addrs, err)
		}
		p, err := r.ResolvePCNode(ctx, "cloud.test")
		if err != nil || p.Record.Cloud != "abc" {
			t.Errorf("pcnode: %+v %v", p, err)
		}
		if _, err := r.ResolvePCNode(ctx, "two.test"); err == nil || !strings.Contains(err.Error(), "two clouds") {
			t.Errorf("pcnode conflicting: %v", err)
		}
	}
}

func TestResolverValidation(t *testing.T) {
	key := mustKey(t)
	z, srv := startZone(t, "example.org", key)
	other := mustKey(t)
	cases := []struct {
		name   string
		anchor string
	}{
		{"DS anchor", z.DS().String()},
		{"DNSKEY anchor", z.DNSKEY().String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: c.anchor})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			res, err := r.ResolveDNSLink(ctx, "example.org")
			if err != nil || !res.Validated || res.Link.ID != testCID {
				t.Fatalf("dnslink: %+v %v", res, err)
			}
			addrs, err := r.ResolveDNSAddr(ctx, "example.org", "")
			if err != nil || !addrs.Validated || len(addrs.Addrs) != 1 {
				t.Fatalf("dnsaddr: %+v %v", addrs, err)
			}
			pc, err := r.ResolvePCNode(ctx, "example.org")
			if err != nil || !pc.Validated || pc.Record.Cloud != "k51cloudid" {
				t.Fatalf("pcnode: %+v %v", pc, err)
			}
			// NXDOMAIN and NODATA (at an existing name, and at an empty
			// non-terminal) come with a validated denial.
			for _, d := range []string{"nothing.example.org", "laptop.example.org", "a.b.share1.example.org"} {
				res, err := r.ResolveDNSLink(ctx, d)
				if !errors.Is(err, ErrNotFound) || !res.Validated {
					t.Errorf("%s: got %+v, %v; want validated ErrNotFound", d, res, err)
				}
			}
			if _, _, ok, err := r.lookup(ctx, "share1.example.org", dns.TypeTXT); !errors.Is(err, ErrNotFound) || !ok {
				t.Errorf("empty non-terminal: %v %v", ok, err)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		r, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: z.DS().String()})
		srv.corrupt.Store(true)
		defer srv.corrupt.Store(false)
		for _, d := range []string{"example.org", "nothing.example.org"} {
			if _, err := r.ResolveDNSLink(testCtx(t), d); !errors.Is(err, ErrBogus) {
				t.Errorf("%s: got %v, want ErrBogus", d, err)
			}
		}
	})
	t.Run("wrong anchor", func(t *testing.T) {
		r, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: other.DS("example.org").String()})
		if _, err := r.ResolveDNSLink(testCtx(t), "example.org"); !errors.Is(err, ErrBogus) {
			t.Fatalf("got %v, want ErrBogus", err)
		}
	})
	t.Run("no anchor", func(t *testing.T) {
		r, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}})
		res, err := r.ResolveDNSLink(testCtx(t), "example.org")
		if err != nil || res.Validated {
			t.Fatalf("got %+v %v, want unvalidated success", res, err)
		}
	})
	t.Run("anchor elsewhere", func(t *testing.T) {
		r, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: other.DS("example.net").String()})
		res, err := r.ResolveDNSLink(testCtx(t), "example.org")
		if err != nil || res.Validated {
			t.Fatalf("got %+v %v, want unvalidated success", res, err)
		}
	})
	t.Run("stripped signatures", func(t *testing.T) {
		// An unsigned copy of the zone, as an attacker on the path would
		// serve it, fails against the anchor.
		uz, err := NewZone(ZoneConfig{Zone: "example.org"})
		if err != nil {
			t.Fatal(err)
		}
		uz.SetRecords(testRecords(t))
		us := NewServer(ServerConfig{Listen: "127.0.0.1:0", RateLimit: -1}, uz)
		if err := us.Start(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		defer us.Close()
		r, _ := NewResolver(ResolverConfig{Servers: []string{us.Addr()}, TrustAnchor: z.DS().String()})
		if _, err := r.ResolveDNSLink(testCtx(t), "example.org"); !errors.Is(err, ErrBogus) {
			t.Fatalf("got %v, want ErrBogus", err)
		}
	})
}

func TestParseTrustAnchor(t *testing.T) {
	k := mustKey(t)
	for _, bad := range []string{"", "example.org. IN A 1.2.3.4", k.DS("a.org").String() + "\n" + k.DS("b.org").String(), "example.org. IN DS garbage"} {
		if _, err := ParseTrustAnchor(bad); err == nil {
			t.Errorf("ParseTrustAnchor(%q) succeeded", bad)
		}
	}
	rrs, err := ParseTrustAnchor(k.DS("Example.org").String() + "\n" + k.DNSKEY("example.org", 300).String())
	if err != nil || len(rrs) != 2 || rrs[0].Header().Name != "example.org." {
		t.Fatalf("got %v, %v", rrs, err)
	}
}

// TestVerifySetBounded: a set with many bogus signatures claiming the
// zone's key is rejected after a bounded number of checks.
func TestVerifySetBounded(t *testing.T) {
	key := mustKey(t)
	z, srv := startZone(t, "example.org", key)
	r, err := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: z.DS().String()})
	if err != nil {
		t.Fatal(err)
	}
	txt := &dns.TXT{Hdr: hdr("_dnslink.example.org.", dns.TypeTXT, 300), Txt: []string{"dnslink=/ipns/evil.example"}}
	set := &sigSet{rrs: []dns.RR{txt}}
	good := &dns.RRSIG{Hdr: hdr("_dnslink.example.org.", dns.TypeRRSIG, 300), Algorithm: dns.ECDSAP256SHA256,
		Inception: uint32(time.Now().Add(-time.Hour).Unix()), Expiration: uint32(time.Now().Add(time.Hour).Unix()),
		KeyTag: z.DNSKEY().KeyTag(), SignerName: "example.org."}
	other := mustKey(t)
	if err := good.Sign(other.priv, []dns.RR{txt}); err != nil { // signed by the wrong key
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		c := *good
		set.sigs = append(set.sigs, &c)
	}
	err = r.verifySet(testCtx(t), set, 0)
	if !errors.Is(err, ErrBogus) || !strings.Contains(err.Error(), "50 RRSIGs") {
		t.Fatalf("got %v", err)
	}
	// Signed by the zone's key, the same set verifies.
	if err := good.Sign(key.priv, []dns.RR{txt}); err != nil {
		t.Fatal(err)
	}
	if err := r.verifySet(testCtx(t), &sigSet{rrs: []dns.RR{txt}, sigs: []*dns.RRSIG{good}}, 0); err != nil {
		t.Fatal(err)
	}
}
