package blobstore

import (
	"context"
	"os"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// BenchmarkBlockWriter stores PCNODE_BENCH_MB MiB of 1 MiB raw blocks
// through a BlockWriter in 8 MiB PutMany calls, as the DAG stream's
// receiver does, then commits: the store's side of a fetch, durable.
//
//	PCNODE_BENCH_MB=1024 go test -run '^$' -bench BlockWriter -benchtime 1x ./blobstore
func BenchmarkBlockWriter(b *testing.B) {
	mb := benchMB()
	bs := make([]blocks.Block, mb)
	for i := range bs {
		data := randBytes(uint64(i)+1000, 1<<20)
		h, _ := mh.Sum(data, mh.SHA2_256, -1)
		blk, err := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
		if err != nil {
			b.Fatal(err)
		}
		bs[i] = blk
	}
	var m meter
	var commit time.Duration
	for b.Loop() {
		b.StopTimer()
		st, err := Open(context.Background(), Config{Dir: b.TempDir(), NoSync: os.Getenv("NOSYNC") != ""})
		if err != nil {
			b.Fatal(err)
		}
		m.on()
		b.StartTimer()
		w, err := st.NewBlockWriter(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(bs); i += 8 {
			if err := w.PutMany(context.Background(), bs[i:min(i+8, len(bs))]); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		commit += time.Since(t0)
		b.StopTimer()
		m.off()
		st.Close()
		b.StartTimer()
	}
	b.SetBytes(int64(mb) << 20)
	m.report(b, float64(mb))
	b.ReportMetric(commit.Seconds()/float64(b.N), "commit-s")
}
