package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/pcnode/pcnode/dnslink"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/p2p"
)

// Bounds on the _dnsaddr records the node publishes. The resolver refuses
// answers of more than 64 records (dnslink.ResolverConfig.MaxRecords), so
// the whole set stays well below; a device rarely has more than a few
// useful addresses.
const (
	maxAddrsPerDevice = 8
	maxDNSAddrs       = 48
)

// Timers of the zone refresher.
const (
	// dnsSettle lets a burst of connection events (a device connecting
	// brings connect, identify and address events) make one rebuild.
	dnsSettle = 200 * time.Millisecond
	// dnsRefresh rebuilds the zone even without events, catching a roster
	// received by gossip and addresses that expired.
	dnsRefresh = time.Minute
)

// dnsKey returns the zone's signing key from <home>/dns.key, generating
// and storing it (0600) on first use. Keeping it keeps the DS at the
// parent valid.
func (n *Node) dnsKey() (*dnslink.Key, error) {
	n.dnsKeyMu.Lock()
	defer n.dnsKeyMu.Unlock()
	p := filepath.Join(n.home, DNSKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		k, err := dnslink.ParseKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := dnslink.GenerateKey()
	if err != nil {
		return nil, err
	}
	b, err = k.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p, b, 0o600); err != nil {
		return nil, err
	}
	n.log.Info("dns: new zone signing key", "file", p)
	return k, nil
}

// zoneSetting returns dns.zone or an ErrConflict saying how to set it.
func (n *Node) zoneSetting(op string) (string, error) {
	z := n.settings.Load().DNS.Zone
	if z == "" {
		return "", api.Errorf(api.ErrConflict, "node: %s: dns.zone is not set: pcnode config set dns.zone example.org", op)
	}
	return dns.CanonicalName(z), nil
}

// DNSDS returns the DS record for the parent zone and the DNSKEY of the
// zone's signing key, creating the key on first use. It works offline.
func (n *Node) DNSDS(ctx context.Context) (api.DNSDS, error) {
	if _, _, _, err := n.parts(); err != nil {
		return api.DNSDS{}, fmt.Errorf("node: dns ds: %w", err)
	}
	zone, err := n.zoneSetting("dns ds")
	if err != nil {
		return api.DNSDS{}, err
	}
	k, err := n.dnsKey()
	if err != nil {
		return api.DNSDS{}, fmt.Errorf("node: dns ds: %w", err)
	}
	key := k.DNSKEY(zone, dnslink.DefaultTTL)
	return api.DNSDS{Zone: zone, DS: k.DS(zone).String(), DNSKEY: key.String(), KeyTag: key.KeyTag()}, nil
}

// DNSPublish pushes the records the node would serve (_pcnode and
// _dnsaddr) to dns.primary with an RFC 2136 update signed with dns.tsig.
func (n *Node) DNSPublish(ctx context.Context) (api.DNSPublishResult, error) {
	const op = "dns publish"
	_, _, h, err := n.parts()
	if err != nil {
		return api.DNSPublishResult{}, fmt.Errorf("node: %s: %w", op, err)
	}
	zone, err := n.zoneSetting(op)
	if err != nil {
		return api.DNSPublishResult{}, err
	}
	c := n.settings.Load().DNS
	switch {
	case c.Primary == "":
		return api.DNSPublishResult{}, api.Errorf(api.ErrConflict, "node: %s: dns.primary is not set: pcnode config set dns.primary host:port", op)
	case c.TSIG == "":
		return api.DNSPublishResult{}, api.Errorf(api.ErrConflict, "node: %s: dns.tsig is not set: pcnode config set dns.tsig name:hmac-sha256:<base64 secret>", op)
	case n.settings.Load().Profile == ProfileLocal && !loopbackHostPort(c.Primary):
		return api.DNSPublishResult{}, api.Errorf(api.ErrConflict, "node: %s: dns.primary %s is not a loopback address, and the local profile talks to loopback only", op, c.Primary)
	}
	n.mu.Lock()
	d := n.dns
	n.mu.Unlock()
	if h == nil || d == nil {
		return api.DNSPublishResult{}, api.Errorf(api.ErrOffline, "node: %s: node is offline: the records carry the addresses of connected devices, so start pcnode daemon and publish through it", op)
	}
	pc, err := c.PublisherConfig(n.log.With("component", "dns"))
	if err != nil {
		return api.DNSPublishResult{}, api.Errorf(api.ErrConflict, "node: %s: dns.tsig: %w", op, err)
	}
	pub, err := dnslink.NewPublisher(pc)
	if err != nil {
		return api.DNSPublishResult{}, api.Errorf(api.ErrConflict, "node: %s: %w", op, err)
	}
	ch, err := pub.Publish(ctx, d.records())
	if err != nil {
		if errors.Is(err, dnslink.ErrUpdateRefused) {
			return api.DNSPublishResult{}, api.Errorf(api.ErrForbidden, "node: %s: %w", op, err)
		}
		return api.DNSPublishResult{}, fmt.Errorf("node: %s: %w", op, err)
	}
	res := api.DNSPublishResult{Zone: zone, Primary: c.Primary, Added: []string{}, Removed: []string{}}
	for _, rr := range ch.Added {
		res.Added = append(res.Added, rr.String())
	}
	for _, rr := range ch.Removed {
		res.Removed = append(res.Removed, rr.String())
	}
	n.log.Info("dns: published", "zone", zone, "primary", c.Primary, "added", len(res.Added), "removed", len(res.Removed))
	return res, nil
}

// loopbackHostPort reports whether host[:port] names a loopback IP.
func loopbackHostPort(hp string) bool {
	host := hp
	if h, _, err := net.SplitHostPort(hp); err == nil {
		host = h
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// dnsDiscovery returns p2p's DNSAddrs source: the members listed at
// _dnsaddr.<dns.zone>, or nil when dns.zone is unset. In the local profile
// it needs loopback dns.servers, since /etc/resolv.conf leads off the
// machine.
func (n *Node) dnsDiscovery() (func(context.Context) ([]multiaddr.Multiaddr, error), error) {
	c := n.settings.Load().DNS
	if c.Zone == "" {
		return nil, nil
	}
	if n.settings.Load().Profile == ProfileLocal {
		if len(c.Servers) == 0 {
			n.log.Info("dns: discovery off: the local profile needs loopback dns.servers")
			return nil, nil
		}
		for _, s := range c.Servers {
			if !loopbackHostPort(s) {
				return nil, fmt.Errorf("dns.servers %s is not a loopback address, and the local profile talks to loopback only", s)
			}
		}
	}
	r, err := dnslink.NewResolver(c.ResolverConfig(n.log.With("component", "dns")))
	if err != nil {
		return nil, fmt.Errorf("dns.trust_anchor: %w", err)
	}
	zone := c.Zone
	return func(ctx context.Context) ([]multiaddr.Multiaddr, error) {
		res, err := r.ResolveDNSAddr(ctx, zone, "")
		return res.Addrs, err
	}, nil
}

// dnsRecords keeps the records of the person's zone: _pcnode from the
// roster, _dnsaddr from this node's addresses and the addresses each
// connected member reports about itself over identify (in its signed peer
// record, else its listen addresses) – so only a member can set its own
// records. When dns.listen is set it also serves them, signed, and
// rebuilds the zone on connect, disconnect, address changes and every
// dnsRefresh. It is safe for concurrent use.
type dnsRecords struct {
	log     *slog.Logger
	host    *p2p.Host
	members *membership
	local   bool // local profile: loopback addresses are all there is

	zone *dnslink.Zone   // nil unless serving
	srv  *dnslink.Server // nil unless serving

	// pub keeps dns.primary current (nil unless dns.primary and dns.tsig
	// are set); origin is the zone's name. published is the fingerprint
	// of what was last published, touched only by run.
	pub       *dnslink.Publisher
	origin    string
	published string

	mu       sync.Mutex
	reported map[peer.ID][]multiaddr.Multiaddr
	last     string // fingerprint of the records being served
	// links returns the DNSLinks of named shares; nil means none.
	links func() map[string]dnslink.Link

	kickc  chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startDNS starts the record keeper on the running host and, when
// dns.listen is set, the authoritative server. n.mu is held.
func (n *Node) startDNSLocked(ctx context.Context) error {
	c := n.settings.Load().DNS
	if c.Zone == "" {
		if c.Listen != "" {
			return fmt.Errorf("node: start: dns.listen is set but dns.zone is not: pcnode config set dns.zone example.org")
		}
		return nil
	}
	if c.Listen != "" && n.settings.Load().Profile == ProfileLocal && !loopbackHostPort(c.Listen) {
		return fmt.Errorf("node: start: dns.listen %s is not a loopback address, and the local profile stays on loopback", c.Listen)
	}
	d := &dnsRecords{
		log:      n.log.With("component", "dns"),
		host:     n.host,
		members:  &n.members,
		local:    n.settings.Load().Profile == ProfileLocal,
		reported: map[peer.ID][]multiaddr.Multiaddr{},
		kickc:    make(chan struct{}, 1),
		links:    n.shareLinks,
	}
	lh := n.host.Libp2p()
	sub, err := lh.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtLocalAddressesUpdated),
	})
	if err != nil {
		return fmt.Errorf("node: start: dns: %w", err)
	}
	// Members connected before the subscription: their identify is
	// over, so the peer store's addresses stand in until they next push.
	for _, p := range lh.Network().Peers() {
		d.reported[p] = lh.Peerstore().Addrs(p)
	}
	if c.Primary != "" && c.TSIG != "" && (!d.local || loopbackHostPort(c.Primary)) {
		// The daemon keeps the primary's copy current by itself; a
		// setting that does not parse is reported by pcnode dns publish.
		if pc, err := c.PublisherConfig(d.log); err == nil {
			if pub, err := dnslink.NewPublisher(pc); err == nil {
				d.pub, d.origin = pub, dns.CanonicalName(c.Zone)
			}
		}
	}
	if c.Listen != "" {
		key, err := n.dnsKey()
		if err != nil {
			sub.Close()
			return fmt.Errorf("node: start: dns key: %w", err)
		}
		z, err := dnslink.NewZone(c.ZoneConfig(key))
		if err != nil {
			sub.Close()
			return fmt.Errorf("node: start: %w", err)
		}
		d.zone = z
		if err := d.rebuild(); err != nil {
			sub.Close()
			return fmt.Errorf("node: start: %w", err)
		}
		sc, err := c.ServerConfig(d.log)
		if err != nil {
			sub.Close()
			return fmt.Errorf("node: start: %w", err)
		}
		sc.OnQuery = n.metrics.dnsQuery
		d.srv = dnslink.NewServer(sc, z)
		if err := d.srv.Start(ctx); err != nil {
			sub.Close()
			return fmt.Errorf("node: start: dns.listen %s: %w", c.Listen, err)
		}
		d.log.Info("dns: serving zone", "zone", z.Origin(), "addr", d.srv.Addr())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer sub.Close()
		d.run(runCtx, sub.Out())
	}()
	n.dns = d
	return nil
}

// addr is the server's address, or "" when not serving.
func (d *dnsRecords) addr() string {
	if d.srv == nil {
		return ""
	}
	return d.srv.Addr()
}

// close stops the refresher and the server and waits for them.
func (d *dnsRecords) close() error {
	d.cancel()
	d.wg.Wait()
	if d.srv != nil {
		return d.srv.Close()
	}
	return nil
}

// kick asks for a rebuild soon; it never blocks.
func (d *dnsRecords) kick() {
	select {
	case d.kickc <- struct{}{}:
	default:
	}
}

func (d *dnsRecords) run(ctx context.Context, events <-chan any) {
	tick := time.NewTicker(dnsRefresh)
	defer tick.Stop()
	settle := time.NewTimer(0)
	<-settle.C
	pending := false
	later := func() {
		if !pending {
			pending = true
			settle.Reset(dnsSettle)
		}
	}
	for {
		select {
		case <-ctx.Done():
			settle.Stop()
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if d.observe(ev) {
				later()
			}
		case <-d.kickc:
			later()
		case <-settle.C:
			pending = false
			if err := d.rebuild(); err != nil {
				d.log.Warn("dns: zone rebuild failed", "err", err)
			}
			d.autoPublish(ctx)
		case <-tick.C:
			if err := d.rebuild(); err != nil {
				d.log.Warn("dns: zone rebuild failed", "err", err)
			}
			d.autoPublish(ctx)
		}
	}
}

// autoPublish pushes the records to dns.primary when they differ from
// what was last published there; a failure is retried at the next tick.
func (d *dnsRecords) autoPublish(ctx context.Context) {
	if d.pub == nil {
		return
	}
	rrs, err := d.records().RRs(d.origin)
	if err != nil {
		d.log.Warn("dns: records for the primary", "err", err)
		return
	}
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	if fp := b.String(); fp != d.published {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ch, err := d.pub.PublishRRs(pctx, rrs)
		cancel()
		if err != nil {
			d.log.Warn("dns: publishing to the primary failed; retrying in a minute", "err", err)
			return
		}
		d.published = fp
		d.log.Info("dns: primary updated", "zone", d.origin, "added", len(ch.Added), "removed", len(ch.Removed))
	}
}

// observe records what an event says about addresses; it reports whether
// the records may have changed.
func (d *dnsRecords) observe(ev any) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e := ev.(type) {
	case event.EvtPeerIdentificationCompleted:
		addrs := e.ListenAddrs
		if e.SignedPeerRecord != nil {
			if r, err := e.SignedPeerRecord.Record(); err == nil {
				if pr, ok := r.(*peer.PeerRecord); ok && pr.PeerID == e.Peer {
					addrs = pr.Addrs
				}
			}
		}
		d.reported[e.Peer] = slices.Clone(addrs)
		return d.members.IsMember(e.Peer)
	case event.EvtPeerConnectednessChanged:
		if e.Connectedness == network.NotConnected {
			_, had := d.reported[e.Peer]
			delete(d.reported, e.Peer)
			return had && d.members.IsMember(e.Peer) || d.members.Revoked(e.Peer)
		}
		return d.members.IsMember(e.Peer)
	case event.EvtLocalAddressesUpdated:
		return true
	}
	return false
}

// records returns the record set for the current roster and connections.
func (d *dnsRecords) records() dnslink.Records {
	var r dnslink.Records
	st := d.members.state()
	if st != nil {
		r.PCNode = &dnslink.PCNode{Cloud: st.ID().String()}
	}
	if d.links != nil {
		r.Links = d.links()
	}
	self := d.host.ID()
	selfAddrs := publishable(stripP2P(d.host.Addrs()), d.local)
	r.DNSAddrs = append(r.DNSAddrs, withPeer(selfAddrs, self)...)
	lh := d.host.Libp2p()
	if st == nil || lh == nil {
		return r
	}
	// Per-device names: <name>.<zone> with A/AAAA records of the
	// addresses each device reported for itself, for the devices whose
	// roster name makes a DNS label; two names that fold to the same
	// label go to the lower peer ID (self first), so the zone is the same
	// whichever order events came in.
	r.Hosts = map[string][]netip.Addr{}
	addHost := func(p peer.ID, as []multiaddr.Multiaddr) {
		m, ok := st.Roster().Lookup(p.String())
		if !ok {
			return
		}
		label := hostLabel(m.Name)
		if label == "" {
			return
		}
		if _, taken := r.Hosts[label]; taken {
			return
		}
		if ips := hostIPs(as); len(ips) > 0 {
			r.Hosts[label] = ips
		}
	}
	addHost(self, selfAddrs)
	d.mu.Lock()
	peers := make([]peer.ID, 0, len(d.reported))
	for p := range d.reported {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	for _, p := range peers {
		if p == self || !st.IsMember(p) || lh.Network().Connectedness(p) != network.Connected {
			continue
		}
		pa := publishable(d.reported[p], d.local)
		r.DNSAddrs = append(r.DNSAddrs, withPeer(pa, p)...)
		addHost(p, pa)
	}
	d.mu.Unlock()
	if len(r.DNSAddrs) > maxDNSAddrs {
		r.DNSAddrs = r.DNSAddrs[:maxDNSAddrs]
	}
	return r
}

// rebuild serves the current records if they changed.
func (d *dnsRecords) rebuild() error {
	if d.zone == nil {
		return nil
	}
	r := d.records()
	rrs, err := r.RRs(d.zone.Origin())
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	fp := b.String()
	d.mu.Lock()
	same := fp == d.last
	d.mu.Unlock()
	if same {
		return nil
	}
	if err := d.zone.SetRRs(rrs); err != nil {
		return err
	}
	d.mu.Lock()
	d.last = fp
	d.mu.Unlock()
	d.log.Debug("dns: zone updated", "serial", d.zone.Serial(), "records", len(rrs))
	return nil
}

// maxHostIPs bounds the A/AAAA records of one device name.
const maxHostIPs = 8

// hostLabel folds a device name into one DNS label (lower-case letters,
// digits and inner hyphens, at most 63 bytes), or "" when nothing is left.
// Labels never start with "_", so they cannot shadow _dnsaddr, _pcnode or
// _dnslink names.
func hostLabel(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == '-' || c == ' ' || c == '_' || c == '.':
			b.WriteByte('-')
		}
	}
	l := strings.Trim(b.String(), "-")
	if len(l) > 63 {
		l = strings.TrimRight(l[:63], "-")
	}
	return l
}

// hostIPs returns the distinct IP addresses of as (ip4 and ip6 only, not
// circuits), in order, at most maxHostIPs.
func hostIPs(as []multiaddr.Multiaddr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if len(a) == 0 || slices.ContainsFunc(a, func(c multiaddr.Component) bool { return c.Code() == multiaddr.P_CIRCUIT }) {
			continue
		}
		ip, err := manet.ToIP(a)
		if err != nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		if !slices.Contains(out, addr) {
			out = append(out, addr)
		}
		if len(out) == maxHostIPs {
			break
		}
	}
	return out
}

// stripP2P removes a trailing /p2p/<id> from each address.
func stripP2P(as []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	out := make([]multiaddr.Multiaddr, 0, len(as))
	for _, a := range as {
		if len(a) > 0 && a[len(a)-1].Code() == multiaddr.P_P2P {
			a = a[:len(a)-1]
		}
		out = append(out, a)
	}
	return out
}

// publishable keeps the addresses worth publishing: in the local profile
// all (they are loopback); otherwise none that is loopback, link-local or
// unspecified, and only public ones when there are any (relay circuits
// through a public relay count as public).
func publishable(as []multiaddr.Multiaddr, local bool) []multiaddr.Multiaddr {
	var pub, other []multiaddr.Multiaddr
	for _, a := range as {
		if len(a) == 0 {
			continue
		}
		if local {
			other = append(other, a)
			continue
		}
		if manet.IsIPLoopback(a) || manet.IsIPUnspecified(a) || isLinkLocal(a) {
			continue
		}
		if manet.IsPublicAddr(a) {
			pub = append(pub, a)
		} else {
			other = append(other, a)
		}
	}
	out := other
	if len(pub) > 0 {
		out = pub
	}
	if len(out) > maxAddrsPerDevice {
		out = out[:maxAddrsPerDevice]
	}
	return out
}

func isLinkLocal(a multiaddr.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast())
}

// withPeer appends /p2p/<p> to each address.
func withPeer(as []multiaddr.Multiaddr, p peer.ID) []multiaddr.Multiaddr {
	c, err := multiaddr.NewComponent("p2p", p.String())
	if err != nil {
		return nil
	}
	out := make([]multiaddr.Multiaddr, 0, len(as))
	for _, a := range as {
		if len(a) > 0 && a[len(a)-1].Code() == multiaddr.P_P2P {
			a = a[:len(a)-1]
		}
		out = append(out, slices.Clip(a).AppendComponent(c))
	}
	return out
}
