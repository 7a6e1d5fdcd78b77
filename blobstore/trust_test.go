package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
)

func TestTrustSet(t *testing.T) {
	now := time.Unix(1000, 0)
	ts := newTrustSet[struct{}]()
	ts.now = func() time.Time { return now }
	var bs []blocks.Block
	for i := range trustMax + 10 {
		bs = append(bs, blocks.NewBlock(fmt.Appendf(nil, "block %d", i)))
	}
	key := func(i int) string { return blockKey(bs[i].Cid()).String() }
	ts.add(bs[:1])
	if !ts.trusted(key(0)) || ts.trusted(key(1)) {
		t.Fatal("trusted: want block 0 only")
	}
	ts.remove(bs[:1])
	if ts.trusted(key(0)) {
		t.Fatal("removed block still trusted")
	}
	ts.add(bs)
	if ts.trusted(key(0)) || ts.trusted(key(9)) || !ts.trusted(key(10)) || !ts.trusted(key(trustMax+9)) {
		t.Error("the oldest blocks beyond trustMax are not the ones forgotten")
	}
	if len(ts.at) != trustMax || len(ts.ring) != trustMax {
		t.Errorf("%d keys, ring %d; want %d", len(ts.at), len(ts.ring), trustMax)
	}
	now = now.Add(trustFor)
	if ts.trusted(key(10)) {
		t.Error("a block written trustFor ago is still trusted")
	}
}

// TestHashOnReadTrustExpires: an imported block is not hashed again on
// read right after the import, but once trustFor has passed a block that
// rotted on disk is caught, quarantined and reported.
func TestHashOnReadTrustExpires(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Dir: t.TempDir(), HashOnRead: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	s.trust.now = func() time.Time { return now }
	data := bytes.Repeat([]byte("pcnode "), 100000)
	res, err := s.ImportReader(ctx, bytes.NewReader(data), ImportOptions{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !s.trust.trusted(blockKey(res.Root).String()) {
		t.Fatal("the imported root is not trusted")
	}
	if _, err := s.Get(ctx, res.Root); err != nil {
		t.Fatal(err)
	}
	// Rot the root's bytes behind the store's back.
	if err := s.blocks.Put(ctx, blockKey(res.Root), []byte("rotten")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(trustFor + time.Second)
	if _, err := s.Get(ctx, res.Root); !errors.Is(err, blockstore.ErrHashMismatch) {
		t.Fatalf("Get of a rotten block after trustFor: %v, want a hash mismatch", err)
	}
}
