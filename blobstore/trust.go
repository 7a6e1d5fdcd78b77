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

// trustSet is the recently written, verified block keys, oldest first.
type trustSet struct {
	mu   sync.Mutex
	at   map[string]time.Time
	ring []string // FIFO of keys, at most trustMax
	head int
	now  func() time.Time
}

func newTrustSet() *trustSet {
	return &trustSet{at: make(map[string]time.Time), now: time.Now}
}

// add records bs as written and verified now.
func (t *trustSet) add(bs []blocks.Block) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bs {
		k := blockKey(b.Cid()).String()
		if _, ok := t.at[k]; !ok {
			if len(t.ring) < trustMax {
				t.ring = append(t.ring, k)
			} else {
				delete(t.at, t.ring[t.head])
				t.ring[t.head] = k
				t.head = (t.head + 1) % trustMax
			}
		}
		t.at[k] = now
	}
}

// remove forgets bs (written by a path that does not verify).
func (t *trustSet) remove(bs []blocks.Block) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bs {
		delete(t.at, blockKey(b.Cid()).String())
	}
}

// trusted reports whether key was written and verified within trustFor.
func (t *trustSet) trusted(key string) bool {
	t.mu.Lock()
	at, ok := t.at[key]
	t.mu.Unlock()
	return ok && t.now().Sub(at) < trustFor
}
