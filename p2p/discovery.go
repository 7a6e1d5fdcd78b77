package p2p

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multiaddr"
)

// How a sibling was found (Sibling.Sources).
const (
	SourceMDNS       = "mdns"       // multicast DNS on the LAN
	SourceDHT        = "dht"        // provider of the day's rendezvous key
	SourceDNS        = "dns"        // Config.DNSAddrs
	SourceRemembered = "remembered" // Config.PeerStoreFile
	SourceManual     = "manual"     // Host.Connect
	SourceInbound    = "inbound"    // it connected to this host
)

// Paths of a connection (Sibling.Path).
const (
	PathDirect  = "direct"
	PathRelayed = "relayed"
)

// Pipeline limits.
const (
	// candidateDialTimeout bounds one dial of a found sibling: long
	// enough for a relayed dial across continents, short enough that a
	// dead address does not hold a dial slot for long.
	candidateDialTimeout = 30 * time.Second

	// candidateDials bounds the dials in flight at once; a cloud has a
	// handful of devices, so this only matters when every source reports
	// everyone at once.
	candidateDials = 16

	// candidateRedial is how soon a sibling whose dial failed is tried
	// again when a source reports it again; sources report often (the
	// early rendezvous lookups, mDNS), a dead address need not be retried
	// every time.
	candidateRedial = 2 * time.Second

	// siblingPingInterval is how often connected siblings are pinged for
	// Sibling.Latency: a ping is 8 bytes each way, and a cloud has a
	// handful of devices.
	siblingPingInterval = 30 * time.Second

	// siblingPingTimeout bounds one ping.
	siblingPingTimeout = 10 * time.Second

	// reconnectMin and reconnectMax bound the backoff of redials to a
	// sibling that is not connected: soon after a link comes back, and
	// at most once a minute for a device that is simply off.
	reconnectMin = 2 * time.Second
	reconnectMax = time.Minute

	// protectTag keeps connections to siblings from being trimmed by the
	// connection manager.
	protectTag = "pcnode-sibling"
)

// Sibling is what the host knows about one member device.
type Sibling struct {
	ID    peer.ID
	Addrs []multiaddr.Multiaddr // known addresses, without /p2p/<id>
	// Sources says how the sibling was found: SourceMDNS, SourceDHT,
	// SourceDNS, SourceRemembered, SourceManual, SourceInbound; sorted.
	Sources   []string
	Connected bool
	// Path is PathDirect when some connection to the sibling is direct,
	// PathRelayed when all go through a relay (Relay), "" when not
	// connected.
	Path    string
	Relay   peer.ID
	Latency time.Duration // moving average of pings; 0 when unknown
	// FirstSeen and LastSeen are when a source first and last reported
	// the sibling, or it connected.
	FirstSeen, LastSeen time.Time
	// WhyNotDirect explains a relayed or missing connection: the last
	// dial or hole-punch error. "" when the path is direct.
	WhyNotDirect string
}

// sibling is the pipeline's record of one member peer.
type sibling struct {
	sources             map[string]bool
	firstSeen, lastSeen time.Time
	addrs               []multiaddr.Multiaddr // from the sources
	dialing             bool
	lastDial            time.Time
	redialWait          time.Duration // reconnect backoff; 0 while connected
	lastErr             string
	punchErr            string
}

// discovery is the candidate pipeline's state.
type discovery struct {
	mu       sync.Mutex
	siblings map[peer.ID]*sibling
	sem      chan struct{}
	rejected int // found peers that are not members (tests)
	saveReq  chan struct{}
	stopped  bool // Close has begun: start no more dials
	pingReq  chan peer.ID
	// strangers are peers found that were not members, kept a while: a
	// device whose roster has not yet caught up (it joined minutes ago,
	// the gossip is on its way) would otherwise drop a sibling that mDNS
	// reported once, and mDNS may not report it again for long.
	strangers map[peer.ID]stranger
}

// stranger is a non-member a source reported.
type stranger struct {
	src string
	ai  peer.AddrInfo
	at  time.Time
}

// Bounds of discovery.strangers.
const (
	maxStrangers = 64
	strangerTTL  = 10 * time.Minute
)

// remember keeps a non-member's report for strangerTTL. d.mu is held.
func (d *discovery) remember(src string, ai peer.AddrInfo, now time.Time) {
	if d.strangers == nil {
		d.strangers = map[peer.ID]stranger{}
	}
	if _, ok := d.strangers[ai.ID]; !ok && len(d.strangers) >= maxStrangers {
		return // a LAN full of strangers: keep the first ones
	}
	d.strangers[ai.ID] = stranger{src: src, ai: ai, at: now}
}

// newMembers returns the kept reports of peers that have become members,
// and forgets those and the expired ones. d.mu is held.
func (d *discovery) newMembers(isMember func(peer.ID) bool, now time.Time) []stranger {
	var out []stranger
	for id, s := range d.strangers {
		switch {
		case now.Sub(s.at) > strangerTTL:
			delete(d.strangers, id)
		case isMember(id):
			delete(d.strangers, id)
			out = append(out, s)
		}
	}
	return out
}

func newDiscovery() *discovery {
	return &discovery{
		siblings: map[peer.ID]*sibling{},
		sem:      make(chan struct{}, candidateDials),
		saveReq:  make(chan struct{}, 1),
		pingReq:  make(chan peer.ID, 64),
	}
}

func (h *Host) isMember(p peer.ID) bool {
	if h.s.members == nil || p == "" {
		return false
	}
	if h.s.revoked != nil && h.s.revoked(p) {
		return false
	}
	return h.s.members.IsMember(p)
}

// record returns p's record, creating it. d.mu must be held.
func (d *discovery) record(p peer.ID, now time.Time) *sibling {
	r, ok := d.siblings[p]
	if !ok {
		r = &sibling{sources: map[string]bool{}, firstSeen: now}
		d.siblings[p] = r
	}
	r.lastSeen = now
	return r
}

// found is where every discovery source hands a peer it found. A peer that
// is not a member is dropped; a member is recorded and, unless connected
// or being dialled, dialled in the background.
func (h *Host) found(src string, ai peer.AddrInfo) {
	lh, ctx := h.runningCtx()
	if lh == nil || ai.ID == lh.ID() || ai.ID.Validate() != nil {
		return
	}
	if !h.isMember(ai.ID) {
		h.disc.mu.Lock()
		h.disc.rejected++
		h.disc.remember(src, ai, time.Now())
		h.disc.mu.Unlock()
		h.s.log.Debug("p2p found a peer that is not a member", "peer", ai.ID, "source", src)
		return
	}
	addrs := ai.Addrs[:0:0]
	for _, a := range ai.Addrs {
		switch {
		case h.s.profile == ProfileLocal && !localDialable(a):
		case h.s.profile == ProfileLAN && !lanDialable(a):
		default:
			addrs = append(addrs, a)
		}
	}

	now := h.s.now()
	h.disc.mu.Lock()
	r := h.disc.record(ai.ID, now)
	newSource := !r.sources[src]
	r.sources[src] = true
	for _, a := range addrs {
		if !slices.ContainsFunc(r.addrs, a.Equal) {
			r.addrs = append(r.addrs, a)
		}
	}
	h.disc.mu.Unlock()
	if newSource {
		h.s.log.Debug("p2p found sibling", "peer", ai.ID, "source", src, "addrs", addrs)
	}
	h.dialSibling(ctx, lh, ai.ID, src, false)
}

// dialSibling dials p in the background with every address known for it
// (the sources', the peerstore's, and circuits through the home servers),
// unless it is connected, being dialled, or was dialled less than
// candidateRedial ago (or, for a reconnect, less than its backoff ago).
func (h *Host) dialSibling(ctx context.Context, lh host.Host, p peer.ID, why string, reconnect bool) {
	// Before taking disc.mu: Config.StaticRelays may take locks of its
	// own (node's reads the host's peer store through Host.Libp2p, whose
	// mutex Close holds while it waits for disc.mu).
	via := h.viaServers(p)
	h.disc.mu.Lock()
	r, ok := h.disc.siblings[p]
	if !ok {
		h.disc.mu.Unlock()
		return
	}
	addrs := slices.Clone(r.addrs)
	connected := lh.Network().Connectedness(p) == network.Connected
	// Without addresses, a dial needs the DHT to find some.
	dialable := len(addrs) > 0 || len(via) > 0 || len(lh.Peerstore().Addrs(p)) > 0 || h.dht != nil
	wait := candidateRedial
	if reconnect {
		wait = max(wait, r.redialWait)
	}
	dial := !connected && !r.dialing && !h.disc.stopped && dialable && time.Since(r.lastDial) >= wait
	if dial {
		r.dialing, r.lastDial = true, time.Now()
		if reconnect {
			r.redialWait = min(max(2*r.redialWait, reconnectMin), reconnectMax)
		}
		h.wg.Add(1)
	}
	h.disc.mu.Unlock()
	if !dial {
		return
	}
	for _, a := range via {
		if !slices.ContainsFunc(addrs, a.Equal) {
			addrs = append(addrs, a)
		}
	}
	go func() {
		defer h.wg.Done()
		err := h.dialCandidate(ctx, lh, peer.AddrInfo{ID: p, Addrs: addrs})
		h.disc.mu.Lock()
		r.dialing = false
		if err != nil {
			r.lastErr = err.Error()
		}
		h.disc.mu.Unlock()
		if err != nil {
			h.s.log.Debug("p2p dial to sibling failed", "peer", p, "why", why, "err", err)
		}
	}()
}

// viaServers returns circuit addresses to p through each home server
// (Config.StaticRelays) other than p itself: the relay a sibling behind NAT
// holds a reservation with, whether or not it has advertised the circuit
// yet. Not in ProfileLocal, whose tests name their circuits themselves.
func (h *Host) viaServers(p peer.ID) []multiaddr.Multiaddr {
	if h.s.staticRelays == nil || h.s.profile == ProfileLocal {
		return nil
	}
	target, err := multiaddr.NewComponent("p2p", p.String())
	if err != nil {
		return nil
	}
	var out []multiaddr.Multiaddr
	for _, r := range h.s.staticRelays() {
		if r.ID == p || r.ID == h.ID() {
			continue
		}
		rc, err := multiaddr.NewComponent("p2p", r.ID.String())
		if err != nil {
			continue
		}
		for _, a := range r.Addrs {
			if isCircuit(a) || (h.s.profile == ProfileLAN && !lanDirect(a)) {
				continue
			}
			c := slices.Clip(a).AppendComponent(rc, circuitComponent, target)
			if !slices.ContainsFunc(out, c.Equal) {
				out = append(out, c)
			}
		}
	}
	return out
}

// reconnect hands the pipeline the peers that sources reported before they
// became members, and redials siblings that are not connected: every sibling the
// pipeline knows (found by a source, or connected once), with a backoff
// per sibling from reconnectMin doubling to reconnectMax, reset when it
// connects. Without it a sibling lost to a cut link came back only when a
// source reported it again (the next rendezvous lookup, minutes later).
func (h *Host) reconnect(ctx context.Context) {
	lh, _ := h.runningCtx()
	if lh == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.disc.mu.Lock()
		joined := h.disc.newMembers(h.isMember, time.Now())
		var ps []peer.ID
		for p, r := range h.disc.siblings {
			if lh.Network().Connectedness(p) == network.Connected {
				r.redialWait = 0
				continue
			}
			ps = append(ps, p)
		}
		h.disc.mu.Unlock()
		for _, s := range joined {
			h.found(s.src, s.ai)
		}
		for _, p := range ps {
			if h.isMember(p) {
				h.dialSibling(ctx, lh, p, "reconnect", true)
			}
		}
	}
}

func (h *Host) dialCandidate(ctx context.Context, lh interface {
	Connect(context.Context, peer.AddrInfo) error
}, ai peer.AddrInfo) error {
	select {
	case h.disc.sem <- struct{}{}:
		defer func() { <-h.disc.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, candidateDialTimeout)
	defer cancel()
	if len(ai.Addrs) == 0 && h.dht != nil {
		// A provider record may come without addresses.
		found, err := h.dht.FindPeer(ctx, ai.ID)
		if err != nil {
			return fmt.Errorf("find addresses: %w", err)
		}
		ai = found
	}
	return lh.Connect(ctx, ai)
}

// connected is the network notifiee's hook: a member that connects (either
// way) is recorded, its connections protected from trimming and its
// addresses remembered.
func (h *Host) connected(lh host.Host, c network.Conn) {
	p := c.RemotePeer()
	if !h.isMember(p) {
		return
	}
	h.disc.mu.Lock()
	r := h.disc.record(p, h.s.now())
	if len(r.sources) == 0 {
		// Not found by a source: it called, or a part of this host
		// other than the pipeline (the DHT's own queries, mostly)
		// dialled it.
		switch {
		case c.Stat().Direction == network.DirInbound:
			r.sources[SourceInbound] = true
		case h.s.dht != DHTOff:
			r.sources[SourceDHT] = true
		default:
			r.sources[SourceManual] = true
		}
	}
	h.disc.mu.Unlock()
	lh.ConnManager().Protect(p, protectTag)
	h.requestSave()
	select {
	case h.disc.pingReq <- p:
	default: // the periodic round will ping it
	}
}

// Siblings returns what the host knows about the member devices it found or
// that connected to it, sorted by peer ID. It returns nil before Start. It
// is safe for concurrent use.
func (h *Host) Siblings() []Sibling {
	lh := h.running()
	if lh == nil {
		return nil
	}
	nat := h.path.nat(ownAddrs(lh), time.Now())
	h.disc.mu.Lock()
	defer h.disc.mu.Unlock()
	out := make([]Sibling, 0, len(h.disc.siblings))
	for id, r := range h.disc.siblings {
		if !h.isMember(id) {
			continue
		}
		s := Sibling{
			ID:        id,
			FirstSeen: r.firstSeen,
			LastSeen:  r.lastSeen,
			Latency:   lh.Peerstore().LatencyEWMA(id),
		}
		for src := range r.sources {
			s.Sources = append(s.Sources, src)
		}
		slices.Sort(s.Sources)
		s.Addrs = append(s.Addrs, r.addrs...)
		for _, a := range lh.Peerstore().Addrs(id) {
			if !slices.ContainsFunc(s.Addrs, a.Equal) {
				s.Addrs = append(s.Addrs, a)
			}
		}
		for _, c := range lh.Network().ConnsToPeer(id) {
			s.Connected = true
			relay, ok := relayOf(c.RemoteMultiaddr())
			if !ok {
				s.Path, s.Relay = PathDirect, ""
				break
			}
			s.Path, s.Relay = PathRelayed, relay
		}
		s.WhyNotDirect = h.whyNotDirect(s, r, nat)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Sibling) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// whyNotDirect explains a path that is not direct: the last hole-punch or
// dial error, this host's NAT when it defeats hole punching, or what is
// still missing. h.disc.mu is held.
func (h *Host) whyNotDirect(s Sibling, r *sibling, nat NAT) string {
	var why string
	switch {
	case s.Path == PathDirect:
		return ""
	case r.punchErr != "":
		why = "hole punch failed: " + r.punchErr
	case s.Connected && len(nat.Observed) == 0:
		why = "no public address: no peer has observed one for this device yet"
	case s.Connected:
		why = "hole punching pending (the side that accepted the relayed connection starts it)"
	case r.lastErr != "":
		why = "dial failed: " + r.lastErr
	case r.dialing:
		why = "dialling"
	case len(s.Addrs) == 0:
		why = "no known address"
	default:
		why = "not connected"
	}
	if s.Connected && nat.Mapping == NATSymmetric {
		why = "symmetric NAT detected (" + nat.Evidence + "); " + why
	}
	return why
}

// relayOf returns the relay's peer ID if a is a circuit address.
func relayOf(a multiaddr.Multiaddr) (peer.ID, bool) {
	for i, c := range a {
		if c.Code() != multiaddr.P_CIRCUIT {
			continue
		}
		if i > 0 && a[i-1].Code() == multiaddr.P_P2P {
			id, err := peer.IDFromBytes(a[i-1].RawValue())
			if err == nil {
				return id, true
			}
		}
		return "", true
	}
	return "", false
}

// Disconnect closes every connection to p. It does not stop p from
// connecting again (Config.Revoked does that), but this host waits
// reconnectMax before it redials p itself. Before Start it does nothing.
func (h *Host) Disconnect(p peer.ID) error {
	lh := h.running()
	if lh == nil {
		return nil
	}
	h.disc.mu.Lock()
	if r, ok := h.disc.siblings[p]; ok {
		r.lastDial, r.redialWait = time.Now(), reconnectMax
	}
	h.disc.mu.Unlock()
	lh.ConnManager().Unprotect(p, protectTag)
	if err := lh.Network().ClosePeer(p); err != nil {
		return fmt.Errorf("p2p: disconnect %s: %w", p, err)
	}
	return nil
}

// mdnsNotifee hands peers found by mDNS to the pipeline.
type mdnsNotifee struct{ h *Host }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { n.h.found(SourceMDNS, ai) }

// pollDNS calls Config.DNSAddrs at once and then every DNSInterval.
func (h *Host) pollDNS(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		addrs, err := h.s.dnsAddrs(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.s.log.Warn("p2p dns discovery failed", "err", err)
			}
		} else {
			for _, ai := range groupByPeer(addrs) {
				h.found(SourceDNS, ai)
			}
		}
		t.Reset(h.s.dnsInterval)
	}
}

// punchTracer records the outcome of hole punches with siblings, for
// Sibling.WhyNotDirect.
type punchTracer struct{ h *Host }

var _ holepunch.EventTracer = punchTracer{}

func (t punchTracer) Trace(evt *holepunch.Event) {
	var errText string
	success := false
	switch e := evt.Evt.(type) {
	case *holepunch.EndHolePunchEvt:
		success, errText = e.Success, e.Error
	case *holepunch.DirectDialEvt:
		if !e.Success {
			return // a punch follows
		}
		success = true
	case *holepunch.ProtocolErrorEvt:
		errText = e.Error
	default:
		return
	}
	if success {
		t.h.path.punched(evt.Remote)
	}
	t.h.disc.mu.Lock()
	defer t.h.disc.mu.Unlock()
	r, ok := t.h.disc.siblings[evt.Remote]
	if !ok {
		return
	}
	if success {
		r.punchErr = ""
	} else {
		// libp2p's dial errors list every address on lines of their
		// own; the first line says what failed.
		first, _, _ := strings.Cut(errText, "\n")
		r.punchErr = strings.TrimSuffix(first, ":")
	}
}

// groupByPeer turns full multiaddrs into one AddrInfo per peer, in order of
// first appearance, dropping addresses without /p2p/<id>.
func groupByPeer(addrs []multiaddr.Multiaddr) []peer.AddrInfo {
	var out []peer.AddrInfo
	idx := map[peer.ID]int{}
	for _, a := range addrs {
		pi, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			continue
		}
		i, ok := idx[pi.ID]
		if !ok {
			i = len(out)
			idx[pi.ID] = i
			out = append(out, peer.AddrInfo{ID: pi.ID})
		}
		out[i].Addrs = append(out[i].Addrs, pi.Addrs...)
	}
	return out
}

// pinger measures the round trip to siblings (Sibling.Latency): each one
// soon after it connects, and every connected one every
// siblingPingInterval. libp2p keeps the moving average in the peerstore.
func (h *Host) pinger(ctx context.Context) {
	lh, _ := h.runningCtx()
	if lh == nil {
		return
	}
	pingOne := func(p peer.ID) {
		if lh.Network().Connectedness(p) != network.Connected {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, siblingPingTimeout)
		defer cancel()
		if res, ok := <-ping.Ping(ctx, lh, p); (!ok || res.Error != nil) && ctx.Err() == nil {
			h.s.log.Debug("p2p ping sibling failed", "peer", p, "err", res.Error)
		}
	}
	t := time.NewTicker(siblingPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-h.disc.pingReq:
			pingOne(p)
		case <-t.C:
			h.disc.mu.Lock()
			var ps []peer.ID
			for p := range h.disc.siblings {
				ps = append(ps, p)
			}
			h.disc.mu.Unlock()
			for _, p := range ps {
				if h.isMember(p) {
					pingOne(p)
				}
			}
		}
	}
}
