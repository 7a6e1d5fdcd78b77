package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// cidV1 is how pcnode builds CIDs: CIDv1, SHA2-256.
var cidV1 = cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.SHA2_256}

func rawBlock(t testing.TB, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBlocks(t testing.TB, n, size int) []blocks.Block {
	t.Helper()
	out := make([]blocks.Block, n)
	for i := range out {
		data := make([]byte, size)
		rand.Read(data)
		out[i] = rawBlock(t, data)
	}
	return out
}

// connectedPair starts two local hosts over the given blockstores, with b
// connected to a over proto.
func connectedPair(t testing.TB, bsA, bsB blockstore.Blockstore, proto string) (a, b *Host) {
	t.Helper()
	return connectedPairWith(t, bsA, bsB, proto, bitswapOptions())
}

// connectedPairWith is connectedPair with the given bitswap options.
func connectedPairWith(t testing.TB, bsA, bsB blockstore.Blockstore, proto string, opts []bitswap.Option) (a, b *Host) {
	t.Helper()
	ca, cb := localConfig(t), localConfig(t)
	ca.Blockstore, cb.Blockstore = bsA, bsB
	for _, h := range []**Host{&a, &b} {
		c := ca
		if h == &b {
			c = cb
		}
		nh, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		nh.bitswapOpts = opts
		*h = startNew(t, nh)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Connect(ctx, addrWith(t, a, proto)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestExchangeFetchesBlocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA, bsB := newBlockstore(), newBlockstore()
	blks := randomBlocks(t, 16, 64<<10)
	if err := bsA.PutMany(ctx, blks); err != nil {
		t.Fatal(err)
	}
	_, b := connectedPair(t, bsA, bsB, "tcp")

	got, err := b.Exchange().GetBlock(ctx, blks[0].Cid())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.RawData(), blks[0].RawData()) {
		t.Fatal("GetBlock returned other data")
	}

	var keys []cid.Cid
	want := map[cid.Cid][]byte{}
	for _, blk := range blks[1:] {
		keys = append(keys, blk.Cid())
		want[blk.Cid()] = blk.RawData()
	}
	ch, err := b.Exchange().GetBlocks(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for blk := range ch {
		w, ok := want[blk.Cid()]
		if !ok || !bytes.Equal(w, blk.RawData()) {
			t.Fatalf("GetBlocks returned unasked or wrong block %s", blk.Cid())
		}
		delete(want, blk.Cid())
	}
	if len(want) != 0 {
		t.Fatalf("GetBlocks missed %d blocks", len(want))
	}
	// The bare exchange does not store what it fetched.
	if has, _ := bsB.Has(ctx, blks[0].Cid()); has {
		t.Error("Exchange stored a block; only BlockService should")
	}
	if tr := b.Traffic(); tr.BytesIn < int64(16*64<<10) {
		t.Errorf("Traffic = %+v, want at least the blocks' size in", tr)
	}
}

// TestBlockServiceStoresAndServes fetches through b's block service, which
// stores into b's blockstore, and then has a third host that knows only b
// fetch the same block from b.
func TestBlockServiceStoresAndServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA, bsB := newBlockstore(), newBlockstore()
	blk := randomBlocks(t, 1, 1000)[0]
	if err := bsA.Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	_, b := connectedPair(t, bsA, bsB, "quic-v1")

	if _, err := b.BlockService().GetBlock(ctx, blk.Cid()); err != nil {
		t.Fatal(err)
	}
	if has, err := bsB.Has(ctx, blk.Cid()); err != nil || !has {
		t.Fatalf("b's blockstore has the block: %v, %v", has, err)
	}

	c := startHost(t, localConfig(t))
	if _, err := c.Connect(ctx, addrWith(t, b, "tcp")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Exchange().GetBlock(ctx, blk.Cid())
	if err != nil {
		t.Fatalf("c fetching from b: %v", err)
	}
	if !bytes.Equal(got.RawData(), blk.RawData()) {
		t.Fatal("c got other data")
	}
}

func TestExchangeMissingBlockHonoursContext(t *testing.T) {
	_, b := connectedPair(t, newBlockstore(), newBlockstore(), "tcp")
	missing := randomBlocks(t, 1, 10)[0].Cid()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Exchange().GetBlock(ctx, missing)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetBlock of a block nobody has = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("GetBlock returned after %v", d)
	}
}

// importFile adds data as a UnixFS file (CIDv1, raw leaves, 256 KiB
// chunks, as pcnode imports) to dag.
func importFile(t testing.TB, dag ipld.DAGService, data []byte) ipld.Node {
	t.Helper()
	return importFileChunk(t, dag, data, 256<<10)
}

// importFileChunk is importFile with chunks of the given size.
func importFileChunk(t testing.TB, dag ipld.DAGService, data []byte, chunk int64) ipld.Node {
	t.Helper()
	db, err := (&helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cidV1,
		Dagserv:    dag,
	}).New(chunker.NewSizeSplitter(bytes.NewReader(data), chunk))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

func TestMerkleDAGFetchesUnixFSFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := connectedPair(t, newBlockstore(), newBlockstore(), "tcp")

	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	root := importFile(t, merkledag.NewDAGService(a.BlockService()), data)

	dagB := merkledag.NewDAGService(b.BlockService())
	nd, err := dagB.Get(ctx, root.Cid())
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(ctx, nd, merkledag.NewSession(ctx, dagB))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d imported", len(got), len(data))
	}
}

// buildTree adds a UnixFS directory of n files of size bytes each (each
// file one raw block) to dag and returns the root.
func buildTree(t testing.TB, ctx context.Context, dag ipld.DAGService, n, size int) cid.Cid {
	t.Helper()
	dir, err := uio.NewDirectory(dag, uio.WithCidBuilder(cidV1))
	if err != nil {
		t.Fatal(err)
	}
	rnd := mrand.NewChaCha8([32]byte{1})
	for i := range n {
		data := make([]byte, size)
		rnd.Read(data)
		leaf := merkledag.NewRawNode(data)
		if err := dag.Add(ctx, leaf); err != nil {
			t.Fatal(err)
		}
		if err := dir.AddChild(ctx, fmt.Sprintf("file-%05d", i), leaf); err != nil {
			t.Fatal(err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := dag.Add(ctx, nd); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// fetchTree fetches the whole DAG under root into dag's blockstore and
// returns how many blocks it walked.
func fetchTree(t testing.TB, ctx context.Context, dag ipld.DAGService, root cid.Cid) int {
	t.Helper()
	p := &merkledag.ProgressTracker{}
	if err := merkledag.FetchGraph(p.DeriveContext(ctx), root, dag, merkledag.Concurrency(256)); err != nil {
		t.Fatal(err)
	}
	return p.Value()
}

func TestFetchUnixFSTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	bsB := newBlockstore()
	a, b := connectedPair(t, newBlockstore(), bsB, "tcp")
	const files = 500
	root := buildTree(t, ctx, merkledag.NewDAGService(a.BlockService()), files, 4<<10)

	start := time.Now()
	n := fetchTree(t, ctx, merkledag.NewDAGService(b.BlockService()), root)
	t.Logf("fetched %d blocks of a %d-file tree in %v", n, files, time.Since(start))
	if n < files+1 {
		t.Fatalf("walked %d blocks, want at least %d", n, files+1)
	}
	// Everything is now local: walking again with b disconnected works.
	keys, err := bsB.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for range keys {
		stored++
	}
	if stored != n {
		t.Errorf("b stored %d blocks, walked %d", stored, n)
	}
}
