package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// ErrNotStarted is returned by calls that need a started Host.
var ErrNotStarted = errors.New("host not started")

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("host closed")

// bootstrapTimeout bounds each background dial to a bootstrap peer, so a
// dead bootstrap peer costs one goroutine for at most this long.
const bootstrapTimeout = 30 * time.Second

// Host is a device's libp2p host with bitswap. Its methods are safe for
// concurrent use.
type Host struct {
	s settings

	// Set before Start; tests in this package replace them to observe the
	// host from below (see local_test.go).
	gater    connmgr.ConnectionGater
	resolver network.MultiaddrDNSResolver
	rcmgrFor func(network.ResourceManager) network.ResourceManager
	// bitswapOpts are the bitswap options; benchmarks compare them with
	// boxo's defaults.
	bitswapOpts []bitswap.Option
	// wants is the want-flood defence (wantlimit.go); nil without a
	// BlockFilter, since then no want is refused.
	wants *wantGuard

	bw *trafficCounter

	disc *discovery
	path *pathState
	// secret is the rendezvous secret (Config.RendezvousSecret, then
	// SetRendezvousSecret); secretChanged wakes the rendezvous loop.
	secret        atomic.Pointer[[]byte]
	secretChanged chan struct{}
	// live is the running host and the context of its background work,
	// for the discovery pipeline, which must not take mu (Close holds it
	// while it waits for the pipeline's sources to stop).
	live atomic.Pointer[liveHost]

	mu      sync.Mutex
	started bool
	closed  bool
	h       host.Host
	rm      network.ResourceManager
	bs      *bitswap.Bitswap
	bsvc    blockservice.BlockService
	dht     *dht.IpfsDHT
	relay   *relayv2.Relay
	mdns    mdns.Service
	punch   *holepunch.Service // ProfileLAN's own (path.go)
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type liveHost struct {
	h   host.Host
	ctx context.Context
}

// runningCtx returns the libp2p host and the context of background work,
// or nil before Start and after Close. It takes no lock.
func (h *Host) runningCtx() (host.Host, context.Context) {
	l := h.live.Load()
	if l == nil {
		return nil, nil
	}
	return l.h, l.ctx
}

// New checks cfg and allocates a Host. It starts nothing: no socket is
// opened and no goroutine runs until Start.
func New(cfg Config) (*Host, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("p2p: new: %w", err)
	}
	h := &Host{
		s:             s,
		bw:            &trafficCounter{BandwidthCounter: metrics.NewBandwidthCounter()},
		bitswapOpts:   bitswapOptions(),
		disc:          newDiscovery(),
		path:          newPathState(),
		secretChanged: make(chan struct{}, 1),
	}
	if s.secret != nil {
		c := slices.Clone(s.secret)
		h.secret.Store(&c)
	}
	var profileGater connmgr.ConnectionGater
	switch s.profile {
	case ProfileLocal:
		profileGater = localGater()
		h.resolver = refusingResolver{}
	case ProfileLAN:
		profileGater = lanGater()
		h.resolver = refusingResolver{}
	}
	// The profile's policy first, so that a refused address never reaches
	// the others.
	gaters := []connmgr.ConnectionGater{revokedGaterFor(s.revoked), s.gater}
	if s.blockFilter != nil {
		h.wants = newWantGuard(s)
		gaters = append(gaters, h.wants)
	}
	for _, g := range gaters {
		switch {
		case g == nil:
		case profileGater == nil:
			profileGater = g
		default:
			profileGater = bothGater{profileGater, g}
		}
	}
	h.gater = profileGater
	return h, nil
}

// options turns the settings into libp2p options.
func (h *Host) options(rm network.ResourceManager, cm connmgr.ConnManager) []libp2p.Option {
	s := h.s
	opts := []libp2p.Option{
		libp2p.Identity(s.key),
		libp2p.ListenAddrs(s.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.SwarmOpts(swarm.WithDialRanker(dialRanker)),
		// TLS first: the dialer's first choice that the listener speaks
		// wins, and TLS 1.3 encrypts with AES-GCM, which AES-NI makes
		// cheaper than Noise's ChaCha20-Poly1305 (the DAG stream, both
		// ends, BenchmarkFetchDAG: 3.4 CPU-ms per MiB with TLS, 4.0 with
		// Noise). Noise stays for peers that only speak Noise.
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.BandwidthReporter(h.bw),
		// libp2p would otherwise register its metrics in the process-wide
		// Prometheus registry, which breaks a second host in one process.
		libp2p.DisableMetrics(),
		// The relay transport (libp2p's default, said here because the
		// profiles depend on it): dial and accept circuits. Which relays
		// may be used is the gater's business.
		libp2p.EnableRelay(),
	}
	if h.gater != nil {
		opts = append(opts, libp2p.ConnectionGater(h.gater))
	}
	if h.resolver != nil {
		opts = append(opts, libp2p.MultiaddrResolver(h.resolver))
	}
	switch s.profile {
	case ProfileLocal:
		opts = append(opts,
			// The relay transport stays on so that tests can run
			// circuits through a relay on loopback; the gater lets a
			// circuit through only if the relay is at a loopback
			// address (localDialable). No AutoNAT, no hole punching,
			// no autorelay, no port mapping.
			//
			// Learn no addresses from what peers observe, and advertise
			// only loopback ones.
			libp2p.DisableIdentifyAddressDiscovery(),
			libp2p.AddrsFactory(func(as []multiaddr.Multiaddr) []multiaddr.Multiaddr {
				out := as[:0:0]
				for _, a := range as {
					if loopbackOnly(a) {
						out = append(out, a)
					}
				}
				return out
			}),
		)
	case ProfileLAN:
		opts = append(opts,
			// Addresses in the documentation ranges only (and circuits
			// through the home servers). No port mapping and no AutoNAT
			// (it probes only publicly routable addresses, which these
			// are not), no autorelay (it waits for AutoNAT): the
			// reservations with home servers are reserve.go's. Hole
			// punching is path.go's own service, which punches from
			// observed addresses.
			libp2p.AddrsFactory(h.advertised),
		)
	default:
		opts = append(opts,
			libp2p.AddrsFactory(h.advertised),
			libp2p.NATPortMap(),
			libp2p.EnableAutoNATv2(),
			libp2p.EnableHolePunching(holepunch.WithTracer(punchTracer{h})),
		)
		if s.relayService {
			// A home server relays for members whatever AutoNAT says
			// (Start runs the service itself: libp2p's own option waits
			// for AutoNAT v1 to call the host public, which no member
			// would ever tell it). It also answers AutoNAT probes, so
			// devices behind NAT learn they are private and reserve a
			// slot with it (autorelay below).
			opts = append(opts, libp2p.EnableNATService())
		}
		if s.staticRelays != nil {
			opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(h.relaySource))
		}
	}
	return opts
}

// Start opens the listeners, starts bitswap and returns when the host
// accepts connections. Dials to the bootstrap peers continue in the
// background after Start returns. ctx bounds only the start itself; Start
// after Close fails with ErrClosed, and a second Start does nothing.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("p2p: start: %w", ErrClosed)
	}
	if h.started {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("p2p: start: %w", err)
	}

	rm, err := newResourceManager()
	if err != nil {
		return fmt.Errorf("p2p: start: %w", err)
	}
	if h.rcmgrFor != nil {
		rm = h.rcmgrFor(rm)
	}
	cm, err := newConnManager(h.s.connLow, h.s.connHigh)
	if err != nil {
		rm.Close()
		return fmt.Errorf("p2p: start: %w", err)
	}
	lh, err := libp2p.New(h.options(rm, cm)...)
	if err != nil {
		// libp2p closes them on some failures but not all; closing
		// twice is harmless.
		cm.Close()
		rm.Close()
		return fmt.Errorf("p2p: start: %w", err)
	}

	bctx, cancel := context.WithCancel(context.Background())
	bsOpts := h.bitswapOpts
	if h.wants != nil { // its filter wraps Config.BlockFilter
		bsOpts = append(slices.Clip(bsOpts), h.wants.bitswapOptions()...)
		h.wants.setDrop(func(p peer.ID) { lh.Network().ClosePeer(p) })
	}
	bs := bitswap.New(bctx, bsnet.NewFromIpfsHost(lh), nil, h.s.blockstore, bsOpts...)

	h.h, h.rm, h.bs, h.cancel = lh, rm, bs, cancel
	h.bsvc = blockservice.New(h.s.blockstore, bs)
	// Registered whatever DAGStreamAllowed says, so that a peer that may
	// not use it gets a clear refusal rather than "protocol not supported".
	lh.SetStreamHandler(DAGProtocol, h.handleDAG)
	if err := h.startDiscovery(bctx, lh); err != nil {
		h.stop()
		return fmt.Errorf("p2p: start: %w", err)
	}
	h.started = true
	h.s.log.Info("p2p host started", "id", lh.ID(), "profile", h.s.profile, "addrs", lh.Addrs(), "dht", h.dht != nil)
	return nil
}

// bootstrap dials every bootstrap peer at once and logs the outcome.
// Once the dials end, the DHT (if any) refreshes its routing table.
func (h *Host) bootstrap(ctx context.Context) {
	defer func() {
		if h.dht != nil && ctx.Err() == nil {
			h.dht.RefreshRoutingTable()
		}
	}()
	var wg sync.WaitGroup
	for _, pi := range h.s.bootstrap {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
			defer cancel()
			if err := h.h.Connect(ctx, pi); err != nil {
				h.s.log.Warn("p2p bootstrap dial failed", "peer", pi.ID, "err", err)
				return
			}
			h.s.log.Debug("p2p bootstrap peer connected", "peer", pi.ID)
		}()
	}
	wg.Wait()
}

// Close stops bitswap and the host, closes every connection and waits for
// the goroutines Host started. It does not close the Blockstore. Close is
// idempotent; a Host cannot be started again after Close.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if !h.started {
		return nil
	}
	if h.s.peerFile != "" {
		if err := h.savePeerFile(h.h); err != nil {
			h.s.log.Warn("p2p save peer store", "file", h.s.peerFile, "err", err)
		}
	}
	err := h.stop()
	h.s.log.Info("p2p host closed", "id", h.h.ID())
	if err != nil {
		return fmt.Errorf("p2p: close: %w", err)
	}
	return nil
}

// stop stops everything Start started, in reverse order, and waits for the
// goroutines. h.mu is held.
func (h *Host) stop() error {
	h.live.Store(nil)
	h.cancel()
	h.disc.mu.Lock()
	h.disc.stopped = true
	h.disc.mu.Unlock()
	var errs []error
	if h.punch != nil {
		if err := h.punch.Close(); err != nil {
			errs = append(errs, fmt.Errorf("hole punching: %w", err))
		}
	}
	if h.mdns != nil {
		if err := h.mdns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mdns: %w", err))
		}
	}
	if h.relay != nil {
		if err := h.relay.Close(); err != nil {
			errs = append(errs, fmt.Errorf("relay: %w", err))
		}
	}
	if h.dht != nil {
		if err := h.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dht: %w", err))
		}
	}
	if err := h.bs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("bitswap: %w", err))
	}
	if err := h.h.Close(); err != nil {
		errs = append(errs, fmt.Errorf("host: %w", err))
	}
	h.wg.Wait()
	if err := h.rm.Close(); err != nil {
		errs = append(errs, fmt.Errorf("resource manager: %w", err))
	}
	return errors.Join(errs...)
}

// running returns the libp2p host, or nil before Start and after Close.
func (h *Host) running() host.Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started || h.closed {
		return nil
	}
	return h.h
}

// ID returns the host's peer ID, derived from Config.Key. It is valid before
// Start.
func (h *Host) ID() peer.ID {
	id, err := peer.IDFromPrivateKey(h.s.key)
	if err != nil {
		// settings checked the key, so this cannot happen.
		panic(fmt.Sprintf("p2p: id of a checked key: %v", err))
	}
	return id
}

// Addrs returns the addresses peers can dial, each ending in /p2p/<id>. It
// returns nil before Start and after Close. In ProfileLocal every address is
// loopback.
func (h *Host) Addrs() []multiaddr.Multiaddr {
	lh := h.running()
	if lh == nil {
		return nil
	}
	p2p, err := multiaddr.NewComponent("p2p", lh.ID().String())
	if err != nil {
		panic(fmt.Sprintf("p2p: component of own id: %v", err))
	}
	as := lh.Addrs()
	out := make([]multiaddr.Multiaddr, 0, len(as))
	for _, a := range as {
		out = append(out, a.Encapsulate(p2p))
	}
	return out
}

// Connect dials the peer named by addr, which must end in /p2p/<id>, and
// returns when the connection is open and identified, or when ctx ends. An
// address without /p2p/ fails with peer.ErrInvalidAddr; an address the
// profile may not dial (in ProfileLocal: anything but a loopback IP) fails
// with ErrRefused before any socket is opened or name resolved, as does a
// dial that Config.Gater refuses. When ctx ends first the error wraps
// ctx.Err(). Connecting to an already connected peer returns at once.
func (h *Host) Connect(ctx context.Context, addr multiaddr.Multiaddr) (peer.AddrInfo, error) {
	if len(addr) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("p2p: connect: empty address: %w", peer.ErrInvalidAddr)
	}
	pi, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: address must end in /p2p/<peer id>: %w", addr, err)
	}
	if h.s.profile == ProfileLocal {
		// Checked here as well as in the gater because libp2p resolves
		// names, and silently drops some addresses, before it asks the
		// gater; this way the caller learns why.
		for _, a := range pi.Addrs {
			if !localDialable(a) {
				return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: profile %s dials only loopback IP addresses: %w", addr, h.s.profile, ErrRefused)
			}
		}
	}
	if h.s.profile == ProfileLAN {
		for _, a := range pi.Addrs {
			if !lanDialable(a) {
				return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: profile %s dials only loopback and the documentation ranges: %w", addr, h.s.profile, ErrRefused)
			}
		}
	}
	lh := h.running()
	if lh == nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: %w", addr, ErrNotStarted)
	}
	if pi.ID == lh.ID() {
		return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: %w", addr, swarm.ErrDialToSelf)
	}
	if lh.Network().Connectedness(pi.ID) == network.Connected && !h.alive(ctx, lh, pi.ID) {
		// libp2p's Connect returns at once while a connection exists,
		// also one whose peer went away without a word (a killed
		// process, a cut link): the caller asked for a working one.
		h.s.log.Info("p2p connection to peer does not answer; dialling again", "peer", pi.ID)
		_ = lh.Network().ClosePeer(pi.ID)
	}
	if err := lh.Connect(ctx, *pi); err != nil {
		h.dialFailed(pi.ID, err)
		if onlyRefusals(err) {
			return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: %w: %w", addr, ErrRefused, err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: %w: %w", addr, ctxErr, err)
		}
		return peer.AddrInfo{}, fmt.Errorf("p2p: connect %s: %w", addr, err)
	}
	if h.isMember(pi.ID) {
		h.found(SourceManual, *pi)
	}
	return *pi, nil
}

// connCheckTimeout bounds the ping that checks an existing connection
// before Connect trusts it.
const connCheckTimeout = 3 * time.Second

// alive reports whether the connected peer p answers a ping within
// connCheckTimeout (or until ctx ends, which counts as alive: the caller
// gave up, not the peer).
func (h *Host) alive(ctx context.Context, lh host.Host, p peer.ID) bool {
	pctx, cancel := context.WithTimeout(ctx, connCheckTimeout)
	defer cancel()
	res, ok := <-ping.Ping(pctx, lh, p) // closed without a result when pctx ends
	return (ok && res.Error == nil) || ctx.Err() != nil
}

// onlyRefusals reports whether a dial failed only because the gater refused
// every address, rather than because some address was tried and failed.
func onlyRefusals(err error) bool {
	var de *swarm.DialError
	if !errors.As(err, &de) {
		return false
	}
	if de.Cause != nil && !errors.Is(de.Cause, swarm.ErrGaterDisallowedConnection) && !errors.Is(de.Cause, swarm.ErrNoGoodAddresses) {
		return false
	}
	if len(de.DialErrors) == 0 {
		return errors.Is(de.Cause, swarm.ErrGaterDisallowedConnection)
	}
	for _, te := range de.DialErrors {
		if !errors.Is(te.Cause, swarm.ErrGaterDisallowedConnection) {
			return false
		}
	}
	return true
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID    peer.ID
	Addrs []multiaddr.Multiaddr // remote address of each open connection
	// Direction is "inbound" or "outbound": who opened the first of the
	// open connections.
	Direction string
}

// Peers returns the connected peers, in no particular order. It returns nil
// before Start and after Close.
func (h *Host) Peers() []PeerInfo {
	lh := h.running()
	if lh == nil {
		return nil
	}
	byID := map[peer.ID]int{}
	var out []PeerInfo
	for _, c := range lh.Network().Conns() {
		i, ok := byID[c.RemotePeer()]
		if !ok {
			i = len(out)
			byID[c.RemotePeer()] = i
			out = append(out, PeerInfo{ID: c.RemotePeer(), Direction: direction(c.Stat().Direction)})
		}
		out[i].Addrs = append(out[i].Addrs, c.RemoteMultiaddr())
	}
	return out
}

func direction(d network.Direction) string {
	switch d {
	case network.DirInbound:
		return "inbound"
	case network.DirOutbound:
		return "outbound"
	default:
		return "unknown"
	}
}

// Exchange returns bitswap, which fetches blocks by CID from connected peers
// and serves blocks from Config.Blockstore to them. It does not store what
// it fetches; BlockService does. It returns nil before Start. Do not close
// it: Close does. It also implements exchange.SessionExchange.
func (h *Host) Exchange() exchange.Interface {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bs == nil {
		return nil
	}
	return h.bs
}

// Provide announces in the DHT that the host has c, and returns when the
// announcement is stored or ctx ends. Without a DHT (DHTOff) it fails with
// ErrNotStarted wrapped; with no DHT peers it fails at once.
func (h *Host) Provide(ctx context.Context, c cid.Cid) error {
	h.mu.Lock()
	d := h.dht
	h.mu.Unlock()
	if d == nil {
		return fmt.Errorf("p2p: provide %s: no DHT: %w", c, ErrNotStarted)
	}
	if err := d.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("p2p: provide %s: %w", c, err)
	}
	return nil
}

// BlockService returns a block service over Config.Blockstore and the
// Exchange: a block it does not have locally is fetched with bitswap,
// stored into the blockstore and then served to other peers. Use it (or a
// merkledag over it) rather than the Exchange for whole DAGs. It returns nil
// before Start.
func (h *Host) BlockService() blockservice.BlockService {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bsvc
}

// Libp2p returns the underlying libp2p host for later issues (DHT, mDNS,
// relay) and tests, or nil before Start. Do not close it: Close does.
func (h *Host) Libp2p() host.Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h
}

// Traffic is the total number of bytes the host has sent and received on
// its streams since it was created: protocol payload (bitswap, identify,
// ...), without the transports' own framing and handshakes.
type Traffic struct {
	BytesIn, BytesOut int64
}

// Traffic returns the totals so far. It is exact (not sampled), cheap, and
// valid at any time.
func (h *Host) Traffic() Traffic {
	return Traffic{BytesIn: h.bw.in.Load(), BytesOut: h.bw.out.Load()}
}

// trafficCounter is libp2p's bandwidth counter plus exact totals: the
// counter's own totals are sampled once a second, too late for a test or a
// "bytes so far" line right after a transfer. Per-peer and per-protocol
// rates stay available from the embedded counter.
type trafficCounter struct {
	*metrics.BandwidthCounter
	in, out atomic.Int64
}

var _ metrics.Reporter = (*trafficCounter)(nil)

func (c *trafficCounter) LogSentMessage(n int64) {
	c.out.Add(n)
	c.BandwidthCounter.LogSentMessage(n)
}

func (c *trafficCounter) LogRecvMessage(n int64) {
	c.in.Add(n)
	c.BandwidthCounter.LogRecvMessage(n)
}
