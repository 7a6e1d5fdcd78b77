package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newBlockstore() blockstore.Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
}

// localConfig is a ProfileLocal config with a fresh key and memory store.
func localConfig(t testing.TB) Config {
	return Config{Key: newKey(t), Profile: ProfileLocal, Blockstore: newBlockstore()}
}

// startHost starts a Host from cfg and closes it when the test ends.
func startHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return startNew(t, h)
}

func startNew(t testing.TB, h *Host) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// addrWith returns h's first address whose transport part contains proto
// ("tcp" or "quic-v1").
func addrWith(t testing.TB, h *Host, proto string) multiaddr.Multiaddr {
	t.Helper()
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), "/"+proto+"/") || strings.HasSuffix(strings.SplitN(a.String(), "/p2p/", 2)[0], "/"+proto) {
			return a
		}
	}
	t.Fatalf("%s has no %s address in %v", h.ID(), proto, h.Addrs())
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewChecksConfig(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := localConfig(t)
	other := newKey(t)
	otherID, _ := peer.IDFromPrivateKey(other)

	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no key", func(c *Config) { c.Key = nil }},
		{"secp256k1 key", func(c *Config) { c.Key = secp }},
		{"no blockstore", func(c *Config) { c.Blockstore = nil }},
		{"unknown profile", func(c *Config) { c.Profile = "public" }},
		{"low above high", func(c *Config) { c.ConnLow, c.ConnHigh = 50, 10 }},
		{"negative low", func(c *Config) { c.ConnLow = -1 }},
		{"empty listen list", func(c *Config) { c.ListenAddrs = []multiaddr.Multiaddr{} }},
		{"local listens on all interfaces", func(c *Config) {
			c.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/0.0.0.0/tcp/0")}
		}},
		{"local listens on a LAN address", func(c *Config) {
			c.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/192.0.2.1/udp/0/quic-v1")}
		}},
		{"local bootstrap outside loopback", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{ID: otherID, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/198.51.100.1/tcp/4001")}}}
		}},
		{"local bootstrap by DNS name", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{ID: otherID, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/dns4/localhost/tcp/4001")}}}
		}},
		{"unknown DHT mode", func(c *Config) { c.DHT = "both" }},
		{"short rendezvous secret", func(c *Config) { c.RendezvousSecret = []byte("short") }},
		{"negative DNS interval", func(c *Config) { c.DNSInterval = -time.Second }},
		{"unknown mDNS toggle", func(c *Config) { c.MDNS = 7 }},
		{"bootstrap without peer id", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			h, err := New(cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, %v; want ErrConfig", h, err)
			}
			if !strings.HasPrefix(err.Error(), "p2p: new: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
}

// TestProfileDefaults checks the defaults each profile fills in. It never
// starts a default-profile host: that would map ports and dial the public
// bootstrap peers.
func TestProfileDefaults(t *testing.T) {
	key := newKey(t)
	bs := newBlockstore()
	strs := func(as []multiaddr.Multiaddr) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.String())
		}
		return out
	}

	def, err := New(Config{Key: key, Blockstore: bs})
	if err != nil {
		t.Fatal(err)
	}
	if def.s.profile != ProfileDefault {
		t.Errorf("empty profile = %q, want %q", def.s.profile, ProfileDefault)
	}
	wantDef := "/ip4/0.0.0.0/tcp/4001 /ip6/::/tcp/4001 /ip4/0.0.0.0/udp/4001/quic-v1 /ip6/::/udp/4001/quic-v1"
	if got := strings.Join(strs(def.s.listen), " "); got != wantDef {
		t.Errorf("default listen = %s, want %s", got, wantDef)
	}
	if len(def.s.bootstrap) < 4 {
		t.Errorf("default bootstrap has %d peers, want the public list", len(def.s.bootstrap))
	}
	if def.s.connLow != DefaultConnLow || def.s.connHigh != DefaultConnHigh {
		t.Errorf("watermarks = %d/%d, want %d/%d", def.s.connLow, def.s.connHigh, DefaultConnLow, DefaultConnHigh)
	}
	if def.gater != nil || def.resolver != nil {
		t.Errorf("default profile has gater %v resolver %v, want libp2p's", def.gater, def.resolver)
	}

	none, err := New(Config{Key: key, Blockstore: bs, Bootstrap: []peer.AddrInfo{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.s.bootstrap) != 0 {
		t.Errorf("explicit empty bootstrap became %v", none.s.bootstrap)
	}

	loc, err := New(Config{Key: key, Blockstore: bs, Profile: ProfileLocal})
	if err != nil {
		t.Fatal(err)
	}
	wantLoc := "/ip4/127.0.0.1/tcp/0 /ip4/127.0.0.1/udp/0/quic-v1"
	if got := strings.Join(strs(loc.s.listen), " "); got != wantLoc {
		t.Errorf("local listen = %s, want %s", got, wantLoc)
	}
	if len(loc.s.bootstrap) != 0 {
		t.Errorf("local bootstrap = %v, want none", loc.s.bootstrap)
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"default DHT mode", def.s.dht, DHTAuto},
		{"default DHT prefix", def.s.dhtPrefix, protocol.ID("/ipfs")},
		{"default mDNS", def.s.mdns, true},
		{"local DHT mode", loc.s.dht, DHTServer},
		{"local mDNS", loc.s.mdns, false},
		{"rendezvous interval", loc.s.rvInterval, DefaultRendezvousInterval},
		{"DNS interval", loc.s.dnsInterval, DefaultDNSInterval},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	locMDNS, err := New(Config{Key: key, Blockstore: bs, Profile: ProfileLocal, MDNS: ToggleOn})
	if err != nil {
		t.Fatal(err)
	}
	defOff, err := New(Config{Key: key, Blockstore: bs, MDNS: ToggleOff})
	if err != nil {
		t.Fatal(err)
	}
	if !locMDNS.s.mdns || defOff.s.mdns {
		t.Errorf("explicit mDNS toggles ignored: local on %v, default off %v", locMDNS.s.mdns, defOff.s.mdns)
	}
	if g, ok := loc.gater.(addrGater); !ok || g.InterceptAddrDial("", multiaddr.StringCast("/ip4/192.0.2.1/tcp/1")) {
		t.Errorf("local gater = %T, want an addrGater that refuses 192.0.2.1", loc.gater)
	}
	if _, ok := loc.resolver.(refusingResolver); !ok {
		t.Errorf("local resolver = %T, want refusingResolver", loc.resolver)
	}
}

func TestLifecycle(t *testing.T) {
	cfg := localConfig(t)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := peer.IDFromPrivateKey(cfg.Key)
	if h.ID() != wantID {
		t.Errorf("ID = %s, want %s", h.ID(), wantID)
	}
	// New starts nothing.
	if h.Addrs() != nil || h.Exchange() != nil || h.Libp2p() != nil || h.Peers() != nil || h.BlockService() != nil {
		t.Fatal("New started something")
	}
	ctx := context.Background()
	if _, err := h.Connect(ctx, multiaddr.StringCast("/ip4/127.0.0.1/tcp/1/p2p/"+wantID.String())); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Connect before Start = %v, want ErrNotStarted", err)
	}

	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	addrs := h.Addrs()
	if len(addrs) < 2 {
		t.Fatalf("Addrs = %v, want a TCP and a QUIC address", addrs)
	}
	for _, a := range addrs {
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || info.ID != h.ID() {
			t.Errorf("address %s does not end in /p2p/%s", a, h.ID())
			continue
		}
		if !manet.IsIPLoopback(info.Addrs[0]) {
			t.Errorf("local profile advertises %s", a)
		}
	}
	if h.Exchange() == nil || h.Libp2p() == nil || h.BlockService() == nil {
		t.Fatal("Start left parts nil")
	}

	for i := range 2 {
		if err := h.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if h.Addrs() != nil || h.Peers() != nil {
		t.Error("closed host still reports addresses or peers")
	}
	if err := h.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}

	// Close without Start is fine too.
	h2, err := New(localConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectAndPeers(t *testing.T) {
	for _, proto := range []string{"tcp", "quic-v1"} {
		t.Run(proto, func(t *testing.T) {
			a := startHost(t, localConfig(t))
			b := startHost(t, localConfig(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			target := addrWith(t, a, proto)
			pi, err := b.Connect(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			if pi.ID != a.ID() {
				t.Errorf("Connect returned %s, want %s", pi.ID, a.ID())
			}
			// Again: already connected, returns at once.
			if _, err := b.Connect(ctx, target); err != nil {
				t.Fatalf("second Connect: %v", err)
			}

			check := func(h *Host, other peer.ID, dir string) {
				t.Helper()
				var ps []PeerInfo
				waitFor(t, "peer listed", func() bool { ps = h.Peers(); return len(ps) == 1 })
				p := ps[0]
				if p.ID != other || p.Direction != dir || len(p.Addrs) == 0 {
					t.Errorf("%s Peers = %+v, want %s %s", h.ID(), p, other, dir)
				}
				for _, ad := range p.Addrs {
					if !strings.Contains(ad.String(), "/"+proto) || !manet.IsIPLoopback(ad) {
						t.Errorf("peer address %s, want loopback %s", ad, proto)
					}
				}
			}
			check(b, a.ID(), "outbound")
			check(a, b.ID(), "inbound")

			// Identify has run both ways, so both counted bytes.
			for _, h := range []*Host{a, b} {
				tr := h.Traffic()
				if tr.BytesIn <= 0 || tr.BytesOut <= 0 {
					t.Errorf("%s Traffic = %+v, want both > 0", h.ID(), tr)
				}
			}
		})
	}
}

func TestBootstrapDialsGivenPeers(t *testing.T) {
	a := startHost(t, localConfig(t))
	info, err := peer.AddrInfoFromP2pAddr(addrWith(t, a, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := localConfig(t)
	cfg.Bootstrap = []peer.AddrInfo{*info}
	b := startHost(t, cfg)
	waitFor(t, "bootstrap connection", func() bool {
		ps := b.Peers()
		return len(ps) == 1 && ps[0].ID == a.ID()
	})
}

// silentListener accepts TCP connections on loopback and never answers, so
// a libp2p handshake with it hangs until the dialer gives up.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).String()
}

// closedPort returns a loopback TCP port with nothing listening on it.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	return addr.String()
}

func TestConnectErrors(t *testing.T) {
	h := startHost(t, localConfig(t))
	// A fresh peer ID per case: libp2p remembers the addresses of earlier
	// attempts, and each case must stand alone.
	id := func() string {
		other, _ := peer.IDFromPrivateKey(newKey(t))
		return "/p2p/" + other.String()
	}
	tcpAddr := func(hostport string) string {
		host, port, _ := net.SplitHostPort(hostport)
		return "/ip4/" + host + "/tcp/" + port
	}

	tests := []struct {
		name    string
		addr    multiaddr.Multiaddr
		timeout time.Duration
		want    []error // errors.Is targets
		not     []error
	}{
		{name: "empty", addr: nil, want: []error{peer.ErrInvalidAddr}},
		{name: "no /p2p", addr: multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001"), want: []error{peer.ErrInvalidAddr}},
		{name: "self", addr: multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + h.ID().String())},
		{name: "documentation IPv4", addr: multiaddr.StringCast("/ip4/192.0.2.1/tcp/4001" + id()), want: []error{ErrRefused}},
		{name: "dns4", addr: multiaddr.StringCast("/dns4/example.com/tcp/4001" + id()), want: []error{ErrRefused}},
		{name: "closed port", addr: multiaddr.StringCast(tcpAddr(closedPort(t)) + id()), timeout: 5 * time.Second, not: []error{ErrRefused}},
		{name: "silent peer times out", addr: multiaddr.StringCast(tcpAddr(silentListener(t)) + id()), timeout: 300 * time.Millisecond,
			want: []error{context.DeadlineExceeded}, not: []error{ErrRefused}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			_, err := h.Connect(ctx, tt.addr)
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !strings.HasPrefix(err.Error(), "p2p: connect") {
				t.Errorf("error %q lacks the operation", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error is not %v", w)
				}
			}
			for _, n := range tt.not {
				if errors.Is(err, n) {
					t.Errorf("error is %v", n)
				}
			}
		})
	}
	if ps := h.Peers(); len(ps) != 0 {
		t.Errorf("failed connects left peers %v", ps)
	}
}

// TestCloseWaitsForGoroutines runs two connected hosts through a block
// fetch and closes them; the goroutines they started must be gone. The
// first round warms up libp2p's process-wide goroutines (metrics sweeper,
// QUIC's shared machinery), which outlive any one host by design.
func TestCloseWaitsForGoroutines(t *testing.T) {
	round := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bsA := newBlockstore()
		blk := randomBlocks(t, 1, 100)[0]
		if err := bsA.Put(ctx, blk); err != nil {
			t.Fatal(err)
		}
		var hs []*Host
		for _, bs := range []blockstore.Blockstore{bsA, newBlockstore()} {
			cfg := localConfig(t)
			cfg.Blockstore = bs
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Start(ctx); err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
		for _, proto := range []string{"tcp", "quic-v1"} {
			if _, err := hs[1].Connect(ctx, addrWith(t, hs[0], proto)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := hs[1].Exchange().GetBlock(ctx, blk.Cid()); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A Start that fails (the port is taken) reports it, and Close still
	// works. (libp2p v0.51 itself leaks three swarm goroutines when its
	// listeners fail, so this runs outside the counted rounds.)
	failedStart := func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := localConfig(t)
		cfg.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port))}
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err == nil {
			t.Error("Start on a taken port succeeded")
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}
	failedStart()
	round()
	base := runtime.NumGoroutine()
	round()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection whose peer stopped answering (a link that went quiet, a
// frozen process) is not taken for a working one: Connect pings it,
// drops it and dials the address it was given.
func TestConnectReplacesDeadConnection(t *testing.T) {
	a, b := startHost(t, localConfig(t)), startHost(t, localConfig(t))
	direct := addrWith(t, a, "tcp")
	target, err := manet.ToNetAddr(direct.Decapsulate(multiaddr.StringCast("/p2p/" + a.ID().String())))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a at %s (%v)", direct, a.Addrs())
	// A TCP proxy to a that can go quiet: it then drops what it reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var quiet atomic.Bool
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if !quiet.Load() {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target.String())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, d)
			mu.Unlock()
			go pump(c, d)
			go pump(d, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	viaProxy := multiaddr.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/p2p/" + a.ID().String())
	if _, err := b.Connect(ctx, viaProxy); err != nil {
		t.Fatal(err)
	}
	quiet.Store(true)
	start := time.Now()
	if _, err := b.Connect(ctx, direct); err != nil {
		t.Fatalf("connect after the link went quiet: %v", err)
	}
	t.Logf("connected again in %v", time.Since(start))
	live := 0
	for _, c := range b.Libp2p().Network().ConnsToPeer(a.ID()) {
		if c.IsClosed() {
			continue
		}
		if na, err := manet.ToNetAddr(c.RemoteMultiaddr()); err == nil && na.String() == ln.Addr().String() {
			t.Fatalf("the quiet connection through the proxy (%s) was kept: %v opened %v, closed %v, all %v", na, c, c.Stat().Opened, c.IsClosed(), b.Libp2p().Network().ConnsToPeer(a.ID()))
		}
		live++
	}
	if live == 0 {
		t.Fatal("b has no connection to a")
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if res, ok := <-ping.Ping(pctx, b.Libp2p(), a.ID()); !ok || res.Error != nil {
		t.Fatalf("the new connection does not answer: %v", res.Error)
	}
}
