package netns_test

import (
	"context"
	"testing"
	"time"

	"github.com/pcnode/pcnode/integration/netns"
	"github.com/pcnode/pcnode/p2p"
)

// TestMDNSOnLAN is issue 3's check: two devices of one cloud, each in its
// own namespace on one virtual LAN, find each other by mDNS alone (no
// bootstrap, no DHT, no address given) and connect directly.
//
// The nodes are p2p.Hosts in the default profile (the one whose mDNS users
// get) listening on their LAN address only: a check of p2p's mDNS below
// the daemon. The daemon scenarios (scenario_test.go, profile lan) check
// mDNS among daemons too.
func TestMDNSOnLAN(t *testing.T) {
	tb := netns.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lan := tb.LAN("home", "192.0.2.0/24")
	a, b := tb.Host("laptop", lan), tb.Host("desktop", lan)
	ka, ida := newKey(t)
	kb, idb := newKey(t)
	cloud := members(ida, idb)

	na := startNode(t, ctx, a, ka, listenOn(a), cloud, "PCNODE_NETNS_MDNS=1")
	nb := startNode(t, ctx, b, kb, listenOn(b), cloud, "PCNODE_NETNS_MDNS=1")

	const deadline = 30 * time.Second
	for _, c := range []struct {
		n     *nodeAgent
		other *nodeAgent
	}{{na, nb}, {nb, na}} {
		st, took := c.n.waitFor(t, deadline, "mDNS connection to "+c.other.host.Name, func(st nodeState) bool {
			s, ok := st.sibling(c.other.ID)
			return ok && s.Connected && s.Path == p2p.PathDirect
		})
		s, _ := st.sibling(c.other.ID)
		// Whoever dials second may see the other's call first; what
		// matters is that each side's mDNS reported the other.
		if !has(s.Sources, p2p.SourceMDNS) {
			c.n.waitFor(t, deadline, "mDNS report of "+c.other.host.Name, func(st nodeState) bool {
				s, ok := st.sibling(c.other.ID)
				return ok && has(s.Sources, p2p.SourceMDNS)
			})
		}
		t.Logf("%s: connected to %s (sources %v, path %s) %v after process start, %v after host start",
			c.n.host.Name, c.other.host.Name, s.Sources, s.Path, took.Round(time.Millisecond), st.Elapsed.Round(time.Millisecond))
	}
}
