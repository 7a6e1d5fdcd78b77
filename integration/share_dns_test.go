package integration

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pcnode/pcnode/node/api"
)

// TestShareNameKnot: `pcnode share --name photos` on a daemon with
// dns.zone, dns.primary and dns.tsig publishes _dnslink.photos.<zone> to
// the zone's primary (Knot, by RFC 2136 UPDATE signed with TSIG), so the
// share has a name; `share revoke` withdraws it.
func TestShareNameKnot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon and knotd")
	}
	// The key may update the zone and transfer it: the publisher reads
	// the zone (AXFR) to find stale share names to remove.
	kaddr, key := startKnotPrimary(t, "[transfer, update]")

	p := newProc(t, "sharer")
	p.must("config", "set", "dns.zone", "example.test")
	p.must("config", "set", "dns.primary", kaddr)
	p.must("config", "set", "dns.tsig", "pcnode-key:hmac-sha256:"+key)
	p.start()
	file := writeRandom(t, t.TempDir(), 4096, 3)
	var sh api.ShareInfo
	p.mustJSON(&sh, "share", "--name", "photos", file)
	if sh.DNSName != "photos.example.test" {
		t.Errorf("share --json dns_name %q", sh.DNSName)
	}
	lookup := func() []string {
		t.Helper()
		r, err := dnsQuery(kaddr, "_dnslink.photos.example.test", dns.TypeTXT, false)
		if err != nil {
			t.Fatal(err)
		}
		return txts(r)
	}
	want := "dnslink=/ipfs/" + sh.CID
	if got := lookup(); len(got) != 1 || got[0] != want {
		t.Errorf("knot serves _dnslink.photos %q, want %q", got, want)
	}
	// A second share cannot take the name while the first is active.
	if _, err := p.run("share", "--name", "photos", file); err == nil {
		t.Error("a second share took a name in use")
	}
	p.must("share", "revoke", sh.ID)
	// Revoking withdraws the record (the daemon publishes the change).
	deadline := time.Now().Add(15 * time.Second)
	for len(lookup()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("knot still serves _dnslink.photos %q after the revoke", lookup())
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}
