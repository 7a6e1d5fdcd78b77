package blobstore

import (
	"context"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
)

// engineBudget is what the block store's pebble may keep in memtables once
// writes stop: the idle home server's RSS target (docs/SERVER.md) counts
// on it. With 64 MiB memtables it was 128 MiB.
const engineBudget = 16 << 20

func TestEngineMemoryBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := s.EngineMemory(); m.MemTables <= 0 {
		t.Fatalf("EngineMemory of an open store = %+v, want memtables > 0", m)
	}
	// 48 MiB of small blocks (all in pebble) in small batches, as a
	// transfer of small files writes them: memtables fill and flush.
	const n, size = 12_288, 4096
	batch := make([]blocks.Block, 0, 64)
	for i := range n {
		batch = append(batch, blocks.NewBlock(randBytes(uint64(i)+7, size)))
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.PutMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// Flushes run in the background: wait for the queue to drain.
	deadline := time.Now().Add(30 * time.Second)
	var m EngineMemory
	for {
		if m = s.EngineMemory(); m.MemTables <= engineBudget {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 48 MiB of writes pebble holds %d MiB of memtables, want at most %d MiB", m.MemTables>>20, engineBudget>>20)
		}
		time.Sleep(20 * time.Millisecond) // polling pebble's background flushes
	}
	if m.BlockCache > pebbleCache {
		t.Errorf("block cache holds %d bytes, more than its %d", m.BlockCache, pebbleCache)
	}
	t.Logf("after 48 MiB of small blocks: %+v", m)

	mem, err := Open(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if m := mem.EngineMemory(); m != (EngineMemory{}) {
		t.Errorf("EngineMemory of an in-memory store = %+v, want zero", m)
	}
	s.Close()
	if m := s.EngineMemory(); m != (EngineMemory{}) {
		t.Errorf("EngineMemory of a closed store = %+v, want zero", m)
	}
}
