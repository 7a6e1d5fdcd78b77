package folder

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	h "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/pcnode/pcnode/blobstore"
)

// A folder's files are the only copy of their content on the device (as
// boxo's filestore does it): the block store keeps a file's inner DAG
// nodes and, for each leaf, a reference (path, offset, size) into the
// file, which the store re-hashes whenever it reads it. A file that
// changes makes its references stale: the store reports the block
// missing and tells the folder, which rescans the file.

// dagPrefix is what blobstore.Import uses: CIDv1, dag-pb inner nodes, raw
// leaves, SHA2-256, so a folder file has the CID `pcnode add` gives it.
var dagPrefix = cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}

// refDAG is the DAGService the importer writes into: leaves become
// references at the running offset (boxo adds them in file order), inner
// nodes blocks.
type refDAG struct {
	path   string
	offset int64
	refs   []blobstore.Ref
	inner  []blocks.Block
}

func (d *refDAG) Add(_ context.Context, n ipld.Node) error {
	if n.Cid().Prefix().Codec == cid.Raw {
		size := len(n.RawData())
		d.refs = append(d.refs, blobstore.Ref{Cid: n.Cid(), Path: d.path, Offset: d.offset, Size: size})
		d.offset += int64(size)
		return nil
	}
	d.inner = append(d.inner, n)
	return nil
}

func (d *refDAG) AddMany(ctx context.Context, ns []ipld.Node) error {
	for _, n := range ns {
		if err := d.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (d *refDAG) Get(context.Context, cid.Cid) (ipld.Node, error) {
	return nil, fmt.Errorf("refDAG: get: %w", ipld.ErrNotFound{})
}

func (d *refDAG) GetMany(context.Context, []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption)
	close(ch)
	return ch
}

func (d *refDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (d *refDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

// importRefs builds r's UnixFS DAG (what blobstore.ImportReader builds)
// and returns its root, its size, the references of its leaves into path
// and its inner nodes. It stores nothing.
func importRefs(r io.Reader, path string) (cid.Cid, int64, []blobstore.Ref, []blocks.Block, error) {
	d := &refDAG{path: path}
	params := h.DagBuilderParams{
		Dagserv:    d,
		Maxlinks:   h.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: dagPrefix,
	}
	sp := &sumSplitter{r: r, chunk: blobstore.DefaultChunkSize}
	defer sp.close()
	params.CidBuilder = &sumBuilder{sp: sp, prefix: dagPrefix}
	db, err := params.New(sp)
	if err != nil {
		return cid.Undef, 0, nil, nil, err
	}
	n, err := balanced.Layout(db)
	if err != nil {
		return cid.Undef, 0, nil, nil, err
	}
	return n.Cid(), d.offset, d.refs, d.inner, nil
}

// leafRefs lists the references of the leaves of the file root into
// path, reading the inner nodes from the store. A raw root is one leaf.
func (f *Folder) leafRefs(ctx context.Context, root cid.Cid, size int64, path string) ([]blobstore.Ref, error) {
	if root.Prefix().Codec == cid.Raw {
		if size == 0 {
			return nil, nil
		}
		return []blobstore.Ref{{Cid: root, Path: path, Size: int(size)}}, nil
	}
	var out []blobstore.Ref
	var offset int64
	var walk func(c cid.Cid) error
	walk = func(c cid.Cid) error {
		if c.Prefix().Codec == cid.Raw {
			n, err := f.cfg.Store.GetSize(ctx, c)
			if err != nil {
				return err
			}
			out = append(out, blobstore.Ref{Cid: c, Path: path, Offset: offset, Size: n})
			offset += int64(n)
			return nil
		}
		b, err := f.cfg.Store.Get(ctx, c)
		if err != nil {
			return err
		}
		pn, err := merkledag.DecodeProtobuf(b.RawData())
		if err != nil {
			return err
		}
		fsn, err := unixfs.FSNodeFromBytes(pn.Data())
		if err != nil {
			return err
		}
		offset += int64(len(fsn.Data())) // data inline in an inner node (not made by our importer)
		for _, l := range pn.Links() {
			if err := walk(l.Cid); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	if offset != size {
		return nil, fmt.Errorf("leaves of %s cover %d bytes, file has %d", root, offset, size)
	}
	return out, nil
}

// referencePlaced makes the files just placed the only copy of their
// content: their leaves are referenced in place (durably), then the
// copies of the blocks this pull fetched are dropped. A crash in between
// leaves copies behind, which cost space but no correctness.
func (f *Folder) referencePlaced(ctx context.Context, placed []staged, fetched map[cid.Cid]bool) {
	var refs []blobstore.Ref
	var drop []cid.Cid
	for _, s := range placed {
		rs, err := f.leafRefs(ctx, s.a.want.CID, s.a.want.Size, s.dst)
		if err != nil {
			f.log.Warn("cannot reference file in place; its blocks stay in the store", "path", s.a.want.Path, "err", err)
			continue
		}
		refs = append(refs, rs...)
		if fetched[s.a.want.CID] {
			for _, r := range rs {
				drop = append(drop, r.Cid)
			}
		}
	}
	if err := f.cfg.Store.PutRefs(ctx, refs); err != nil {
		f.log.Warn("cannot reference files in place; their blocks stay in the store", "err", err)
		return
	}
	if err := f.cfg.Store.DeleteBlocks(ctx, drop); err != nil {
		f.log.Warn("cannot drop fetched copies", "err", err)
	}
}

// sumSplitter cuts a file into leaves as boxo's size splitter does, and
// hashes them SHA256Lanes at a time (blobstore.SumSHA256: 16 leaves in
// the AVX-512 lanes of one core, several times one stream's speed): the
// scan's cost for a large file is the hashing, and the copy out of the
// page cache. A file of more than one group is read ahead on a second
// goroutine, one group ahead of the hashing, into two sets of buffers
// used in turn (2 × 16 MiB): a 1 GiB file is scanned in about the time
// of the hashing alone, not of the read and the hashing one after the
// other.
type sumSplitter struct {
	r     io.Reader
	chunk int
	queue [][]byte
	cids  []cid.Cid
	last  []byte
	lastC cid.Cid
	eof   bool
	cur   *leafGroup // the group being consumed
	// the read-ahead, started with the second group
	ready chan *leafGroup
	free  chan [][]byte
	done  chan struct{}
	wg    sync.WaitGroup
}

// leafGroup is up to SHA256Lanes leaves read in one go, in bufs.
type leafGroup struct {
	bufs   [][]byte
	leaves [][]byte
	eof    bool
	err    error
}

func (sp *sumSplitter) Reader() io.Reader { return sp.r }

// NextBytes returns the next leaf, or io.EOF.
func (sp *sumSplitter) NextBytes() ([]byte, error) {
	if len(sp.queue) == 0 {
		if sp.eof {
			return nil, io.EOF
		}
		if err := sp.fill(); err != nil {
			return nil, err
		}
		if len(sp.queue) == 0 {
			return nil, io.EOF
		}
	}
	sp.last, sp.lastC = sp.queue[0], sp.cids[0]
	sp.queue, sp.cids = sp.queue[1:], sp.cids[1:]
	return sp.last, nil
}

// read reads up to lanes leaves into bufs (allocated where missing).
func (sp *sumSplitter) read(lanes int, bufs [][]byte) *leafGroup {
	g := &leafGroup{bufs: bufs}
	for i := 0; i < lanes; i++ {
		if i == len(g.bufs) {
			g.bufs = append(g.bufs, make([]byte, sp.chunk))
		}
		buf := g.bufs[i]
		n, err := io.ReadFull(sp.r, buf)
		if n > 0 {
			g.leaves = append(g.leaves, buf[:n:n])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			g.eof = true
			break
		}
		if err != nil {
			g.err = err
			break
		}
	}
	return g
}

// readAhead reads the groups after the first until the end of the file
// or close.
func (sp *sumSplitter) readAhead(lanes int) {
	defer sp.wg.Done()
	for {
		var bufs [][]byte
		select {
		case bufs = <-sp.free:
		case <-sp.done:
			return
		}
		g := sp.read(lanes, bufs)
		select {
		case sp.ready <- g:
		case <-sp.done:
			return
		}
		if g.eof || g.err != nil {
			return
		}
	}
}

// fill takes the next group of leaves and hashes it. The leaves of the
// group before are no longer used (the layout asks for the next leaf
// once it is done with the last): their buffers go to the read-ahead.
func (sp *sumSplitter) fill() error {
	lanes := max(blobstore.SHA256Lanes(), 1)
	var g *leafGroup
	if sp.ready == nil {
		g = sp.read(lanes, nil)
		if !g.eof && g.err == nil {
			sp.ready, sp.free, sp.done = make(chan *leafGroup), make(chan [][]byte, 2), make(chan struct{})
			sp.free <- nil // a second set of buffers, made by the read-ahead
			sp.wg.Add(1)
			go sp.readAhead(lanes)
		}
	} else {
		sp.free <- sp.cur.bufs
		g = <-sp.ready
	}
	sp.cur = g
	if g.err != nil {
		return g.err
	}
	sp.eof = g.eof
	sp.queue = g.leaves
	if len(sp.queue) == 0 {
		sp.cids = nil
		return nil
	}
	sums := blobstore.SumSHA256(sp.queue)
	sp.cids = make([]cid.Cid, len(sums))
	for i, sum := range sums {
		m, err := mh.Encode(sum[:], mh.SHA2_256)
		if err != nil {
			return err
		}
		sp.cids[i] = cid.NewCidV1(cid.Raw, m)
	}
	return nil
}

// close stops the read-ahead (an import that ends early) and waits for
// it, so that the reader is not read after the import returns.
func (sp *sumSplitter) close() {
	if sp.done != nil {
		close(sp.done)
		sp.wg.Wait()
		sp.done = nil
	}
}

// sumBuilder is the cid.Builder of the layout: the leaf NextBytes just
// returned (the same bytes in memory) gets the CID computed with its
// group; anything else is hashed here.
type sumBuilder struct {
	sp     *sumSplitter
	prefix cid.Prefix
}

func (b *sumBuilder) Sum(data []byte) (cid.Cid, error) {
	last := b.sp.last
	if b.prefix.Codec == cid.Raw && b.prefix.MhType == mh.SHA2_256 && len(data) > 0 && len(data) == len(last) && &data[0] == &last[0] {
		return b.sp.lastC, nil
	}
	return b.prefix.Sum(data)
}

func (b *sumBuilder) GetCodec() uint64 { return b.prefix.Codec }

func (b *sumBuilder) WithCodec(c uint64) cid.Builder {
	return &sumBuilder{sp: b.sp, prefix: b.prefix.WithCodec(c).(cid.Prefix)}
}
