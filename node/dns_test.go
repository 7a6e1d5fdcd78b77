package node

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node/api"
)

// startKnot runs Knot DNS on a free loopback port as the primary of zone,
// with a TSIG key that may update and transfer it. It skips when knotd is
// missing, unless CI or PCNODE_REQUIRE_TOOLS is set
// (scripts/install-dns-tools.sh installs it).
func startKnot(t *testing.T, zone string) (addr, tsig string) {
	t.Helper()
	knotd, err := exec.LookPath("knotd")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("PCNODE_REQUIRE_TOOLS") != "" {
			t.Fatalf("knotd not found: run scripts/install-dns-tools.sh")
		}
		t.Skip("knotd not found (scripts/install-dns-tools.sh installs it)")
	}
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	b64 := base64.StdEncoding.EncodeToString(secret)
	var port int
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			break
		}
	}
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
key:
  - id: pcnode-key
    algorithm: hmac-sha256
    secret: %[3]s
acl:
  - id: pcnode-update
    key: pcnode-key
    action: [update, transfer]
template:
  - id: default
    storage: "%[1]s"
    file: "%%s.zone"
zone:
  - domain: %[4]s
    acl: pcnode-update
`, dir, port, b64, strings.TrimSuffix(zone, "."))
	zf := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n", zone)
	if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(zone, ".")+".zone"), []byte(zf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "knot.log")
	lf, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(knotd, "-c", filepath.Join(dir, "knot.conf"))
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, "knotd to answer", 15*time.Second, func() (bool, string) {
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		r, _, err := (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			return true, ""
		}
		b, _ := os.ReadFile(logf)
		return false, fmt.Sprintf("%v; log: %s", err, b)
	})
	return addr, "pcnode-key:hmac-sha256:" + b64
}

// TestDNSPublishKnot: a daemon with dns.primary and dns.tsig set keeps
// Knot's copy of the zone current by itself (_pcnode, this node's
// _dnsaddr and its device name), and an explicit publish then finds
// nothing to change.
func TestDNSPublishKnot(t *testing.T) {
	const zone = "example.test."
	primary, tsig := startKnot(t, zone)
	home := newHomeWith(t, InitOptions{Name: "a"}, map[string]string{"dns.zone": zone, "dns.primary": primary, "dns.tsig": tsig})
	startNode(t, home, false)
	c, err := api.DialHome(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	complete := func() bool {
		txts, _ := queryTXT(t, primary, "_pcnode."+zone)
		if want := []string{"pcnode=v1 cloud=" + st.Cloud}; !slices.Equal(txts, want) {
			return false
		}
		txts, _ = queryTXT(t, primary, "_dnsaddr."+zone)
		for _, a := range st.Addrs {
			if _, err := multiaddr.NewMultiaddr(a); err != nil || !slices.Contains(txts, "dnsaddr="+a) {
				return false
			}
		}
		return slices.Equal(queryA(t, primary, "a."+zone), []string{"127.0.0.1"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for !complete() {
		if time.Now().After(deadline) {
			t.Fatalf("Knot does not serve the daemon's records 10 s after start (_pcnode, _dnsaddr %q, a.%s)", st.Addrs, zone)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := c.DNSPublish(ctx)
	if err != nil || len(res.Added)+len(res.Removed) != 0 || res.Zone != zone || res.Primary != primary {
		t.Fatalf("explicit publish after the daemon's own %+v, %v: want no change", res, err)
	}
}

// TestDNSPublishWrongKey: Knot refuses a key with the wrong secret and
// the API says so as a refusal.
func TestDNSPublishWrongKey(t *testing.T) {
	const zone = "example.test."
	primary, _ := startKnot(t, zone)
	bad := "pcnode-key:hmac-sha256:" + base64.StdEncoding.EncodeToString([]byte("not the secret, not at all......"))
	home := newHomeWith(t, InitOptions{Name: "a"}, map[string]string{"dns.zone": zone, "dns.primary": primary, "dns.tsig": bad})
	n := startNode(t, home, false)
	_, err := n.DNSPublish(t.Context())
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "BADSIG") {
		t.Fatalf("publish with a wrong secret: %v", err)
	}
}

// TestDNSPublishNeeds checks each missing setting is named with its fix.
func TestDNSPublishNeeds(t *testing.T) {
	tests := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{}, "dns.zone is not set: pcnode config set dns.zone"},
		{map[string]string{"dns.zone": "example.test"}, "dns.primary is not set: pcnode config set dns.primary host:port"},
		{map[string]string{"dns.zone": "example.test", "dns.primary": "127.0.0.1:53"}, "dns.tsig is not set"},
		{map[string]string{"dns.zone": "example.test", "dns.primary": "192.0.2.1:53", "dns.tsig": "k:hmac-sha256:c2VjcmV0"}, "not a loopback address"},
	}
	for _, tt := range tests {
		home := newHomeWith(t, InitOptions{Name: "a"}, tt.set)
		n := startNode(t, home, true)
		_, err := n.DNSPublish(t.Context())
		if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("settings %v: publish error %v, want ErrConflict containing %q", tt.set, err, tt.want)
		}
		n.Close()
	}
}
