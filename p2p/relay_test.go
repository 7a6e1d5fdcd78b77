package p2p

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/multiformats/go-multiaddr"
)

// TestRelayServesMembersOnly runs a member relay among loopback hosts: a
// member reserves a slot and another member reaches it through the relay;
// a non-member can neither reserve nor connect through it.
func TestRelayServesMembersOnly(t *testing.T) {
	mk := func() Config {
		cfg := localConfig(t)
		cfg.ListenAddrs = tcpLoopback
		cfg.DHT = DHTOff
		return cfg
	}
	rc, ac, bc, nc := mk(), mk(), mk(), mk()
	var memberIDs []peer.ID
	for _, c := range []Config{rc, ac, bc} {
		id, _ := peer.IDFromPrivateKey(c.Key)
		memberIDs = append(memberIDs, id)
	}
	members := newMemberSet(memberIDs...)
	rc.RelayService = true
	rc.Members, ac.Members, bc.Members = members, members, members
	nc.Members = newMemberSet(append(memberIDs, peerOf(t, nc))...)
	r, a, b, n := startHost(t, rc), startHost(t, ac), startHost(t, bc), startHost(t, nc)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	relayInfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Libp2p().Addrs()}
	if _, err := client.Reserve(ctx, a.Libp2p(), relayInfo); err != nil {
		t.Fatalf("member reservation: %v", err)
	}
	var rerr client.ReservationError
	if _, err := client.Reserve(ctx, n.Libp2p(), relayInfo); !errors.As(err, &rerr) {
		t.Errorf("non-member reservation = %v, want a refusal", err)
	} else {
		t.Logf("non-member reservation refused: %v", err)
	}

	circuit := multiaddr.StringCast(addrWith(t, r, "tcp").String() + "/p2p-circuit/p2p/" + a.ID().String())
	if _, err := n.Connect(ctx, circuit); err == nil {
		t.Error("non-member connected through the relay")
	}
	if _, err := b.Connect(ctx, circuit); err != nil {
		t.Fatalf("member through the relay: %v", err)
	}
	var sib Sibling
	for _, s := range b.Siblings() {
		if s.ID == a.ID() {
			sib = s
		}
	}
	if !sib.Connected || sib.Path != PathRelayed || sib.Relay != r.ID() || sib.WhyNotDirect == "" {
		t.Errorf("b's view of a = %+v, want relayed through %s with a reason", sib, r.ID())
	}
	t.Logf("why not direct: %s", sib.WhyNotDirect)

	// A circuit through a relay outside loopback stays refused.
	far := multiaddr.StringCast("/ip4/192.0.2.1/tcp/4001/p2p/" + r.ID().String() + "/p2p-circuit/p2p/" + a.ID().String())
	if _, err := b.Connect(ctx, far); !errors.Is(err, ErrRefused) {
		t.Errorf("circuit through a documentation address = %v, want ErrRefused", err)
	}
}

func peerOf(t testing.TB, cfg Config) peer.ID {
	id, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLocalDialable(t *testing.T) {
	const r = "12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf"
	tests := []struct {
		addr string
		want bool
	}{
		{"/ip4/127.0.0.1/tcp/1", true},
		{"/ip4/127.0.0.1/tcp/1/p2p/" + r + "/p2p-circuit", true},
		{"/ip4/127.0.0.1/tcp/1/p2p/" + r + "/p2p-circuit/p2p/" + r, true},
		{"/ip4/127.0.0.1/tcp/1/p2p-circuit", false}, // relay not named
		{"/p2p/" + r + "/p2p-circuit", false},
		{"/ip4/192.0.2.1/tcp/1/p2p/" + r + "/p2p-circuit", false},
		{"/dns4/localhost/tcp/1/p2p/" + r + "/p2p-circuit", false},
		{"/ip4/127.0.0.1/tcp/1/p2p/" + r + "/p2p-circuit/ip4/192.0.2.1/tcp/1", false},
		{"/ip4/127.0.0.1/tcp/1/p2p/" + r + "/p2p-circuit/p2p/" + r + "/p2p-circuit", false},
	}
	for _, tt := range tests {
		if got := localDialable(multiaddr.StringCast(tt.addr)); got != tt.want {
			t.Errorf("localDialable(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// revokedSet is a hand-written Config.Revoked.
type revokedSet struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func (r *revokedSet) revoke(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[peer.ID]bool{}
	}
	r.ids[p] = true
}

func (r *revokedSet) revoked(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[p]
}

// TestRevokedRefusedAndDisconnected: a member revokes a connected device,
// disconnects it, and from then on neither accepts nor dials it.
func TestRevokedRefusedAndDisconnected(t *testing.T) {
	mk := func() Config {
		cfg := localConfig(t)
		cfg.DHT = DHTOff
		return cfg
	}
	ac, bc := mk(), mk()
	rev := &revokedSet{}
	ac.Revoked = rev.revoked
	ac.Members = newMemberSet(peerOf(t, ac), peerOf(t, bc))
	a, b := startHost(t, ac), startHost(t, bc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Connect(ctx, addrWith(t, a, "tcp")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees b", func() bool { return connectedTo(a, b.ID()) })
	if len(a.Siblings()) != 1 {
		t.Errorf("a Siblings = %v, want b", a.Siblings())
	}

	rev.revoke(b.ID())
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	if connectedTo(a, b.ID()) {
		t.Fatal("still connected after Disconnect")
	}
	if s := a.Siblings(); len(s) != 0 {
		t.Errorf("a still lists the revoked device: %+v", s)
	}
	for _, proto := range []string{"tcp", "quic-v1"} {
		if _, err := b.Connect(ctx, addrWith(t, a, proto)); err == nil {
			// The dialler may see success before a's check lands;
			// what matters is that no connection survives.
			waitFor(t, "a drops the revoked device", func() bool { return !connectedTo(a, b.ID()) })
		}
	}
	if _, err := a.Connect(ctx, addrWith(t, b, "tcp")); !errors.Is(err, ErrRefused) {
		t.Errorf("a dialling the revoked device = %v, want ErrRefused", err)
	}
	if connectedTo(a, b.ID()) {
		t.Error("a is connected to the revoked device")
	}
}

// FuzzLocalDialable: whatever the local policy allows is loopback up to
// the circuit, and names no DNS, and at most one relay hop.
func FuzzLocalDialable(f *testing.F) {
	const r = "12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf"
	for _, s := range []string{
		"/ip4/127.0.0.1/tcp/1/p2p/" + r + "/p2p-circuit/p2p/" + r,
		"/ip4/192.0.2.1/tcp/1/p2p/" + r + "/p2p-circuit",
		"/ip6/::1/udp/1/quic-v1",
	} {
		f.Add(multiaddr.StringCast(s).Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil || !localDialable(a) {
			return
		}
		circuits := 0
		for i, c := range a {
			switch c.Code() {
			case multiaddr.P_DNS, multiaddr.P_DNS4, multiaddr.P_DNS6, multiaddr.P_DNSADDR:
				t.Fatalf("allowed %s, which needs a name", a)
			case multiaddr.P_CIRCUIT:
				circuits++
				if !loopbackOnly(a[:i]) {
					t.Fatalf("allowed %s through a relay outside loopback", a)
				}
			}
		}
		if circuits > 1 || !loopbackOnly(a[:1]) {
			t.Fatalf("allowed %s", a)
		}
	})
}
