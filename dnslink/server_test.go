package dnslink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t testing.TB, addr, netw, name string, qtype uint16, do bool, bufsize uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if bufsize > 0 {
		m.SetEdns0(bufsize, do)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestServerAnswers(t *testing.T) {
	z, srv := startZone(t, "example.org", mustKey(t))
	addr := srv.Addr()
	tests := []struct {
		name       string
		qname      string
		qtype      uint16
		rcode      int
		answer, ns int // records in answer and authority, with DO
		aa         bool
	}{
		{"TXT", "_dnslink.example.org.", dns.TypeTXT, dns.RcodeSuccess, 2, 0, true},
		{"case insensitive", "_DNSLink.Example.ORG.", dns.TypeTXT, dns.RcodeSuccess, 2, 0, true},
		{"A", "laptop.example.org.", dns.TypeA, dns.RcodeSuccess, 2, 0, true},
		{"DNSKEY", "example.org.", dns.TypeDNSKEY, dns.RcodeSuccess, 2, 0, true},
		{"NS", "example.org.", dns.TypeNS, dns.RcodeSuccess, 2, 0, true},
		{"NODATA", "laptop.example.org.", dns.TypeMX, dns.RcodeSuccess, 0, 4, true},
		{"NODATA at empty non-terminal", "share1.example.org.", dns.TypeTXT, dns.RcodeSuccess, 0, 4, true},
		{"NXDOMAIN", "nothing.example.org.", dns.TypeA, dns.RcodeNameError, 0, 6, true},
		{"outside zone", "example.com.", dns.TypeA, dns.RcodeRefused, 0, 0, false},
		{"ANY", "example.org.", dns.TypeANY, dns.RcodeNotImplemented, 0, 0, false},
	}
	for _, tt := range tests {
		for _, netw := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+netw, func(t *testing.T) {
				r := query(t, addr, netw, tt.qname, tt.qtype, true, 1232)
				if r.Question[0].Name != tt.qname || r.Id == 0 {
					t.Fatalf("question %q id %d, want the query's", r.Question[0].Name, r.Id)
				}
				if r.Rcode != tt.rcode || len(r.Answer) != tt.answer || len(r.Ns) != tt.ns || r.Authoritative != tt.aa || r.RecursionAvailable {
					t.Fatalf("got rcode %s, %d answers, %d authority, aa=%v ra=%v:\n%v", dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns), r.Authoritative, r.RecursionAvailable, r)
				}
			})
		}
	}
	// Without DO no DNSSEC records are sent.
	if r := query(t, addr, "udp", "_dnslink.example.org.", dns.TypeTXT, false, 0); len(r.Answer) != 1 || r.IsEdns0() != nil {
		t.Errorf("without EDNS: %v", r)
	}
	// SetRecords bumps the serial and takes effect at once.
	serial := z.Serial()
	recs := testRecords(t)
	recs.Links["new"] = Link{Namespace: "ipns", ID: "new.example"}
	if err := z.SetRecords(recs); err != nil {
		t.Fatal(err)
	}
	if z.Serial() == serial {
		t.Error("serial not bumped")
	}
	r := query(t, addr, "udp", "_dnslink.new.example.org.", dns.TypeTXT, true, 1232)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("new record not served: %v", r)
	}
	soa := query(t, addr, "udp", "example.org.", dns.TypeSOA, false, 1232)
	if got := soa.Answer[0].(*dns.SOA).Serial; got != z.Serial() {
		t.Errorf("SOA serial %d, zone serial %d", got, z.Serial())
	}
}

func TestServerTruncationAndLimits(t *testing.T) {
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	recs := testRecords(t)
	for i := 0; i < 40; i++ {
		recs.DNSAddrs = append(recs.DNSAddrs, mustMA(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", 5000+i, testPeer)))
	}
	if err := z.SetRecords(recs); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{Listen: "127.0.0.1:0", RateLimit: 1, RateBurst: 5}, z)
	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := query(t, srv.Addr(), "udp", "_dnsaddr.example.org.", dns.TypeTXT, true, 1232)
	if !r.Truncated {
		t.Fatalf("41 addresses over UDP not truncated: %d answers", len(r.Answer))
	}
	r = query(t, srv.Addr(), "tcp", "_dnsaddr.example.org.", dns.TypeTXT, true, 1232)
	if r.Truncated || len(r.Answer) != 42 {
		t.Fatalf("over TCP: truncated=%v, %d answers", r.Truncated, len(r.Answer))
	}
	// Past the burst (5, two used above), a client is limited: some queries time out (dropped)
	// and others come back truncated and empty.
	limited := 0
	c := &dns.Client{Net: "udp", Timeout: 50 * time.Millisecond}
	for i := 0; i < 60; i++ {
		m := new(dns.Msg)
		m.SetQuestion("example.org.", dns.TypeSOA)
		r, _, err := c.Exchange(m, srv.Addr())
		if err != nil || (r.Truncated && len(r.Answer) == 0) {
			limited++
		}
	}
	if limited < 40 {
		t.Fatalf("only %d of 60 queries limited", limited)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestZoneSetRRsRejects(t *testing.T) {
	z, err := NewZone(ZoneConfig{Zone: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"example.com. 300 IN TXT \"x\"",
		"*.example.org. 300 IN TXT \"x\"",
		"example.org. 300 IN SOA a. b. 1 2 3 4 5",
		"sub.example.org. 300 IN NS ns.other.",
		"a.example.org. 300 IN RRSIG A 13 3 300 20300101000000 20200101000000 1 example.org. AAAA",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := z.SetRRs([]dns.RR{rr}); err == nil {
			t.Errorf("SetRRs(%s) accepted", s)
		}
	}
	a, _ := dns.NewRR("a.example.org. 300 IN CNAME b.example.org.")
	b, _ := dns.NewRR("a.example.org. 300 IN TXT \"x\"")
	if err := z.SetRRs([]dns.RR{a, b}); err == nil {
		t.Error("CNAME beside other data accepted")
	}
}

func TestKeyMarshal(t *testing.T) {
	k := mustKey(t)
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.DS("example.org").String() != k2.DS("example.org").String() {
		t.Fatal("parsed key differs")
	}
	if _, err := ParseKey([]byte("garbage")); err == nil {
		t.Fatal("ParseKey(garbage) succeeded")
	}
	ds := k.DS("example.org")
	if ds.Algorithm != dns.ECDSAP256SHA256 || ds.DigestType != dns.SHA256 || ds.KeyTag != k.DNSKEY("example.org", 1).KeyTag() {
		t.Fatalf("DS %v", ds)
	}
}

func TestDigDNSSEC(t *testing.T) {
	dig := needTool(t, "dig")
	_, srv := startZone(t, "example.org", mustKey(t))
	h, p, _ := net.SplitHostPort(srv.Addr())
	out, err := exec.Command(dig, "+dnssec", "+norec", "@"+h, "-p", p, "_dnsaddr.example.org", "TXT").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"status: NOERROR", "flags: qr aa;", "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/" + testPeer, "RRSIG\tTXT 13 3 300"} {
		if !strings.Contains(s, want) {
			t.Errorf("dig output lacks %q:\n%s", want, s)
		}
	}
}

// startUnbound runs a validating unbound on loopback that knows zone only
// through a stub-zone pointing at addr and trusts anchor. Root hints point
// at loopback too, so nothing leaves the machine.
func startUnbound(t *testing.T, zone, addr, anchor string) string {
	unbound := needTool(t, "unbound")
	dir := t.TempDir()
	port := freePort(t)
	sh, sp, _ := net.SplitHostPort(addr)
	files := map[string]string{
		"anchor":     anchor + "\n",
		"root.hints": ".  3600000 NS fake-root.\nfake-root. 3600000 A 127.0.0.1\n",
		"unbound.conf": fmt.Sprintf(`server:
    interface: 127.0.0.1
    port: %[2]d
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    username: ""
    chroot: ""
    directory: "%[1]s"
    pidfile: "%[1]s/unbound.pid"
    num-threads: 1
    outgoing-range: 64
    so-reuseport: no
    do-ip6: no
    do-not-query-localhost: no
    outgoing-interface: 127.0.0.1
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    root-hints: "%[1]s/root.hints"
    trust-anchor-file: "%[1]s/anchor"
    harden-referral-path: no
    qname-minimisation: no
    prefetch: no
stub-zone:
    name: "%[3]s"
    stub-addr: %[4]s@%[5]s
`, dir, port, zone, sh, sp),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd, logf := startProc(t, dir, unbound, "-d", "-c", filepath.Join(dir, "unbound.conf"))
	uaddr := fmt.Sprintf("127.0.0.1:%d", port)
	waitDNS(t, uaddr, zone, cmd, logf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("unbound log:\n%s", logf())
		}
	})
	return uaddr
}

var digStatus = regexp.MustCompile(`status: ([A-Z]+).*\n;; flags: ([a-z ]+);`)

// digAt runs dig against addr and returns the status and flags.
func digAt(t *testing.T, addr, name, qtype string) (string, string) {
	t.Helper()
	h, p, _ := net.SplitHostPort(addr)
	out, err := exec.Command(needTool(t, "dig"), "+dnssec", "+tries=1", "+time=5", "@"+h, "-p", p, name, qtype).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s %s: %v\n%s", name, qtype, err, out)
	}
	m := digStatus.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("dig output without status:\n%s", out)
	}
	return m[1], m[2]
}

func TestUnboundValidates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts unbound")
	}
	z, srv := startZone(t, "example.org", mustKey(t))
	uaddr := startUnbound(t, "example.org", srv.Addr(), z.DS().String())
	checks := []struct{ name, qtype, status string }{
		{"_dnslink.example.org", "TXT", "NOERROR"},
		{"_dnsaddr.example.org", "TXT", "NOERROR"},
		{"laptop.example.org", "AAAA", "NOERROR"},
		{"nothing.example.org", "A", "NXDOMAIN"},        // validated denial
		{"deep.nothing.example.org", "TXT", "NXDOMAIN"}, // validated denial
		{"laptop.example.org", "TXT", "NOERROR"},        // NODATA
		{"share1.example.org", "A", "NOERROR"},          // NODATA at an empty non-terminal
	}
	for _, c := range checks {
		status, flags := digAt(t, uaddr, c.name, c.qtype)
		if status != c.status || !strings.Contains(" "+flags+" ", " ad ") {
			t.Errorf("unbound %s %s: status %s flags %q; want %s with ad", c.name, c.qtype, status, flags, c.status)
		}
	}
	// Our resolver trusting unbound's AD bit marks the answer validated; the
	// same question asked of the authoritative server directly (no AD) is
	// not.
	viaUnbound, _ := NewResolver(ResolverConfig{Servers: []string{uaddr}, TrustAD: true})
	res, err := viaUnbound.ResolveDNSLink(testCtx(t), "example.org")
	if err != nil || !res.Validated {
		t.Errorf("via unbound: %+v %v", res, err)
	}
	direct, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAD: true})
	if res, err := direct.ResolveDNSLink(testCtx(t), "example.org"); err != nil || res.Validated {
		t.Errorf("direct without AD: %+v %v", res, err)
	}
	// A spoofing server answering with another peer ID sets no AD bit, so
	// the answer is not validated.
	spoof := newFakeAddr(t, "_dnsaddr.example.org. 60 IN TXT \"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/"+testPeer2+"\"")
	sr, _ := NewResolver(ResolverConfig{Servers: []string{spoof}, TrustAD: true})
	if a, err := sr.ResolveDNSAddr(testCtx(t), "example.org", ""); err != nil || a.Validated {
		t.Errorf("spoofed: %+v %v", a, err)
	}
	// Tampered signatures: unbound answers SERVFAIL, and our resolver
	// reports an error rather than an unvalidated answer.
	srv.corrupt.Store(true)
	status, _ := digAt(t, uaddr, "_pcnode.example.org", "TXT")
	if status != "SERVFAIL" {
		t.Errorf("tampered: unbound status %s, want SERVFAIL", status)
	}
	if _, err := viaUnbound.ResolvePCNode(testCtx(t), "example.org"); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("tampered via unbound: %v", err)
	}
	own, _ := NewResolver(ResolverConfig{Servers: []string{srv.Addr()}, TrustAnchor: z.DS().String()})
	if _, err := own.ResolvePCNode(testCtx(t), "example.org"); !errors.Is(err, ErrBogus) {
		t.Errorf("tampered, own validation: %v", err)
	}
}

func newFakeAddr(t *testing.T, zonefile string) string {
	f := &fakeDNS{records: map[string][]dns.RR{}}
	f.add(t, zonefile)
	return startFake(t, f)
}

func TestZoneResigns(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: mustKey(t), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.SetRecords(testRecords(t)); err != nil {
		t.Fatal(err)
	}
	sigOf := func() *dns.RRSIG {
		m := new(dns.Msg)
		m.SetQuestion("_pcnode.example.org.", dns.TypeTXT)
		z.current().answer(m, "_pcnode.example.org.", dns.TypeTXT, true)
		return m.Answer[1].(*dns.RRSIG)
	}
	first, serial := sigOf(), z.Serial()
	now.Add(int64((6 * 24 * time.Hour).Seconds()))
	if s := sigOf(); s.Inception != first.Inception || z.Serial() != serial {
		t.Fatal("re-signed before half the validity passed")
	}
	now.Add(int64((2 * 24 * time.Hour).Seconds()))
	s := sigOf()
	if s.Inception == first.Inception || z.Serial() == serial {
		t.Fatal("not re-signed after half the validity passed")
	}
	if !s.ValidityPeriod(clock()) {
		t.Fatal("new signature not valid now")
	}
}

// TestServerSessionUDP runs the UDP path used on wildcard addresses (one
// datagram at a time, reply from the query's destination address) on
// loopback, since tests may not listen beyond it.
func TestServerSessionUDP(t *testing.T) {
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	z.SetRecords(testRecords(t))
	srv := NewServer(ServerConfig{Listen: "127.0.0.1:0", RateLimit: -1}, z)
	srv.forceSession = true
	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !srv.session {
		t.Fatal("session mode not on")
	}
	for i := 0; i < 2; i++ { // built, then cached
		r := query(t, srv.Addr(), "udp", "_DNSLINK.example.org.", dns.TypeTXT, true, 1232)
		if len(r.Answer) != 2 || r.Question[0].Name != "_DNSLINK.example.org." {
			t.Fatalf("answer %d: %v", i, r)
		}
	}
}

func TestServerIPv6(t *testing.T) {
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	z.SetRecords(testRecords(t))
	srv := NewServer(ServerConfig{Listen: "[::1]:0", RateLimit: -1}, z)
	if err := srv.Start(testCtx(t)); err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer srv.Close()
	for _, netw := range []string{"udp", "tcp"} {
		r := query(t, srv.Addr(), netw, "_dnsaddr.example.org.", dns.TypeTXT, true, 1232)
		if len(r.Answer) != 2 {
			t.Fatalf("%s: %v", netw, r)
		}
	}
}
