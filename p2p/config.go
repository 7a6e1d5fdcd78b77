package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// Profile selects a network policy for the host.
type Profile string

const (
	// ProfileDefault is for real users: it listens on every interface on port
	// 4001 (TCP and QUIC, like Kubo, so existing firewall rules apply), maps
	// the port on the home router (UPnP / NAT-PMP) and bootstraps from the
	// public IPFS bootstrap peers.
	ProfileDefault Profile = "default"

	// ProfileLocal is for tests and demos: the host listens on loopback on
	// random ports, has no bootstrap peers, maps no ports, runs no relay or
	// mDNS, and refuses to dial or resolve anything outside 127.0.0.0/8 and
	// ::1. Every pcnode test uses it.
	ProfileLocal Profile = "local"

	// ProfileLAN is for networks of the documentation ranges (RFC 5737:
	// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), meaning the
	// network-namespace testbed (integration/netns): the host listens on
	// port 4001 of every IPv4 interface, may dial and accept only those
	// ranges and loopback, has no public bootstrap peers, maps no ports
	// and runs no AutoNAT, but keeps mDNS, the relay client and service,
	// and hole punching (DCUtR) with addresses that peers observed (see
	// path.go: libp2p would punch only from publicly routable addresses,
	// which the documentation ranges are not). Its DHT is a private one
	// (prefix LANDHTPrefix): a server on a home server (RelayService), a
	// client elsewhere.
	ProfileLAN Profile = "lan"
)

// LANDHTPrefix is the DHT protocol prefix of ProfileLAN, so that a LAN
// host never joins the public Amino DHT.
const LANDHTPrefix protocol.ID = "/pcnode-lan"

// Connection manager watermarks used when Config.ConnLow / ConnHigh are 0.
//
// They are Kubo's defaults (Swarm.ConnMgr: low 32, high 96, grace 20s). A
// device talks mostly to its few siblings; the rest of its connections serve
// the public DHT and friends fetching shares. 96 keeps a healthy DHT routing
// table while bounding sockets and memory on phone-class boxes. Connections
// to siblings are protected from trimming (see discovery.go).
const (
	DefaultConnLow  = 32
	DefaultConnHigh = 96
)

// Config describes a Host. Key and Blockstore are required; every other
// field's zero value selects the documented default.
type Config struct {
	// Key is the device's identity (an Ed25519 libp2p key). Required.
	Key crypto.PrivKey

	// Profile selects the network policy. "" means ProfileDefault.
	Profile Profile

	// ListenAddrs are the addresses to listen on. nil means the profile's
	// defaults: for ProfileLocal /ip4/127.0.0.1/tcp/0 and
	// /ip4/127.0.0.1/udp/0/quic-v1; for ProfileDefault port 4001 on every
	// IPv4 and IPv6 interface, TCP and QUIC; for ProfileLAN port 4001 on
	// every IPv4 interface, TCP and QUIC. In ProfileLocal every address
	// must be loopback.
	ListenAddrs []multiaddr.Multiaddr

	// Bootstrap are peers that Start dials in the background. nil means the
	// profile's default: for ProfileDefault the public IPFS bootstrap peers,
	// for ProfileLocal and ProfileLAN none. A non-nil empty slice means none.
	Bootstrap []peer.AddrInfo

	// Blockstore is where bitswap serves blocks from. Required. Blocks that
	// the Exchange fetches are stored into it by BlockService.
	Blockstore blockstore.Blockstore

	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections the manager trims down to ConnLow. 0 means
	// DefaultConnLow / DefaultConnHigh.
	ConnLow, ConnHigh int

	// Gater is an extra connection gater. nil means none. It is consulted
	// after the profile's own policy and Revoked: a connection needs all of
	// them to allow it.
	Gater connmgr.ConnectionGater

	// Logger receives the host's logs. nil discards them.
	Logger *slog.Logger

	// DHT selects how the host takes part in the Kademlia DHT. "" means
	// DHTAuto: in ProfileDefault the DHT decides from AutoNAT whether to
	// serve; in ProfileLocal it serves (loopback peers have no AutoNAT
	// signal, and a private test DHT needs servers).
	DHT DHTMode

	// DHTPrefix is the DHT's protocol prefix. "" means the public Amino DHT
	// ("/ipfs", protocol /ipfs/kad/1.0.0). Tests use a private prefix such
	// as "/pcnode-test" so that they can never join the public DHT.
	DHTPrefix protocol.ID

	// RendezvousSecret is the cloud secret from which the daily rendezvous
	// keys are derived (see RendezvousKey). nil means no DHT rendezvous
	// until Host.SetRendezvousSecret provides one.
	RendezvousSecret []byte

	// RendezvousInterval is how often the host looks up the rendezvous key
	// once it has settled. 0 means DefaultRendezvousInterval. The first
	// lookups after Start come sooner (see rendezvous.go).
	RendezvousInterval time.Duration

	// Members says which peers are siblings: found peers are dialled only
	// if it accepts them, and the relay service serves only them. nil
	// means nobody is a member, so discovery dials nobody.
	Members Members

	// Revoked reports peers that must be refused: the host neither dials
	// nor accepts them (checked once the peer is authenticated). nil means
	// none.
	Revoked func(peer.ID) bool

	// Now is the clock for the rendezvous keys. nil means time.Now.
	Now func() time.Time

	// MDNS turns LAN discovery by multicast DNS on or off. ToggleAuto means
	// on in ProfileDefault and ProfileLAN, off in ProfileLocal.
	MDNS Toggle

	// DNSAddrs returns addresses of siblings (full multiaddrs ending in
	// /p2p/<id>), typically from the person's _dnsaddr records. nil means
	// no DNS discovery. It is called at Start and then every DNSInterval.
	DNSAddrs func(ctx context.Context) ([]multiaddr.Multiaddr, error)

	// DNSInterval is how often DNSAddrs is polled. 0 means
	// DefaultDNSInterval.
	DNSInterval time.Duration

	// PeerStoreFile is a JSON file where the host remembers the last-known
	// addresses of siblings, and from which it dials them at Start. ""
	// means nothing is remembered.
	PeerStoreFile string

	// StaticRelays returns the relays (members with role server). In
	// ProfileDefault a host without RelayService keeps a reservation with
	// each of them from Start (renewed before expiry, retried every 30 s),
	// so it is reachable through its home server even before AutoNAT has
	// a verdict; autorelay may add others once AutoNAT calls the host
	// private. nil means none.
	StaticRelays func() []peer.AddrInfo

	// RelayService runs a circuit relay v2 service for members only (role
	// server) from Start, in both profiles, without waiting for AutoNAT;
	// in ProfileDefault the host also answers AutoNAT probes for others.
	// false means no relay service.
	RelayService bool

	// BlockFilter decides which blocks bitswap serves to whom: it is
	// called for every block a peer wants, and a block it refuses is
	// handled exactly like one the host does not have (DONT_HAVE if the
	// peer asked for it, else nothing), so a refusal reveals nothing. It
	// must be safe for concurrent use and fast. nil means every peer gets
	// every block in the Blockstore.
	BlockFilter func(peer.ID, cid.Cid) bool

	// DAGStreamAllowed says which peers may fetch whole DAGs over
	// DAGProtocol (the members' fast path, which bypasses BlockFilter), and
	// which peers DAGPeers offers as sources. Other peers are served the
	// DAG stream only when BlockFilter is set, and then only the blocks it
	// gives them (a friend's fast path to a share; the policy stays
	// bitswap's). It must be safe for concurrent use and fast. nil means
	// nobody.
	DAGStreamAllowed func(peer.ID) bool
}

// Members is the cloud's roster as p2p sees it.
type Members interface {
	// IsMember reports whether p is a (non-revoked) member device. It must
	// be safe for concurrent use and fast: it is called on every found
	// peer and every relay request.
	IsMember(p peer.ID) bool
}

// DHTMode is how the host takes part in the DHT.
type DHTMode string

const (
	DHTAuto   DHTMode = ""       // see Config.DHT
	DHTServer DHTMode = "server" // answer queries and store records
	DHTClient DHTMode = "client" // query only
	DHTOff    DHTMode = "off"    // no DHT, hence no DHT rendezvous
)

// Toggle is a switch whose zero value leaves the choice to the profile.
type Toggle uint8

const (
	ToggleAuto Toggle = iota
	ToggleOn
	ToggleOff
)

// Discovery timers used when the Config leaves them 0.
const (
	// DefaultRendezvousInterval: a lookup costs a few dozen DHT RPCs; every
	// 5 minutes finds a sibling that came up elsewhere soon enough, and
	// siblings that start later find this host themselves at once.
	DefaultRendezvousInterval = 5 * time.Minute

	// DefaultDNSInterval: _dnsaddr records change when a device moves, and
	// resolvers cache them for their TTL (typically 5 minutes) anyway.
	DefaultDNSInterval = 5 * time.Minute
)

// ErrConfig is wrapped by every error New returns for an invalid Config.
var ErrConfig = errors.New("invalid config")

// settings is a Config with every default filled in.
type settings struct {
	key        crypto.PrivKey
	profile    Profile
	listen     []multiaddr.Multiaddr
	bootstrap  []peer.AddrInfo
	blockstore blockstore.Blockstore
	connLow    int
	connHigh   int
	gater      connmgr.ConnectionGater
	log        *slog.Logger

	dht          DHTMode
	dhtPrefix    protocol.ID
	secret       []byte
	rvInterval   time.Duration
	members      Members
	revoked      func(peer.ID) bool
	now          func() time.Time
	mdns         bool
	dnsAddrs     func(context.Context) ([]multiaddr.Multiaddr, error)
	dnsInterval  time.Duration
	peerFile     string
	staticRelays func() []peer.AddrInfo
	relayService bool
	blockFilter  func(peer.ID, cid.Cid) bool
	dagAllowed   func(peer.ID) bool
}

func (cfg Config) settings() (settings, error) {
	s := settings{
		key:        cfg.Key,
		profile:    cfg.Profile,
		blockstore: cfg.Blockstore,
		connLow:    cfg.ConnLow,
		connHigh:   cfg.ConnHigh,
		gater:      cfg.Gater,
		log:        cfg.Logger,

		dht:          cfg.DHT,
		dhtPrefix:    cfg.DHTPrefix,
		secret:       cfg.RendezvousSecret,
		rvInterval:   cfg.RendezvousInterval,
		members:      cfg.Members,
		revoked:      cfg.Revoked,
		now:          cfg.Now,
		dnsAddrs:     cfg.DNSAddrs,
		dnsInterval:  cfg.DNSInterval,
		peerFile:     cfg.PeerStoreFile,
		staticRelays: cfg.StaticRelays,
		relayService: cfg.RelayService,
		blockFilter:  cfg.BlockFilter,
		dagAllowed:   cfg.DAGStreamAllowed,
	}
	if s.key == nil {
		return s, fmt.Errorf("%w: Key is required", ErrConfig)
	}
	if s.key.Type() != crypto.Ed25519 {
		return s, fmt.Errorf("%w: Key must be Ed25519, not %s", ErrConfig, s.key.Type())
	}
	if s.blockstore == nil {
		return s, fmt.Errorf("%w: Blockstore is required", ErrConfig)
	}
	if s.profile == "" {
		s.profile = ProfileDefault
	}
	if s.profile != ProfileDefault && s.profile != ProfileLocal && s.profile != ProfileLAN {
		return s, fmt.Errorf("%w: unknown profile %q", ErrConfig, s.profile)
	}
	if s.connLow == 0 {
		s.connLow = DefaultConnLow
	}
	if s.connHigh == 0 {
		s.connHigh = max(DefaultConnHigh, s.connLow)
	}
	if s.connLow < 0 || s.connHigh < s.connLow {
		return s, fmt.Errorf("%w: connection watermarks low %d high %d", ErrConfig, s.connLow, s.connHigh)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch s.dht {
	case DHTAuto:
		switch {
		case s.profile == ProfileLocal:
			s.dht = DHTServer
		case s.profile == ProfileLAN && s.relayService:
			s.dht = DHTServer
		case s.profile == ProfileLAN:
			s.dht = DHTClient
		}
	case DHTServer, DHTClient, DHTOff:
	default:
		return s, fmt.Errorf("%w: unknown DHT mode %q", ErrConfig, s.dht)
	}
	if s.dhtPrefix == "" {
		s.dhtPrefix = dht.DefaultPrefix
		if s.profile == ProfileLAN {
			s.dhtPrefix = LANDHTPrefix
		}
	}
	if s.secret != nil && len(s.secret) < 16 {
		return s, fmt.Errorf("%w: rendezvous secret of %d bytes, want at least 16", ErrConfig, len(s.secret))
	}
	if s.rvInterval == 0 {
		s.rvInterval = DefaultRendezvousInterval
	}
	if s.dnsInterval == 0 {
		s.dnsInterval = DefaultDNSInterval
	}
	if s.rvInterval < 0 || s.dnsInterval < 0 {
		return s, fmt.Errorf("%w: negative discovery interval", ErrConfig)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch cfg.MDNS {
	case ToggleAuto:
		s.mdns = s.profile != ProfileLocal
	case ToggleOn:
		s.mdns = true
	case ToggleOff:
	default:
		return s, fmt.Errorf("%w: MDNS toggle %d", ErrConfig, cfg.MDNS)
	}

	s.listen = cfg.ListenAddrs
	if s.listen == nil {
		s.listen = defaultListenAddrs(s.profile)
	}
	if len(s.listen) == 0 {
		return s, fmt.Errorf("%w: no listen addresses", ErrConfig)
	}
	for _, a := range s.listen {
		if len(a) == 0 {
			return s, fmt.Errorf("%w: empty listen address", ErrConfig)
		}
		if s.profile == ProfileLocal && !loopbackOnly(a) {
			return s, fmt.Errorf("%w: listen address %s is not loopback (profile %s)", ErrConfig, a, s.profile)
		}
		if s.profile == ProfileLAN && !lanListenable(a) {
			return s, fmt.Errorf("%w: listen address %s is outside loopback and the documentation ranges (profile %s)", ErrConfig, a, s.profile)
		}
	}

	s.bootstrap = cfg.Bootstrap
	if s.bootstrap == nil && s.profile == ProfileDefault {
		s.bootstrap = dht.GetDefaultBootstrapPeerAddrInfos()
	}
	for _, pi := range s.bootstrap {
		if err := pi.ID.Validate(); err != nil {
			return s, fmt.Errorf("%w: bootstrap peer %s: %w", ErrConfig, pi, err)
		}
		for _, a := range pi.Addrs {
			if s.profile == ProfileLocal && !loopbackOnly(a) {
				return s, fmt.Errorf("%w: bootstrap address %s is not loopback (profile %s)", ErrConfig, a, s.profile)
			}
			if s.profile == ProfileLAN && !lanDialable(a) {
				return s, fmt.Errorf("%w: bootstrap address %s is outside loopback and the documentation ranges (profile %s)", ErrConfig, a, s.profile)
			}
		}
	}
	return s, nil
}

func defaultListenAddrs(p Profile) []multiaddr.Multiaddr {
	var addrs []string
	switch p {
	case ProfileLocal:
		addrs = []string{
			"/ip4/127.0.0.1/tcp/0",
			"/ip4/127.0.0.1/udp/0/quic-v1",
		}
	case ProfileLAN:
		addrs = []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
		}
	default:
		addrs = []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip6/::/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
			"/ip6/::/udp/4001/quic-v1",
		}
	}
	out := make([]multiaddr.Multiaddr, len(addrs))
	for i, a := range addrs {
		out[i] = multiaddr.StringCast(a)
	}
	return out
}
