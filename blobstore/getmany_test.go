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
	s.trust = newTrustSet() // as after a restart
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
