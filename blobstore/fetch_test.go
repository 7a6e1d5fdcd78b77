package blobstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// fakeExchange serves blocks from a Store and records how they were asked
// for. It stands in for bitswap.
type fakeExchange struct {
	src *Store
	mu  sync.Mutex
	// calls records the number of CIDs of each GetBlock(s) call.
	calls []int
}

func (f *fakeExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	f.mu.Lock()
	f.calls = append(f.calls, 1)
	f.mu.Unlock()
	return f.src.Get(ctx, c)
}

func (f *fakeExchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	f.mu.Lock()
	f.calls = append(f.calls, len(cs))
	f.mu.Unlock()
	out := make(chan blocks.Block)
	go func() {
		defer close(out)
		for _, c := range cs {
			b, err := f.src.Get(ctx, c)
			if err != nil {
				continue // not found: the real exchange would keep looking
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (f *fakeExchange) NotifyNewBlocks(context.Context, ...blocks.Block) error { return nil }
func (f *fakeExchange) Close() error                                           { return nil }

// TestFetchManyAtOnce fetches a directory of many small files from a
// "remote" store and checks that blocks were asked for in large groups,
// that everything arrived, and that the result exports intact.
func TestFetchManyAtOnce(t *testing.T) {
	ctx := context.Background()
	n := 500
	src := filepath.Join(t.TempDir(), "src")
	tree := map[string]string{}
	for i := range n {
		tree[fmt.Sprintf("f%04d", i)] = fmt.Sprintf("file number %d", i)
	}
	writeTree(t, src, tree)
	remote := mustOpen(t, Config{})
	res, err := remote.Import(ctx, src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local := mustOpen(t, Config{Dir: t.TempDir()})
	ex := &fakeExchange{src: remote}
	d := NewDAG(local, ex)
	var done, total int64
	if err := Fetch(ctx, d, res.Root, func(dn, tt int64) { done, total = dn, tt }); err != nil {
		t.Fatal(err)
	}
	if done != total || done < int64(n) {
		t.Errorf("progress %d/%d, want >= %d blocks", done, total, n)
	}
	maxCall := 0
	for _, c := range ex.calls {
		maxCall = max(maxCall, c)
	}
	if len(ex.calls) > 10 || maxCall < n/2 {
		t.Errorf("%d exchange calls, largest %d CIDs: the walk is not fetching many at once", len(ex.calls), maxCall)
	}
	if err := local.Pin(ctx, res.Root, true); err != nil {
		t.Fatalf("pin after fetch (DAG must be complete): %v", err)
	}
	// Offline now: the export must not need the exchange.
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Export(ctx, NewDAG(local, nil), res.Root, dst, nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != n {
		t.Errorf("exported %d files, want %d", len(ents), n)
	}
	// A root nobody has is not found, promptly.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := Fetch(cctx, d, rawBlock("nobody has this").Cid(), nil); !ipld.IsNotFound(err) {
		t.Errorf("Fetch of an unknown root = %v, want not found", err)
	}
}
