package p2p

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// reserveRetry is how soon a failed reservation is tried again, and
// reserveEarly how long before expiry a held one is renewed. libp2p's
// relays grant reservations for an hour; renewing a few minutes early
// leaves room for a slow round trip.
const (
	reserveRetry = 30 * time.Second
	reserveEarly = 5 * time.Minute
)

// reserveWithServers keeps a reservation with every home server of the
// cloud (Config.StaticRelays), so a device behind NAT is reachable
// through them from the start. libp2p's autorelay would reserve only once
// AutoNAT called the host private, and AutoNAT needs a connection to a
// peer answering probes, which a device behind NAT may not have yet: a
// chicken-and-egg wait that left devices unreachable in the NAT testbed.
// A home server is the person's own machine, so holding a slot there
// costs nothing and is what DESIGN.md asks (devices prefer it as relay).
func (h *Host) reserveWithServers(ctx context.Context, lh host.Host) {
	held := map[peer.ID]time.Time{} // relay -> reservation expiry
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := reserveRetry
		for _, r := range h.s.staticRelays() {
			if r.ID == h.ID() {
				continue
			}
			if exp, ok := held[r.ID]; ok && time.Until(exp) > reserveEarly {
				if d := time.Until(exp) - reserveEarly; d < next {
					next = d
				}
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := lh.Connect(rctx, r)
			var rsv *client.Reservation
			if err == nil {
				rsv, err = client.Reserve(rctx, lh, r)
			}
			cancel()
			if err != nil {
				delete(held, r.ID)
				h.s.log.Debug("relay reservation failed; retrying", "relay", r.ID, "err", err)
				continue
			}
			held[r.ID] = rsv.Expiration
			h.s.log.Debug("relay reservation held", "relay", r.ID, "until", rsv.Expiration)
			if d := time.Until(rsv.Expiration) - reserveEarly; d > 0 && d < next {
				next = d
			}
		}
		t.Reset(next)
	}
}
