package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"golang.org/x/sys/unix"
)

// NewDAG returns a DAGService over bs that fetches missing blocks through ex
// (nil: offline, a missing block is ipld.ErrNotFound).
//
// When bs is a *Store, blocks that arrive from the network are written
// without a sync each (a sync per block would cap a fetch at the disk's
// fsync rate); Fetch and Export make them durable before they return, and
// Sync does so explicitly. Nodes added with Add/AddMany are durable on return.
func NewDAG(bs blockstore.Blockstore, ex exchange.Interface) ipld.DAGService {
	s, ok := bs.(*Store)
	if !ok {
		return dag.NewDAGService(blockservice.New(bs, ex))
	}
	cache := &cacheStore{Store: s}
	return &dagService{
		DAGService: dag.NewDAGService(blockservice.New(cache, ex)),
		s:          s,
		cache:      cache,
	}
}

// cacheStore is the Store as blockservice's cache of fetched blocks: puts
// are not synced until Sync.
type cacheStore struct {
	*Store
	dirty atomic.Bool
}

func (c *cacheStore) Put(ctx context.Context, b blocks.Block) error {
	return c.PutMany(ctx, []blocks.Block{b})
}

func (c *cacheStore) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := c.begin(); err != nil {
		return err
	}
	defer c.ops.Done()
	c.dirty.Store(true)
	if err := c.putMany(ctx, bs, false); err != nil {
		return fmt.Errorf("blobstore: put many (%d blocks): %w", len(bs), err)
	}
	// Blocks reach the cache from the exchange, which verified them
	// (bitswap computes each CID from the data it received).
	c.trust.add(bs)
	return nil
}

// dagService is what NewDAG returns for a *Store.
type dagService struct {
	ipld.DAGService
	s     *Store
	cache *cacheStore
}

// Syncer is implemented by the DAGService of NewDAG over a *Store.
type Syncer interface {
	// Sync makes every block fetched so far durable.
	Sync(ctx context.Context) error
}

var _ Syncer = (*dagService)(nil)

func (d *dagService) Sync(ctx context.Context) error {
	if !d.cache.dirty.Swap(false) {
		return nil
	}
	if err := d.s.begin(); err != nil {
		return err
	}
	defer d.s.ops.Done()
	if err := d.s.sync(ctx); err != nil {
		d.cache.dirty.Store(true)
		return fmt.Errorf("blobstore: sync: %w", err)
	}
	return nil
}

func (d *dagService) Add(ctx context.Context, n ipld.Node) error {
	return d.s.Put(ctx, n)
}

func (d *dagService) AddMany(ctx context.Context, ns []ipld.Node) error {
	bs := make([]blocks.Block, len(ns))
	for i, n := range ns {
		bs[i] = n
	}
	return d.s.PutMany(ctx, bs)
}

func (d *dagService) Session(ctx context.Context) ipld.NodeGetter {
	return dag.NewSession(ctx, d.DAGService)
}

func syncDAG(ctx context.Context, d ipld.DAGService) error {
	if s, ok := d.(Syncer); ok {
		return s.Sync(ctx)
	}
	return nil
}

// fetchBatch bounds one GetMany: enough wants in flight to fill a link,
// few enough that one want list stays small.
const fetchBatch = 1024

// Fetch makes every block of the DAG under root local by reading it through
// dag, level by level: all the children of one level are requested with one
// GetMany (in batches of 1024), so a remote exchange fetches them
// concurrently. progress, if not nil, is called with blocks done and blocks
// known so far (the total grows as levels are discovered). The blocks are
// durable on return when dag came from NewDAG over a *Store.
func Fetch(ctx context.Context, d ipld.DAGService, root cid.Cid, progress func(done, total int64)) error {
	if err := fetch(ctx, d, root, progress); err != nil {
		return fmt.Errorf("blobstore: fetch %s: %w", root, err)
	}
	return nil
}

func fetch(ctx context.Context, d ipld.DAGService, root cid.Cid, progress func(done, total int64)) error {
	ng := dag.NewSession(ctx, d)
	seen := cid.NewSet()
	seen.Add(root)
	level := []cid.Cid{root}
	var done, total int64 = 0, 1
	for len(level) > 0 {
		var next []cid.Cid
		for i := 0; i < len(level); i += fetchBatch {
			full := level[i:min(i+fetchBatch, len(level))]
			batch, err := skipLocalLeaves(ctx, d, full)
			if err != nil {
				return err
			}
			done += int64(len(full) - len(batch))
			if len(batch) == 0 {
				if progress != nil {
					progress(done, total)
				}
				continue
			}
			got := cid.NewSet()
			var getErr error
			for opt := range ng.GetMany(ctx, batch) {
				if opt.Err != nil {
					getErr = opt.Err
					break
				}
				got.Add(opt.Node.Cid())
				done++
				for _, l := range opt.Node.Links() {
					if seen.Visit(l.Cid) {
						next = append(next, l.Cid)
						total++
					}
				}
				if progress != nil {
					progress(done, total)
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, c := range batch {
				if !got.Has(c) {
					return ErrNotFound{Cid: c}
				}
			}
			if getErr != nil {
				return getErr
			}
		}
		level = next
	}
	return syncDAG(ctx, d)
}

// skipLocalLeaves drops raw-codec CIDs (which have no links) that the
// Store behind d already has: they need no reading at all.
func skipLocalLeaves(ctx context.Context, d ipld.DAGService, batch []cid.Cid) ([]cid.Cid, error) {
	ds, ok := d.(*dagService)
	if !ok {
		return batch, nil
	}
	var out []cid.Cid
	for _, c := range batch {
		if c.Type() == cid.Raw {
			ok, err := ds.s.Has(ctx, c)
			if err != nil {
				return nil, err
			}
			if ok {
				continue
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// Cat opens the UnixFS file at root for reading and seeking. A directory is
// an error wrapping ErrIsDir. The reader fetches through dag as it goes; the
// caller closes it.
func Cat(ctx context.Context, d ipld.DAGService, root cid.Cid) (io.ReadSeekCloser, error) {
	n, err := d.Get(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("blobstore: cat %s: %w", root, err)
	}
	r, err := openFile(ctx, d, n)
	if err != nil {
		return nil, fmt.Errorf("blobstore: cat %s: %w", root, err)
	}
	return r, nil
}

func openFile(ctx context.Context, d ipld.NodeGetter, n ipld.Node) (uio.DagReader, error) {
	if pn, ok := n.(*dag.ProtoNode); ok {
		fsn, err := ft.FSNodeFromBytes(pn.Data())
		if err != nil {
			return nil, err
		}
		switch fsn.Type() {
		case ft.TDirectory, ft.THAMTShard:
			return nil, ErrIsDir
		case ft.TSymlink:
			return nil, errors.New("is a symlink")
		}
	}
	return uio.NewDagReader(ctx, n, d)
}

// Entry is one item of a UnixFS directory.
type Entry struct {
	Name string
	Cid  cid.Cid
	Size int64  // file: bytes of content; symlink: length of the target; dir: 0
	Type string // "file", "dir", "symlink" or "other"
}

// Ls lists the UnixFS directory at root, sorted by name; each child's root
// block is read (all at once) to learn its type and size. A root that is
// not a directory is an error wrapping ErrNotDir.
func Ls(ctx context.Context, d ipld.DAGService, root cid.Cid) ([]Entry, error) {
	ents, err := ls(ctx, d, root)
	if err != nil {
		return nil, fmt.Errorf("blobstore: ls %s: %w", root, err)
	}
	return ents, nil
}

func ls(ctx context.Context, d ipld.DAGService, root cid.Cid) ([]Entry, error) {
	n, err := d.Get(ctx, root)
	if err != nil {
		return nil, err
	}
	dir, err := uio.NewDirectoryFromNode(d, n)
	if err != nil {
		if errors.Is(err, uio.ErrNotADir) {
			return nil, ErrNotDir
		}
		return nil, err
	}
	lnks, err := dir.Links(ctx)
	if err != nil {
		return nil, err
	}
	ents := make([]Entry, len(lnks))
	idx := map[cid.Cid][]int{}
	var want []cid.Cid
	for i, l := range lnks {
		ents[i] = Entry{Name: l.Name, Cid: l.Cid}
		if l.Cid.Type() == cid.Raw {
			ents[i].Type = "file"
			ents[i].Size = int64(l.Size)
			continue
		}
		if _, ok := idx[l.Cid]; !ok {
			want = append(want, l.Cid)
		}
		idx[l.Cid] = append(idx[l.Cid], i)
	}
	for i := 0; i < len(want); i += fetchBatch {
		batch := want[i:min(i+fetchBatch, len(want))]
		got := 0
		for opt := range dag.NewSession(ctx, d).GetMany(ctx, batch) {
			if opt.Err != nil {
				return nil, opt.Err
			}
			got++
			typ, size := describe(opt.Node)
			for _, j := range idx[opt.Node.Cid()] {
				ents[j].Type, ents[j].Size = typ, size
			}
		}
		if got < len(batch) {
			return nil, fmt.Errorf("got %d of %d children", got, len(batch))
		}
	}
	slices.SortFunc(ents, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return ents, nil
}

// describe returns the Entry type and size of a child node.
func describe(n ipld.Node) (string, int64) {
	switch n := n.(type) {
	case *dag.RawNode:
		return "file", int64(len(n.RawData()))
	case *dag.ProtoNode:
		fsn, err := ft.FSNodeFromBytes(n.Data())
		if err != nil {
			return "other", 0
		}
		switch fsn.Type() {
		case ft.TFile, ft.TRaw:
			return "file", int64(fsn.FileSize())
		case ft.TDirectory, ft.THAMTShard:
			return "dir", 0
		case ft.TSymlink:
			return "symlink", int64(len(fsn.Data()))
		}
	}
	return "other", 0
}

// Export writes the file or tree at root to dst and returns the bytes of
// file data written. It refuses an existing dst (error wrapping ErrExist).
// Everything is written under a hidden temporary name in dst's directory,
// made durable with one syncfs(2) of its file system (not a fsync per
// file), and renamed into place (without replacing anything that
// appeared meanwhile), then the directory is fsynced: dst either does not
// exist or is complete, even after a crash. Names in the DAG that could
// escape dst ("", ".", "..", or containing "/") are an error. progress, if
// not nil, gets bytes written and the total.
func Export(ctx context.Context, d ipld.DAGService, root cid.Cid, dst string, progress func(done, total int64)) (int64, error) {
	n, err := export(ctx, d, root, dst, progress)
	if err != nil {
		return n, fmt.Errorf("blobstore: export %s to %s: %w", root, dst, err)
	}
	return n, nil
}

func export(ctx context.Context, d ipld.DAGService, root cid.Cid, dst string, progress func(done, total int64)) (int64, error) {
	if _, err := os.Lstat(dst); err == nil {
		return 0, ErrExist
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	parent := filepath.Dir(dst)
	// Fetching first makes a remote DAG arrive many blocks at a time and
	// turns a missing block into ipld.ErrNotFound before anything is
	// written; for a local DAG it reads only the inner nodes.
	if err := fetch(ctx, d, root, nil); err != nil {
		return 0, err
	}
	rootNode, err := d.Get(ctx, root)
	if err != nil {
		return 0, err
	}
	total, err := treeSize(ctx, d, rootNode)
	if err != nil {
		return 0, err
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".pcnode-tmp-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(stage)
	x := &exporter{d: d, total: total, progress: progress}
	tmp := filepath.Join(stage, "x")
	if err := x.write(ctx, rootNode, tmp); err != nil {
		return x.done, err
	}
	// One sync of the file system makes every staged file and directory
	// durable before the rename publishes them: the same guarantee as a
	// fsync per file and per directory, at the cost of one (10,000 small
	// files took seconds of fsyncs).
	if err := syncFS(stage); err != nil {
		return x.done, err
	}
	if err := renameNoReplace(tmp, dst); err != nil {
		return x.done, err
	}
	if err := syncDir(parent); err != nil {
		return x.done, err
	}
	return x.done, nil
}

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return ErrExist
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// The filesystem cannot do it atomically; check, then rename.
		if _, err := os.Lstat(new); err == nil {
			return ErrExist
		}
		return os.Rename(old, new)
	}
	return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// treeSize sums the file sizes under n, reading directories and file roots.
func treeSize(ctx context.Context, d ipld.DAGService, n ipld.Node) (int64, error) {
	switch typ, size := describe(n); typ {
	case "file":
		return size, nil
	case "dir":
	default:
		return 0, nil
	}
	dir, err := uio.NewDirectoryFromNode(d, n)
	if err != nil {
		return 0, err
	}
	lnks, err := dir.Links(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range lnks {
		if l.Cid.Type() == cid.Raw {
			total += int64(l.Size)
			continue
		}
		c, err := d.Get(ctx, l.Cid)
		if err != nil {
			return 0, err
		}
		s, err := treeSize(ctx, d, c)
		if err != nil {
			return 0, err
		}
		total += s
	}
	return total, nil
}

type exporter struct {
	d        ipld.DAGService
	done     int64
	total    int64
	progress func(done, total int64)
}

func (x *exporter) Write(p []byte) (int, error) {
	x.done += int64(len(p))
	if x.progress != nil {
		x.progress(x.done, x.total)
	}
	return len(p), nil
}

func (x *exporter) write(ctx context.Context, n ipld.Node, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	typ, _ := describe(n)
	switch typ {
	case "file":
		return x.writeFile(ctx, n, path)
	case "symlink":
		fsn, err := ft.FSNodeFromBytes(n.(*dag.ProtoNode).Data())
		if err != nil {
			return err
		}
		return os.Symlink(string(fsn.Data()), path)
	case "dir":
		dir, err := uio.NewDirectoryFromNode(x.d, n)
		if err != nil {
			return err
		}
		lnks, err := dir.Links(ctx)
		if err != nil {
			return err
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		for _, l := range lnks {
			if !validName(l.Name) {
				return fmt.Errorf("unsafe name %q in directory %s", l.Name, n.Cid())
			}
			c, err := x.d.Get(ctx, l.Cid)
			if err != nil {
				return err
			}
			if err := x.write(ctx, c, filepath.Join(path, l.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: unsupported UnixFS node", n.Cid())
}

func (x *exporter) writeFile(ctx context.Context, n ipld.Node, path string) error {
	leaves, fast := x.leafList(ctx, n)
	var r uio.DagReader
	if !fast {
		var err error
		if r, err = openFile(ctx, x.d, n); err != nil {
			return err
		}
		defer r.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	w := io.MultiWriter(&writeback{f: f}, x)
	if fast {
		err = x.copyLeaves(ctx, leaves, w)
	} else {
		_, err = io.Copy(w, r)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// exportReadBatch is how many leaves copyLeaves reads at once: what one
// multi-buffer SHA-256 call verifies under HashOnRead.
const exportReadBatch = 16

// leafList returns the raw leaves of the file n in file order when its DAG
// has the shape Import (and ipfs add --raw-leaves) gives a file: dag-pb
// file nodes without data of their own above raw leaves, or a single raw
// leaf; and when x.d is NewDAG's over a *Store, whose GetMany reads them
// in batches. Otherwise it reports false and the DagReader is used.
func (x *exporter) leafList(ctx context.Context, n ipld.Node) ([]cid.Cid, bool) {
	if _, ok := x.d.(*dagService); !ok {
		return nil, false
	}
	var leaves []cid.Cid
	var walk func(n ipld.Node) bool
	walk = func(n ipld.Node) bool {
		switch n := n.(type) {
		case *dag.RawNode:
			leaves = append(leaves, n.Cid())
			return true
		case *dag.ProtoNode:
			fsn, err := ft.FSNodeFromBytes(n.Data())
			if err != nil || (fsn.Type() != ft.TFile && fsn.Type() != ft.TRaw) || len(fsn.Data()) > 0 {
				return false
			}
			for _, l := range n.Links() {
				if l.Cid.Type() == cid.Raw {
					leaves = append(leaves, l.Cid)
					continue
				}
				c, err := x.d.Get(ctx, l.Cid)
				if err != nil || !walk(c) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(n) {
		return nil, false
	}
	return leaves, true
}

// copyLeaves writes the leaves to w in order, reading them with the
// store's GetMany; a leaf it lacks (or found rotten and quarantined) is
// read through x.d, which fetches a good copy when it has an exchange.
func (x *exporter) copyLeaves(ctx context.Context, leaves []cid.Cid, w io.Writer) error {
	s := x.d.(*dagService).s
	for i := 0; i < len(leaves); i += exportReadBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := leaves[i:min(i+exportReadBatch, len(leaves))]
		bs, err := s.GetMany(ctx, batch)
		if err != nil {
			return err
		}
		for j, b := range bs {
			var data []byte
			if b != nil {
				data = b.RawData()
			} else {
				n, err := x.d.Get(ctx, batch[j])
				if err != nil {
					return err
				}
				data = n.RawData()
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
	}
	return nil
}

// writebackEvery is how much of a file is written before its writeback is
// started: the disk works while the export goes on, and the final sync
// has little left to do.
const writebackEvery = 8 << 20

// writeback writes to f and starts the writeback of every writebackEvery
// bytes (sync_file_range, SYNC_FILE_RANGE_WRITE: it does not wait, and it
// does not make anything durable; syncFS does).
type writeback struct {
	f         *os.File
	off, from int64
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.from >= writebackEvery {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.from, w.off-w.from, unix.SYNC_FILE_RANGE_WRITE)
		w.from = w.off
	}
	return n, err
}

// syncFS makes everything written to the file system that holds dir
// durable (syncfs(2)), reporting writeback errors.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(f.Fd()))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
