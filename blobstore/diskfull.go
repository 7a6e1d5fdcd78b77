package blobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	ds "github.com/ipfs/go-datastore"
)

// ErrDiskFull marks an operation that failed because the filesystem
// holding the store is full. Nothing already stored is damaged by it: a
// write either commits whole or not at all, and the same operation
// succeeds once space is freed, without reopening the store.
var ErrDiskFull = errors.New("disk full")

// diskFullError is ErrDiskFull with the directory to free space in.
type diskFullError struct {
	dir string
	err error
}

func (e *diskFullError) Error() string {
	return fmt.Sprintf("disk full: free space in %s: %v", e.dir, e.err)
}

func (e *diskFullError) Unwrap() []error { return []error{ErrDiskFull, e.err} }

// isNoSpace reports whether err is ENOSPC, also where a library flattened
// it into text.
func isNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device"))
}

// noteWrite records a failed write for DiskFull: libraries between a
// caller and the store (boxo's blockservice under bitswap) log a failed
// put and report only a missing block.
func (s *Store) noteWrite(err error) {
	if isNoSpace(err) {
		s.lastFull.Store(time.Now().UnixNano())
	}
}

// DiskFull returns err as a disk-full error ("disk full: free space in
// <dir>: ...", satisfying errors.Is(err, ErrDiskFull)) when it was caused
// by a full filesystem: err is ENOSPC, or a write into the store failed
// with ENOSPC at or after since (the operation's start). Otherwise, and
// for a nil err, it returns err unchanged.
func (s *Store) DiskFull(err error, since time.Time) error {
	if err == nil || errors.Is(err, ErrDiskFull) {
		return err
	}
	if isNoSpace(err) || s.lastFull.Load() >= since.UnixNano() {
		dir := s.cfg.Dir
		if dir == "" {
			dir = "memory"
		}
		return &diskFullError{dir: dir, err: err}
	}
	return err
}

// pebbleErrorEvery is how often a repeated pebble background error is
// logged. Pebble retries a failed flush at once and without end: on a full
// disk, a stream of identical errors until space returns.
const pebbleErrorEvery = time.Minute

// pebbleFullBackoff is how long a background error for want of space
// holds pebble before it retries. Pebble reports a failed flush with its
// mutex held and schedules the next attempt as soon as the report
// returns, so without a pause a full disk keeps a core busy creating and
// deleting sstables. Writers wait meanwhile (they could not get their
// data flushed anyway); reads do not take that mutex.
const pebbleFullBackoff = time.Second

// pebbleErrorFunc returns pebble's BackgroundError hook: a flush or
// compaction failed. Pebble keeps the data in its memtables and retries (a
// flush at once, a compaction later); writes stall, without an error, once
// MemTableStopWritesThreshold memtables wait, and go on when a flush
// succeeds: nothing needs reopening when space returns. On ENOSPC the hook
// records the failure for DiskFull, so an operation whose write then fails
// or stalls until its context ends reads as "disk full", and pauses for
// backoff (see pebbleFullBackoff). It logs at warn level, the same error
// at most once per pebbleErrorEvery, with the count of those not logged.
func (s *Store) pebbleErrorFunc(backoff time.Duration) func(error) {
	var (
		mu       sync.Mutex
		last     string
		lastTime time.Time
		dropped  int
	)
	return func(err error) {
		full := isNoSpace(err)
		s.noteWrite(err)
		msg := err.Error()
		mu.Lock()
		now := time.Now()
		if msg == last && now.Sub(lastTime) < pebbleErrorEvery {
			dropped++
			mu.Unlock()
		} else {
			n := dropped
			last, lastTime, dropped = msg, now, 0
			mu.Unlock()
			s.log.Warn("pebble: background error; retried", "err", err, "disk_full", full, "repeats_not_logged", n)
		}
		if full {
			time.Sleep(backoff)
		}
	}
}

// flatfsCleaning is a flatfs datastore whose batches remove their
// temporary files when they fail. A flatfs batch writes each value to a
// file under .temp/ at Put and renames them all at Commit; when one write
// fails (ENOSPC) flatfs returns the error but leaves the batch's other
// files behind until the datastore is opened again, so a disk that filled
// during a large write stayed full after the user freed space (12 MiB of a
// 64 MiB filesystem in TestReliabilityDiskFullAdd).
type flatfsCleaning struct{ ds.Batching }

func (f flatfsCleaning) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := f.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &cleaningBatch{Batch: b}, nil
}

// cleaningBatch discards its batch (flatfs: removes the temporary files)
// once a Put, Delete or Commit failed, and from then on returns that
// error: the caller gives up on a batch whose write failed. Not safe for
// concurrent use, like the batch it wraps.
type cleaningBatch struct {
	ds.Batch
	err error
}

// discarder is flatfs' batch: Discard removes its temporary directory.
type discarder interface {
	Discard(ctx context.Context) error
}

func (b *cleaningBatch) do(ctx context.Context, op func() error) error {
	if b.err != nil {
		return b.err
	}
	if err := op(); err != nil {
		b.err = err
		if d, ok := b.Batch.(discarder); ok {
			// Discard waits for the batch's writes in flight; a context
			// that ended must not leave the files behind either.
			_ = d.Discard(context.WithoutCancel(ctx))
		}
		return err
	}
	return nil
}

func (b *cleaningBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	return b.do(ctx, func() error { return b.Batch.Put(ctx, k, v) })
}

func (b *cleaningBatch) Delete(ctx context.Context, k ds.Key) error {
	return b.do(ctx, func() error { return b.Batch.Delete(ctx, k) })
}

func (b *cleaningBatch) Commit(ctx context.Context) error {
	return b.do(ctx, func() error { return b.Batch.Commit(ctx) })
}
