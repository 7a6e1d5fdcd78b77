package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/datastore/dshelp"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	ipld "github.com/ipfs/go-ipld-format"
)

// Backend names the on-disk engine that holds block data.
type Backend string

// Backends. Pins and the quarantine always live in pebble; block data can
// be split by size between pebble and flatfs. docs/STORAGE.md has the
// measurements behind the default.
const (
	// BackendTiered (the default) keeps blocks under 128 KiB in pebble and
	// larger ones (file leaves) in one file each (go-ds-flatfs).
	BackendTiered Backend = "tiered"
	// BackendPebble keeps every block in the pebble database.
	BackendPebble Backend = "pebble"
	// BackendFlatfs keeps every block in a file of its own.
	BackendFlatfs Backend = "flatfs"
)

// Config configures a Store. The zero value is an in-memory store.
type Config struct {
	// Dir is the directory of the on-disk store; it is created if missing.
	// Default "": blocks are kept in memory and lost on Close.
	Dir string

	// NoSync skips fsync. Tests and benchmarks only. Default false: every
	// write is durable when the call that made it returns.
	NoSync bool

	// Backend selects where block data lives on disk. Default "" means
	// BackendTiered. Ignored when Dir is "". A store must be reopened with
	// the backend it was created with.
	Backend Backend

	// HashOnRead re-hashes every block read by Get (and View). A block
	// whose bytes no longer match its hash is quarantined, as Verify would,
	// and reported missing: the error satisfies both ipld.IsNotFound and
	// errors.Is(err, blockstore.ErrHashMismatch), so a server answers
	// "don't have" and a reader with an exchange fetches a good copy.
	// Default false: reads trust the store, and Verify finds corruption.
	HashOnRead bool

	// Logger receives the store's logs. Default nil: discard.
	Logger *slog.Logger
}

// Sentinel errors. Missing blocks are reported with ipld.ErrNotFound (test
// with ipld.IsNotFound or errors.Is(err, ipld.ErrNotFound{})), because that
// is what boxo's blockservice and merkledag branch on.
var (
	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("blobstore: store is closed")
	// ErrNotPinned is returned by Unpin for a CID that has no pin.
	ErrNotPinned = errors.New("not pinned")
	// ErrIsDir is returned by Cat for a UnixFS directory.
	ErrIsDir = errors.New("is a directory")
	// ErrNotDir is returned by Ls for a root that is not a UnixFS directory.
	ErrNotDir = errors.New("not a directory")
	// ErrExist is returned by Export when dst already exists.
	ErrExist = fs.ErrExist
)

// ErrNotFound is ipld.ErrNotFound, the error boxo expects for a missing block.
type ErrNotFound = ipld.ErrNotFound

// Store is a block store keyed by multihash, with pins, garbage collection
// and verification. It satisfies boxo's blockstore.Blockstore and is safe for
// concurrent use. Blocks are keyed by multihash as in boxo: a block put under
// one CID is found under any CID with the same multihash.
type Store struct {
	cfg    Config
	log    *slog.Logger
	blocks ds.Batching // keys: dshelp multihash keys
	meta   ds.Batching // keys: /pins/..., /quarantine/...

	syncBlocks func(context.Context) error // makes committed block writes durable
	syncMeta   func(context.Context) error
	space      *spaceGuard // the free-space guard of an on-disk store (diskfull.go); nil in memory
	closers    []func() error

	life   sync.RWMutex
	closed bool
	ops    sync.WaitGroup

	// gcMu keeps GC apart from imports and pins (which must not lose
	// blocks to a concurrent sweep). GC takes it exclusively.
	gcMu sync.RWMutex
	// gcState records blocks written while a GC is running so that its
	// sweep leaves them alone.
	gcState struct {
		sync.Mutex
		active bool
		fresh  map[string]struct{}
	}
	gcGen atomic.Int64 // incremented when a GC starts
	// writeBatch is the import writer's commit size (writeBatchBytes;
	// tests make it small).
	writeBatch int
	putCount   atomic.Int64
	// trust is the blocks written and verified lately, which HashOnRead
	// does not hash again (trust.go).
	trust *trustSet[struct{}]
	// lastFull is when a write last failed with ENOSPC (unix ns), for
	// DiskFull (diskfull.go).
	lastFull atomic.Int64
}

var _ blockstore.Blockstore = (*Store)(nil)
var _ blockstore.Viewer = (*Store)(nil)

// Open opens (creating if needed) the store described by cfg.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{cfg: cfg, log: cfg.Logger, writeBatch: writeBatchBytes, trust: newTrustSet[struct{}]()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blobstore: open: %w", err)
	}
	if err := s.openBackend(); err != nil {
		for i := len(s.closers) - 1; i >= 0; i-- {
			_ = s.closers[i]()
		}
		return nil, fmt.Errorf("blobstore: open %s: %w", cfg.Dir, err)
	}
	if t, ok := s.blocks.(*tiered); ok {
		// tiered.go: a BlockWriter's large blocks go to flatfs' files
		// with direct I/O (Dir/flatfs is backend.go's layout).
		t.files = newBigFiles(filepath.Join(cfg.Dir, "flatfs"), !cfg.NoSync, s.space)
	}
	s.withRefs() // ref.go: blocks referenced in place
	s.log.Debug("blobstore opened", "dir", cfg.Dir, "backend", s.backendName())
	return s, nil
}

func (s *Store) backendName() Backend {
	switch {
	case s.cfg.Dir == "":
		return "memory"
	case s.cfg.Backend == "":
		return BackendTiered
	}
	return s.cfg.Backend
}

// Close closes the store, waiting for calls in progress. It is idempotent.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.life.Unlock()
	s.ops.Wait()
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blobstore: close: %w", err)
	}
	return nil
}

// begin registers a call in progress; the caller must call s.ops.Done.
func (s *Store) begin() error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.ops.Add(1)
	return nil
}

func blockKey(c cid.Cid) ds.Key { return dshelp.MultihashToDsKey(c.Hash()) }

// Put stores a block durably (unless Config.NoSync).
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.trust.remove([]blocks.Block{b})
	if err := s.putMany(ctx, []blocks.Block{b}, true); err != nil {
		return fmt.Errorf("blobstore: put %s: %w", b.Cid(), err)
	}
	return nil
}

// PutMany stores blocks in one batch and makes them durable with one sync.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.trust.remove(bs)
	if err := s.putMany(ctx, bs, true); err != nil {
		return fmt.Errorf("blobstore: put many (%d blocks): %w", len(bs), err)
	}
	return nil
}

// putMany writes blocks in one batch; with durable it syncs afterwards.
// Blocks are always (re)written, never skipped as already present: a block
// a concurrent GC is about to delete must be written again after it.
func (s *Store) putMany(ctx context.Context, bs []blocks.Block, durable bool) (err error) {
	if len(bs) == 0 {
		return nil
	}
	defer func() { s.noteWrite(err) }()
	for {
		// A GC that starts while this write is in flight may not have
		// seen it in fresh and may sweep it; then write again, now
		// recorded. GCs are rare, so this almost never loops.
		gen := s.gcGen.Load()
		s.noteFresh(bs)
		b, err := s.blocks.Batch(ctx)
		if err != nil {
			return err
		}
		for _, blk := range bs {
			if err := b.Put(ctx, blockKey(blk.Cid()), blk.RawData()); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
		if s.gcGen.Load() == gen {
			break
		}
	}
	s.putCount.Add(int64(len(bs)))
	if durable {
		return s.sync(ctx)
	}
	return nil
}

// sync makes every committed block write durable.
func (s *Store) sync(ctx context.Context) error {
	if s.cfg.NoSync || s.syncBlocks == nil {
		return nil
	}
	return s.syncBlocks(ctx)
}

// noteFresh records blocks written during a GC so that the sweep spares them.
func (s *Store) noteFresh(bs []blocks.Block) {
	s.gcState.Lock()
	defer s.gcState.Unlock()
	if !s.gcState.active {
		return
	}
	for _, b := range bs {
		s.gcState.fresh[blockKey(b.Cid()).String()] = struct{}{}
	}
}

// Get returns the block for c, or an error satisfying ipld.IsNotFound.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	if !c.Defined() {
		return nil, fmt.Errorf("blobstore: get: %w", ErrNotFound{Cid: c})
	}
	data, err := s.blocks.Get(ctx, blockKey(c))
	if err != nil {
		if errors.Is(err, ds.ErrNotFound) {
			return nil, fmt.Errorf("blobstore: get %s: %w", c, ErrNotFound{Cid: c})
		}
		return nil, fmt.Errorf("blobstore: get %s: %w", c, err)
	}
	if s.cfg.HashOnRead && !s.trust.trusted(blockKey(c).String()) && !hashMatches(blockKey(c).String(), data) {
		return nil, s.rotOnRead(ctx, c, data)
	}
	// NewBlockWithCid does not re-hash; the key is the multihash of c, so
	// the block is returned under exactly the CID that was asked for.
	return blocks.NewBlockWithCid(data, c)
}

// View calls fn with the block's data without a copy where the backend allows.
func (s *Store) View(ctx context.Context, c cid.Cid, fn func([]byte) error) error {
	b, err := s.Get(ctx, c)
	if err != nil {
		return err
	}
	return fn(b.RawData())
}

// Has reports whether the block for c is stored.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.ops.Done()
	if !c.Defined() {
		return false, nil
	}
	ok, err := s.blocks.Has(ctx, blockKey(c))
	if err != nil {
		return false, fmt.Errorf("blobstore: has %s: %w", c, err)
	}
	return ok, nil
}

// GetSize returns the size of the block for c, or -1 and an error satisfying
// ipld.IsNotFound.
func (s *Store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if err := s.begin(); err != nil {
		return -1, err
	}
	defer s.ops.Done()
	n, err := s.blocks.GetSize(ctx, blockKey(c))
	if err != nil {
		if errors.Is(err, ds.ErrNotFound) {
			return -1, fmt.Errorf("blobstore: size %s: %w", c, ErrNotFound{Cid: c})
		}
		return -1, fmt.Errorf("blobstore: size %s: %w", c, err)
	}
	return n, nil
}

// DeleteBlock removes the block for c durably. Deleting a missing block is
// not an error. It does not consult pins: GC is the pin-aware way to remove.
func (s *Store) DeleteBlock(ctx context.Context, c cid.Cid) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	if err := s.blocks.Delete(ctx, blockKey(c)); err != nil && !errors.Is(err, ds.ErrNotFound) {
		return fmt.Errorf("blobstore: delete %s: %w", c, err)
	}
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("blobstore: delete %s: %w", c, err)
	}
	return nil
}

// AllKeysChan lists every block as a CIDv1 with the raw codec (the codec is
// not stored). The channel closes when the listing ends or ctx is done.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch, _, err := s.AllKeysChanWithErr(ctx)
	return ch, err
}

var _ blockstore.AllKeysChanWithErrer = (*Store)(nil)

// AllKeysChanWithErr is AllKeysChan that also reports, after the channel is
// drained, whether the listing was complete.
func (s *Store) AllKeysChanWithErr(ctx context.Context) (<-chan cid.Cid, func() error, error) {
	if err := s.begin(); err != nil {
		return nil, nil, err
	}
	res, err := s.blocks.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		s.ops.Done()
		return nil, nil, fmt.Errorf("blobstore: list keys: %w", err)
	}
	out := make(chan cid.Cid, 64)
	done := make(chan struct{})
	var iterErr error
	go func() {
		defer s.ops.Done()
		defer close(done)
		defer close(out)
		defer res.Close()
		for {
			r, ok := res.NextSync()
			if !ok {
				break
			}
			if r.Error != nil {
				iterErr = fmt.Errorf("blobstore: list keys: %w", r.Error)
				return
			}
			c, err := dshelp.DsKeyToCidV1(ds.RawKey(r.Key), cid.Raw)
			if err != nil {
				continue // not a block key
			}
			select {
			case out <- c:
			case <-ctx.Done():
				iterErr = fmt.Errorf("blobstore: list keys: %w", ctx.Err())
				return
			}
		}
		if err := ctx.Err(); err != nil {
			iterErr = fmt.Errorf("blobstore: list keys: %w", err)
		}
	}()
	return out, func() error { <-done; return iterErr }, nil
}

// Stat describes the store's contents.
type Stat struct {
	Blocks    int    // number of blocks
	Bytes     int64  // sum of block sizes
	Pins      int    // number of pins (direct and recursive)
	DiskBytes int64  // bytes used by the files under Dir (0 in memory)
	Dir       string // Config.Dir
}

// Stat counts blocks, bytes and pins. It scans the whole store.
func (s *Store) Stat(ctx context.Context) (Stat, error) {
	if err := s.begin(); err != nil {
		return Stat{}, err
	}
	defer s.ops.Done()
	st := Stat{Dir: s.cfg.Dir}
	res, err := s.blocks.Query(ctx, dsq.Query{KeysOnly: true, ReturnsSizes: true})
	if err != nil {
		return Stat{}, fmt.Errorf("blobstore: stat: %w", err)
	}
	for {
		r, ok := res.NextSync()
		if !ok {
			break
		}
		if r.Error == nil {
			r.Error = ctx.Err()
		}
		if r.Error != nil {
			res.Close()
			return Stat{}, fmt.Errorf("blobstore: stat: %w", r.Error)
		}
		st.Blocks++
		st.Bytes += int64(r.Size)
	}
	res.Close()
	pins, err := s.pins(ctx)
	if err != nil {
		return Stat{}, fmt.Errorf("blobstore: stat: %w", err)
	}
	st.Pins = len(pins)
	if s.cfg.Dir != "" {
		_ = filepath.WalkDir(s.cfg.Dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					st.DiskBytes += fi.Size()
				}
			}
			return nil
		})
	}
	return st, nil
}

// syncDir fsyncs a directory so that entries created in it are durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
