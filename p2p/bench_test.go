package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	mrand "math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

var (
	benchMiB   = flag.Int("p2p.mib", 256, "MiB of 1 MiB raw blocks BenchmarkFetch moves")
	benchFiles = flag.Int("p2p.files", 10000, "4 KiB files in BenchmarkFetchTree's UnixFS directory")
)

// genStore is a read-only blockstore of n synthetic blocks of size bytes,
// made on demand from one random buffer with the block's index written
// over its head. It lets a benchmark serve a GiB without holding a GiB, and
// costs one memory copy per block served, about what a page-cached read
// from disk costs.
type genStore struct {
	base []byte
	idx  map[cid.Cid]uint64
	keys []cid.Cid
}

var errReadOnly = errors.New("genStore is read-only")

func newGenStore(t testing.TB, n, size int) *genStore {
	t.Helper()
	g := &genStore{base: make([]byte, size), idx: make(map[cid.Cid]uint64, n)}
	mrand.NewChaCha8([32]byte{7}).Read(g.base)
	for i := range uint64(n) {
		c, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum(g.data(i))
		if err != nil {
			t.Fatal(err)
		}
		g.idx[c] = i
		g.keys = append(g.keys, c)
	}
	return g
}

func (g *genStore) data(i uint64) []byte {
	d := make([]byte, len(g.base))
	copy(d, g.base)
	binary.BigEndian.PutUint64(d, i)
	return d
}

func (g *genStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	i, ok := g.idx[c]
	if !ok {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return blocks.NewBlockWithCid(g.data(i), c)
}

func (g *genStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, ok := g.idx[c]
	return ok, nil
}

func (g *genStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	if _, ok := g.idx[c]; !ok {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return len(g.base), nil
}

func (g *genStore) DeleteBlock(context.Context, cid.Cid) error    { return errReadOnly }
func (g *genStore) Put(context.Context, blocks.Block) error       { return errReadOnly }
func (g *genStore) PutMany(context.Context, []blocks.Block) error { return errReadOnly }

func (g *genStore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid)
	go func() {
		defer close(ch)
		for _, c := range g.keys {
			select {
			case ch <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

var _ blockstore.Blockstore = (*genStore)(nil)

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFetch moves -p2p.mib MiB of 1 MiB raw blocks from one host to
// another over loopback, with one GetBlocks call on a bitswap session, as
// pcnode fetches a file's leaves. "exchange" measures bitswap alone;
// "blockservice" also stores every block into an in-memory blockstore.
//
//	go test -run - -bench Fetch -benchtime 1x ./p2p -p2p.mib 1024
func BenchmarkFetch(b *testing.B) {
	g := newGenStore(b, *benchMiB, 1<<20)
	for _, proto := range []string{"tcp", "quic-v1"} {
		for _, via := range []string{"exchange", "blockservice", "exchange-boxo-defaults"} {
			b.Run(proto+"/"+via, func(b *testing.B) {
				b.SetBytes(int64(len(g.keys)) << 20)
				for b.Loop() {
					b.StopTimer()
					var opts []bitswap.Option
					if via != "exchange-boxo-defaults" {
						opts = bitswapOptions()
					}
					_, dst := connectedPairWith(b, g, newBlockstore(), proto, opts)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
					cpu0 := cpuTime(b)
					b.StartTimer()

					var ch <-chan blocks.Block
					var err error
					if via != "blockservice" {
						ch, err = dst.Exchange().(exchange.SessionExchange).NewSession(ctx).GetBlocks(ctx, g.keys)
					} else {
						ch = blockservice.NewSession(ctx, dst.BlockService()).GetBlocks(ctx, g.keys)
					}
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for range ch {
						n++
					}
					if n != len(g.keys) {
						b.Fatalf("fetched %d of %d blocks", n, len(g.keys))
					}
					b.StopTimer()
					// The machine may be shared: CPU time per MiB (both
					// ends, one process) says what the code costs, whatever
					// the load.
					b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(len(g.keys)), "cpu-ms/MiB")
					b.StartTimer()
					cancel()
				}
			})
		}
	}
}

// BenchmarkFetchTree fetches a UnixFS directory of -p2p.files 4 KiB files
// from one host to another with merkledag.FetchGraph, storing every block.
func BenchmarkFetchTree(b *testing.B) {
	ctx := context.Background()
	src := newBlockstore()
	for b.Loop() {
		b.StopTimer()
		a, dst := connectedPair(b, src, newBlockstore(), "tcp")
		root := buildTree(b, ctx, merkledag.NewDAGService(a.BlockService()), *benchFiles, 4<<10)
		cpu0 := cpuTime(b)
		b.StartTimer()
		start := time.Now()
		n := fetchTree(b, ctx, merkledag.NewDAGService(dst.BlockService()), root)
		b.ReportMetric(float64(n), "blocks")
		b.ReportMetric(time.Since(start).Seconds(), "s/tree")
		b.ReportMetric((cpuTime(b) - cpu0).Seconds(), "cpu-s/tree")
	}
}
