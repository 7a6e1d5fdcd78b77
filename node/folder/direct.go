package folder

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sys/unix"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/p2p"
)

// A file of more than one block is fetched over the members' DAG stream
// (p2p.FetchDAGs) straight into the file being made: each leaf is
// verified against its CID on receipt (by p2p) and written at its offset
// in a partial file, <root>/.pcnode/partial/<root CID>; it never enters
// the block store. Only the file's inner nodes (a few hundred bytes per
// MiB) are stored, durably, as they arrive. The leaves written are
// referenced in the partial (blobstore AddRefs), so an interrupted fetch
// resumes: the DAG stream asks only for what the store lacks, and what
// the partial already holds is re-hashed before it is trusted (a crash may
// have lost unsynced pages). The complete partial is then staged like any
// other file: its mode and mtime set, made durable by the batch's syncfs,
// renamed into place, its leaves referenced at the real path.
//
// Where the DAG stream is refused (a peer that does not serve it to this
// device) or fails, the file is fetched by bitswap into the store and
// copied, as before.

// partialDir holds partial files, under the folder's state directory in
// its root: the scan skips it, so a partial survives a restart.
const partialDir = "partial"

// partialMaxAge: a partial file untouched for this long belongs to a
// version nobody wants any more; the periodic prune removes it.
const partialMaxAge = 24 * time.Hour

// partial is a file being fetched into place.
type partial struct {
	a       action
	path    string
	fd      *os.File
	dfd     *os.File // the same file with O_DIRECT, for aligned leaves (nil where refused)
	old     int64    // size of the partial found at the start (a resumed fetch)
	written int64    // bytes of the file written or found intact
}

func (p *partial) complete() bool { return p.written == p.a.want.Size }

// directAlign is what O_DIRECT asks of offsets, lengths and buffers
// (4096 covers disks of 512-byte and 4 KiB sectors).
const directAlign = 4096

// writeAt writes a leaf at off. Whole leaves (1 MiB at a multiple of
// 1 MiB, in buffers Go allocates page aligned) go to the disk with
// O_DIRECT, without the copy into the page cache that costs about 1.2
// CPU-s per GiB on the machine of docs/STORAGE.md (as blobstore's
// StagedFile and large blocks do); the rest, and everything on a file
// system that refuses O_DIRECT, through the page cache. The batch's
// sync before the rename makes both durable.
func (p *partial) writeAt(data []byte, off int64) error {
	if p.dfd != nil && len(data) > 0 && off%directAlign == 0 && len(data)%directAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(data)))%directAlign == 0 {
		_, err := p.dfd.WriteAt(data, off)
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		p.dfd.Close() // refused after all: the page cache from now on
		p.dfd = nil
	}
	_, err := p.fd.WriteAt(data, off)
	return err
}

// close closes the partial's descriptors.
func (p *partial) close() error {
	if p.dfd != nil {
		p.dfd.Close()
		p.dfd = nil
	}
	return p.fd.Close()
}

// slot is where one occurrence of a block's data goes: off in p's file;
// size is the data size the parent declares for it (-1 for a root).
type slot struct {
	p    *partial
	off  int64
	size int64
}

// innerNode is what a file's inner node says of its children.
type innerNode struct {
	inline []byte
	kids   []cid.Cid
	sizes  []uint64
}

func parseInner(c cid.Cid, data []byte) (*innerNode, error) {
	pn, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return nil, fmt.Errorf("inner node %s: %w", c, err)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nil, fmt.Errorf("inner node %s: %w", c, err)
	}
	ls := pn.Links()
	if fsn.NumChildren() != len(ls) {
		return nil, fmt.Errorf("inner node %s: %d links, %d block sizes", c, len(ls), fsn.NumChildren())
	}
	n := &innerNode{inline: fsn.Data(), sizes: fsn.BlockSizes()}
	for _, l := range ls {
		n.kids = append(n.kids, l.Cid)
	}
	return n, nil
}

// directSink places the blocks of one or more files: it is the
// p2p.BlockSink of a DAG stream, and it also places what is local.
type directSink struct {
	f        *Folder
	waiting  map[string][]slot     // block key → slots still to fill
	inner    map[string]*innerNode // inner nodes seen, to expand a repeat
	leafAt   map[string]slot       // a filled slot of each leaf seen
	refs     []blobstore.Ref
	progress func()
	parts    []*partial
	kept     int64 // bytes found intact in partial files (a resumed fetch)
}

func newDirectSink(f *Folder) *directSink {
	return &directSink{f: f, waiting: map[string][]slot{}, inner: map[string]*innerNode{}, leafAt: map[string]slot{}}
}

// want registers the slot s for block c, filling it at once where the
// block was seen already.
func (d *directSink) want(c cid.Cid, s slot) error {
	if s.size > s.p.a.want.Size-s.off {
		return fmt.Errorf("%w: block %s at %d+%d is past the end of a file of %d bytes", p2p.ErrDAGCorrupt, c, s.off, s.size, s.p.a.want.Size)
	}
	k := c.KeyString()
	if n := d.inner[k]; n != nil {
		return d.expand(n, s)
	}
	if from, ok := d.leafAt[k]; ok {
		buf := make([]byte, from.size)
		if _, err := from.p.fd.ReadAt(buf, from.off); err != nil {
			return err
		}
		return d.fill(c, s, buf)
	}
	d.waiting[k] = append(d.waiting[k], s)
	return nil
}

// expand registers the children of inner node n placed at s.
func (d *directSink) expand(n *innerNode, s slot) error {
	off := s.off
	if len(n.inline) > 0 {
		if _, err := s.p.fd.WriteAt(n.inline, off); err != nil {
			return err
		}
		s.p.written += int64(len(n.inline))
		off += int64(len(n.inline))
	}
	var total int64
	for i, k := range n.kids {
		if n.sizes[i] > uint64(s.p.a.want.Size) {
			return fmt.Errorf("%w: a child of %d bytes in a file of %d", p2p.ErrDAGCorrupt, n.sizes[i], s.p.a.want.Size)
		}
		if err := d.want(k, slot{p: s.p, off: off, size: int64(n.sizes[i])}); err != nil {
			return err
		}
		off += int64(n.sizes[i])
		total += int64(n.sizes[i])
	}
	if s.size >= 0 && total+int64(len(n.inline)) != s.size {
		return fmt.Errorf("%w: a node's parent declares %d bytes, its children %d", p2p.ErrDAGCorrupt, s.size, total+int64(len(n.inline)))
	}
	return nil
}

// fill writes a leaf's data at s and records its reference.
func (d *directSink) fill(c cid.Cid, s slot, data []byte) error {
	if s.size >= 0 && int64(len(data)) != s.size {
		return fmt.Errorf("%w: leaf %s has %d bytes, its parent says %d", p2p.ErrDAGCorrupt, c, len(data), s.size)
	}
	if err := s.p.writeAt(data, s.off); err != nil {
		return err
	}
	s.p.written += int64(len(data))
	d.leafAt[c.KeyString()] = s
	if len(data) > 0 {
		d.refs = append(d.refs, blobstore.Ref{Cid: c, Path: s.p.path, Offset: s.off, Size: len(data)})
	}
	return nil
}

// arrive places block b (verified) in every slot waiting for it.
func (d *directSink) arrive(b blocks.Block) error {
	c := b.Cid()
	k := c.KeyString()
	slots := d.waiting[k]
	delete(d.waiting, k)
	switch c.Prefix().Codec {
	case cid.DagProtobuf:
		n, err := parseInner(c, b.RawData())
		if err != nil {
			return fmt.Errorf("%w: %w", p2p.ErrDAGCorrupt, err)
		}
		d.inner[k] = n
		for _, s := range slots {
			if err := d.expand(n, s); err != nil {
				return err
			}
		}
	case cid.Raw:
		for _, s := range slots {
			if err := d.fill(c, s, b.RawData()); err != nil {
				return err
			}
		}
	default:
		if len(slots) > 0 {
			return fmt.Errorf("%w: block %s of a file is neither dag-pb nor raw", p2p.ErrDAGCorrupt, c)
		}
	}
	return nil
}

// PutMany is the p2p.BlockSink: blocks arrive verified, in stream order.
// The batch's inner nodes are stored before any of its leaves is
// written, so that a partial file holding data always has its layout
// stored (a restart resumes it).
func (d *directSink) PutMany(ctx context.Context, bs []blocks.Block) error {
	var inner []blocks.Block
	for _, b := range bs {
		if b.Cid().Prefix().Codec == cid.DagProtobuf {
			inner = append(inner, b)
		}
	}
	if len(inner) > 0 {
		if err := d.f.cfg.Store.PutMany(ctx, inner); err != nil {
			return err
		}
	}
	for _, b := range bs {
		if err := d.arrive(b); err != nil {
			return err
		}
	}
	if d.progress != nil {
		d.progress()
	}
	// Start writing back what this batch wrote, so that the disk works
	// while the network does: the sync before the rename then waits for
	// little (a 1 GiB file: ~2 s of syncfs otherwise).
	for _, pt := range d.parts {
		_ = unix.SyncFileRange(int(pt.fd.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return d.flush(ctx)
}

// StreamRead makes the DAG stream's every read count as progress (see
// p2p.ProgressSink): a slow stream is not taken for a stalled one.
func (d *directSink) StreamRead(int) {
	if d.progress != nil {
		d.progress()
	}
}

// flush records the leaves written (not durably: a lost reference only
// costs a refetch).
func (d *directSink) flush(ctx context.Context) error {
	if len(d.refs) > 0 {
		if err := d.f.cfg.Store.AddRefs(ctx, d.refs); err != nil {
			return err
		}
		d.refs = nil
	}
	return nil
}

// local places what the device already has: inner nodes in the store,
// leaves the partial already holds intact (a resumed fetch), leaves the
// store can give (a stored block, or a reference into another file). A
// stale reference met on the way is dropped by the store, so the DAG
// stream then asks for that block.
func (d *directSink) local(ctx context.Context) error {
	for progress := true; progress; {
		progress = false
		for k, slots := range d.waiting {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c, err := cid.Cast([]byte(k))
			if err != nil {
				return err
			}
			if c.Prefix().Codec == cid.Raw {
				left, err := d.localLeaf(ctx, c, slots)
				if err != nil {
					return err
				}
				if len(left) == 0 {
					delete(d.waiting, k)
				} else {
					d.waiting[k] = left
				}
				progress = progress || len(left) < len(slots)
				continue
			}
			b, err := d.f.cfg.Store.Get(ctx, c)
			if err != nil {
				continue // fetched
			}
			if err := d.arrive(b); err != nil {
				return err
			}
			progress = true
		}
	}
	return d.flush(ctx)
}

// localLeaf fills the slots of leaf c that can be filled locally and
// returns the others.
func (d *directSink) localLeaf(ctx context.Context, c cid.Cid, slots []slot) ([]slot, error) {
	var data []byte
	var left []slot
	for _, s := range slots {
		if s.off+s.size <= s.p.old && s.size >= 0 {
			buf := make([]byte, s.size)
			if _, err := s.p.fd.ReadAt(buf, s.off); err == nil {
				if got, err := c.Prefix().Sum(buf); err == nil && got.Equals(c) {
					s.p.written += s.size
					d.kept += s.size
					d.leafAt[c.KeyString()] = s
					d.refs = append(d.refs, blobstore.Ref{Cid: c, Path: s.p.path, Offset: s.off, Size: int(s.size)})
					data = buf
					continue
				}
			}
		}
		left = append(left, s)
	}
	if len(left) == 0 {
		return nil, nil
	}
	if data == nil {
		b, err := d.f.cfg.Store.Get(ctx, c)
		if err != nil {
			return left, nil // fetched
		}
		data = b.RawData()
	}
	for _, s := range left {
		if err := d.fill(c, s, data); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// partials tracks the partial files in use, so that two batches (one
// being written while the next is fetched) never share one.
type partials struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (f *Folder) partialPath(c cid.Cid) string {
	return filepath.Join(f.root, stateDir, partialDir, c.String())
}

// openPartial opens (or creates) the partial file of a and claims it; nil
// when another batch holds it.
func (f *Folder) openPartial(a action) (*partial, error) {
	p := f.partialPath(a.want.CID)
	f.parts.mu.Lock()
	if f.parts.busy == nil {
		f.parts.busy = map[string]bool{}
	}
	if f.parts.busy[p] {
		f.parts.mu.Unlock()
		return nil, nil
	}
	f.parts.busy[p] = true
	f.parts.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		f.releasePartial(p)
		return nil, err
	}
	fd, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		f.releasePartial(p)
		return nil, err
	}
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		f.releasePartial(p)
		return nil, err
	}
	pt := &partial{a: a, path: p, fd: fd, old: fi.Size()}
	if dfd, err := os.OpenFile(p, os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		pt.dfd = dfd
	}
	return pt, nil
}

func (f *Folder) releasePartial(p string) {
	f.parts.mu.Lock()
	delete(f.parts.busy, p)
	f.parts.mu.Unlock()
}

// dagPeers lists the connected members whose own index has c at rel:
// they hold the content.
func (f *Folder) dagPeers(rel string, c cid.Cid) []peer.ID {
	if f.cfg.Host == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []peer.ID
	for _, rm := range f.x.remotes {
		e := rm.entries[rel]
		if e == nil || e.Deleted || !e.CID.Equals(c) || !f.cfg.Members(rm.peer) {
			continue
		}
		if f.cfg.Host.Network().Connectedness(rm.peer) == network.Connected {
			out = append(out, rm.peer)
		}
	}
	return out
}

// fetchDirect fetches the multi-block files of as into partial files over
// the DAG stream. It returns the complete partials by path (rel) and the
// actions it could not complete (to fetch by bitswap). Partials not
// complete are closed and released.
func (f *Folder) fetchDirect(ctx context.Context, as []action, progress func()) (map[string]*partial, []action) {
	done := map[string]*partial{}
	var rest []action
	byPeer := map[peer.ID][]*partial{}
	var order []peer.ID
	seen := map[cid.Cid]bool{}
	for _, a := range as {
		ps := f.dagPeers(a.want.Path, a.want.CID)
		if len(ps) == 0 || seen[a.want.CID] {
			rest = append(rest, a) // no peer; or a second file of the same content, copied from the first's references
			continue
		}
		pt, err := f.openPartial(a)
		if err != nil || pt == nil {
			if err != nil {
				f.log.Debug("no partial file; fetching by bitswap", "path", a.want.Path, "err", err)
			}
			rest = append(rest, a)
			continue
		}
		seen[a.want.CID] = true
		if _, ok := byPeer[ps[0]]; !ok {
			order = append(order, ps[0])
		}
		byPeer[ps[0]] = append(byPeer[ps[0]], pt)
	}
	for _, p := range order {
		pts := byPeer[p]
		err := f.fetchInto(ctx, p, pts, progress)
		for _, pt := range pts {
			if err == nil && !pt.complete() {
				err = fmt.Errorf("%w: %s has %d of %d bytes", p2p.ErrDAGIncomplete, pt.a.want.Path, pt.written, pt.a.want.Size)
			}
			if err == nil {
				err = pt.fd.Truncate(pt.a.want.Size)
			}
			if cerr := pt.close(); err == nil {
				err = cerr
			}
			if err != nil {
				f.log.Debug("dag stream fetch failed; fetching by bitswap", "path", pt.a.want.Path, "peer", p, "err", err)
				f.releasePartial(pt.path)
				rest = append(rest, pt.a)
				continue
			}
			done[pt.a.want.Path] = pt
		}
	}
	return done, rest
}

// fetchInto fills pts from what is local, then from peer p over one DAG
// stream.
func (f *Folder) fetchInto(ctx context.Context, p peer.ID, pts []*partial, progress func()) error {
	d := newDirectSink(f)
	d.progress = progress
	d.parts = pts
	var roots []cid.Cid
	for _, pt := range pts {
		pt.written = 0
		if err := d.want(pt.a.want.CID, slot{p: pt, off: 0, size: pt.a.want.Size}); err != nil {
			return err
		}
		roots = append(roots, pt.a.want.CID)
	}
	if err := d.local(ctx); err != nil {
		return err
	}
	if len(d.waiting) == 0 {
		return nil
	}
	st, err := p2p.FetchDAGs(ctx, f.cfg.Host, f.cfg.Store, p, roots, d)
	f.streamed.Add(st.Bytes)
	f.log.Debug("dag stream", "peer", p, "files", len(pts), "blocks", st.Blocks, "bytes", st.Bytes, "err", err)
	if d.kept > 0 {
		f.log.Info("resumed fetch", "files", len(pts), "kept", d.kept, "received", st.Bytes, "err", err)
	}
	if err != nil {
		// The leaves written before a cut or a stall are referenced, so
		// that a fetch by bitswap in its place does not bring them
		// again (a later DAG stream finds them in the partial anyway).
		_ = d.flush(context.WithoutCancel(ctx))
		return err
	}
	return d.flush(ctx)
}

// stagePartial stages a complete partial file: its mode and mtime set,
// ready for the batch's sync and its rename into place. A partial on
// another file system than its destination is copied instead (ok false).
func (f *Folder) stagePartial(pt *partial, dirs *dirCache) (staged, bool, error) {
	dst := f.abs(pt.a.want.Path)
	if err := dirs.ensure(filepath.Dir(dst)); err != nil {
		return staged{}, false, err
	}
	if !sameDevice(filepath.Dir(dst), pt.path) {
		return staged{}, false, nil
	}
	if err := os.Chmod(pt.path, fs.FileMode(pt.a.want.Mode)); err != nil {
		return staged{}, false, err
	}
	mt := time.Unix(0, pt.a.want.MTime)
	if err := os.Chtimes(pt.path, mt, mt); err != nil {
		return staged{}, false, err
	}
	fi, err := os.Lstat(pt.path)
	if err != nil {
		return staged{}, false, err
	}
	if fi.Size() != pt.a.want.Size {
		return staged{}, false, fmt.Errorf("partial of %s is %d bytes, index says %d", pt.a.want.Path, fi.Size(), pt.a.want.Size)
	}
	return staged{a: pt.a, tmp: pt.path, dst: dst, st: statOf(fi), partial: true}, true, nil
}

// prunePartials removes partial files nobody has written for
// partialMaxAge and that no batch holds.
func (f *Folder) prunePartials() {
	dir := filepath.Join(f.root, stateDir, partialDir)
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < partialMaxAge {
			continue
		}
		f.parts.mu.Lock()
		busy := f.parts.busy[p]
		f.parts.mu.Unlock()
		if !busy {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				f.log.Debug("remove partial", "path", p, "err", err)
			}
		}
	}
}

// sameDevice reports whether paths a and b are on one file system (a
// rename between them works).
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// smallSink stages single-block files as their blocks arrive over the
// DAG stream: each block (verified by p2p) is written to a temporary
// file next to every destination that wants it. The writing is done by
// stageWorkers goroutines, each directory by one of them (see stageAll).
type smallSink struct {
	f        *Folder
	want     map[string][]action // block key → files of that content
	jobs     []chan smallJob
	dirs     *dirCache
	progress func()
	wg       sync.WaitGroup
	mu       sync.Mutex
	staged   map[string]staged
}

type smallJob struct {
	a    action
	data []byte
}

func (s *smallSink) start() {
	for i := range s.jobs {
		s.jobs[i] = make(chan smallJob, 64)
		s.wg.Add(1)
		go func(jobs chan smallJob) {
			defer s.wg.Done()
			for j := range jobs {
				st, err := s.f.stageWith(j.a, s.dirs, func(w io.Writer) (int64, error) {
					n, err := w.Write(j.data)
					return int64(n), err
				})
				if err != nil {
					s.f.log.Debug("stage from dag stream", "path", j.a.want.Path, "err", err)
					continue // fetched again by bitswap
				}
				s.mu.Lock()
				s.staged[j.a.want.Path] = st
				s.mu.Unlock()
			}
		}(s.jobs[i])
	}
}

// PutMany is the p2p.BlockSink.
func (s *smallSink) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		k := b.Cid().KeyString()
		for _, a := range s.want[k] {
			h := fnv.New32a()
			_, _ = h.Write([]byte(path.Dir(a.want.Path)))
			select {
			case s.jobs[int(h.Sum32())%len(s.jobs)] <- smallJob{a: a, data: b.RawData()}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		delete(s.want, k)
	}
	if s.progress != nil {
		s.progress()
	}
	return nil
}

// StreamRead: see directSink.StreamRead.
func (s *smallSink) StreamRead(int) {
	if s.progress != nil {
		s.progress()
	}
}

var (
	_ p2p.ProgressSink = (*directSink)(nil)
	_ p2p.ProgressSink = (*smallSink)(nil)
)

func (s *smallSink) stop() {
	for _, j := range s.jobs {
		close(j)
	}
	s.wg.Wait()
}

// fetchSmall stages the single-block files of as from the DAG stream of
// a member that has them, into out (by path), and returns the actions
// it did not stage.
func (f *Folder) fetchSmall(ctx context.Context, as []action, out map[string]staged, progress func()) []action {
	byPeer := map[peer.ID][]action{}
	var order []peer.ID
	var rest []action
	for _, a := range as {
		ps := f.dagPeers(a.want.Path, a.want.CID)
		if len(ps) == 0 {
			rest = append(rest, a)
			continue
		}
		if _, ok := byPeer[ps[0]]; !ok {
			order = append(order, ps[0])
		}
		byPeer[ps[0]] = append(byPeer[ps[0]], a)
	}
	for _, p := range order {
		acts := byPeer[p]
		s := &smallSink{f: f, want: map[string][]action{}, jobs: make([]chan smallJob, stageWorkers),
			dirs: &dirCache{made: map[string]bool{}}, progress: progress, staged: map[string]staged{}}
		var roots []cid.Cid
		for _, a := range acts {
			k := a.want.CID.KeyString()
			if _, ok := s.want[k]; !ok {
				roots = append(roots, a.want.CID)
			}
			s.want[k] = append(s.want[k], a)
		}
		s.start()
		st, err := p2p.FetchDAGs(ctx, f.cfg.Host, f.cfg.Store, p, roots, s)
		s.stop()
		f.streamed.Add(st.Bytes)
		f.log.Debug("dag stream (small files)", "peer", p, "files", len(acts), "blocks", st.Blocks, "bytes", st.Bytes, "staged", len(s.staged), "err", err)
		for _, a := range acts {
			if x, ok := s.staged[a.want.Path]; ok {
				out[a.want.Path] = x
			} else {
				rest = append(rest, a)
			}
		}
	}
	return rest
}
