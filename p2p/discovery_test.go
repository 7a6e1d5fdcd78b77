package p2p

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

// testDHTPrefix keeps every test DHT apart from the public Amino DHT.
const testDHTPrefix = "/pcnode-test"

// memberSet is a hand-written Members: a set of peer IDs.
type memberSet struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func newMemberSet(ids ...peer.ID) *memberSet {
	m := &memberSet{ids: map[peer.ID]bool{}}
	for _, id := range ids {
		m.ids[id] = true
	}
	return m
}

func (m *memberSet) IsMember(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[p]
}

func (m *memberSet) remove(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ids, p)
}

var tcpLoopback = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")}

// dhtConfig is a local-profile config on a private DHT, TCP only (one
// transport keeps a crowd of hosts cheap), bootstrapping from boot.
func dhtConfig(t testing.TB, boot ...*Host) Config {
	cfg := localConfig(t)
	cfg.ListenAddrs = tcpLoopback
	cfg.DHTPrefix = testDHTPrefix
	cfg.Bootstrap = []peer.AddrInfo{}
	for _, b := range boot {
		cfg.Bootstrap = append(cfg.Bootstrap, peer.AddrInfo{ID: b.ID(), Addrs: b.Libp2p().Addrs()})
	}
	return cfg
}

// startCrowd starts n DHT servers that are not members of anything: each
// bootstraps from up to three earlier ones. It returns when every routing
// table has at least min(n-1, 5) peers.
func startCrowd(t testing.TB, n int) []*Host {
	t.Helper()
	var crowd []*Host
	start := time.Now()
	for i := range n {
		var boot []*Host
		for _, j := range []int{0, i / 2, i - 1} {
			if j >= 0 && j < i && !slices.Contains(boot, crowd[j]) {
				boot = append(boot, crowd[j])
			}
		}
		crowd = append(crowd, startHost(t, dhtConfig(t, boot...)))
	}
	t.Logf("crowd: %d hosts started in %v", n, time.Since(start))
	want := min(n-1, 5)
	waitForIn(t, 30*time.Second, "crowd routing tables", func() bool {
		for _, h := range crowd {
			if h.dht.RoutingTable().Size() < want {
				return false
			}
		}
		return true
	})
	return crowd
}

// waitForIn polls cond until it holds or d passes.
func waitForIn(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// connectedTo reports whether h has a connection to every peer in ids.
func connectedTo(h *Host, ids ...peer.ID) bool {
	lh := h.Libp2p()
	for _, id := range ids {
		if id != h.ID() && lh.Network().Connectedness(id) != 1 {
			return false
		}
	}
	return true
}

// dialledBy reports whether h has an outbound connection to p.
func dialledBy(h *Host, p peer.ID) bool {
	for _, pi := range h.Peers() {
		if pi.ID == p && pi.Direction == "outbound" {
			return true
		}
	}
	return false
}

func ids(hs ...*Host) []peer.ID {
	var out []peer.ID
	for _, h := range hs {
		out = append(out, h.ID())
	}
	return out
}

func TestRendezvousKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("pcnode-rendezvous/2026-11-27"))
	want, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum(mac.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := RendezvousKey(secret, day); !got.Equals(want) {
		t.Fatalf("RendezvousKey = %s, want %s", got, want)
	}
	// The same UTC day from another zone and time of day.
	east := time.FixedZone("UTC+9", 9*3600)
	if got := RendezvousKey(secret, time.Date(2026, 11, 28, 8, 59, 0, 0, east)); !got.Equals(want) {
		t.Errorf("same UTC day in another zone gave %s", got)
	}
	for name, k := range map[string]cid.Cid{
		"next day":     RendezvousKey(secret, day.AddDate(0, 0, 1)),
		"other secret": RendezvousKey([]byte("fedcba9876543210fedcba9876543210"), day),
	} {
		if k.Equals(want) {
			t.Errorf("%s gave the same key", name)
		}
	}
}

func TestRendezvousDays(t *testing.T) {
	d := func(day int) string { return fmt.Sprintf("2026-11-%02d", day) }
	tests := []struct {
		at   string
		want []string
		next string
	}{
		{"2026-11-27T12:00:00Z", []string{d(27)}, "2026-11-27T23:00:00Z"},
		{"2026-11-27T00:00:00Z", []string{d(27), d(26)}, "2026-11-27T01:00:00Z"},
		{"2026-11-27T00:59:59Z", []string{d(27), d(26)}, "2026-11-27T01:00:00Z"},
		{"2026-11-27T01:00:00Z", []string{d(27)}, "2026-11-27T23:00:00Z"},
		{"2026-11-27T22:59:59Z", []string{d(27)}, "2026-11-27T23:00:00Z"},
		{"2026-11-27T23:00:00Z", []string{d(27), d(28)}, "2026-11-28T00:00:00Z"},
		{"2026-11-27T23:59:59Z", []string{d(27), d(28)}, "2026-11-28T00:00:00Z"},
		{"2026-11-28T07:30:00+09:00", []string{d(27)}, "2026-11-27T23:00:00Z"}, // 22:30 UTC
		{"2026-11-28T08:30:00+09:00", []string{d(27), d(28)}, "2026-11-28T00:00:00Z"}, // 23:30 UTC
	}
	for _, tt := range tests {
		at, err := time.Parse(time.RFC3339, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, day := range rendezvousDays(at) {
			got = append(got, day.Format(time.DateOnly))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("rendezvousDays(%s) = %v, want %v", tt.at, got, tt.want)
		}
		if next := nextDaysChange(at).Format(time.RFC3339); next != tt.next {
			t.Errorf("nextDaysChange(%s) = %s, want %s", tt.at, next, tt.next)
		}
	}
}

// TestRendezvousFindsSiblings: three members and a private DHT of 20 other
// hosts, no mDNS, no DNS: the members find and connect to each other
// through the rendezvous alone. A non-member that knows the secret (say, a
// revoked device) provides the same key; the members find it and never
// dial it.
func TestRendezvousFindsSiblings(t *testing.T) {
	start := time.Now()
	crowd := startCrowd(t, 20)
	t.Logf("crowd of 20 up in %v", time.Since(start))
	secret := []byte("test cloud secret, 32 bytes long")

	var keys [3]Config
	for i := range keys {
		keys[i] = dhtConfig(t, crowd[i*5], crowd[i*5+1])
	}
	outsiderCfg := dhtConfig(t, crowd[2], crowd[7])
	outsiderCfg.DHT = DHTClient
	outsiderCfg.RendezvousSecret = secret
	outsiderID, _ := peer.IDFromPrivateKey(outsiderCfg.Key)

	var memberIDs []peer.ID
	for _, c := range keys {
		id, _ := peer.IDFromPrivateKey(c.Key)
		memberIDs = append(memberIDs, id)
	}
	members := newMemberSet(memberIDs...)
	outsiderCfg.Members = newMemberSet(append(memberIDs, outsiderID)...)
	outsider := startHost(t, outsiderCfg)
	// Let the outsider's provider record land first, so that the members'
	// lookups find it.
	key := RendezvousKey(secret, time.Now()).Hash()
	waitForIn(t, 30*time.Second, "outsider provided", func() bool {
		for _, c := range crowd {
			if ps, _ := c.dht.ProviderStore().GetProviders(context.Background(), key); len(ps) > 0 {
				return true
			}
		}
		return false
	})

	t.Logf("outsider provided after %v", time.Since(start))
	var hs []*Host
	for _, cfg := range keys {
		cfg.RendezvousSecret = secret
		cfg.Members = members
		hs = append(hs, startHost(t, cfg))
	}
	took := waitForIn(t, 45*time.Second, "members connected to each other", func() bool {
		for _, h := range hs {
			if !connectedTo(h, memberIDs...) {
				return false
			}
		}
		return true
	})
	t.Logf("three members connected through the rendezvous in %v", took)

	var rejected int
	for _, h := range hs {
		if dialledBy(h, outsider.ID()) {
			t.Errorf("member %s dialled the outsider", h.ID())
		}
		h.disc.mu.Lock()
		rejected += h.disc.rejected
		h.disc.mu.Unlock()
		sibs := h.Siblings()
		if len(sibs) != 2 {
			t.Errorf("%s Siblings = %+v, want the two others", h.ID(), sibs)
		}
		for _, s := range sibs {
			if s.ID == outsider.ID() || !slices.Contains(memberIDs, s.ID) {
				t.Errorf("%s lists %s as a sibling", h.ID(), s.ID)
			}
			if !s.Connected || s.Path != PathDirect || s.WhyNotDirect != "" || s.FirstSeen.IsZero() {
				t.Errorf("%s sibling %+v, want connected directly", h.ID(), s)
			}
			if !slices.Contains(s.Sources, SourceDHT) && !slices.Contains(s.Sources, SourceInbound) {
				t.Errorf("%s sibling %s sources %v", h.ID(), s.ID, s.Sources)
			}
		}
	}
	if rejected == 0 {
		t.Error("no member found the outsider's provider record; the test proves nothing about refusing it")
	}
}
