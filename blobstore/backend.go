package blobstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	flatfs "github.com/ipfs/go-ds-flatfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// Layout of Dir:
//
//	Dir/pebble/   the pebble database: blocks under /blocks/<multihash>,
//	              pins under /pins/<cid>, quarantine under /quarantine/<multihash>
//	Dir/flatfs/   block files: blocks of 128 KiB and more (BackendTiered),
//	              or all blocks (BackendFlatfs)
var (
	blocksPrefix     = ds.NewKey("/blocks")
	pinsPrefix       = ds.NewKey("/pins")
	quarantinePrefix = ds.NewKey("/quarantine")
)

// Memory the block store's pebble database may hold. Memtables and the
// block cache are allocated outside Go's heap (cgo) and stay resident once
// touched, and pebble keeps one flushed memtable for reuse besides the one
// being written: after a burst of writes a daemon holds up to twice
// pebbleMemTable until it exits. With 64 MiB memtables an idle home server
// had 128 MiB of memtables allocated (of 261 MiB RSS) after its initial
// sync; docs/SERVER.md has the figures. Blocks of 128 KiB and more (file
// leaves) never pass through pebble (tiered.go), so its memtables only see
// inner nodes, directories and small files. Pebble also preallocates each
// WAL file to 1.1 × the memtable size: on a small disk, space that a full
// disk does not get back (TestReliabilityDiskFull* failed with 32 MiB).
const (
	// pebbleMemTable is the memtable size. A commit of half of it or
	// more (an import's 16 MiB batch of small files) bypasses the
	// memtable: pebble flushes it as a table of its own.
	pebbleMemTable = 8 << 20
	// pebbleCache is the block cache. A read that misses it is served
	// from the kernel's page cache; the idle home server's cache was
	// empty after its sync with 64 MiB allowed.
	pebbleCache = 8 << 20
	// pebbleStopWrites is how many memtables may wait for their flush
	// before pebble stalls writes (spaceReserve covers their flushes).
	pebbleStopWrites = 4
)

// pebbleOptions are tuned for blocks of up to a few MiB written in large
// batches; the reasons are measured in docs/STORAGE.md. Background errors
// (a flush or compaction that failed) go to pebbleErrorFunc.
func (s *Store) pebbleOptions() *pebble.Options {
	o := &pebble.Options{
		Logger: pebbleLogger{s.log},
		EventListener: &pebble.EventListener{
			BackgroundError: s.pebbleErrorFunc(pebbleFullBackoff),
		},
		MemTableSize: pebbleMemTable,
		// Writes stall once this many memtables wait for their flush.
		MemTableStopWritesThreshold: pebbleStopWrites,
		// Compact L0 at 8 sublevels (8 flushed memtables of random keys, 64
		// MiB: as much as one memtable held before). With 4, writing
		// 40 MiB of 4 KiB blocks in PutMany calls of 64 cost 15 CPU
		// ms/MiB and wrote 3.5 MiB/MiB; with 8, 11 ms and 2.8 MiB.
		L0CompactionThreshold: 8,
		L0StopWritesThreshold: 32,
		// Start writeback of the WAL early so that the final fsync of an
		// import has little left to do.
		WALBytesPerSync: 1 << 20,
		BytesPerSync:    1 << 20,
	}
	for i := range o.Levels {
		// Bloom filters make Has/Get of missing blocks (every bitswap
		// want we do not have) cheap.
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	o.EnsureDefaults()
	return o
}

func (s *Store) openBackend() error {
	if s.cfg.Dir == "" {
		mem := dssync.MutexWrap(ds.NewMapDatastore())
		s.blocks = namespace.Wrap(mem, blocksPrefix)
		s.meta = mem
		return nil
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return err
	}
	pdb, err := pebbleds.NewDatastore(filepath.Join(s.cfg.Dir, "pebble"),
		pebbleds.WithPebbleOpts(s.pebbleOptions()),
		pebbleds.WithPebbleWriteOptions(pebble.NoSync),
		pebbleds.WithCacheSize(pebbleCache),
	)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, pdb.Close)
	// Every write passes the free-space guard (diskfull.go): pebble's
	// values count twice (WAL, then a table).
	g := newSpaceGuard(s.cfg.Dir, spaceReserve, s.noteWrite)
	s.space = g
	inPebble := func(d ds.Batching) ds.Batching { return &guarded{Batching: d, g: g, weight: 2, blocks: true} }
	s.meta = &guarded{Batching: pdb, g: g, weight: 2}
	s.syncMeta = func(ctx context.Context) error { return pdb.Sync(ctx, ds.Key{}) }
	openFlatfs := func() (ds.Batching, error) {
		// flatfs fsyncs each file (and its directory) itself when sync
		// is on, in parallel within a batch.
		fdb, err := flatfs.CreateOrOpen(filepath.Join(s.cfg.Dir, "flatfs"), flatfs.NextToLast(2), !s.cfg.NoSync)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, fdb.Close)
		// flatfs writes a batch's files at Put: the guard is asked
		// there, and a refused Put discards the batch's files.
		return flatfsCleaning{&guarded{Batching: fdb, g: g, weight: 1, putFirst: true, blocks: true}}, nil
	}
	switch s.cfg.Backend {
	case "", BackendTiered:
		fdb, err := openFlatfs()
		if err != nil {
			return err
		}
		s.blocks = &tiered{small: inPebble(namespace.Wrap(pdb, blocksPrefix)), big: fdb}
		s.syncBlocks = s.syncMeta
	case BackendPebble:
		s.blocks = inPebble(namespace.Wrap(pdb, blocksPrefix))
		s.syncBlocks = s.syncMeta
	case BackendFlatfs:
		fdb, err := openFlatfs()
		if err != nil {
			return err
		}
		s.blocks = fdb
		s.syncBlocks = nil
	default:
		return fmt.Errorf("unknown backend %q", s.cfg.Backend)
	}
	return nil
}

// pebbleLogger sends pebble's chatter to slog at debug level, its errors
// at warn (pebble retries or fails the call that reports them).
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Warn("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

// syncMetaNow makes committed writes to meta durable.
func (s *Store) syncMetaNow(ctx context.Context) error {
	if s.cfg.NoSync || s.syncMeta == nil {
		return nil
	}
	return s.syncMeta(ctx)
}

// EngineMemory is memory the store's database engine holds outside Go's
// heap, so that runtime figures (Go's heap, /metrics' go_memstats) do not
// show it.
type EngineMemory struct {
	// MemTables is what pebble's memtables have allocated: the one being
	// written, those waiting for their flush, and one kept for reuse.
	MemTables int64
	// BlockCache is what pebble's block cache holds.
	BlockCache int64
}

// EngineMemory reports the store's engine memory; zero for a store in
// memory (Dir "") or a closed one. It takes pebble's lock briefly (up to
// pebbleFullBackoff while a flush fails for want of space). Safe for
// concurrent use.
func (s *Store) EngineMemory() EngineMemory {
	meta := s.meta
	if g, ok := meta.(*guarded); ok {
		meta = g.Batching
	}
	pdb, ok := meta.(*pebbleds.Datastore)
	if !ok || s.begin() != nil {
		return EngineMemory{}
	}
	defer s.ops.Done()
	m := pdb.DB.Metrics()
	return EngineMemory{
		MemTables:  int64(m.MemTable.Size + m.MemTable.ZombieSize),
		BlockCache: m.BlockCache.Size,
	}
}
