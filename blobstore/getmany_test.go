package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
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
