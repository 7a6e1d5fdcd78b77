package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// recordingGater passes every decision to the real gater and records the
// address dials it was asked about, with the answer.
type recordingGater struct {
	connmgr.ConnectionGater
	mu    sync.Mutex
	dials []gateDecision
}

type gateDecision struct {
	addr  multiaddr.Multiaddr
	allow bool
}

func (g *recordingGater) InterceptAddrDial(p peer.ID, a multiaddr.Multiaddr) bool {
	allow := g.ConnectionGater.InterceptAddrDial(p, a)
	g.mu.Lock()
	g.dials = append(g.dials, gateDecision{a, allow})
	g.mu.Unlock()
	return allow
}

func (g *recordingGater) decisions() []gateDecision {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gateDecision(nil), g.dials...)
}

// recordingRcmgr records every outbound connection the transports open. TCP
// and QUIC call OpenConnection right before they create the socket, so this
// is the list of socket-level dial attempts. It is also the test's safety
// net: it fails any outbound connection outside loopback, so even a broken
// gater cannot make a test send a packet off the machine.
type recordingRcmgr struct {
	network.ResourceManager
	mu  sync.Mutex
	out []multiaddr.Multiaddr
}

var errOffLoopback = errors.New("test safety net: outbound connection outside loopback")

func (r *recordingRcmgr) OpenConnection(dir network.Direction, usefd bool, endpoint multiaddr.Multiaddr) (network.ConnManagementScope, error) {
	if dir == network.DirOutbound {
		r.mu.Lock()
		r.out = append(r.out, endpoint)
		r.mu.Unlock()
		if !loopbackOnly(endpoint) {
			return nil, errOffLoopback
		}
	}
	return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
}

func (r *recordingRcmgr) outbound() []multiaddr.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]multiaddr.Multiaddr(nil), r.out...)
}

// recordingResolver records what libp2p asked to resolve.
type recordingResolver struct {
	network.MultiaddrDNSResolver
	mu    sync.Mutex
	asked []multiaddr.Multiaddr
}

func (r *recordingResolver) record(a multiaddr.Multiaddr) {
	r.mu.Lock()
	r.asked = append(r.asked, a)
	r.mu.Unlock()
}

func (r *recordingResolver) ResolveDNSAddr(ctx context.Context, p peer.ID, a multiaddr.Multiaddr, rec, out int) ([]multiaddr.Multiaddr, error) {
	r.record(a)
	return r.MultiaddrDNSResolver.ResolveDNSAddr(ctx, p, a, rec, out)
}

func (r *recordingResolver) ResolveDNSComponent(ctx context.Context, a multiaddr.Multiaddr, out int) ([]multiaddr.Multiaddr, error) {
	r.record(a)
	return r.MultiaddrDNSResolver.ResolveDNSComponent(ctx, a, out)
}

func (r *recordingResolver) questions() []multiaddr.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]multiaddr.Multiaddr(nil), r.asked...)
}

// instruments watch a host from below: its gater, its resolver, and the
// resource manager its transports consult right before opening a socket.
type instruments struct {
	gater    *recordingGater
	resolver *recordingResolver
	rm       *recordingRcmgr
}

// instrument installs instruments around h's gater and resolver (or around
// the given replacements, to break the policy on purpose) and starts h.
func instrument(t *testing.T, h *Host, gater connmgr.ConnectionGater, resolver network.MultiaddrDNSResolver) *instruments {
	t.Helper()
	if gater == nil {
		gater = h.gater
	}
	if resolver == nil {
		resolver = h.resolver
	}
	in := &instruments{
		gater:    &recordingGater{ConnectionGater: gater},
		resolver: &recordingResolver{MultiaddrDNSResolver: resolver},
	}
	h.gater, h.resolver = in.gater, in.resolver
	h.rcmgrFor = func(real network.ResourceManager) network.ResourceManager {
		in.rm = &recordingRcmgr{ResourceManager: real}
		return in.rm
	}
	startNew(t, h)
	return in
}

// outsideLoopback are addresses a local-profile host must never reach.
var outsideLoopback = []string{
	"/ip4/192.0.2.1/tcp/4001",
	"/ip4/198.51.100.7/udp/4001/quic-v1",
	"/ip6/2001:db8::1/tcp/4001",
	"/ip6/::ffff:192.0.2.1/tcp/4001", // IPv4-mapped, not loopback
	"/ip4/0.0.0.0/tcp/4001",          // unspecified: Linux would dial it as loopback; refuse anyway
	"/dns4/example.com/tcp/4001",
	"/dns6/localhost/tcp/4001", // a name even if it would resolve to loopback
	"/dnsaddr/example.com",
	"/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf/p2p-circuit",
}

// probeLocal asks b to reach a (over TCP and QUIC, as controls) and then
// every address in outsideLoopback, both through Connect and straight
// through libp2p as addresses learned from other peers would go. It returns
// every breach of the local profile's policy that the instruments saw.
func probeLocal(t *testing.T, a, b *Host, in *instruments) (breaches []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Controls: dials to a loopback peer over both transports pass the
	// gater and reach the socket layer.
	for _, proto := range []string{"tcp", "quic-v1"} {
		if _, err := b.Connect(ctx, addrWith(t, a, proto)); err != nil {
			t.Fatalf("control dial over %s: %v", proto, err)
		}
		if err := b.Libp2p().Network().ClosePeer(a.ID()); err != nil {
			t.Fatal(err)
		}
	}

	fresh := func() string {
		id, _ := peer.IDFromPrivateKey(newKey(t))
		return "/p2p/" + id.String()
	}
	var names int
	for _, s := range outsideLoopback {
		addr := multiaddr.StringCast(s + fresh())
		before := len(in.gater.decisions())
		// Connect refuses before libp2p sees the address.
		if _, err := b.Connect(ctx, addr); !errors.Is(err, ErrRefused) {
			breaches = append(breaches, fmt.Sprintf("Connect(%s) = %v, want ErrRefused", addr, err))
		}
		if n := len(in.gater.decisions()); n != before {
			breaches = append(breaches, fmt.Sprintf("Connect(%s) reached the gater", addr))
		}
		pi, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Libp2p().Connect(ctx, *pi); err == nil {
			breaches = append(breaches, fmt.Sprintf("libp2p Connect(%s) succeeded", addr))
		}
		if needsResolving(addr) {
			names++
		}
	}

	var refused, allowedLoopback int
	for _, d := range in.gater.decisions() {
		switch {
		case !d.allow:
			refused++
		case loopbackOnly(d.addr):
			allowedLoopback++
		default:
			breaches = append(breaches, fmt.Sprintf("gater allowed a dial to %s", d.addr))
		}
	}
	if allowedLoopback == 0 {
		t.Error("control: gater saw no loopback dial; the instrument is blind")
	}

	var socketsLoopback int
	for _, ep := range in.rm.outbound() {
		if loopbackOnly(ep) {
			socketsLoopback++
		} else {
			breaches = append(breaches, fmt.Sprintf("a socket was about to open towards %s", ep))
		}
	}
	if socketsLoopback < 2 {
		t.Errorf("control: %d loopback sockets recorded, want one per transport", socketsLoopback)
	}

	// libp2p asks the resolver once per name, and the local one refuses.
	qs := in.resolver.questions()
	if len(qs) != names {
		t.Errorf("resolver asked %d times (%v), want once per name (%d)", len(qs), qs, names)
	}
	for _, q := range qs {
		if _, err := in.resolver.MultiaddrDNSResolver.ResolveDNSComponent(ctx, q, 1); err == nil && !startsWithDNSAddr(q) {
			breaches = append(breaches, fmt.Sprintf("resolver resolved %s", q))
		}
		if _, err := in.resolver.MultiaddrDNSResolver.ResolveDNSAddr(ctx, "", q, 1, 1); err == nil && startsWithDNSAddr(q) {
			breaches = append(breaches, fmt.Sprintf("resolver resolved %s", q))
		}
	}

	for _, p := range b.Peers() {
		// The DHT may reconnect to the control peer a, over loopback.
		if p.ID == a.ID() && !slices.ContainsFunc(p.Addrs, func(ad multiaddr.Multiaddr) bool { return !loopbackOnly(ad) }) {
			continue
		}
		breaches = append(breaches, fmt.Sprintf("left connected to %s at %v", p.ID, p.Addrs))
	}
	// The routable IP addresses reach the gater (libp2p drops unspecified
	// and relay addresses earlier, and nothing resolved the names).
	if len(breaches) == 0 && refused < 4 {
		t.Errorf("gater refused %d dials, want at least 4", refused)
	}
	return breaches
}

func startsWithDNSAddr(a multiaddr.Multiaddr) bool {
	return len(a) > 0 && a[0].Code() == multiaddr.P_DNSADDR
}

// TestLocalProfileDialsOnlyLoopback: a local-profile host asked to reach
// addresses outside loopback refuses every one, opens no socket towards any
// and resolves no name.
func TestLocalProfileDialsOnlyLoopback(t *testing.T) {
	a := startHost(t, localConfig(t))
	b, err := New(localConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	in := instrument(t, b, nil, nil)
	for _, br := range probeLocal(t, a, b, in) {
		t.Error(br)
	}
}

// TestProbeCatchesBrokenPolicy runs the same probe against a host whose
// gater allows everything and whose resolver maps every name to a
// documentation address: the probe must report breaches, or it proves
// nothing. The safety net in recordingRcmgr keeps the sockets closed.
func TestProbeCatchesBrokenPolicy(t *testing.T) {
	a := startHost(t, localConfig(t))
	b, err := New(localConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	in := instrument(t, b, allowAll{}, fakeResolver{to: "/ip4/192.0.2.53"})
	breaches := probeLocal(t, a, b, in)
	var gaterBreach, socketBreach, dnsBreach bool
	for _, br := range breaches {
		t.Log(br)
		gaterBreach = gaterBreach || strings.HasPrefix(br, "gater allowed")
		socketBreach = socketBreach || strings.HasPrefix(br, "a socket")
		dnsBreach = dnsBreach || strings.HasPrefix(br, "resolver resolved")
	}
	if !gaterBreach || !socketBreach || !dnsBreach {
		t.Errorf("probe missed a broken policy: gater %v socket %v dns %v", gaterBreach, socketBreach, dnsBreach)
	}
}

type allowAll struct{}

func (allowAll) InterceptPeerDial(peer.ID) bool                      { return true }
func (allowAll) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }
func (allowAll) InterceptAccept(network.ConnMultiaddrs) bool         { return true }
func (allowAll) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (allowAll) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// fakeResolver "resolves" every name to one IP address, with no lookup.
type fakeResolver struct{ to string }

func (f fakeResolver) ResolveDNSAddr(_ context.Context, _ peer.ID, a multiaddr.Multiaddr, _, _ int) ([]multiaddr.Multiaddr, error) {
	return []multiaddr.Multiaddr{multiaddr.StringCast(f.to + "/tcp/4001")}, nil
}

func (f fakeResolver) ResolveDNSComponent(_ context.Context, a multiaddr.Multiaddr, _ int) ([]multiaddr.Multiaddr, error) {
	_, rest := multiaddr.SplitFirst(a)
	return []multiaddr.Multiaddr{multiaddr.StringCast(f.to).Encapsulate(rest)}, nil
}

// TestLocalAdvertisesOnlyLoopback checks the addresses identify sends: the
// peer must learn only loopback ones.
func TestLocalAdvertisesOnlyLoopback(t *testing.T) {
	a := startHost(t, localConfig(t))
	b := startHost(t, localConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Connect(ctx, addrWith(t, a, "tcp")); err != nil {
		t.Fatal(err)
	}
	learned := b.Libp2p().Peerstore().Addrs(a.ID())
	if len(learned) == 0 {
		t.Fatal("b learned no address of a")
	}
	for _, ad := range learned {
		if !loopbackOnly(ad) {
			t.Errorf("a advertised %s", ad)
		}
	}
	for _, ad := range a.Libp2p().Addrs() {
		if !loopbackOnly(ad) {
			t.Errorf("a reports %s", ad)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"/ip4/127.0.0.1/tcp/4001", true},
		{"/ip4/127.8.9.10/udp/1/quic-v1", true},
		{"/ip6/::1/tcp/4001", true},
		{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf", true},
		{"/ip4/127.0.0.1", true},
		{"/ip4/128.0.0.1/tcp/4001", false},
		{"/ip4/10.0.0.1/tcp/4001", false},
		{"/ip4/192.168.1.1/tcp/4001", false},
		{"/ip4/0.0.0.0/tcp/4001", false},
		{"/ip6/::/tcp/4001", false},
		{"/ip6/fe80::1/tcp/4001", false},
		{"/ip6zone/lo/ip6/::1/tcp/4001", false},
		{"/dns4/localhost/tcp/4001", false},
		{"/dns/localhost/tcp/4001", false},
		{"/dnsaddr/localhost", false},
		{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf/p2p-circuit", false},
		{"/ip4/127.0.0.1/tcp/1/ws", false},
		{"/tcp/4001", false},
		{"/unix/tmp/sock", false},
	}
	for _, tt := range tests {
		if got := loopbackOnly(multiaddr.StringCast(tt.addr)); got != tt.want {
			t.Errorf("loopbackOnly(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if loopbackOnly(nil) {
		t.Error("loopbackOnly(nil) = true")
	}
}

// FuzzLoopbackOnly checks the dial policy against the standard library's
// idea of loopback on arbitrary binary multiaddrs: whatever it allows must
// be an IP loopback address carried by a transport this host runs.
func FuzzLoopbackOnly(f *testing.F) {
	for _, s := range []string{
		"/ip4/127.0.0.1/tcp/4001",
		"/ip6/::1/udp/4001/quic-v1",
		"/ip4/192.0.2.1/tcp/4001",
		"/dns4/localhost/tcp/1",
		"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWJGQYS8c7YtKxRJwF7ns3RguW4nUQR1WPYcLv4zC7Swmf/p2p-circuit",
	} {
		f.Add(multiaddr.StringCast(s).Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			return
		}
		if !loopbackOnly(a) {
			return
		}
		if !manet.IsIPLoopback(a) {
			t.Fatalf("allowed %s, which is not loopback", a)
		}
		for _, c := range a {
			switch c.Code() {
			case multiaddr.P_DNS, multiaddr.P_DNS4, multiaddr.P_DNS6, multiaddr.P_DNSADDR, multiaddr.P_CIRCUIT:
				t.Fatalf("allowed %s, which needs a name or relay", a)
			}
		}
	})
}
