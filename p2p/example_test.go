package p2p_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/pcnode/pcnode/p2p"
)

func newLocalHost(ctx context.Context, bs blockstore.Blockstore) *p2p.Host {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	h, err := p2p.New(p2p.Config{Key: key, Blockstore: bs, Profile: p2p.ProfileLocal})
	if err != nil {
		log.Fatal(err)
	}
	if err := h.Start(ctx); err != nil {
		log.Fatal(err)
	}
	return h
}

// Two hosts on loopback: b connects to a and fetches a block a holds.
func Example() {
	ctx := context.Background()
	storeA := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	storeB := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	blk := blocks.NewBlock([]byte("hello from a"))
	if err := storeA.Put(ctx, blk); err != nil {
		log.Fatal(err)
	}

	a := newLocalHost(ctx, storeA)
	defer a.Close()
	b := newLocalHost(ctx, storeB)
	defer b.Close()

	if _, err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		log.Fatal(err)
	}
	got, err := b.BlockService().GetBlock(ctx, blk.Cid())
	if err != nil {
		log.Fatal(err)
	}
	stored, _ := storeB.Has(ctx, blk.Cid())
	fmt.Printf("%s (stored in b: %v)\n", got.RawData(), stored)
	// Output: hello from a (stored in b: true)
}
