package blobstore

import (
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
)

// With Config.HashOnRead every Get re-hashes the block: on a CPU without
// SHA instructions that is ~4 CPU-seconds per GiB, on the path of every
// export and every block served. A block this process wrote moments ago
// was hashed on its way in (Import computed its CID from the data; a
// fetch verified it on receipt) and is read back from the page cache, not
// the disk whose rot HashOnRead is there to catch. So Get skips the hash
// for blocks written by a verifying path (import, BlockWriter, blocks
// fetched through NewDAG) within trustFor, at most trustMax of them.
// Anything older, anything after a restart, and anything written with the
// plain Put/PutMany (whose CIDs the caller may not have checked) is
// re-hashed as before; Verify always re-hashes everything.
const (
	trustFor = 10 * time.Minute
	// trustMax bounds the memory: 64 Ki keys (~6 MiB), 64 GiB of 1 MiB
	// leaves or 256 MiB of 4 KiB blocks.
	trustMax = 1 << 16
)

// trustSet is the recently written, verified block keys, oldest first,
// each with a value V (what else the trust depends on: refs.go keeps the
// place and the file's state there).
type trustSet[V any] struct {
	mu   sync.Mutex
	at   map[string]trustEntry[V]
	ring []string // FIFO of keys, at most trustMax
	head int
	now  func() time.Time
}

type trustEntry[V any] struct {
	at time.Time
	v  V
}

func newTrustSet[V any]() *trustSet[V] {
	return &trustSet[V]{at: make(map[string]trustEntry[V]), now: time.Now}
}

// put records key as verified now, with v.
func (t *trustSet[V]) put(key string, v V) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.putLocked(key, v, now)
}

func (t *trustSet[V]) putLocked(key string, v V, now time.Time) {
	if _, ok := t.at[key]; !ok {
		if len(t.ring) < trustMax {
			t.ring = append(t.ring, key)
		} else {
			delete(t.at, t.ring[t.head])
			t.ring[t.head] = key
			t.head = (t.head + 1) % trustMax
		}
	}
	t.at[key] = trustEntry[V]{at: now, v: v}
}

// add records bs as written and verified now.
func (t *trustSet[V]) add(bs []blocks.Block) {
	now := t.now()
	var zero V
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bs {
		t.putLocked(blockKey(b.Cid()).String(), zero, now)
	}
}

// remove forgets bs (written by a path that does not verify).
func (t *trustSet[V]) remove(bs []blocks.Block) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bs {
		delete(t.at, blockKey(b.Cid()).String())
	}
}

// del forgets key.
func (t *trustSet[V]) del(key string) {
	t.mu.Lock()
	delete(t.at, key)
	t.mu.Unlock()
}

// get returns the value of key if it was verified within trustFor.
func (t *trustSet[V]) get(key string) (V, bool) {
	t.mu.Lock()
	e, ok := t.at[key]
	t.mu.Unlock()
	if !ok || t.now().Sub(e.at) >= trustFor {
		var zero V
		return zero, false
	}
	return e.v, true
}

// trusted reports whether key was written and verified within trustFor.
func (t *trustSet[V]) trusted(key string) bool {
	_, ok := t.get(key)
	return ok
}
