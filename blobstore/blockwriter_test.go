package blobstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestBlockWriter(t *testing.T) {
	ctx := context.Background()
	mk := func(n, size int) []blocks.Block {
		var bs []blocks.Block
		for i := range n {
			d := randBytes(uint64(1000+i), size)
			c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(d)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := blocks.NewBlockWithCid(d, c)
			bs = append(bs, b)
		}
		return bs
	}
	for _, tc := range []struct {
		name   string
		blocks []blocks.Block
	}{
		{"small blocks", mk(300, 4<<10)},
		{"large blocks over several batches", mk(12, 512<<10)},
		// Aligned: written with O_DIRECT (bigFiles); unaligned: buffered.
		{"1 MiB leaves", mk(9, 1<<20)},
		{"unaligned large blocks", mk(5, 200<<10+3)},
		{"mixed", append(append(mk(3, 1<<20), mk(40, 4<<10)...), mk(2, 300<<10+1)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, Config{Dir: dir})
			s.writeBatch = 1 << 20 // several background commits
			bw, err := s.NewBlockWriter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(tc.blocks); i += 7 {
				if err := bw.PutMany(ctx, tc.blocks[i:min(i+7, len(tc.blocks))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := bw.Commit(); err != nil {
				t.Fatal(err)
			}
			if bw.Blocks() != len(tc.blocks) {
				t.Errorf("Blocks() = %d, want %d", bw.Blocks(), len(tc.blocks))
			}
			if es, err := os.ReadDir(filepath.Join(dir, "flatfs", ".temp")); err != nil || len(es) > 0 {
				t.Errorf("flatfs/.temp after Commit: %v %v", es, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, Config{Dir: dir, HashOnRead: true})
			defer s.Close()
			for _, b := range tc.blocks {
				got, err := s.Get(ctx, b.Cid())
				if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
					t.Fatalf("block %s after reopen: %v", b.Cid(), err)
				}
			}
		})
	}
}

func TestBlockWriterAbortAndClosedStore(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Config{})
	bw, err := s.NewBlockWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bw.Abort()
	if err := bw.Commit(); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit after Abort = %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewBlockWriter(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("NewBlockWriter on a closed store = %v, want ErrClosed", err)
	}
}

// TestBlockWriterDiskFull: a BlockWriter's large blocks (written by
// bigFiles, not through flatfs) pass the store's free-space guard too, so
// a fetch cannot eat the reserve pebble needs; they resume when space
// returns.
func TestBlockWriterDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, Config{Dir: dir})
	var free atomic.Int64
	free.Store(1 << 30)
	s.space.statfs = func(string) (int64, error) { return free.Load(), nil }
	leaf := func(seed uint64) blocks.Block {
		d := randBytes(seed, 1<<20)
		c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := blocks.NewBlockWithCid(d, c)
		return b
	}
	write := func(b blocks.Block) error {
		bw, err := s.NewBlockWriter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := bw.Put(ctx, b); err != nil {
			bw.Abort()
			return err
		}
		return bw.Commit()
	}
	if err := write(leaf(1)); err != nil {
		t.Fatalf("with space: %v", err)
	}
	// The guard looks again after spaceCheckEvery; a disk that filled
	// since the first write's look is seen at the next.
	setFree := func(n int64) {
		free.Store(n)
		s.space.mu.Lock()
		s.space.at = time.Time{}
		s.space.mu.Unlock()
	}
	setFree(spaceReserve + 512<<10)
	full := leaf(2)
	if err := write(full); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a 1 MiB leaf with %d bytes free = %v, want ErrDiskFull", free.Load(), err)
	}
	if ok, _ := s.Has(ctx, full.Cid()); ok {
		t.Error("the refused leaf is stored")
	}
	if es, err := os.ReadDir(filepath.Join(dir, "flatfs", ".temp")); err != nil || len(es) > 0 {
		t.Errorf("flatfs/.temp after a refused write: %v %v", es, err)
	}
	setFree(1 << 30)
	if err := write(full); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if got, err := s.Get(ctx, full.Cid()); err != nil || !bytes.Equal(got.RawData(), full.RawData()) {
		t.Fatalf("the leaf after space returned: %v", err)
	}
}
