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

// pebbleOptions are tuned for blocks of up to a few MiB written in large
// batches; the reasons are measured in docs/STORAGE.md.
func pebbleOptions(log *slog.Logger) *pebble.Options {
	o := &pebble.Options{
		Logger: pebbleLogger{log},
		// A larger memtable means fewer, larger L0 flushes during an
		// import; 64 MiB keeps memory bounded (at most 2 are queued).
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       32,
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
		pebbleds.WithPebbleOpts(pebbleOptions(s.log)),
		pebbleds.WithPebbleWriteOptions(pebble.NoSync),
		pebbleds.WithCacheSize(64<<20),
	)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, pdb.Close)
	s.meta = pdb
	s.syncMeta = func(ctx context.Context) error { return pdb.Sync(ctx, ds.Key{}) }
	openFlatfs := func() (ds.Batching, error) {
		// flatfs fsyncs each file (and its directory) itself when sync
		// is on, in parallel within a batch.
		fdb, err := flatfs.CreateOrOpen(filepath.Join(s.cfg.Dir, "flatfs"), flatfs.NextToLast(2), !s.cfg.NoSync)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, fdb.Close)
		return fdb, nil
	}
	switch s.cfg.Backend {
	case "", BackendTiered:
		fdb, err := openFlatfs()
		if err != nil {
			return err
		}
		s.blocks = &tiered{small: namespace.Wrap(pdb, blocksPrefix), big: fdb}
		s.syncBlocks = s.syncMeta
	case BackendPebble:
		s.blocks = namespace.Wrap(pdb, blocksPrefix)
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
