package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	chunker "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	h "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// DefaultChunkSize is the leaf size Import uses when ImportOptions.ChunkSize
// is 0. 1 MiB won the measurements in docs/STORAGE.md; it stays well under
// bitswap's 2 MiB block limit.
const DefaultChunkSize = 1 << 20

// MaxChunkSize is the largest leaf accepted: bitswap's 2 MiB block limit
// less boxo's framing budget (chunker.ChunkSizeLimit).
const MaxChunkSize = chunker.ChunkSizeLimit

// ImportOptions tune an import. The zero value uses the defaults.
type ImportOptions struct {
	// ChunkSize is the size of each file leaf in bytes. Default 0 means
	// DefaultChunkSize. At most MaxChunkSize.
	ChunkSize int
	// Hash is the multihash function of every block. Default 0 means
	// SHA2_256, which every IPFS client verifies. multihash.BLAKE3 hashes
	// about 7x faster on CPUs with AVX-512 (docs/STORAGE.md) and Kubo reads
	// it, but browsers' verified-fetch may not.
	Hash uint64
	// Progress, if not nil, is called with bytes of file data read so far
	// and the total (-1 while unknown, as for ImportReader). It is called
	// from the importing goroutine.
	Progress func(done, total int64)
}

// ImportResult describes an imported file or tree.
type ImportResult struct {
	Root   cid.Cid // UnixFS root: CIDv1, raw leaves, balanced layout
	Name   string  // base name of the imported path ("" for ImportReader)
	Size   int64   // bytes of file data
	Blocks int     // blocks written (including repeats of equal blocks)
}

// v1 is the CID prefix of every node Import makes (dag-pb nodes; leaves
// switch the codec to raw).
var v1 = cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}

func (o ImportOptions) prefix() (cid.Prefix, error) {
	switch o.Hash {
	case 0, mh.SHA2_256:
		return v1, nil
	case mh.BLAKE3:
		p := v1
		p.MhType, p.MhLength = mh.BLAKE3, 32
		return p, nil
	}
	return cid.Prefix{}, fmt.Errorf("unsupported hash 0x%x (want sha2-256 or blake3)", o.Hash)
}

func (o ImportOptions) chunkSize() (int, error) {
	if _, err := o.prefix(); err != nil {
		return 0, err
	}
	switch {
	case o.ChunkSize == 0:
		return DefaultChunkSize, nil
	case o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize:
		return 0, fmt.Errorf("chunk size %d out of range 1..%d", o.ChunkSize, MaxChunkSize)
	}
	return o.ChunkSize, nil
}

// ImportReader imports r as one UnixFS file. The result is durable on return.
func (s *Store) ImportReader(ctx context.Context, r io.Reader, opt ImportOptions) (ImportResult, error) {
	if err := s.begin(); err != nil {
		return ImportResult{}, err
	}
	defer s.ops.Done()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	size, err := opt.chunkSize()
	if err != nil {
		return ImportResult{}, fmt.Errorf("blobstore: import: %w", err)
	}
	w := s.newWriter(ctx)
	prog := newProgress(opt.Progress, -1)
	pfx, _ := opt.prefix()
	n, nbytes, err := importFile(ctx, w, r, size, pfx, prog)
	if err == nil {
		err = w.finish()
	} else {
		w.abort()
	}
	if err != nil {
		return ImportResult{}, fmt.Errorf("blobstore: import: %w", err)
	}
	return ImportResult{Root: n.Cid(), Size: nbytes, Blocks: int(w.count.Load())}, nil
}

// Import imports the file or directory tree at path. Directories become
// UnixFS directories (HAMT-sharded when large, as boxo decides), symlinks
// UnixFS symlinks; other file types (devices, sockets, pipes) are skipped
// with a warning. The result is durable on return. A missing path is an
// error wrapping fs.ErrNotExist.
func (s *Store) Import(ctx context.Context, path string, opt ImportOptions) (ImportResult, error) {
	if err := s.begin(); err != nil {
		return ImportResult{}, err
	}
	defer s.ops.Done()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	res, err := s.importPath(ctx, path, opt)
	if err != nil {
		return ImportResult{}, fmt.Errorf("blobstore: import %s: %w", path, err)
	}
	return res, nil
}

func (s *Store) importPath(ctx context.Context, path string, opt ImportOptions) (ImportResult, error) {
	size, err := opt.chunkSize()
	if err != nil {
		return ImportResult{}, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return ImportResult{}, err
	}
	pfx, _ := opt.prefix()
	w := s.newWriter(ctx)
	var root ipld.Node
	var total int64
	switch {
	case fi.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return ImportResult{}, err
		}
		defer f.Close()
		prog := newProgress(opt.Progress, fi.Size())
		root, total, err = importFile(ctx, w, f, size, pfx, prog)
		if err != nil {
			w.abort()
			return ImportResult{}, err
		}
	case fi.IsDir():
		t := &treeImporter{s: s, w: w, chunk: size, pfx: pfx}
		root, total, err = t.run(ctx, path, opt.Progress)
		if err != nil {
			w.abort()
			return ImportResult{}, err
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		root, err = symlinkNode(path, pfx)
		if err == nil {
			err = w.Add(ctx, root)
		}
		if err != nil {
			w.abort()
			return ImportResult{}, err
		}
	default:
		return ImportResult{}, fmt.Errorf("unsupported file type %s", fi.Mode().Type())
	}
	if err := w.finish(); err != nil {
		return ImportResult{}, err
	}
	return ImportResult{Root: root.Cid(), Name: filepath.Base(path), Size: total, Blocks: int(w.count.Load())}, nil
}

func symlinkNode(path string, pfx cid.Prefix) (ipld.Node, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return nil, err
	}
	data, err := ft.SymlinkData(target)
	if err != nil {
		return nil, err
	}
	n := dag.NodeWithData(data)
	if err := n.SetCidBuilder(pfx); err != nil {
		return nil, err
	}
	return n, nil
}

// progress reports bytes read; safe for concurrent add.
type progress struct {
	fn    func(done, total int64)
	total int64
	mu    sync.Mutex
	done  int64
}

func newProgress(fn func(done, total int64), total int64) *progress {
	return &progress{fn: fn, total: total}
}

func (p *progress) add(n int) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.fn(p.done, p.total)
}

// importFile builds the balanced UnixFS DAG of r into w. Leaves are hashed
// in parallel ahead of boxo's (sequential) layout code, which then finds
// each leaf's CID already computed.
func importFile(ctx context.Context, w ipld.DAGService, r io.Reader, chunk int, pfx cid.Prefix, prog *progress) (ipld.Node, int64, error) {
	sp := newHashingSplitter(ctx, r, chunk, pfx, prog)
	defer sp.stop()
	params := h.DagBuilderParams{
		Dagserv:    w,
		Maxlinks:   h.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: sp.builder(),
	}
	db, err := params.New(sp)
	if err != nil {
		return nil, 0, err
	}
	n, err := balanced.Layout(db)
	if err != nil {
		return nil, 0, err
	}
	if sp.err != nil {
		return nil, 0, sp.err
	}
	return n, sp.bytes, nil
}

// hashedChunk is one leaf, its CID computed by a worker.
type hashedChunk struct {
	data []byte
	cid  cid.Cid
	err  error
}

// hashingSplitter is a chunker.Splitter that reads fixed-size chunks (as
// chunker.NewSizeSplitter does) and hashes them ahead of use: sumLanes
// chunks at a time (16 with AVX-512: one call hashes them all in the
// vector lanes of one core), groups on all CPUs.
type hashingSplitter struct {
	r      io.Reader
	pfx    cid.Prefix
	cancel context.CancelFunc
	order  chan chan hashedChunk
	wg     sync.WaitGroup
	last   hashedChunk // the chunk NextBytes returned last
	bytes  int64
	err    error
}

// hashGroup is chunks hashed by one worker in one call.
type hashGroup struct {
	data [][]byte
	outs []chan hashedChunk
}

func newHashingSplitter(ctx context.Context, r io.Reader, chunk int, pfx cid.Prefix, prog *progress) *hashingSplitter {
	ctx, cancel := context.WithCancel(ctx)
	workers := runtime.GOMAXPROCS(0)
	lanes := sumLanes
	// order holds the chunks of the groups being hashed and of those
	// hashed and waiting for the layout: at most (workers+1)*lanes chunks
	// buffered (48 MiB of 1 MiB leaves on 2 cores with AVX-512).
	sp := &hashingSplitter{r: r, cancel: cancel, pfx: pfx, order: make(chan chan hashedChunk, workers*lanes)}
	jobs := make(chan hashGroup)
	raw := pfx.WithCodec(cid.Raw).(cid.Prefix)
	for range workers {
		sp.wg.Go(func() {
			for g := range jobs {
				cs, err := sumCIDs(raw, g.data)
				for i, out := range g.outs {
					hc := hashedChunk{data: g.data[i], err: err}
					if err == nil {
						hc.cid = cs[i]
					}
					out <- hc
				}
			}
		})
	}
	sp.wg.Go(func() {
		defer close(sp.order)
		defer close(jobs)
		var g hashGroup
		// dispatch hands the group to a worker, then queues its chunks
		// in file order: a chunk is queued only once it is being
		// hashed, so the consumer never waits on one that is not.
		dispatch := func() bool {
			if len(g.data) == 0 {
				return true
			}
			select {
			case jobs <- g:
			case <-ctx.Done():
				return false
			}
			for _, out := range g.outs {
				select {
				case sp.order <- out:
				case <-ctx.Done():
					return false
				}
			}
			g = hashGroup{}
			return true
		}
		for {
			buf := make([]byte, chunk)
			n, err := io.ReadFull(r, buf)
			switch {
			case err == io.EOF:
				dispatch()
				return
			case err == nil || err == io.ErrUnexpectedEOF:
				prog.add(n)
				g.data = append(g.data, buf[:n:n])
				g.outs = append(g.outs, make(chan hashedChunk, 1))
				if err == nil && len(g.data) < lanes {
					continue
				}
				if !dispatch() || err != nil {
					return
				}
			default:
				if !dispatch() {
					return
				}
				out := make(chan hashedChunk, 1)
				out <- hashedChunk{err: err}
				select {
				case sp.order <- out:
				case <-ctx.Done():
				}
				return
			}
		}
	})
	return sp
}

func (sp *hashingSplitter) Reader() io.Reader { return sp.r }

// NextBytes returns the next chunk in file order, or io.EOF.
func (sp *hashingSplitter) NextBytes() ([]byte, error) {
	if sp.err != nil {
		return nil, sp.err
	}
	out, ok := <-sp.order
	if !ok {
		return nil, io.EOF
	}
	hc := <-out
	if hc.err != nil {
		sp.err = hc.err
		return nil, hc.err
	}
	sp.last = hc
	sp.bytes += int64(len(hc.data))
	return hc.data, nil
}

func (sp *hashingSplitter) stop() {
	sp.cancel()
	// Drain so that the reader goroutine is not stuck on a full channel.
	for out := range sp.order {
		_ = out
	}
	sp.wg.Wait()
}

var _ chunker.Splitter = (*hashingSplitter)(nil)

func (sp *hashingSplitter) builder() cid.Builder { return &presumBuilder{sp: sp, prefix: sp.pfx} }

// presumBuilder is the cid.Builder boxo's layout uses: for the leaf that
// NextBytes just returned (the same backing array) it returns the CID the
// workers computed, and hashes anything else itself.
type presumBuilder struct {
	sp     *hashingSplitter
	prefix cid.Prefix
}

func (b *presumBuilder) Sum(data []byte) (cid.Cid, error) {
	last := b.sp.last
	if b.prefix.Codec == cid.Raw && len(data) > 0 && len(data) == len(last.data) && &data[0] == &last.data[0] {
		return last.cid, nil
	}
	return b.prefix.Sum(data)
}

func (b *presumBuilder) GetCodec() uint64 { return b.prefix.Codec }

func (b *presumBuilder) WithCodec(c uint64) cid.Builder {
	return &presumBuilder{sp: b.sp, prefix: b.prefix.WithCodec(c).(cid.Prefix)}
}

// writer is the DAGService an import writes through: blocks are collected
// into large batches committed without sync by a background goroutine, and
// finish syncs once. Not safe for use after finish or abort.
type writer struct {
	s       *Store
	ctx     context.Context
	mu      sync.Mutex
	pending []blocks.Block
	pbytes  int
	queue   chan []blocks.Block
	done    chan struct{}
	err     atomic.Pointer[error]
	count   atomic.Int64
}

// writeBatchBytes is the size of one commit. Large enough that per-commit
// costs vanish, small enough to keep two in flight cheaply in memory.
const writeBatchBytes = 16 << 20

func (s *Store) newWriter(ctx context.Context) *writer {
	w := &writer{s: s, ctx: ctx, queue: make(chan []blocks.Block, 2), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for b := range w.queue {
			if w.err.Load() != nil {
				continue
			}
			if err := s.putMany(ctx, b, false); err != nil {
				w.err.Store(&err)
				continue
			}
			// Import computed these CIDs from the data; a BlockWriter's
			// caller verified them (its contract).
			s.trust.add(b)
		}
	}()
	return w
}

func (w *writer) failed() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *writer) Add(ctx context.Context, n ipld.Node) error {
	return w.AddMany(ctx, []ipld.Node{n})
}

func (w *writer) AddMany(ctx context.Context, ns []ipld.Node) error {
	bs := make([]blocks.Block, len(ns))
	for i, n := range ns {
		bs[i] = n
	}
	return w.addBlocks(ctx, bs)
}

// addBlocks queues blocks for the next batch, handing a full batch to the
// background committer (waiting while two are already queued).
func (w *writer) addBlocks(ctx context.Context, bs []blocks.Block) error {
	if err := w.failed(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	var full []blocks.Block
	for _, b := range bs {
		w.pending = append(w.pending, b)
		w.pbytes += len(b.RawData())
	}
	w.count.Add(int64(len(bs)))
	if w.pbytes >= w.s.writeBatch {
		full, w.pending, w.pbytes = w.pending, nil, 0
	}
	w.mu.Unlock()
	if full != nil {
		select {
		case w.queue <- full:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
	return nil
}

// flushWait commits everything pending and waits; used by reads.
func (w *writer) flushWait() error {
	w.mu.Lock()
	full := w.pending
	w.pending, w.pbytes = nil, 0
	w.mu.Unlock()
	if len(full) > 0 {
		if err := w.s.putMany(w.ctx, full, false); err != nil {
			return err
		}
		w.s.trust.add(full)
	}
	return w.failed()
}

// finish commits the rest, waits for the background writer and syncs once:
// after it returns nil every block added is durable.
func (w *writer) finish() error {
	w.mu.Lock()
	rest := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(rest) > 0 {
		w.queue <- rest
	}
	close(w.queue)
	<-w.done
	if err := w.failed(); err != nil {
		return err
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	return w.s.sync(w.ctx)
}

// abort stops the background writer; written blocks stay (valid, unpinned).
func (w *writer) abort() {
	e := context.Canceled
	w.err.CompareAndSwap(nil, func() *error { var x error = e; return &x }())
	close(w.queue)
	<-w.done
}

func (w *writer) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	if err := w.flushWait(); err != nil {
		return nil, err
	}
	b, err := w.s.blocksGet(ctx, c)
	if err != nil {
		return nil, err
	}
	return ipld.Decode(b, decodeNode)
}

func (w *writer) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		n, err := w.Get(ctx, c)
		out <- &ipld.NodeOption{Node: n, Err: err}
	}
	close(out)
	return out
}

func (w *writer) Remove(context.Context, cid.Cid) error       { return nil }
func (w *writer) RemoveMany(context.Context, []cid.Cid) error { return nil }

var _ ipld.DAGService = (*writer)(nil)

// decodeNode decodes the node kinds UnixFS uses.
func decodeNode(b blocks.Block) (ipld.Node, error) {
	switch b.Cid().Type() {
	case cid.Raw:
		return dag.DecodeRawBlock(b)
	case cid.DagProtobuf:
		return dag.DecodeProtobufBlock(b)
	}
	return nil, fmt.Errorf("unsupported codec 0x%x", b.Cid().Type())
}

// blocksGet reads a block without the begin/Done bookkeeping (for use
// inside an operation that already did it).
func (s *Store) blocksGet(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := s.blocks.Get(ctx, blockKey(c))
	if err != nil {
		if errors.Is(err, ds.ErrNotFound) {
			return nil, ErrNotFound{Cid: c}
		}
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// treeImporter imports a directory tree: files on all CPUs, directories
// bottom-up.
type treeImporter struct {
	s     *Store
	w     *writer
	chunk int
	pfx   cid.Prefix
}

type treeEntry struct {
	path  string
	name  string
	dir   int // index of the parent directory in dirs
	mode  fs.FileMode
	size  int64
	node  ipld.Node
	isDir bool
	self  int // for directories: own index in dirs
}

func (t *treeImporter) run(ctx context.Context, root string, progFn func(done, total int64)) (ipld.Node, int64, error) {
	// Pass 1: list the tree (so progress has a total).
	var dirs []*dirBuild
	var files []*treeEntry
	dirs = append(dirs, &dirBuild{path: root, parent: -1})
	for i := 0; i < len(dirs); i++ {
		d := dirs[i]
		ents, err := os.ReadDir(d.path)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range ents {
			p := filepath.Join(d.path, e.Name())
			te := &treeEntry{path: p, name: e.Name(), dir: i, mode: e.Type()}
			switch {
			case e.IsDir():
				te.isDir, te.self = true, len(dirs)
				dirs = append(dirs, &dirBuild{path: p, parent: i, name: e.Name()})
			case e.Type().IsRegular():
				fi, err := e.Info()
				if err != nil {
					return nil, 0, err
				}
				te.size = fi.Size()
				files = append(files, te)
			case e.Type()&fs.ModeSymlink != 0:
				files = append(files, te)
			default:
				t.s.log.Warn("blobstore: import skips special file", "path", p, "type", e.Type().String())
				continue
			}
			d.entries = append(d.entries, te)
		}
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	prog := newProgress(progFn, total)

	// Pass 2: files. Small files (one leaf) are hashed inline by the
	// workers; larger ones go through importFile, which is parallel itself.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	work := make(chan *treeEntry)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for te := range work {
				if err := t.importEntry(ctx, te, prog); err != nil {
					fail(fmt.Errorf("%s: %w", te.path, err))
				}
			}
		})
	}
	var big []*treeEntry
feed:
	for _, f := range files {
		if f.size > int64(t.chunk) {
			big = append(big, f)
			continue
		}
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	for _, f := range big {
		if firstErr != nil {
			break
		}
		if err := t.importEntry(ctx, f, prog); err != nil {
			fail(fmt.Errorf("%s: %w", f.path, err))
		}
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}

	// Pass 3: directories, deepest first (children have larger indexes).
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		dir, err := uio.NewDirectory(t.w, uio.WithCidBuilder(t.pfx))
		if err != nil {
			return nil, 0, err
		}
		slices.SortFunc(d.entries, func(a, b *treeEntry) int { return compareStrings(a.name, b.name) })
		for _, e := range d.entries {
			n := e.node
			if e.isDir {
				n = dirs[e.self].node
			}
			if err := dir.AddChild(ctx, e.name, n); err != nil {
				return nil, 0, fmt.Errorf("%s: %w", e.path, err)
			}
		}
		n, err := dir.GetNode()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", d.path, err)
		}
		if err := t.w.Add(ctx, n); err != nil {
			return nil, 0, err
		}
		d.node = n
	}
	return dirs[0].node, total, nil
}

type dirBuild struct {
	path    string
	name    string
	parent  int
	entries []*treeEntry
	node    ipld.Node
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (t *treeImporter) importEntry(ctx context.Context, te *treeEntry, prog *progress) error {
	if te.mode&fs.ModeSymlink != 0 {
		n, err := symlinkNode(te.path, t.pfx)
		if err != nil {
			return err
		}
		te.node = n
		return t.w.Add(ctx, n)
	}
	f, err := os.Open(te.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if te.size <= int64(t.chunk) {
		// One leaf: the file's root is the raw leaf itself, exactly what
		// the balanced layout makes of a one-chunk file.
		buf := make([]byte, te.size+1)
		n, err := io.ReadFull(f, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return err
		}
		if n <= t.chunk {
			prog.add(n)
			leaf, err := dag.NewRawNodeWPrefix(buf[:n:n], t.pfx)
			if err != nil {
				return err
			}
			te.node = leaf
			te.size = int64(n)
			return t.w.Add(ctx, leaf)
		}
		// The file grew meanwhile: fall through to a full import.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	n, size, err := importFile(ctx, t.w, f, t.chunk, t.pfx, prog)
	if err != nil {
		return err
	}
	te.node, te.size = n, size
	return nil
}
