package blobstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	flatfs "github.com/ipfs/go-ds-flatfs"
	"golang.org/x/sys/unix"
)

// bigBlock is the size from which a block is kept in a file of its own
// rather than in pebble. File leaves of an import (256 KiB to 1 MiB) land
// above it; inner nodes, directories, HAMT shards and small files below.
// docs/STORAGE.md has the measurements: pebble writes a large value twice
// (WAL, then sstable) and copies it through its memtable; a file is
// written once. For 4 KiB blocks pebble is ~5x cheaper than a file each.
const bigBlock = 128 << 10

// tiered is a ds.Batching that routes each value by size: small ones to
// small (pebble), large ones to big (flatfs). A key lives in exactly one
// tier, since a block's size never changes.
type tiered struct {
	small, big ds.Batching
	// files, if set, writes the large blocks of batches made with
	// withDirectWrites, in big's own layout (big is then flatfs).
	files *bigFiles
}

var _ ds.Batching = (*tiered)(nil)

func (t *tiered) tier(v []byte) ds.Batching {
	if len(v) >= bigBlock {
		return t.big
	}
	return t.small
}

func (t *tiered) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	v, err := t.small.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return t.big.Get(ctx, k)
	}
	return v, err
}

func (t *tiered) Has(ctx context.Context, k ds.Key) (bool, error) {
	ok, err := t.small.Has(ctx, k)
	if err != nil || ok {
		return ok, err
	}
	return t.big.Has(ctx, k)
}

func (t *tiered) GetSize(ctx context.Context, k ds.Key) (int, error) {
	n, err := t.small.GetSize(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return t.big.GetSize(ctx, k)
	}
	return n, err
}

func (t *tiered) Put(ctx context.Context, k ds.Key, v []byte) error {
	return t.tier(v).Put(ctx, k, v)
}

func (t *tiered) Delete(ctx context.Context, k ds.Key) error {
	err1 := t.small.Delete(ctx, k)
	err2 := t.big.Delete(ctx, k)
	if err1 != nil && !errors.Is(err1, ds.ErrNotFound) {
		return err1
	}
	if err2 != nil && !errors.Is(err2, ds.ErrNotFound) {
		return err2
	}
	return nil
}

func (t *tiered) Sync(ctx context.Context, prefix ds.Key) error {
	if err := t.big.Sync(ctx, prefix); err != nil {
		return err
	}
	return t.small.Sync(ctx, prefix)
}

// Query lists the small tier, then the big one. Orders, offsets and limits
// are not supported (the store never asks for them).
func (t *tiered) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if len(q.Orders) > 0 || q.Offset > 0 || q.Limit > 0 {
		return nil, errors.New("tiered: ordered or limited queries are not supported")
	}
	first, err := t.small.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	var second dsq.Results
	cur := first
	return dsq.ResultsFromIterator(q, dsq.Iterator{
		Next: func() (dsq.Result, bool) {
			for {
				r, ok := cur.NextSync()
				if ok {
					return r, true
				}
				if second != nil {
					return dsq.Result{}, false
				}
				second, err = t.big.Query(ctx, q)
				if err != nil {
					return dsq.Result{Error: err}, true
				}
				cur = second
			}
		},
		Close: func() error {
			err := first.Close()
			if second != nil {
				err = errors.Join(err, second.Close())
			}
			return err
		},
	}), nil
}

func (t *tiered) Close() error { return nil } // the Store closes the tiers

func (t *tiered) Batch(ctx context.Context) (ds.Batch, error) {
	sb, err := t.small.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &tieredBatch{t: t, small: sb, direct: t.files != nil && directWrites(ctx)}, nil
}

// tieredBatch opens the big tier's batch only when needed: a flatfs batch
// costs a temporary directory and directory syncs even when empty. With
// direct, large values are kept for bigFiles to write at Commit instead.
type tieredBatch struct {
	t          *tiered
	small, big ds.Batch
	direct     bool
	bigPuts    []bigPut
}

func (b *tieredBatch) bigBatch(ctx context.Context) (ds.Batch, error) {
	if b.big == nil {
		bb, err := b.t.big.Batch(ctx)
		if err != nil {
			return nil, err
		}
		b.big = bb
	}
	return b.big, nil
}

func (b *tieredBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	if len(v) >= bigBlock && b.direct {
		b.bigPuts = append(b.bigPuts, bigPut{k, v})
		return nil
	}
	if len(v) >= bigBlock {
		bb, err := b.bigBatch(ctx)
		if err != nil {
			return err
		}
		return bb.Put(ctx, k, v)
	}
	return b.small.Put(ctx, k, v)
}

func (b *tieredBatch) Delete(ctx context.Context, k ds.Key) error {
	if err := b.small.Delete(ctx, k); err != nil {
		return err
	}
	bb, err := b.bigBatch(ctx)
	if err != nil {
		return err
	}
	return bb.Delete(ctx, k)
}

// Commit writes the big tier first: a crash between the two leaves whole
// blocks in files and nothing that refers to missing ones.
func (b *tieredBatch) Commit(ctx context.Context) error {
	if len(b.bigPuts) > 0 {
		if err := b.t.files.write(ctx, b.bigPuts); err != nil {
			return err
		}
	}
	if b.big != nil {
		if err := b.big.Commit(ctx); err != nil {
			return err
		}
	}
	return b.small.Commit(ctx)
}

// directWritesKey marks a context whose batches write large blocks with
// bigFiles (see withDirectWrites).
type directWritesKey struct{}

// withDirectWrites returns ctx marked so that the tiered store's batches
// made with it write their large blocks with O_DIRECT (bigFiles) rather
// than through flatfs' batch and the page cache. BlockWriter uses it: a
// fetch's blocks are written once and, the output being written while
// they arrive, seldom read soon; an import's blocks stay in the page
// cache, where the next peer to fetch them finds them.
func withDirectWrites(ctx context.Context) context.Context {
	return context.WithValue(ctx, directWritesKey{}, true)
}

func directWrites(ctx context.Context) bool {
	v, _ := ctx.Value(directWritesKey{}).(bool)
	return v
}

// bigFiles writes large blocks into flatfs' own layout (its shard
// directories, `<key>.data` files), as flatfs' batch does: each file
// under a temporary name in flatfs' .temp directory (which flatfs
// empties when it opens), synced, then renamed into place, then the
// directories synced. The difference is how the data goes: aligned
// blocks (1 MiB leaves) with O_DIRECT, without a copy into the page
// cache, which costs about 1 CPU second per GiB on the machine of
// docs/STORAGE.md; flatfs reads them back as any other file.
type bigFiles struct {
	root  string
	shard flatfs.ShardFunc
	sync  bool
	// space is the store's free-space guard (diskfull.go): a write is
	// refused with a disk-full error before it eats into the reserve
	// pebble needs. nil: no guard.
	space *spaceGuard
}

// newBigFiles returns the bigFiles of the flatfs datastore in root, or
// nil if its sharding cannot be read (then flatfs' batches are used).
func newBigFiles(root string, sync bool, space *spaceGuard) *bigFiles {
	id, err := flatfs.ReadShardFunc(root)
	if err != nil {
		return nil
	}
	return &bigFiles{root: root, shard: id.Func(), sync: sync, space: space}
}

type bigPut struct {
	k ds.Key
	v []byte
}

// bigWriters is how many files bigFiles writes at once: direct writes
// wait for the disk, and a few in flight keep it busy.
const bigWriters = 4

// write stores puts durably (unless !f.sync). On error nothing of this
// call is left under a temporary name; files already renamed stay (whole
// blocks, like those of an interrupted flatfs batch).
func (f *bigFiles) write(ctx context.Context, puts []bigPut) error {
	if f.space != nil {
		var n int64
		for _, p := range puts {
			n += int64(len(p.v))
		}
		if err := f.space.admit(n, f.space.floor(n)); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(f.root, ".temp"), "pcnode-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := parallel(ctx, len(puts), func(i int) error {
		return f.writeTemp(filepath.Join(tmp, strconv.Itoa(i)), puts[i].v)
	}); err != nil {
		return err
	}
	dirs := make(map[string]struct{})
	newDir := false
	for i, p := range puts {
		name := p.k.String()[1:]
		dir := filepath.Join(f.root, f.shard(name))
		if _, ok := dirs[dir]; !ok {
			if err := os.Mkdir(dir, 0o755); err == nil {
				newDir = true
			} else if !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs[dir] = struct{}{}
		}
		if err := os.Rename(filepath.Join(tmp, strconv.Itoa(i)), filepath.Join(dir, name+".data")); err != nil {
			return err
		}
	}
	if !f.sync {
		return nil
	}
	if newDir {
		dirs[f.root] = struct{}{}
	}
	// The directories at once: each sync waits for a journal commit,
	// which concurrent ones share.
	list := make([]string, 0, len(dirs))
	for dir := range dirs {
		list = append(list, dir)
	}
	return parallel(ctx, len(list), func(i int) error { return syncDir(list[i]) })
}

// parallel runs fn(0) to fn(n-1) on bigWriters goroutines and returns the
// first error; after an error, or once ctx ends, no new call starts.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	for range min(bigWriters, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed() {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = fn(i)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// writeTemp writes v to a new file at path and syncs it (if f.sync);
// on error the file is removed.
func (f *bigFiles) writeTemp(path string, v []byte) (err error) {
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fd.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	direct := len(v)%directAlign == 0 && len(v) > 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(v)))%directAlign == 0 &&
		setDirect(fd, true) == nil
	_, err = fd.Write(v)
	if direct && errors.Is(err, unix.EINVAL) {
		// The file system refused the direct write: write it buffered.
		if err = setDirect(fd, false); err == nil {
			_, err = fd.WriteAt(v, 0)
		}
	}
	if err == nil && f.sync {
		err = unix.Fdatasync(int(fd.Fd()))
	}
	return err
}

// read reads the file of block k into buf and returns its size; false
// if there is no such file or it does not fit in buf (the caller then
// reads it through the datastore).
func (f *bigFiles) read(k ds.Key, buf []byte) (int, bool) {
	name := k.String()[1:]
	fd, err := os.Open(filepath.Join(f.root, f.shard(name), name+".data"))
	if err != nil {
		return 0, false
	}
	defer fd.Close()
	n, err := io.ReadFull(fd, buf)
	if err != io.ErrUnexpectedEOF || n == 0 {
		return 0, false // too large for buf, empty, or a read error
	}
	return n, true
}
