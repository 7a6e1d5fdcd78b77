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
	"golang.org/x/sys/unix"
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

// The free-space reserve. Pebble cannot fail a write cleanly when the
// disk is full: a write to its WAL that fails is fatal to it (DB.Apply
// calls Logger.Fatalf on a commit error, and rotateWAL panics when it
// cannot close the old WAL or create the new one; pebble v2.1.7 db.go),
// and a memtable whose flush cannot be written stays queued, so that once
// MemTableStopWritesThreshold of them wait every write blocks, without an
// error and regardless of its context (TestDiskFullSmallBlocks reproduces
// that). The store therefore refuses a write with ErrDiskFull while less
// than spaceReserve is free on its filesystem, and takes writes again as
// soon as more is free: the reserve keeps room for what pebble writes
// later for data it already holds.
//
// spaceReserve is the next WAL file's preallocation (1.1 × the memtable),
// the flush of every memtable that may wait (each becomes a table of up
// to its size), and a margin for pebble's manifest, a flatfs directory or
// two, and other writers on the same filesystem between two looks.
const spaceReserve = pebbleMemTable*11/10 + pebbleStopWrites*pebbleMemTable + spaceMargin

const spaceMargin = 8 << 20

// Small writes (a pin, a reference, the empty blocks a node stores
// before every get: at most smallWrite bytes claimed by one Put or batch)
// go on below the reserve, down to smallWriteFloor, so that a full disk
// does not stop what adds next to nothing; anything that carries data is
// refused at the reserve. A WAL record of a few hundred bytes always fits
// above that floor, and small writes cannot fill memtables unseen: once
// they outgrow the WAL's preallocation the WAL's growth shows in statfs.
const (
	smallWrite      = 1 << 10
	smallWriteFloor = 2 << 20
)

// deleteReserve is the free space a delete needs: a pebble tombstone is a
// small WAL record, and deletes are how space comes back (GC), so they go
// on down to this.
const deleteReserve = 1 << 20

// How often the guard asks the filesystem (statfs, about a microsecond):
// at least every spaceCheckEvery, and before the writes it admitted since
// the last look add up to spaceCheckBytes; always before refusing.
const (
	spaceCheckEvery = 100 * time.Millisecond
	spaceCheckBytes = 4 << 20
)

// spaceGuard admits writes while the filesystem of dir keeps reserve
// free. Safe for concurrent use.
type spaceGuard struct {
	dir     string
	reserve int64
	statfs  func(dir string) (int64, error) // free bytes for an unprivileged writer
	onFull  func(error)                     // a write was refused

	mu      sync.Mutex
	free    int64     // at the last look, less what was admitted since
	at      time.Time // of the last look
	claimed int64     // admitted since the last look
}

func newSpaceGuard(dir string, reserve int64, onFull func(error)) *spaceGuard {
	return &spaceGuard{dir: dir, reserve: reserve, statfs: statfsFree, onFull: onFull}
}

// floor is the free space a write of n bytes must leave.
func (g *spaceGuard) floor(n int64) int64 {
	if n <= smallWrite {
		return min(smallWriteFloor, g.reserve)
	}
	return g.reserve
}

func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// errReserve is why a write was refused: it unwraps to ENOSPC, so that
// whatever treats a full disk (DiskFull, noteWrite) treats it alike.
type errReserve struct{ free, reserve int64 }

func (e *errReserve) Error() string {
	return fmt.Sprintf("only %.1f MiB free, and the store keeps %.1f MiB free so that its database is never cut off in the middle of a write; free space on that disk (or move the home to a larger one): writes resume by themselves",
		float64(max(e.free, 0))/(1<<20), float64(e.reserve)/(1<<20))
}

func (e *errReserve) Unwrap() error { return syscall.ENOSPC }

// admit claims n bytes for a write, refusing with a disk-full error when
// that would leave less than floor free. A failed statfs admits the write
// (the write itself then reports what is wrong).
func (g *spaceGuard) admit(n, floor int64) error {
	g.mu.Lock()
	now := time.Now()
	if now.Sub(g.at) >= spaceCheckEvery || g.claimed+n >= spaceCheckBytes || g.free-n < floor {
		free, err := g.statfs(g.dir)
		if err != nil {
			g.mu.Unlock()
			return nil
		}
		g.free, g.at, g.claimed = free, now, 0
	}
	if g.free-n < floor {
		free := g.free
		g.mu.Unlock()
		err := &diskFullError{dir: g.dir, err: &errReserve{free: free, reserve: floor}}
		if g.onFull != nil {
			g.onFull(err)
		}
		return err
	}
	g.free -= n
	g.claimed += n
	g.mu.Unlock()
	return nil
}

// guarded is a datastore whose writes pass g first: a Put claims its
// size times weight (pebble writes a value twice: WAL, then a table),
// a Delete needs deleteReserve. A batch claims at Commit what its Puts
// add up to, so that a refused batch has written nothing (flatfs'
// batches, which write at Put, are guarded with putFirst).
type guarded struct {
	ds.Batching
	g        *spaceGuard
	weight   int64
	putFirst bool
	// blocks: values never change under their key, so a refused write
	// of keys already stored can be skipped (see present). Not so for
	// pins and references.
	blocks bool
}

func (d *guarded) Put(ctx context.Context, k ds.Key, v []byte) error {
	n := d.weight * int64(len(k.String())+len(v))
	if err := d.g.admit(n, d.g.floor(n)); err != nil {
		if d.present(ctx, []ds.Key{k}) {
			return nil
		}
		return err
	}
	return d.Batching.Put(ctx, k, v)
}

// present reports whether every key is stored already. A refused write
// of values the store holds is skipped rather than failed: it would add
// nothing (block values never change under their key), and callers that
// store a block they may have (the node's empty blocks before every get)
// keep working on a full disk.
func (d *guarded) present(ctx context.Context, keys []ds.Key) bool {
	if !d.blocks {
		return false
	}
	for _, k := range keys {
		if ok, err := d.Batching.Has(ctx, k); err != nil || !ok {
			return false
		}
	}
	return true
}

func (d *guarded) Delete(ctx context.Context, k ds.Key) error {
	if err := d.g.admit(0, deleteReserve); err != nil {
		return err
	}
	return d.Batching.Delete(ctx, k)
}

func (d *guarded) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &guardedBatch{Batch: b, d: d}, nil
}

type guardedBatch struct {
	ds.Batch
	d       *guarded
	bytes   int64
	keys    []ds.Key // put, for present
	deletes bool
}

func (b *guardedBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	n := b.d.weight * int64(len(k.String())+len(v))
	if b.d.putFirst {
		if err := b.d.g.admit(n, b.d.g.floor(n)); err != nil {
			if b.d.present(ctx, []ds.Key{k}) {
				return nil
			}
			return err
		}
	} else {
		b.bytes += n
		b.keys = append(b.keys, k)
	}
	return b.Batch.Put(ctx, k, v)
}

func (b *guardedBatch) Delete(ctx context.Context, k ds.Key) error {
	b.deletes = true
	return b.Batch.Delete(ctx, k)
}

func (b *guardedBatch) Commit(ctx context.Context) error {
	switch {
	case b.bytes > 0:
		if err := b.d.g.admit(b.bytes, b.d.g.floor(b.bytes)); err != nil {
			if !b.deletes && b.d.present(ctx, b.keys) {
				return nil // nothing to add; the batch is dropped
			}
			return err
		}
	case b.deletes:
		if err := b.d.g.admit(0, deleteReserve); err != nil {
			return err
		}
	}
	return b.Batch.Commit(ctx)
}

// Discard passes on to flatfs' batch (see cleaningBatch).
func (b *guardedBatch) Discard(ctx context.Context) error {
	if d, ok := b.Batch.(discarder); ok {
		return d.Discard(ctx)
	}
	return nil
}
