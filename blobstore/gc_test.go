package blobstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// TestGCConcurrentPut runs GCs while blocks are being put: every block
// whose Put returned must still be there afterwards (none is pinned, so
// only the "written during GC" rule can save them).
func TestGCConcurrentPut(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			// Old garbage, so that the sweeps have work to do.
			var old []blocks.Block
			for i := range 300 {
				old = append(old, rawBlock(fmt.Sprintf("old %d", i)))
			}
			if err := s.PutMany(ctx, old); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			type put struct {
				b   blocks.Block
				gen int64 // GCs started before the Put began
			}
			var written []put
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Re-put old blocks too: a GC must not delete a block
					// whose Put returned while it ran.
					b := old[i%len(old)]
					if i%2 == 0 {
						b = rawBlock(fmt.Sprintf("new %d", i))
					}
					gen := s.gcGen.Load()
					if err := s.Put(ctx, b); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					written = append(written, put{b, gen})
					mu.Unlock()
				}
			})
			var gcs []int
			for range 3 {
				res, err := s.GC(ctx)
				if err != nil {
					t.Fatal(err)
				}
				gcs = append(gcs, res.Removed)
			}
			close(stop)
			wg.Wait()
			// A Put that began after the last GC had started must have
			// survived it (earlier ones may rightly be collected).
			last, checked := s.gcGen.Load(), 0
			for _, p := range written {
				if p.gen != last {
					continue
				}
				checked++
				if ok, err := s.Has(ctx, p.b.Cid()); err != nil || !ok {
					t.Fatalf("block %q put during GC is gone (gcs removed %v)", p.b.RawData(), gcs)
				}
			}
			t.Logf("%d puts during/after the last GC checked", checked)
			if gcs[0] == 0 {
				t.Error("first GC removed nothing; the test proves nothing")
			}
		})
	}
}
