package blobstore

import (
	"context"
	"fmt"
	"sync"

	blocks "github.com/ipfs/go-block-format"
)

// BlockWriter stores a stream of blocks (a transfer) the way Import stores
// its own: in large batches committed by a background goroutine without a
// sync each, and made durable all at once by Commit. Blocks are stored as
// given: the caller has verified them against their CIDs. A block put is
// readable once its batch is committed, and durable only after Commit.
// Safe for concurrent use.
type BlockWriter struct {
	s    *Store
	w    *writer
	once sync.Once
	err  error
}

// NewBlockWriter starts a BlockWriter; the caller must end it with Commit
// or Abort. ctx bounds every write it makes.
func (s *Store) NewBlockWriter(ctx context.Context) (*BlockWriter, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	// Large blocks go to disk with direct I/O where the store can
	// (tiered.go: bigFiles), not through the page cache.
	return &BlockWriter{s: s, w: s.newWriter(withDirectWrites(ctx))}, nil
}

// PutMany queues bs for writing. It blocks only while earlier batches are
// still being written; a write error is returned by a later call.
func (b *BlockWriter) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := b.w.addBlocks(ctx, bs); err != nil {
		return fmt.Errorf("blobstore: put many (%d blocks): %w", len(bs), err)
	}
	return nil
}

// Put queues one block; see PutMany.
func (b *BlockWriter) Put(ctx context.Context, blk blocks.Block) error {
	return b.PutMany(ctx, []blocks.Block{blk})
}

// Commit writes what is queued and syncs once: on nil every block put is
// durable. Commit and Abort after the first call return the first result.
func (b *BlockWriter) Commit() error {
	b.once.Do(func() {
		defer b.s.ops.Done()
		if err := b.w.finish(); err != nil {
			b.err = fmt.Errorf("blobstore: commit %d blocks: %w", b.w.count.Load(), err)
		}
	})
	return b.err
}

// Abort stops writing. Blocks already committed stay (valid, unpinned,
// possibly not durable); the rest are dropped.
func (b *BlockWriter) Abort() {
	b.once.Do(func() {
		defer b.s.ops.Done()
		b.w.abort()
		b.err = fmt.Errorf("blobstore: block writer: %w", context.Canceled)
	})
}

// Blocks is the number of blocks put so far.
func (b *BlockWriter) Blocks() int { return int(b.w.count.Load()) }
