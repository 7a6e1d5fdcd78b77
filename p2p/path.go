package p2p

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// This file is about the path to each sibling: which addresses this host
// can offer for a direct connection (observed by peers, and circuits
// through the home servers it holds reservations with), the upgrade of a
// relayed connection to a direct one (DCUtR hole punching), and why a
// path is not direct.
//
// libp2p punches holes only from publicly routable addresses
// (manet.IsPublicAddr) and learns its public address only once four
// peers have observed the same one. Neither works on a network of the
// documentation ranges (the netns testbed), nor for a device whose only
// peers are a handful of siblings. In ProfileLAN the host therefore runs
// its own holepunch.Service, whose addresses are those that any peer
// observed on a direct connection; in ProfileDefault libp2p's own service
// runs as before.

// Path tuning.
const (
	// maxObserved bounds the observed addresses kept: a device sees a few
	// NAT mappings (one per transport and network), not hundreds.
	maxObserved = 32

	// observedTTL forgets an observation nobody repeated: a device that
	// moved to another network has other mappings.
	observedTTL = 30 * time.Minute

	// punchRetry is how long after a failed or missed hole punch the
	// side that accepted a relayed connection tries again, doubling up to
	// punchRetryMax. libp2p punches once per relayed connection; a punch
	// that raced the other side's setup (it had no observed address yet)
	// or a NAT mapping that changed would otherwise leave the path
	// relayed for good.
	punchRetry    = 5 * time.Second
	punchRetryMax = 2 * time.Minute
)

// observation is one address a peer saw this host's connection come from.
type observation struct {
	addr      multiaddr.Multiaddr // as observed: ip/tcp/port or ip/udp/port/quic-v1
	local     multiaddr.Multiaddr // the connection's local address
	observers map[string]bool     // observer IPs
	last      time.Time
}

// pathState is the host's knowledge of its own reachability.
type pathState struct {
	mu       sync.Mutex
	observed map[string]*observation
	// relayAddrs are the circuit addresses through the relays this host
	// holds a reservation with, by relay.
	relayAddrs map[peer.ID][]multiaddr.Multiaddr
	// punchTried is when the last punch with each sibling was started by
	// this host, and punchWait how long until the next.
	punchTried map[peer.ID]time.Time
	punchWait  map[peer.ID]time.Duration
}

func newPathState() *pathState {
	return &pathState{
		observed:   map[string]*observation{},
		relayAddrs: map[peer.ID][]multiaddr.Multiaddr{},
		punchTried: map[peer.ID]time.Time{},
		punchWait:  map[peer.ID]time.Duration{},
	}
}

// observe records that observer saw this host's connection from local as
// addr. Loopback and relayed observations say nothing about a NAT.
func (ps *pathState) observe(addr, local, remote multiaddr.Multiaddr, now time.Time) {
	if addr == nil || local == nil || remote == nil || manet.IsIPLoopback(addr) || isCircuit(addr) || isCircuit(remote) {
		return
	}
	ip, err := manet.ToIP(remote)
	if err != nil {
		return
	}
	if !thinWaist(addr) {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := string(addr.Bytes())
	o, ok := ps.observed[k]
	if !ok {
		if len(ps.observed) >= maxObserved {
			var oldest string
			for k, o := range ps.observed {
				if oldest == "" || o.last.Before(ps.observed[oldest].last) {
					oldest = k
				}
			}
			delete(ps.observed, oldest)
		}
		o = &observation{addr: addr, local: local, observers: map[string]bool{}}
		ps.observed[k] = o
	}
	o.observers[ip.String()] = true
	o.local, o.last = local, now
}

// thinWaist reports whether a is ip/tcp/port or ip/udp/port/quic-v1.
func thinWaist(a multiaddr.Multiaddr) bool {
	if len(a) < 2 || (a[0].Code() != multiaddr.P_IP4 && a[0].Code() != multiaddr.P_IP6) {
		return false
	}
	switch {
	case len(a) == 2 && a[1].Code() == multiaddr.P_TCP:
		return true
	case len(a) == 3 && a[1].Code() == multiaddr.P_UDP && a[2].Code() == multiaddr.P_QUIC_V1:
		return true
	}
	return false
}

func isCircuit(a multiaddr.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == multiaddr.P_CIRCUIT {
			return true
		}
	}
	return false
}

// punchAddrs are the addresses this host offers in a hole punch: every
// address a peer observed within observedTTL that is not one of the
// host's own interface addresses (a sibling on the same LAN observes
// those, and they need no punching). ok filters them (the profile's dial
// policy).
func (ps *pathState) punchAddrs(own []multiaddr.Multiaddr, now time.Time, ok func(multiaddr.Multiaddr) bool) []multiaddr.Multiaddr {
	ownIPs := map[string]bool{}
	for _, a := range own {
		if ip, err := manet.ToIP(a); err == nil {
			ownIPs[ip.String()] = true
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []multiaddr.Multiaddr
	for k, o := range ps.observed {
		if now.Sub(o.last) > observedTTL {
			delete(ps.observed, k)
			continue
		}
		ip, err := manet.ToIP(o.addr)
		if err != nil || ownIPs[ip.String()] || !ok(o.addr) {
			continue
		}
		out = append(out, o.addr)
	}
	slices.SortFunc(out, func(a, b multiaddr.Multiaddr) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// NAT is what the host has learnt about the NAT in front of it from the
// addresses peers observed.
type NAT struct {
	// Mapping is "none" (peers see the host's own address), "port
	// preserving" (they see another address but the same port: an
	// endpoint-independent mapping, through which hole punching works),
	// "symmetric" (one local socket appeared with different ports to
	// different peers, or with a port other than its own: hole punching
	// will fail), or "" when no peer observed anything yet.
	Mapping string
	// Observed are the observed addresses, sorted.
	Observed []multiaddr.Multiaddr
	// Evidence explains Mapping in a few words.
	Evidence string
}

// NAT mappings (NAT.Mapping).
const (
	NATNone      = "none"
	NATPreserved = "port preserving"
	NATSymmetric = "symmetric"
)

// nat classifies the observations; own are the host's interface addresses.
func (ps *pathState) nat(own []multiaddr.Multiaddr, now time.Time) NAT {
	ownIPs := map[string]bool{}
	for _, a := range own {
		if ip, err := manet.ToIP(a); err == nil {
			ownIPs[ip.String()] = true
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var n NAT
	ports := map[string]map[string]bool{} // local thin waist -> observed ports
	sawNone := false
	for _, o := range ps.observed {
		if now.Sub(o.last) > observedTTL {
			continue
		}
		n.Observed = append(n.Observed, o.addr)
		ip, err := manet.ToIP(o.addr)
		if err != nil {
			continue
		}
		if ownIPs[ip.String()] {
			sawNone = true
			continue
		}
		lp, lerr := portOf(o.local)
		op, oerr := portOf(o.addr)
		if lerr != nil || oerr != nil {
			continue
		}
		key := o.addr[0].String() + transportOf(o.addr) + "/" + lp // per public IP, transport and local port
		if ports[key] == nil {
			ports[key] = map[string]bool{}
		}
		ports[key][op] = true
	}
	slices.SortFunc(n.Observed, func(a, b multiaddr.Multiaddr) int { return strings.Compare(a.String(), b.String()) })
	keys := make([]string, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps := ports[k]
		lp := k[strings.LastIndexByte(k, '/')+1:]
		if len(ps) > 1 {
			var list []string
			for p := range ps {
				list = append(list, p)
			}
			sort.Strings(list)
			return NAT{Mapping: NATSymmetric, Observed: n.Observed,
				Evidence: fmt.Sprintf("local port %s appeared as ports %s to different peers", lp, strings.Join(list, ", "))}
		}
		for p := range ps {
			if p != lp {
				// A socket bound to the listen port (libp2p reuses it
				// for dials) that came out with another port: the
				// NAT does not preserve ports, which is what a
				// symmetric NAT does (or a port-restricted one whose
				// port was taken).
				return NAT{Mapping: NATSymmetric, Observed: n.Observed,
					Evidence: fmt.Sprintf("local port %s appeared as port %s", lp, p)}
			}
		}
	}
	switch {
	case len(ports) > 0:
		n.Mapping, n.Evidence = NATPreserved, "peers see another address with the same port"
	case sawNone:
		n.Mapping, n.Evidence = NATNone, "peers see this host's own address"
	}
	return n
}

func portOf(a multiaddr.Multiaddr) (string, error) {
	if len(a) < 2 {
		return "", fmt.Errorf("no port in %s", a)
	}
	switch a[1].Code() {
	case multiaddr.P_TCP, multiaddr.P_UDP:
		return a[1].Value(), nil
	}
	return "", fmt.Errorf("no port in %s", a)
}

func transportOf(a multiaddr.Multiaddr) string {
	if len(a) >= 2 {
		return "/" + a[1].Protocol().Name
	}
	return ""
}

// NAT returns what the host has learnt about its NAT so far. It is safe
// for concurrent use; before Start it returns the zero NAT.
func (h *Host) NAT() NAT {
	lh := h.running()
	if lh == nil {
		return NAT{}
	}
	return h.path.nat(ownAddrs(lh), time.Now())
}

// ownAddrs are the host's interface addresses (listen addresses on
// 0.0.0.0 expanded), which a peer on the same LAN observes.
func ownAddrs(lh host.Host) []multiaddr.Multiaddr {
	as, err := lh.Network().InterfaceListenAddresses()
	if err != nil {
		return lh.Network().ListenAddresses()
	}
	return as
}

// setRelayAddrs records the circuit addresses through relay (nil: the
// reservation is gone), which advertised adds to the host's addresses.
func (ps *pathState) setRelayAddrs(relay peer.ID, relayAddrs []multiaddr.Multiaddr) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(relayAddrs) == 0 {
		delete(ps.relayAddrs, relay)
		return
	}
	p2pc, err := multiaddr.NewComponent("p2p", relay.String())
	if err != nil {
		return
	}
	var out []multiaddr.Multiaddr
	for _, a := range relayAddrs {
		if isCircuit(a) {
			continue
		}
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err == nil {
			a, _ = multiaddr.SplitLast(a) // drop a trailing /p2p/<relay>
		}
		out = append(out, slices.Clip(a).AppendComponent(p2pc, circuitComponent))
	}
	ps.relayAddrs[relay] = out
}

var circuitComponent = func() *multiaddr.Component {
	c, err := multiaddr.NewComponent("p2p-circuit", "")
	if err != nil {
		panic(err)
	}
	return c
}()

// circuits returns the circuit addresses of the held reservations.
func (ps *pathState) circuits() []multiaddr.Multiaddr {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []multiaddr.Multiaddr
	for _, as := range ps.relayAddrs {
		out = append(out, as...)
	}
	slices.SortFunc(out, func(a, b multiaddr.Multiaddr) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// advertised is the host's AddrsFactory outside ProfileLocal: libp2p's
// addresses (in ProfileLAN only those the dial policy allows) and a
// circuit through each home server this host holds a reservation with, so
// that a sibling that finds the host (DHT record, identify) can reach it
// through its home server. libp2p's autorelay would advertise circuits only
// once AutoNAT called the host private.
func (h *Host) advertised(as []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	out := as[:0:0]
	for _, a := range as {
		// In ProfileLAN only the documentation ranges: a loopback
		// address is every host's own, so a peer dialling it would
		// dial itself.
		if h.s.profile != ProfileLAN || (lanDialable(a) && !manet.IsIPLoopback(a)) {
			out = append(out, a)
		}
	}
	for _, c := range h.path.circuits() {
		if !slices.ContainsFunc(out, c.Equal) {
			out = append(out, c)
		}
	}
	return out
}

// startPath starts the path work on a fresh libp2p host: observing the
// addresses peers report (identify), and in ProfileLAN the hole-punching
// service and the retry loop. On error the caller stops the host.
func (h *Host) startPath(ctx context.Context, lh host.Host) error {
	if h.s.profile == ProfileLocal {
		return nil
	}
	sub, err := lh.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("path: subscribe: %w", err)
	}
	h.goBackground(ctx, func(ctx context.Context) {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				ev := e.(event.EvtPeerIdentificationCompleted)
				if ev.Conn == nil {
					continue
				}
				h.path.observe(ev.ObservedAddr, ev.Conn.LocalMultiaddr(), ev.Conn.RemoteMultiaddr(), time.Now())
			}
		}
	})
	h.goBackground(ctx, func(ctx context.Context) { h.dropRelayed(ctx, lh) })
	if h.s.profile != ProfileLAN {
		return nil
	}
	idh, ok := lh.(interface{ IDService() identify.IDService })
	if !ok {
		return fmt.Errorf("path: libp2p host %T has no identify service", lh)
	}
	svc, err := holepunch.NewService(lh, idh.IDService(), func() []multiaddr.Multiaddr {
		return h.path.punchAddrs(ownAddrs(lh), time.Now(), lanDirect)
	}, holepunch.WithTracer(punchTracer{h}))
	if err != nil {
		return fmt.Errorf("path: hole punching: %w", err)
	}
	h.punch = svc
	h.goBackground(ctx, func(ctx context.Context) { h.repunch(ctx, lh, svc) })
	return nil
}

// repunch retries hole punching with siblings that are connected only
// through a relay, from the side that accepted the relayed connection (the
// one DCUtR lets initiate). The first punch is libp2p's own, right after
// the relayed connection is identified.
func (h *Host) repunch(ctx context.Context, lh host.Host, svc *holepunch.Service) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !slices.Contains(lh.Mux().Protocols(), holepunch.Protocol) {
			continue // no observed address yet: nothing to offer
		}
		now := time.Now()
		for _, p := range lh.Network().Peers() {
			if !h.isMember(p) || !onlyInboundRelayed(lh.Network().ConnsToPeer(p)) {
				continue
			}
			h.path.mu.Lock()
			wait, ok := h.path.punchWait[p]
			if !ok {
				// libp2p's own punch ran at connect time.
				wait = punchRetry
				h.path.punchTried[p], h.path.punchWait[p] = now, wait
			}
			due := now.Sub(h.path.punchTried[p]) >= wait
			if due {
				h.path.punchTried[p] = now
				h.path.punchWait[p] = min(2*wait, punchRetryMax)
			}
			h.path.mu.Unlock()
			if !due {
				continue
			}
			h.s.log.Debug("p2p retrying hole punch", "peer", p)
			// DirectConnect blocks until the service has an address,
			// which the protocol check above says it has; it returns
			// when the punch ends (a few seconds).
			done := make(chan error, 1)
			go func() { done <- svc.DirectConnect(p) }()
			select {
			case err := <-done:
				if err != nil {
					h.s.log.Debug("p2p hole punch retry failed", "peer", p, "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	}
}

// relayedGrace is how long a relayed connection to a sibling stays open
// after a direct one exists: long enough for streams opened on it just
// before the upgrade to finish a message, short enough that a transfer
// does not keep crossing the relay.
const relayedGrace = 5 * time.Second

// dropRelayed closes relayed connections to siblings once a direct one
// has been open for relayedGrace. libp2p keeps both, and a long-lived
// stream (bitswap's, a folder sync's) opened on the relayed connection
// would otherwise keep carrying data through the home server; closed, the
// next stream takes the direct connection (libp2p prefers it).
func (h *Host) dropRelayed(ctx context.Context, lh host.Host) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range lh.Network().Peers() {
			if !h.isMember(p) {
				continue
			}
			conns := lh.Network().ConnsToPeer(p)
			direct := false
			for _, c := range conns {
				if !isCircuit(c.RemoteMultiaddr()) && time.Since(c.Stat().Opened) >= relayedGrace {
					direct = true
				}
			}
			if !direct {
				continue
			}
			for _, c := range conns {
				if isCircuit(c.RemoteMultiaddr()) {
					h.s.log.Debug("p2p closing relayed connection: direct one open", "peer", p)
					_ = c.Close()
				}
			}
		}
	}
}

// onlyInboundRelayed reports whether conns is non-empty, all relayed, and
// one of them accepted (inbound).
func onlyInboundRelayed(conns []network.Conn) bool {
	inbound := false
	for _, c := range conns {
		if !isCircuit(c.RemoteMultiaddr()) {
			return false
		}
		if c.Stat().Direction == network.DirInbound {
			inbound = true
		}
	}
	return inbound
}

// punched clears a sibling's retry state once a direct connection exists.
func (ps *pathState) punched(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.punchTried, p)
	delete(ps.punchWait, p)
}
