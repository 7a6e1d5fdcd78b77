package p2p

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// reserveRetry is the longest wait before a failed reservation is tried
// again (the first retry comes after reserveRetryMin, doubling), and
// reserveEarly how long before expiry a held one is renewed. libp2p's
// relays grant reservations for an hour; renewing a few minutes early
// leaves room for a slow round trip.
const (
	reserveRetryMin = 2 * time.Second
	reserveRetry    = 30 * time.Second
	reserveEarly    = 5 * time.Minute
)

// reserveWithServers keeps a reservation with every home server of the
// cloud (Config.StaticRelays), so a device behind NAT is reachable
// through them from the start. libp2p's autorelay would reserve only once
// AutoNAT called the host private, and AutoNAT needs a connection to a
// peer answering probes, which a device behind NAT may not have yet: a
// chicken-and-egg wait that left devices unreachable in the NAT testbed.
// A home server is the person's own machine, so holding a slot there
// costs nothing and is what DESIGN.md asks (devices prefer it as relay).
//
// A relay forgets a reservation when the connection to it closes, so a
// reservation counts as held only while connected: when the last
// connection to a relay closes (a cut uplink), or any member connects (a
// home server may have become known), the loop runs at once, and the
// circuit addresses the host advertises (path.go) follow what is held.
func (h *Host) reserveWithServers(ctx context.Context, lh host.Host) {
	held := map[peer.ID]time.Time{}  // relay -> reservation expiry
	tried := map[peer.ID]time.Time{} // relay -> last attempt
	kick := make(chan struct{}, 1)
	wake := func(network.Network, network.Conn) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	nb := &network.NotifyBundle{ConnectedF: wake, DisconnectedF: wake}
	lh.Network().Notify(nb)
	defer lh.Network().StopNotify(nb)
	failWait := reserveRetryMin
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
			t.Stop()
		}
		next := reserveRetry
		failed := false
		relays := h.s.staticRelays()
		for id := range held {
			if !slices.ContainsFunc(relays, func(r peer.AddrInfo) bool { return r.ID == id }) {
				delete(held, id)
				h.path.setRelayAddrs(id, nil)
			}
		}
		for _, r := range relays {
			if r.ID == h.ID() {
				continue
			}
			if exp, ok := held[r.ID]; ok && lh.Network().Connectedness(r.ID) == network.Connected {
				if d := time.Until(exp) - reserveEarly; d > 0 {
					next = min(next, d)
					continue
				}
			}
			if since := time.Since(tried[r.ID]); since < reserveRetryMin {
				next = min(next, reserveRetryMin-since)
				continue // a burst of connection events, not a reason to dial again
			}
			tried[r.ID] = time.Now()
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := lh.Connect(rctx, r)
			var rsv *client.Reservation
			if err == nil {
				rsv, err = client.Reserve(rctx, lh, r)
			}
			cancel()
			if err != nil {
				delete(held, r.ID)
				h.path.setRelayAddrs(r.ID, nil)
				failed = true
				h.s.log.Debug("relay reservation failed; retrying", "relay", r.ID, "in", failWait, "err", err)
				continue
			}
			held[r.ID] = rsv.Expiration
			h.path.setRelayAddrs(r.ID, rsv.Addrs)
			h.s.log.Debug("relay reservation held", "relay", r.ID, "until", rsv.Expiration)
			if d := time.Until(rsv.Expiration) - reserveEarly; d > 0 {
				next = min(next, d)
			}
		}
		if failed {
			next = min(next, failWait)
			failWait = min(2*failWait, reserveRetry)
		} else {
			failWait = reserveRetryMin
		}
		t.Reset(next)
	}
}

// memberRelayResources are the limits of the members' relay. It serves
// only the person's own devices, so a circuit has no data or time limit:
// libp2p's defaults (128 KiB and 2 minutes per circuit, meant for
// strangers) would cut a folder sync between two devices that cannot
// punch through their NATs, and would mark the connection "limited", on
// which no application stream opens. The copy buffer is larger than
// libp2p's 2 KiB for throughput, and all of a home's devices may reserve
// from one NAT address.
func memberRelayResources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = nil
	r.BufferSize = 64 << 10
	r.MaxReservationsPerIP = 64
	return r
}
