package dnslink

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
)

const (
	testPeer  = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
	testPeer2 = "QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa"
	testCID   = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
)

// needTool returns the path of an external program, skipping the test when
// it is missing, or failing it when CI or PCNODE_REQUIRE_TOOLS=1 says the
// tools must be there.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	msg := name + " not found: run scripts/install-dns-tools.sh (apt-get install knot knot-dnsutils unbound bind9-dnsutils)"
	if os.Getenv("CI") != "" || os.Getenv("PCNODE_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustMA(t testing.TB, s string) multiaddr.Multiaddr {
	t.Helper()
	ma, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return ma
}

// testRecords is a small but complete record set for zone tests.
func testRecords(t testing.TB) Records {
	l, err := ParseDNSLink("dnslink=/ipfs/" + testCID)
	if err != nil {
		t.Fatal(err)
	}
	return Records{
		PCNode:   &PCNode{Cloud: "k51cloudid"},
		DNSAddrs: []multiaddr.Multiaddr{mustMA(t, "/ip4/127.0.0.1/tcp/4001/p2p/"+testPeer)},
		Links:    map[string]Link{"": l, "share1": {Namespace: "ipns", ID: "example.net"}},
		Hosts:    map[string][]netip.Addr{"laptop": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}, "ns1": {netip.MustParseAddr("127.0.0.1")}},
	}
}

// startZone serves a signed zone for origin with testRecords on a free
// loopback port.
func startZone(t testing.TB, origin string, key *Key) (*Zone, *Server) {
	t.Helper()
	z, err := NewZone(ZoneConfig{Zone: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.SetRecords(testRecords(t)); err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerConfig{Listen: "127.0.0.1:0", RateLimit: -1}, z)
	if err := s.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return z, s
}

func mustKey(t testing.TB) *Key {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
