package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// ErrRefused is wrapped by Connect's error when the dial policy refuses the
// address or peer: the profile's (ProfileLocal refuses anything but loopback
// IP addresses, DNS names included) or Config.Gater's.
var ErrRefused = errors.New("refused by the dial policy")

// loopbackOnly reports whether a is an address the local profile may use: it
// starts with a loopback IP (127.0.0.0/8 or ::1), names no DNS or relay hop,
// and is well formed. Anything else, including addresses this function does
// not understand, is refused.
func loopbackOnly(a multiaddr.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	ok := true
	for i, c := range a {
		switch c.Code() {
		case multiaddr.P_IP4, multiaddr.P_IP6:
			if i != 0 {
				ok = false
				break
			}
			ip := net.IP(c.RawValue())
			if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
				ok = false
				break
			}
			ok = ip.IsLoopback()
		case multiaddr.P_TCP, multiaddr.P_UDP, multiaddr.P_QUIC_V1, multiaddr.P_P2P:
			if i == 0 {
				ok = false
			}
		default:
			// DNS, dnsaddr, ip6zone, p2p-circuit, unix, onion and every
			// transport this host does not run.
			ok = false
		}
		if !ok {
			return false
		}
	}
	return ok
}

// localDialable reports whether the local profile may dial or accept a: a
// loopback address (loopbackOnly), or a circuit through a relay reached at
// a loopback address: <loopback address>/p2p/<relay>/p2p-circuit, optionally
// followed by /p2p/<target>. Relays are how tests among loopback hosts
// exercise circuit relay v2; nothing in such an address leaves the machine.
func localDialable(a multiaddr.Multiaddr) bool {
	if loopbackOnly(a) {
		return true
	}
	for i, c := range a {
		if c.Code() != multiaddr.P_CIRCUIT {
			continue
		}
		relay, rest := a[:i], a[i+1:]
		if len(relay) < 2 || relay[len(relay)-1].Code() != multiaddr.P_P2P || !loopbackOnly(relay) {
			return false
		}
		return len(rest) == 0 || (len(rest) == 1 && rest[0].Code() == multiaddr.P_P2P)
	}
	return false
}

// localGater is the local profile's connection gater: it lets no dial and
// no accepted connection involve an address outside loopback.
type localGater struct{}

var _ connmgr.ConnectionGater = localGater{}

func (localGater) InterceptPeerDial(peer.ID) bool { return true }

func (localGater) InterceptAddrDial(_ peer.ID, a multiaddr.Multiaddr) bool {
	return localDialable(a)
}

func (localGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return localDialable(c.RemoteMultiaddr()) && loopbackOnly(c.LocalMultiaddr())
}

func (localGater) InterceptSecured(_ network.Direction, _ peer.ID, c network.ConnMultiaddrs) bool {
	return localDialable(c.RemoteMultiaddr())
}

func (localGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// revokedGater refuses peers that Config.Revoked names: it never dials them
// and drops their connections as soon as they have authenticated (the
// earliest point at which the peer ID is known on an inbound connection).
type revokedGater struct{ revoked func(peer.ID) bool }

var _ connmgr.ConnectionGater = revokedGater{}

func (g revokedGater) InterceptPeerDial(p peer.ID) bool { return !g.revoked(p) }

func (revokedGater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }

func (revokedGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g revokedGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.revoked(p)
}

func (revokedGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// bothGater allows a connection only when both gaters do; the first is the
// profile's policy, so a refused address never reaches the second.
type bothGater struct{ a, b connmgr.ConnectionGater }

var _ connmgr.ConnectionGater = bothGater{}

func (g bothGater) InterceptPeerDial(p peer.ID) bool {
	return g.a.InterceptPeerDial(p) && g.b.InterceptPeerDial(p)
}

func (g bothGater) InterceptAddrDial(p peer.ID, a multiaddr.Multiaddr) bool {
	return g.a.InterceptAddrDial(p, a) && g.b.InterceptAddrDial(p, a)
}

func (g bothGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return g.a.InterceptAccept(c) && g.b.InterceptAccept(c)
}

func (g bothGater) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.a.InterceptSecured(d, p, c) && g.b.InterceptSecured(d, p, c)
}

func (g bothGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if ok, r := g.a.InterceptUpgraded(c); !ok {
		return ok, r
	}
	return g.b.InterceptUpgraded(c)
}

// refusingResolver is the local profile's multiaddr DNS resolver. libp2p
// resolves /dns* and /dnsaddr addresses before it asks the gater about the
// result, so the gater alone cannot prevent a DNS lookup; this resolver
// makes sure none happens.
type refusingResolver struct{}

var _ network.MultiaddrDNSResolver = refusingResolver{}

func (refusingResolver) ResolveDNSAddr(_ context.Context, _ peer.ID, a multiaddr.Multiaddr, _, _ int) ([]multiaddr.Multiaddr, error) {
	return nil, fmt.Errorf("resolve %s: %w", a, ErrRefused)
}

func (refusingResolver) ResolveDNSComponent(_ context.Context, a multiaddr.Multiaddr, _ int) ([]multiaddr.Multiaddr, error) {
	return nil, fmt.Errorf("resolve %s: %w", a, ErrRefused)
}

// needsResolving reports whether a names a DNS name.
func needsResolving(a multiaddr.Multiaddr) bool {
	for _, c := range a {
		switch c.Code() {
		case multiaddr.P_DNS, multiaddr.P_DNS4, multiaddr.P_DNS6, multiaddr.P_DNSADDR:
			return true
		}
	}
	return false
}

func revokedGaterFor(revoked func(peer.ID) bool) connmgr.ConnectionGater {
	if revoked == nil {
		return nil
	}
	return revokedGater{revoked}
}
