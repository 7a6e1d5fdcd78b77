package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	chunker "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	h "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestGetMany: blocks come back in order, a missing one is nil, and with
// HashOnRead a rotten one (not written by a verifying path) is nil and
// quarantined while its neighbours, hashed in the same batch, are fine.
func TestGetMany(t *testing.T) {
	for _, hashOnRead := range []bool{false, true} {
		t.Run(fmt.Sprint("HashOnRead=", hashOnRead), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, Config{Dir: t.TempDir(), HashOnRead: hashOnRead, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var bs []blocks.Block
			var cs []cid.Cid
			for i := range 20 {
				b := blocks.NewBlock(bytes.Repeat([]byte{byte(i)}, 1000*i+1))
				bs = append(bs, b)
				cs = append(cs, b.Cid())
			}
			if err := s.PutMany(ctx, bs[:19]); err != nil { // the last is missing
				t.Fatal(err)
			}
			const rot = 7
			if err := s.blocks.Put(ctx, blockKey(cs[rot]), []byte("rotten")); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetMany(ctx, cs)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range got {
				switch {
				case i == 19 || (i == rot && hashOnRead):
					if b != nil {
						t.Errorf("block %d: got %d bytes, want nil", i, len(b.RawData()))
					}
				case i == rot:
					if b == nil || string(b.RawData()) != "rotten" {
						t.Errorf("block %d without HashOnRead: want the stored bytes", i)
					}
				case b == nil || !bytes.Equal(b.RawData(), bs[i].RawData()) || !b.Cid().Equals(cs[i]):
					t.Errorf("block %d: wrong or missing", i)
				}
			}
			q, err := s.Quarantined(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[hashOnRead]; len(q) != want {
				t.Errorf("quarantined %d blocks, want %d", len(q), want)
			}
		})
	}
}

// TestViewMany: ViewMany lends the same bytes GetMany returns, for blocks
// in pebble, in flatfs files read into its own buffers (1 MiB) and in
// files too large for them (read through flatfs), whether written by Put
// or by a BlockWriter (O_DIRECT); a missing block is nil; with HashOnRead
// a rotten file is nil and quarantined; fn's error ends the call.
func TestViewMany(t *testing.T) {
	for _, hashOnRead := range []bool{false, true} {
		t.Run(fmt.Sprint("HashOnRead=", hashOnRead), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, Config{Dir: t.TempDir(), HashOnRead: hashOnRead})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var bs []blocks.Block
			var cs []cid.Cid
			for i, size := range []int{1 << 20, 4 << 10, 200<<10 + 3, 1<<20 + 1, 1 << 20, 1 << 20, 700, 1 << 20} {
				d := randBytes(uint64(500+i), size)
				c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(d)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := blocks.NewBlockWithCid(d, c)
				bs = append(bs, b)
				cs = append(cs, c)
			}
			const missing, rot = 7, 5
			if err := s.PutMany(ctx, bs[:4]); err != nil {
				t.Fatal(err)
			}
			bw, err := s.NewBlockWriter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := bw.PutMany(ctx, bs[4:missing]); err != nil {
				t.Fatal(err)
			}
			if err := bw.Commit(); err != nil {
				t.Fatal(err)
			}
			// Rot on disk, behind the store's back (and out of its
			// trust window, which only covers verified writes).
			name := blockKey(cs[rot]).String()[1:]
			path := filepath.Join(s.cfg.Dir, "flatfs", s.tieredBlocks().files.shard(name), name+".data")
			if err := os.WriteFile(path, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			s.trust = newTrustSet[struct{}]()
			seen := 0
			err = s.ViewMany(ctx, cs, func(i int, data []byte) error {
				if i != seen {
					t.Errorf("fn called for %d, want %d", i, seen)
				}
				seen++
				switch {
				case i == missing || (i == rot && hashOnRead):
					if data != nil {
						t.Errorf("block %d: got %d bytes, want nil", i, len(data))
					}
				case i == rot:
					if len(data) != 1<<20 || data[0] != 1 {
						t.Errorf("block %d without HashOnRead: want the stored bytes", i)
					}
				case !bytes.Equal(data, bs[i].RawData()):
					t.Errorf("block %d: wrong bytes (%d, want %d)", i, len(data), len(bs[i].RawData()))
				}
				return nil
			})
			if err != nil || seen != len(cs) {
				t.Fatalf("ViewMany = %v after %d calls", err, seen)
			}
			q, err := s.Quarantined(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[hashOnRead]; len(q) != want {
				t.Errorf("quarantined %d blocks, want %d", len(q), want)
			}
			stop := fmt.Errorf("stop")
			calls := 0
			if err := s.ViewMany(ctx, cs, func(int, []byte) error { calls++; return stop }); err != stop || calls != 1 {
				t.Errorf("ViewMany with a failing fn = %v after %d calls", err, calls)
			}
		})
	}
}

// TestExportShapes: Export writes the same bytes whether the file's DAG
// takes the batched leaf path (raw leaves) or the DagReader (dag-pb
// leaves with data, as ipfs add makes without --raw-leaves).
func TestExportShapes(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Config{Dir: t.TempDir(), NoSync: true})
	d := NewDAG(s, nil)
	data := randBytes(7, 300*1024+11)
	for _, raw := range []bool{true, false} {
		db, err := (&h.DagBuilderParams{Dagserv: d, Maxlinks: h.DefaultLinksPerBlock, RawLeaves: raw, CidBuilder: v1}).
			New(chunker.NewSizeSplitter(bytes.NewReader(data), 1024))
		if err != nil {
			t.Fatal(err)
		}
		n, err := balanced.Layout(db)
		if err != nil {
			t.Fatal(err)
		}
		if _, fast := (&exporter{d: d}).leafList(ctx, n); fast != raw {
			t.Errorf("raw leaves %v: batched path %v", raw, fast)
		}
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := Export(ctx, d, n.Cid(), dst, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("raw leaves %v: exported file differs", raw)
		}
	}
}

// TestExportRottenLeaf: with HashOnRead, a leaf that rotted on disk is not
// written out: the batched read quarantines it and, with no exchange to
// fetch a good copy from, Export fails with not found.
func TestExportRottenLeaf(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Config{Dir: t.TempDir(), HashOnRead: true, NoSync: true})
	res, err := s.ImportReader(ctx, bytes.NewReader(randBytes(8, 100*1024)), ImportOptions{ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	root, err := s.Get(ctx, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	n, err := dag.DecodeProtobuf(root.RawData())
	if err != nil {
		t.Fatal(err)
	}
	leaf := n.Links()[5].Cid
	if err := s.blocks.Put(ctx, blockKey(leaf), []byte("rotten")); err != nil {
		t.Fatal(err)
	}
	s.trust = newTrustSet[struct{}]() // as after a restart
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Export(ctx, NewDAG(s, nil), res.Root, dst, nil); !ipld.IsNotFound(err) {
		t.Fatalf("Export with a rotten leaf: %v, want not found", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		t.Error("dst exists after a failed export")
	}
	if q, _ := s.Quarantined(ctx); len(q) != 1 {
		t.Errorf("quarantined %v, want the rotten leaf", q)
	}
}
