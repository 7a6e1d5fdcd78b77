package p2p

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ipfs/boxo/blockstore"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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
)

// Connection manager watermarks used when Config.ConnLow / ConnHigh are 0.
//
// They are Kubo's defaults (Swarm.ConnMgr: low 32, high 96, grace 20s). A
// device talks mostly to its few siblings; the rest of its connections serve
// the public DHT and friends fetching shares. 96 keeps a healthy DHT routing
// table while bounding sockets and memory on phone-class boxes. Siblings will
// be protected from trimming by the member-gating issue.
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
	// IPv4 and IPv6 interface, TCP and QUIC. In ProfileLocal every address
	// must be loopback.
	ListenAddrs []multiaddr.Multiaddr

	// Bootstrap are peers that Start dials in the background. nil means the
	// profile's default: for ProfileDefault the public IPFS bootstrap peers,
	// for ProfileLocal none. A non-nil empty slice means none.
	Bootstrap []peer.AddrInfo

	// Blockstore is where bitswap serves blocks from. Required. Blocks that
	// the Exchange fetches are stored into it by BlockService.
	Blockstore blockstore.Blockstore

	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections the manager trims down to ConnLow. 0 means
	// DefaultConnLow / DefaultConnHigh.
	ConnLow, ConnHigh int

	// Gater is an extra connection gater (member gating, later). nil means
	// none. It is consulted after the profile's own policy: a connection
	// needs both to allow it.
	Gater connmgr.ConnectionGater

	// Logger receives the host's logs. nil discards them.
	Logger *slog.Logger
}

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
	if s.profile != ProfileDefault && s.profile != ProfileLocal {
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
	}

	s.bootstrap = cfg.Bootstrap
	if s.bootstrap == nil && s.profile == ProfileDefault {
		s.bootstrap = dht.GetDefaultBootstrapPeerAddrInfos()
	}
	for _, pi := range s.bootstrap {
		if err := pi.ID.Validate(); err != nil {
			return s, fmt.Errorf("%w: bootstrap peer %s: %w", ErrConfig, pi, err)
		}
		if s.profile == ProfileLocal {
			for _, a := range pi.Addrs {
				if !loopbackOnly(a) {
					return s, fmt.Errorf("%w: bootstrap address %s is not loopback (profile %s)", ErrConfig, a, s.profile)
				}
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
