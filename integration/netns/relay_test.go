package netns_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pcnode/pcnode/integration/netns"
	"github.com/pcnode/pcnode/p2p"
)

// homeTopology is the first topology of issue 8: a home LAN
// (192.0.2.0/24) with laptop and desktop behind NAT A, a roaming LAN
// (198.51.100.0/24) with a phone behind NAT B, and the home server on the
// "public" net (203.0.113.0/24) running the members' relay. Every node is
// a member; the LAN devices have mDNS on and the server as static relay;
// the phone dials the laptop's circuit address through the server, as it
// would once DHT or DNS rendezvous told it the laptop's addresses.
type homeTopology struct {
	laptop, desktop, phone, server *nodeAgent
}

func newHomeTopology(t *testing.T, ctx context.Context, nat netns.Mapping) homeTopology {
	tb := netns.New(t)
	home := tb.LAN("home", "192.0.2.0/24")
	roam := tb.LAN("roam", "198.51.100.0/24")
	wan := tb.LAN("wan", "203.0.113.0/24")
	tb.NAT("natA", home, wan, nat)
	tb.NAT("natB", roam, wan, nat)
	laptop, desktop := tb.Host("laptop", home), tb.Host("desktop", home)
	phone := tb.Host("phone", roam)
	server := tb.Host("server", wan)

	kl, idl := newKey(t)
	kd, idd := newKey(t)
	kp, idp := newKey(t)
	ks, ids := newKey(t)
	cloud := members(idl, idd, idp, ids)
	relay := fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", server.Addr, ids)
	relays := "PCNODE_NETNS_RELAYS=" + relay
	return homeTopology{
		server:  startNode(t, ctx, server, ks, listenOn(server), cloud, "PCNODE_NETNS_RELAY_SERVICE=1"),
		laptop:  startNode(t, ctx, laptop, kl, listenOn(laptop), cloud, "PCNODE_NETNS_MDNS=1", relays),
		desktop: startNode(t, ctx, desktop, kd, listenOn(desktop), cloud, "PCNODE_NETNS_MDNS=1", relays),
		phone: startNode(t, ctx, phone, kp, listenOn(phone), cloud, relays,
			"PCNODE_NETNS_CONNECT="+relay+"/p2p-circuit/p2p/"+idl.String()),
	}
}

func connected(id peer.ID, path string) func(nodeState) bool {
	return func(st nodeState) bool {
		s, ok := st.sibling(id)
		return ok && s.Connected && (path == "" || s.Path == path)
	}
}

// TestHomeTopology checks what works today in the home topology: the LAN
// devices connect directly by mDNS even with NAT and a relay around, and
// the roaming phone reaches the public server directly through NAT B (the
// server sees it as an inbound caller).
func TestHomeTopology(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	top := newHomeTopology(t, ctx, netns.EndpointIndependent)

	_, took := top.laptop.waitFor(t, 30*time.Second, "mDNS connection to desktop", connected(top.desktop.ID, p2p.PathDirect))
	t.Logf("laptop ↔ desktop direct (mDNS) %v after start", took.Round(time.Millisecond))
	st, took := top.server.waitFor(t, 30*time.Second, "the phone's call", connected(top.phone.ID, p2p.PathDirect))
	s, _ := st.sibling(top.phone.ID)
	if !has(s.Sources, p2p.SourceInbound) {
		t.Errorf("server: phone found by %v, want inbound", s.Sources)
	}
	t.Logf("phone → server direct through NAT B %v after start", took.Round(time.Millisecond))
}

// TestRelayAcrossNATs: the phone, behind NAT B, reaches the laptop, behind
// NAT A, through the home server's member-only relay. The server runs the
// relay from Start and the devices hold reservations with it (p2p's
// reserveWithServers), without waiting for AutoNAT verdicts that a network
// of members only never gives.
func TestRelayAcrossNATs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	top := newHomeTopology(t, ctx, netns.EndpointIndependent)
	st, took := top.phone.waitFor(t, 40*time.Second, "connection to the laptop", connected(top.laptop.ID, ""))
	s, _ := st.sibling(top.laptop.ID)
	t.Logf("phone → laptop: path %s relay %s why-not-direct %q after %v", s.Path, s.Relay, s.WhyNotDirect, took.Round(time.Millisecond))
	if s.Path == p2p.PathRelayed && s.Relay != top.server.ID {
		t.Errorf("phone reaches the laptop relayed via %s, want the server %s", s.Relay, top.server.ID)
	}
}
