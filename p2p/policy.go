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
	return circuitOr(a, loopbackOnly)
}

// documentation are the ranges RFC 5737 sets aside for documentation,
// which ProfileLAN may use besides loopback: nothing on the Internet
// answers them, so a host of that profile cannot reach a real network.
var documentation = []*net.IPNet{
	mustCIDR("192.0.2.0/24"),
	mustCIDR("198.51.100.0/24"),
	mustCIDR("203.0.113.0/24"),
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// lanIP reports whether ip is one ProfileLAN may talk to: loopback or a
// documentation range.
func lanIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	for _, n := range documentation {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// lanDirect reports whether a is a direct address ProfileLAN may dial or
// accept: an IP address of lanIP, then TCP, UDP, QUIC v1 or /p2p, well
// formed. Names, zones, circuits and other transports are refused.
func lanDirect(a multiaddr.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	for i, c := range a {
		switch c.Code() {
		case multiaddr.P_IP4, multiaddr.P_IP6:
			ip := net.IP(c.RawValue())
			if i != 0 || (len(ip) != net.IPv4len && len(ip) != net.IPv6len) || !lanIP(ip) {
				return false
			}
		case multiaddr.P_TCP, multiaddr.P_UDP, multiaddr.P_QUIC_V1, multiaddr.P_P2P:
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// lanDialable is ProfileLAN's dial and accept policy: a lanDirect address,
// or a circuit through a relay reached at one
// (<lanDirect>/p2p/<relay>/p2p-circuit[/p2p/<target>]).
func lanDialable(a multiaddr.Multiaddr) bool {
	return circuitOr(a, lanDirect)
}

// lanListenable accepts ProfileLAN's listen addresses: the unspecified
// addresses (0.0.0.0, ::), which in a network namespace mean its own
// interfaces, and lanDirect ones.
func lanListenable(a multiaddr.Multiaddr) bool {
	if len(a) >= 2 && (a[0].Code() == multiaddr.P_IP4 || a[0].Code() == multiaddr.P_IP6) && net.IP(a[0].RawValue()).IsUnspecified() {
		return lanDirect(multiaddr.Join(multiaddr.StringCast("/ip4/127.0.0.1"), a[1:]))
	}
	return lanDirect(a)
}

// circuitOr accepts a when direct does, or when a is a circuit whose relay
// part direct accepts.
func circuitOr(a multiaddr.Multiaddr, direct func(multiaddr.Multiaddr) bool) bool {
	if direct(a) {
		return true
	}
	for i, c := range a {
		if c.Code() != multiaddr.P_CIRCUIT {
			continue
		}
		relay, rest := a[:i], a[i+1:]
		if len(relay) < 2 || relay[len(relay)-1].Code() != multiaddr.P_P2P || !direct(relay) {
			return false
		}
		return len(rest) == 0 || (len(rest) == 1 && rest[0].Code() == multiaddr.P_P2P)
	}
	return false
}

// addrGater is the connection gater of a profile that limits addresses
// (ProfileLocal, ProfileLAN): no dial and no accepted connection may
// involve an address that dialable refuses, and an accepted connection
// must arrive on an address that local accepts.
type addrGater struct {
	dialable, local func(multiaddr.Multiaddr) bool
}

var _ connmgr.ConnectionGater = addrGater{}

func (addrGater) InterceptPeerDial(peer.ID) bool { return true }

func (g addrGater) InterceptAddrDial(_ peer.ID, a multiaddr.Multiaddr) bool {
	return g.dialable(a)
}

func (g addrGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return g.dialable(c.RemoteMultiaddr()) && g.local(c.LocalMultiaddr())
}

func (g addrGater) InterceptSecured(_ network.Direction, _ peer.ID, c network.ConnMultiaddrs) bool {
	return g.dialable(c.RemoteMultiaddr())
}

func (addrGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// localGater is the local profile's connection gater: it lets no dial and
// no accepted connection involve an address outside loopback.
func localGater() connmgr.ConnectionGater {
	return addrGater{dialable: localDialable, local: loopbackOnly}
}

// lanGater is ProfileLAN's: loopback and the documentation ranges only.
func lanGater() connmgr.ConnectionGater {
	// A QUIC listener on 0.0.0.0 reports that as the local address.
	return addrGater{dialable: lanDialable, local: lanListenable}
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
