package p2p

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
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

func (m *memberSet) add(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids[p] = true
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
		if id != h.ID() && lh.Network().Connectedness(id) != network.Connected {
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
		{"2026-11-28T07:30:00+09:00", []string{d(27)}, "2026-11-27T23:00:00Z"},        // 22:30 UTC
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

// fullAddrs returns h's addresses as full multiaddrs (…/p2p/<id>).
func fullAddrs(hs ...*Host) []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, h := range hs {
		out = append(out, h.Addrs()...)
	}
	return out
}

// dnsSource is a hand-written Config.DNSAddrs: it returns what the test put
// in it and counts the calls.
type dnsSource struct {
	mu    sync.Mutex
	addrs []multiaddr.Multiaddr
	calls int
}

func (d *dnsSource) set(as []multiaddr.Multiaddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = as
}

func (d *dnsSource) lookup(context.Context) ([]multiaddr.Multiaddr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return slices.Clone(d.addrs), nil
}

// TestDNSFindsSiblings: DHT off, only a DNSAddrs function that lists two
// running members and a non-member: a freshly started member connects to
// both members and never dials the non-member.
func TestDNSFindsSiblings(t *testing.T) {
	noDHT := func() Config {
		cfg := localConfig(t)
		cfg.ListenAddrs = tcpLoopback
		cfg.DHT = DHTOff
		return cfg
	}
	cfgs := []Config{noDHT(), noDHT(), noDHT()}
	var memberIDs []peer.ID
	for _, c := range cfgs {
		id, _ := peer.IDFromPrivateKey(c.Key)
		memberIDs = append(memberIDs, id)
	}
	members := newMemberSet(memberIDs...)
	outsider := startHost(t, noDHT())
	var running []*Host
	for _, c := range cfgs[:2] {
		c.Members = members
		running = append(running, startHost(t, c))
	}

	src := &dnsSource{}
	src.set(fullAddrs(append(running, outsider)...))
	fresh := cfgs[2]
	fresh.Members = members
	fresh.DNSAddrs = src.lookup
	start := time.Now()
	h := startHost(t, fresh)
	took := waitForIn(t, 10*time.Second, "connected to both siblings", func() bool { return connectedTo(h, memberIDs...) })
	t.Logf("connected to both siblings via DNS %v after Start returned (Start took %v)", took, time.Since(start)-took)

	if dialledBy(h, outsider.ID()) || len(outsider.Peers()) != 0 {
		t.Errorf("the non-member listed in DNS was dialled: %v", outsider.Peers())
	}
	for _, s := range h.Siblings() {
		if !slices.Equal(s.Sources, []string{SourceDNS}) || !s.Connected || s.Path != PathDirect {
			t.Errorf("sibling %+v, want found by dns and connected directly", s)
		}
	}
	if n := len(h.Siblings()); n != 2 {
		t.Errorf("%d siblings, want 2", n)
	}
	waitFor(t, "sibling latency measured", func() bool {
		for _, s := range h.Siblings() {
			if s.Latency <= 0 {
				return false
			}
		}
		return true
	})
}

// TestRememberedReconnect: a member that knew its siblings is restarted (a
// new Host, same key and peer file, no DHT, no DNS) and reconnects to them
// from the remembered addresses alone.
func TestRememberedReconnect(t *testing.T) {
	file := t.TempDir() + "/peers.json"
	mk := func() Config {
		cfg := localConfig(t)
		cfg.ListenAddrs = tcpLoopback
		cfg.DHT = DHTOff
		return cfg
	}
	a, b, c := mk(), mk(), mk()
	var memberIDs []peer.ID
	for _, cfg := range []Config{a, b, c} {
		id, _ := peer.IDFromPrivateKey(cfg.Key)
		memberIDs = append(memberIDs, id)
	}
	members := newMemberSet(memberIDs...)
	b.Members, c.Members = members, members
	hb, hc := startHost(t, b), startHost(t, c)

	a.Members = members
	a.PeerStoreFile = file
	first, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{hb, hc} {
		if _, err := first.Connect(ctx, h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// The file names both siblings, and only them.
	remembered, err := (&Host{s: settings{peerFile: file}}).loadPeerFile()
	if err != nil {
		t.Fatal(err)
	}
	var got []peer.ID
	for _, ai := range remembered {
		got = append(got, ai.ID)
		if len(ai.Addrs) == 0 {
			t.Errorf("remembered %s without addresses", ai.ID)
		}
	}
	slices.Sort(got)
	want := slices.Clone(memberIDs[1:])
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("remembered %v, want %v", got, want)
	}
	// Let the siblings notice that a is gone, so that the reconnection
	// must come from a.
	waitFor(t, "siblings see a gone", func() bool {
		return !connectedTo(hb, memberIDs[0]) && !connectedTo(hc, memberIDs[0])
	})

	again := startHost(t, a)
	took := waitForIn(t, 10*time.Second, "reconnected", func() bool { return connectedTo(again, memberIDs[1:]...) })
	t.Logf("restarted member reconnected to both siblings %v after Start returned", took)
	for _, s := range again.Siblings() {
		if !slices.Contains(s.Sources, SourceRemembered) || !s.Connected {
			t.Errorf("sibling %+v, want remembered and connected", s)
		}
	}
}

// TestNoMembersDialsNobody: with Members nil, peers that every source
// reports are not dialled.
func TestNoMembersDialsNobody(t *testing.T) {
	other := startHost(t, localConfig(t))
	file := t.TempDir() + "/peers.json"
	data, err := encodePeerFile([]rememberedPeer{{ID: other.ID().String(), Addrs: []string{other.Libp2p().Addrs()[0].String()}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(file, data); err != nil {
		t.Fatal(err)
	}
	src := &dnsSource{}
	src.set(other.Addrs())
	cfg := localConfig(t)
	cfg.DNSAddrs = src.lookup
	cfg.PeerStoreFile = file
	h := startHost(t, cfg)
	waitFor(t, "both sources reported", func() bool {
		h.disc.mu.Lock()
		defer h.disc.mu.Unlock()
		return h.disc.rejected >= 2
	})
	if len(h.Peers()) != 0 || len(h.Siblings()) != 0 {
		t.Errorf("with no members: peers %v siblings %v", h.Peers(), h.Siblings())
	}
}

func TestPeerFileRoundTrip(t *testing.T) {
	id1, _ := peer.IDFromPrivateKey(newKey(t))
	id2, _ := peer.IDFromPrivateKey(newKey(t))
	now := time.Now().UTC().Truncate(time.Second)
	var many []string
	for i := range peerFileMaxAddrs + 5 {
		many = append(many, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1000+i))
	}
	data, err := encodePeerFile([]rememberedPeer{
		{ID: id1.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/1", "not an address"}, LastSeen: now.Add(-time.Hour)},
		{ID: id2.String(), Addrs: many, LastSeen: now},
		{ID: "not a peer id", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}, LastSeen: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePeerFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != id2 || got[1].ID != id1 {
		t.Fatalf("decoded %v, want %s then %s (most recent first)", got, id2, id1)
	}
	if len(got[0].Addrs) != peerFileMaxAddrs || len(got[1].Addrs) != 1 {
		t.Errorf("addresses %d and %d, want %d and 1", len(got[0].Addrs), len(got[1].Addrs), peerFileMaxAddrs)
	}
	for _, bad := range []string{``, `{}`, `{"version":2,"peers":[]}`, `[1,2]`, string(make([]byte, peerFileMaxBytes+1))} {
		if _, err := decodePeerFile([]byte(bad)); err == nil {
			t.Errorf("decodePeerFile(%.20q) succeeded", bad)
		}
	}
}

// FuzzDecodePeerFile: whatever the file holds, decoding stays within the
// bounds and yields valid peer IDs and addresses.
func FuzzDecodePeerFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":[{"id":"12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf","addrs":["/ip4/127.0.0.1/tcp/4001"],"last_seen":"2026-11-27T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"peers":[{"id":"x","addrs":["/dns4/"]}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := decodePeerFile(data)
		if err != nil {
			return
		}
		if len(peers) > peerFileMaxPeers {
			t.Fatalf("%d peers", len(peers))
		}
		for _, ai := range peers {
			if ai.ID.Validate() != nil || len(ai.Addrs) > peerFileMaxAddrs {
				t.Fatalf("bad entry %v", ai)
			}
			for _, a := range ai.Addrs {
				if _, err := multiaddr.NewMultiaddrBytes(a.Bytes()); err != nil {
					t.Fatalf("bad address %v: %v", a, err)
				}
			}
		}
	})
}

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestRendezvousAcrossDays: a member provides the day's key; near midnight
// it provides the next day's too; once the clock passes the boundary it
// provides the new day's key without a restart.
func TestRendezvousAcrossDays(t *testing.T) {
	crowd := startCrowd(t, 5)
	secret := []byte("test cloud secret, 32 bytes long")
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: day.Add(12 * time.Hour)}
	cfg := dhtConfig(t, crowd[0])
	cfg.RendezvousSecret = secret
	cfg.Now = clock.now
	// Wake every second, so that the test's clock jumps are seen soon.
	cfg.RendezvousInterval = time.Second
	h := startHost(t, cfg)

	provided := func(k cid.Cid) bool {
		for _, c := range crowd {
			ps, _ := c.dht.ProviderStore().GetProviders(context.Background(), k.Hash())
			for _, p := range ps {
				if p.ID == h.ID() {
					return true
				}
			}
		}
		return false
	}
	k1, k2, k3 := RendezvousKey(secret, day), RendezvousKey(secret, day.AddDate(0, 0, 1)), RendezvousKey(secret, day.AddDate(0, 0, 2))
	waitForIn(t, 30*time.Second, "day 1 key provided", func() bool { return provided(k1) })
	if provided(k2) {
		t.Error("day 2 key provided at noon of day 1")
	}
	// 23:30: the next day's key as well (the loop wakes for its early
	// lookups within seconds and sees the new time).
	clock.set(day.Add(23*time.Hour + 30*time.Minute))
	waitForIn(t, 30*time.Second, "day 2 key provided before midnight", func() bool { return provided(k2) })
	// Noon of day 3: that day's key.
	clock.set(day.AddDate(0, 0, 2).Add(12 * time.Hour))
	waitForIn(t, 60*time.Second, "day 3 key provided", func() bool { return provided(k3) })
}

// TestSetRendezvousSecret: two members start without a secret (a device
// that has not joined yet) and meet once they are given it at run time.
func TestSetRendezvousSecret(t *testing.T) {
	crowd := startCrowd(t, 5)
	a, b := dhtConfig(t, crowd[0]), dhtConfig(t, crowd[3])
	members := newMemberSet(peerOf(t, a), peerOf(t, b))
	a.Members, b.Members = members, members
	ha, hb := startHost(t, a), startHost(t, b)
	if err := ha.SetRendezvousSecret([]byte("short")); !errors.Is(err, ErrConfig) {
		t.Errorf("short secret = %v, want ErrConfig", err)
	}
	if keys := ha.rendezvousKeys(time.Now()); keys != nil {
		t.Fatalf("keys without a secret: %v", keys)
	}
	if connectedTo(ha, hb.ID()) {
		t.Fatal("members met without a secret")
	}
	secret := []byte("test cloud secret, 32 bytes long")
	for _, h := range []*Host{ha, hb} {
		if err := h.SetRendezvousSecret(secret); err != nil {
			t.Fatal(err)
		}
	}
	took := waitForIn(t, 30*time.Second, "members met", func() bool { return connectedTo(ha, hb.ID()) })
	t.Logf("met %v after the secret was set", took)
}
