package blobstore

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestHashOnReadQuarantines: with HashOnRead a rotten block is never
// returned: Get reports it missing (and mismatched), it leaves the block
// space for the quarantine, and a good copy put afterwards reads again.
func TestHashOnReadQuarantines(t *testing.T) {
	for _, backend := range []Backend{BackendTiered, BackendPebble, BackendFlatfs} {
		t.Run(string(backend), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, Config{Dir: t.TempDir(), Backend: backend, HashOnRead: true, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			good := blocks.NewBlock([]byte("the bytes that were stored"))
			other := blocks.NewBlock([]byte("a neighbour that stays intact"))
			if err := s.PutMany(ctx, []blocks.Block{good, other}); err != nil {
				t.Fatal(err)
			}
			rotten, err := blocks.NewBlockWithCid([]byte("the bytes that were rotted"), good.Cid())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, rotten); err != nil {
				t.Fatal(err)
			}

			_, err = s.Get(ctx, good.Cid())
			if !ipld.IsNotFound(err) || !errors.Is(err, blockstore.ErrHashMismatch) {
				t.Fatalf("Get of a rotten block: %v, want not found and hash mismatch", err)
			}
			if err := s.View(ctx, good.Cid(), func([]byte) error { return nil }); !ipld.IsNotFound(err) {
				t.Fatalf("View of a rotten block: %v", err)
			}
			if ok, err := s.Has(ctx, good.Cid()); err != nil || ok {
				t.Fatalf("Has after the read found rot: %v, %v; want false", ok, err)
			}
			q, err := s.Quarantined(ctx)
			if err != nil || len(q) != 1 {
				t.Fatalf("quarantine: %v, %v; want %s", q, err, good.Cid())
			}
			if q[0].Hash().String() != good.Cid().Hash().String() {
				t.Fatalf("quarantined %s, want %s", q[0], good.Cid())
			}
			if b, err := s.Get(ctx, other.Cid()); err != nil || string(b.RawData()) != string(other.RawData()) {
				t.Fatalf("neighbour: %v", err)
			}
			if err := s.Put(ctx, good); err != nil {
				t.Fatal(err)
			}
			b, err := s.Get(ctx, good.Cid())
			if err != nil || string(b.RawData()) != string(good.RawData()) {
				t.Fatalf("Get after a good copy was put: %v", err)
			}
			v, err := s.Verify(ctx, nil)
			if err != nil || len(v.Corrupt) != 0 || v.Checked != 2 {
				t.Fatalf("verify afterwards: %+v, %v", v, err)
			}
		})
	}
}
