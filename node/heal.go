package node

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/p2p"
)

// healTimeout bounds the refetch after a verify: long enough to bring back
// a few hundred MiB from a sibling on a LAN, short enough that a verify
// with no sibling online still returns.
const healTimeout = 5 * time.Minute

// heal fetches again, from the members, the blocks a verify quarantined:
// it walks every recursive pin and every synced folder's index roots and
// completes what is missing (the DAG stream first, then bitswap). It is
// best effort: what no member has stays missing and is reported by the
// next get or verify. It returns how many of corrupt are back.
func (n *Node) heal(ctx context.Context, st *blobstore.Store, dag ipld.DAGService, h *p2p.Host, corrupt []cid.Cid) int {
	ctx, cancel := context.WithTimeout(ctx, healTimeout)
	defer cancel()
	var roots []cid.Cid
	pins, err := st.Pins(ctx)
	if err != nil {
		n.log.Warn("heal: list pins", "err", err)
	}
	for _, p := range pins {
		if p.Recursive {
			roots = append(roots, p.Cid)
		}
	}
	if fr, err := n.folderRoots(); err == nil {
		roots = append(roots, fr...)
	}
	n.gcMu.RLock()
	for _, root := range roots {
		n.fetchFast(ctx, st, h, root, nil)
		if err := blobstore.Fetch(ctx, dag, root, nil); err != nil {
			n.log.Warn("heal: fetch", "root", root, "err", err)
		}
	}
	n.gcMu.RUnlock()
	healed := 0
	for _, c := range corrupt {
		if ok, _ := st.Has(ctx, c); ok {
			healed++
		}
	}
	n.log.Info("healed corrupt blocks from members", "healed", healed, "corrupt", len(corrupt))
	return healed
}
