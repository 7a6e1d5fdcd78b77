package dnslink

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestParseTSIG(t *testing.T) {
	tests := []struct {
		in   string
		want TSIGKey
		ok   bool
	}{
		{"pcnode-key:hmac-sha256:c2VjcmV0", TSIGKey{"pcnode-key", "hmac-sha256", "c2VjcmV0"}, true},
		{"k:c2VjcmV0", TSIGKey{"k", "hmac-sha256", "c2VjcmV0"}, true},
		{"k:hmac-sha512:c2VjcmV0", TSIGKey{"k", "hmac-sha512", "c2VjcmV0"}, true},
		{"k:hmac-md5:c2VjcmV0", TSIGKey{}, false},
		{"k:hmac-sha256:not base64!", TSIGKey{}, false},
		{"justaname", TSIGKey{}, false},
		{":hmac-sha256:c2VjcmV0", TSIGKey{}, false},
	}
	for _, tt := range tests {
		got, err := ParseTSIG(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTSIG(%q) = %+v, %v", tt.in, got, err)
		}
		if tt.ok && got.String() != tt.want.Name+":"+tt.want.Algorithm+":"+tt.want.Secret {
			t.Errorf("String() = %q", got.String())
		}
	}
}

// freePort returns a loopback port free on UDP and TCP at the time of the
// call.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// waitDNS waits until addr answers a SOA query for zone with want rcode.
func waitDNS(t testing.TB, addr, zone string, cmd *exec.Cmd, logf func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cmd.ProcessState != nil {
			t.Fatalf("%s exited: %s", cmd.Path, logf())
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode != dns.RcodeServerFailure {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("%s did not answer on %s within 15 s: %s", cmd.Path, addr, logf())
}

// startProc runs a program in the foreground for the test's lifetime and
// returns a function reading its output so far.
func startProc(t testing.TB, dir string, name string, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return cmd, func() string { b, _ := os.ReadFile(logPath); return string(b) }
}

const knotZone = `$ORIGIN example.org.
$TTL 300
@	SOA	ns1 hostmaster 1 3600 600 1209600 300
@	NS	ns1
ns1	A	127.0.0.1
www	A	127.0.0.3
_dnslink.old	TXT	"dnslink=/ipns/stale.example"
_dnsaddr	TXT	"dnsaddr=/ip4/127.0.0.9/tcp/1/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa"
`

// startKnot runs knotd for example.org with one TSIG key allowed to update
// and transfer, and returns its address and the key.
func startKnot(t *testing.T) (string, TSIGKey) {
	knotd := needTool(t, "knotd")
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	key := TSIGKey{Name: "pcnode-key", Algorithm: "hmac-sha256", Secret: base64.StdEncoding.EncodeToString(secret)}
	port := freePort(t)
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
key:
  - id: %[3]s
    algorithm: hmac-sha256
    secret: %[4]s
  - id: reader
    algorithm: hmac-sha256
    secret: %[4]s
acl:
  - id: pcnode-update
    key: %[3]s
    action: [update, transfer]
template:
  - id: default
    storage: "%[1]s"
    file: "%%s.zone"
zone:
  - domain: example.org
    acl: pcnode-update
`, dir, port, key.Name, key.Secret)
	if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(knotZone), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logf := startProc(t, dir, knotd, "-c", filepath.Join(dir, "knot.conf"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitDNS(t, addr, "example.org", cmd, logf)
	return addr, key
}

func kdig(t *testing.T, addr, name, qtype string) []string {
	t.Helper()
	h, p, _ := net.SplitHostPort(addr)
	out, err := exec.Command(needTool(t, "kdig"), "@"+h, "-p", p, "+short", "+tcp", name, qtype).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %s %s: %v: %s", name, qtype, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestPublisherKnot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts knotd")
	}
	addr, key := startKnot(t)
	ctx := testCtx(t)
	pub, err := NewPublisher(PublisherConfig{Zone: "example.org", Primary: addr, TSIG: key})
	if err != nil {
		t.Fatal(err)
	}
	recs := testRecords(t)
	ch, err := pub.Publish(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Added) == 0 || len(ch.Removed) != 2 { // stale _dnslink.old and _dnsaddr
		t.Errorf("changes: added %d, removed %v", len(ch.Added), ch.Removed)
	}
	// kdig sees the records; foreign records stay; stale ones are gone.
	checks := []struct{ name, qtype, want string }{
		{"_dnsaddr.example.org", "TXT", `"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/` + testPeer + `"`},
		{"_pcnode.example.org", "TXT", `"pcnode=v1 cloud=k51cloudid"`},
		{"_dnslink.example.org", "TXT", `"dnslink=/ipfs/` + testCID + `"`},
		{"_dnslink.share1.example.org", "TXT", `"dnslink=/ipns/example.net"`},
		{"laptop.example.org", "AAAA", "::1"},
		{"www.example.org", "A", "127.0.0.3"},
		{"_dnslink.old.example.org", "TXT", ""},
	}
	for _, c := range checks {
		got := strings.Join(kdig(t, addr, c.name, c.qtype), "\n")
		if got != c.want {
			t.Errorf("kdig %s %s = %q, want %q", c.name, c.qtype, got, c.want)
		}
	}
	// Our resolver reads them too.
	r, err := NewResolver(ResolverConfig{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.ResolveDNSLink(ctx, "share1.example.org"); err != nil || res.Link.String() != "/ipns/example.net" {
		t.Errorf("resolve share1: %+v %v", res, err)
	}
	if res, err := r.ResolveDNSAddr(ctx, "example.org", ""); err != nil || len(res.Addrs) != 1 {
		t.Errorf("resolve dnsaddr: %+v %v", res, err)
	}
	// Publishing the same set again sends nothing.
	if ch, err := pub.Publish(ctx, recs); err != nil || len(ch.Added)+len(ch.Removed) != 0 {
		t.Errorf("republish: %+v %v", ch, err)
	}
	// A share removed from the set disappears from the zone.
	delete(recs.Links, "share1")
	if ch, err := pub.Publish(ctx, recs); err != nil || len(ch.Removed) != 1 || len(ch.Added) != 0 {
		t.Errorf("remove share: %+v %v", ch, err)
	}
	if got := kdig(t, addr, "_dnslink.share1.example.org", "TXT"); len(got) != 0 {
		t.Errorf("share1 still published: %v", got)
	}

	// Updates signed with a wrong secret or an unknown key are refused and
	// explained.
	bad := []struct {
		name string
		key  TSIGKey
		want string
	}{
		{"wrong secret", TSIGKey{key.Name, key.Algorithm, base64.StdEncoding.EncodeToString([]byte("not the secret at all, 32 bytes!"))}, "BADSIG"},
		{"unknown key", TSIGKey{"stranger", key.Algorithm, key.Secret}, "BADKEY"},
		// Knot answers BADKEY for a key its ACL does not allow, too.
		{"key without rights", TSIGKey{"reader", key.Algorithm, key.Secret}, "ACL"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			p, err := NewPublisher(PublisherConfig{Zone: "example.org", Primary: addr, TSIG: b.key})
			if err != nil {
				t.Fatal(err)
			}
			recs.Links["evil"] = Link{Namespace: "ipns", ID: "evil.example"}
			defer delete(recs.Links, "evil")
			_, err = p.Publish(ctx, recs)
			if !errors.Is(err, ErrUpdateRefused) || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("got %v, want ErrUpdateRefused mentioning %s", err, b.want)
			}
			t.Log(err)
			if got := kdig(t, addr, "_dnslink.evil.example.org", "TXT"); len(got) != 0 {
				t.Fatalf("refused update was applied: %v", got)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	c := Config{Zone: "example.org", Listen: "127.0.0.1:5353", Servers: []string{"127.0.0.1:53"}, Primary: "127.0.0.1",
		TSIG: "k:hmac-sha256:c2VjcmV0", TrustAnchor: "example.org. IN DS 1 13 2 AB"}
	if rc := c.ResolverConfig(nil); rc.TrustAnchor != c.TrustAnchor || len(rc.Servers) != 1 {
		t.Errorf("ResolverConfig %+v", rc)
	}
	pc, err := c.PublisherConfig(nil)
	if err != nil || pc.TSIG.Name != "k" || pc.Primary != "127.0.0.1" {
		t.Errorf("PublisherConfig %+v %v", pc, err)
	}
	p, err := NewPublisher(pc)
	if err != nil || p.cfg.Primary != "127.0.0.1:53" {
		t.Errorf("NewPublisher: %v %v", p, err)
	}
	if _, err := (Config{TSIG: "bad"}).PublisherConfig(nil); err == nil {
		t.Error("bad dns.tsig accepted")
	}
	if sc, err := c.ServerConfig(nil); err != nil || sc.Listen != c.Listen {
		t.Errorf("ServerConfig %+v %v", sc, err)
	}
	if _, err := (Config{}).ServerConfig(nil); err == nil {
		t.Error("empty dns.listen accepted")
	}
	if zc := c.ZoneConfig(nil); zc.Zone != "example.org" {
		t.Errorf("ZoneConfig %+v", zc)
	}
}
