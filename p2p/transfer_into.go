package p2p

import (
	"context"
	"fmt"
	"io"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ProgressSink is a BlockSink that also hears of the stream's bytes as
// they arrive, before the blocks they carry are verified and handed on in
// batches (of up to 8 MiB): a caller's stall watchdog sees a slow stream
// move. FetchDAGs finds it by type assertion.
type ProgressSink interface {
	BlockSink
	// StreamRead is called with the size of each read from the stream,
	// on the reading goroutine: it must be quick and must not block.
	StreamRead(n int)
}

// progressReader reports each read's size to fn.
type progressReader struct {
	r  io.Reader
	fn func(int)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(n)
	}
	return n, err
}

// FetchDAGs is FetchDAG for a caller that holds the libp2p host and a
// block store rather than a Host (a synced folder, which is handed only
// those), and for several roots in one request: one stream from p brings
// every block under roots that bs lacks, verified, to sink, in stream
// order (depth first, a parent before its children, each block once even
// when several roots share it). Roots whose blocks bs has cost nothing.
// The sink decides where blocks go (a folder writes file leaves straight
// into the files being made). Errors are FetchDAG's: ErrDAGRefused,
// ErrDAGIncomplete (also when more than 64 Ki subtrees were missing:
// call again for the rest), ErrDAGCorrupt. Blocks that arrived before the
// stream was cut or ctx ended still reach sink. A sink that is a
// ProgressSink hears of every read. It blocks until done or ctx ends.
func FetchDAGs(ctx context.Context, lh host.Host, bs blockstore.Blockstore, p peer.ID, roots []cid.Cid, sink BlockSink) (DAGStats, error) {
	st, err := fetchDAGs(ctx, lh, bs, p, roots, sink)
	if err != nil {
		return st, fmt.Errorf("p2p: fetch dags (%d roots) from %s: %w", len(roots), p, err)
	}
	return st, nil
}

func fetchDAGs(ctx context.Context, lh host.Host, bs blockstore.Blockstore, p peer.ID, roots []cid.Cid, sink BlockSink) (DAGStats, error) {
	var wants []cid.Cid
	seen := map[string]struct{}{}
	truncated := false
	for _, root := range roots {
		if len(wants) == maxDAGWants {
			truncated = true
			break
		}
		ws, tr, err := localMissing(ctx, bs, root, maxDAGWants-len(wants))
		if err != nil {
			return DAGStats{}, err
		}
		truncated = truncated || tr
		for _, w := range ws {
			if _, ok := seen[w.KeyString()]; ok {
				continue
			}
			seen[w.KeyString()] = struct{}{}
			wants = append(wants, w)
		}
	}
	if len(wants) == 0 {
		return DAGStats{}, nil
	}
	return requestDAG(ctx, lh, p, wants, truncated, sink)
}
