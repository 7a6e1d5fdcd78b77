package p2p

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FindProviders looks c up in the DHT and returns up to max peers that
// announced it (this host excluded), with the addresses the DHT knows for
// them, when max are found or ctx ends. It fails with ErrNotStarted
// wrapped when the host runs no DHT. Fetching a share by link uses it when
// the link's hints do not answer; the member paths never do (asking the
// DHT for a CID tells it what this host wants).
func (h *Host) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	h.mu.Lock()
	d, lh := h.dht, h.h
	h.mu.Unlock()
	if d == nil || lh == nil {
		return nil, fmt.Errorf("p2p: find providers %s: no DHT: %w", c, ErrNotStarted)
	}
	var out []peer.AddrInfo
	for ai := range d.FindProvidersAsync(ctx, c, max) {
		if ai.ID == lh.ID() {
			continue
		}
		out = append(out, ai)
	}
	return out, nil
}
