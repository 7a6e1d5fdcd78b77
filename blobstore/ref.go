package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	mh "github.com/multiformats/go-multihash"
)

// Blocks referenced in place (boxo's filestore idea, written for this
// store): a block whose bytes already sit in a file the user keeps (a
// synced folder's file) is stored as a reference — path, offset, size —
// instead of a second copy. Get reads the bytes from the file and
// re-hashes them: a file that changed since never serves wrong bytes; the
// block is then missing, the stale reference is dropped and the stale-ref
// watchers are told the path, so its owner can rescan it.
//
// One exception, as for stored blocks (trust.go): a place recorded by
// this process within trustFor with the file's state (Ref.State: device,
// inode, size, modification and change time, taken before the bytes were
// hashed) is read without hashing while the open file is still in that
// state. A folder's new large file is hashed by the scan and then read
// by each device that fetches it within minutes; that is what the trust
// saves. A receiver verifies every block it gets anyway.
//
// References live in the meta database under /refs/<multihash>, up to
// maxRefLocations places each (the same content in several files). They
// are not blocks: AllKeysChan, Stat, GC's sweep and Verify see only stored
// blocks, and DeleteBlock leaves references alone; GC's mark reads
// through them like any block.

var refsPrefix = ds.NewKey("/refs")

// maxRefLocations bounds the places remembered for one block: enough for
// a few copies of a file, bounded so that a folder of many equal files
// (empty-ish templates) does not grow one record without end.
const maxRefLocations = 8

// Ref locates the data of the block Cid: Size bytes at Offset in the file
// at Path (absolute).
type Ref struct {
	Cid    cid.Cid
	Path   string
	Offset int64
	Size   int
	// State, if not nil, is the file's state (StateOf) under which the
	// caller hashed the bytes: reads within trustFor that find the file
	// in it do not hash them again.
	State *FileState
}

// refLoc is one place of a block.
type refLoc struct {
	path   string
	offset int64
	size   int
}

// placeState is a trusted place: the block lies at loc while its file is
// in state.
type placeState struct {
	loc   refLoc
	state FileState
}

func refKey(mhKey ds.Key) ds.Key { return refsPrefix.Child(mhKey) }

// encodeRefLocs is the record: for each place uvarint offset, uvarint
// size, uvarint len(path), path.
func encodeRefLocs(locs []refLoc) []byte {
	var out []byte
	for _, l := range locs {
		out = binary.AppendUvarint(out, uint64(l.offset))
		out = binary.AppendUvarint(out, uint64(l.size))
		out = binary.AppendUvarint(out, uint64(len(l.path)))
		out = append(out, l.path...)
	}
	return out
}

var errBadRef = errors.New("bad reference record")

// decodeRefLocs parses a record of encodeRefLocs.
func decodeRefLocs(b []byte) ([]refLoc, error) {
	var locs []refLoc
	for len(b) > 0 {
		if len(locs) == maxRefLocations {
			return nil, errBadRef
		}
		off, n := binary.Uvarint(b)
		if n <= 0 || off > 1<<62 {
			return nil, errBadRef
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(MaxChunkSize) {
			return nil, errBadRef
		}
		b = b[n:]
		pl, n := binary.Uvarint(b)
		if n <= 0 || pl == 0 || pl > uint64(len(b)-n) {
			return nil, errBadRef
		}
		b = b[n:]
		locs = append(locs, refLoc{path: string(b[:pl]), offset: int64(off), size: int(size)})
		b = b[pl:]
	}
	return locs, nil
}

// refBlocks is the block datastore with references behind it: what the
// inner datastore lacks is looked up among the references.
type refBlocks struct {
	ds.Batching
	s  *Store
	mu sync.Mutex // serializes read-modify-write of reference records

	wmu      sync.Mutex
	watchers map[int]func(path string)
	nextW    int

	trust *trustSet[placeState] // places hashed recently, see the top
}

// withRefs wraps the store's block datastore; Open calls it.
func (s *Store) withRefs() {
	s.blocks = &refBlocks{Batching: s.blocks, s: s, trust: newTrustSet[placeState]()}
}

// trustedAt reports whether the block k, just read from l in the open
// file fd, needs no hashing: l was recorded with the file's state within
// trustFor and the file is in that state now, after the read.
func (r *refBlocks) trustedAt(k ds.Key, l refLoc, fd *os.File) bool {
	ps, ok := r.trust.get(k.String())
	if !ok || ps.loc != l {
		return false
	}
	cur, ok := currentState(fd)
	return ok && cur == ps.state
}

func (r *refBlocks) locs(ctx context.Context, k ds.Key) ([]refLoc, error) {
	v, err := r.s.meta.Get(ctx, refKey(k))
	if err != nil {
		return nil, err
	}
	return decodeRefLocs(v)
}

func (r *refBlocks) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	v, err := r.Batching.Get(ctx, k)
	if !errors.Is(err, ds.ErrNotFound) {
		return v, err
	}
	return r.getRef(ctx, k)
}

// getRef reads and verifies the block k from its places, dropping those
// that no longer hold it.
func (r *refBlocks) getRef(ctx context.Context, k ds.Key) ([]byte, error) {
	locs, err := r.locs(ctx, k)
	if err != nil {
		if errors.Is(err, errBadRef) {
			return nil, ds.ErrNotFound
		}
		return nil, err
	}
	want, err := dshelp.DsKeyToMultihash(k)
	if err != nil {
		return nil, ds.ErrNotFound
	}
	dec, err := mh.Decode(want)
	if err != nil {
		return nil, ds.ErrNotFound
	}
	var stale []refLoc
	defer func() {
		if len(stale) > 0 {
			r.dropStale(context.WithoutCancel(ctx), k, stale)
		}
	}()
	for _, l := range locs {
		data, trusted, err := r.readAt(k, l)
		if err == nil && trusted {
			return data, nil
		}
		if err == nil {
			got, herr := mh.Sum(data, dec.Code, dec.Length)
			if herr == nil && string(got) == string(want) {
				return data, nil
			}
		}
		stale = append(stale, l)
	}
	return nil, ds.ErrNotFound
}

// readMany reads the blocks cs[i], for i in idx (blocks the store lacks),
// from their references into datas, and reports which entries it filled.
// A DAG stream's sender reads a file's leaves this way, 16 at a time: each
// block's first place is read without a check, reusing one open file for
// the places in the same file, into buf(size); then all are verified
// together (SHA-256 16 at a time, see SumSHA256), so a sender is not
// bound by one core's rate of hashing one leaf after another. A block
// whose bytes do not match (the file was edited, truncated, replaced) or
// could not be read goes through getRef, the path of Get: every place is
// tried and verified on its own, those that no longer hold the block are
// dropped and reported, and the block is missing (nil) if none does. So
// datas never holds bytes that do not hash to their CID. A nil r (no
// references) reads nothing. The one exception to verifying: a trusted
// place (trustedAt, see the top) is read without hashing.
func (r *refBlocks) readMany(ctx context.Context, cs []cid.Cid, idx []int, datas [][]byte, buf func(size int) []byte) ([]bool, error) {
	if r == nil || len(idx) == 0 {
		return nil, nil
	}
	filled := make([]bool, len(cs))
	files := map[string]*os.File{}
	defer func() {
		for _, fd := range files {
			fd.Close()
		}
	}()
	var slow []int // to read and verify place by place (getRef)
	var sha []int  // read, to verify together
	// verify classifies a block read at its first place.
	verify := func(i int, data []byte) {
		if h := cs[i].Hash(); len(h) == 2+sha256.Size && h[0] == mh.SHA2_256 && h[1] == sha256.Size {
			datas[i] = data
			sha = append(sha, i)
			return
		}
		if hashMatches(blockKey(cs[i]).String(), data) {
			datas[i], filled[i] = data, true
			return
		}
		slow = append(slow, i)
	}
	// Trusted places, by file: their file's state is read once after
	// all its blocks were read, so that a change during the reads shows.
	type trustedRead struct {
		i    int
		data []byte
		want FileState
	}
	trusted := map[*os.File][]trustedRead{}
	for _, i := range idx {
		k := blockKey(cs[i])
		locs, err := r.locs(ctx, k)
		if errors.Is(err, ds.ErrNotFound) || errors.Is(err, errBadRef) || (err == nil && len(locs) == 0) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: get %s: %w", cs[i], err)
		}
		l := locs[0]
		fd, ok := files[l.path]
		if !ok {
			if fd, err = os.Open(l.path); err != nil {
				slow = append(slow, i)
				continue
			}
			files[l.path] = fd
		}
		data := buf(l.size)
		if _, err := fd.ReadAt(data, l.offset); err != nil && !(errors.Is(err, io.EOF) && l.size == 0) {
			slow = append(slow, i)
			continue
		}
		if ps, ok := r.trust.get(k.String()); ok && ps.loc == l {
			trusted[fd] = append(trusted[fd], trustedRead{i: i, data: data, want: ps.state})
			continue
		}
		verify(i, data)
	}
	for fd, reads := range trusted {
		cur, ok := currentState(fd)
		for _, t := range reads {
			if ok && cur == t.want {
				datas[t.i], filled[t.i] = t.data, true
			} else {
				verify(t.i, t.data)
			}
		}
	}
	if len(sha) > 0 {
		bufs := make([][]byte, len(sha))
		for j, i := range sha {
			bufs[j] = datas[i]
		}
		for j, sum := range sumSHA256(bufs) {
			i := sha[j]
			if string(cs[i].Hash()[2:]) == string(sum[:]) {
				filled[i] = true
				continue
			}
			datas[i] = nil
			slow = append(slow, i)
		}
	}
	for _, i := range slow {
		data, err := r.getRef(ctx, blockKey(cs[i]))
		if errors.Is(err, ds.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: get %s: %w", cs[i], err)
		}
		datas[i], filled[i] = data, true
	}
	return filled, nil
}

// readAt reads the block k at l and reports whether the place is trusted
// (trustedAt), so that its bytes need no hashing.
func (r *refBlocks) readAt(k ds.Key, l refLoc) ([]byte, bool, error) {
	fd, err := os.Open(l.path)
	if err != nil {
		return nil, false, err
	}
	defer fd.Close()
	data := make([]byte, l.size)
	if _, err := fd.ReadAt(data, l.offset); err != nil && !(errors.Is(err, io.EOF) && l.size == 0) {
		return nil, false, err
	}
	return data, r.trustedAt(k, l, fd), nil
}

// dropStale removes places that failed verification and tells watchers.
func (r *refBlocks) dropStale(ctx context.Context, k ds.Key, stale []refLoc) {
	r.mu.Lock()
	locs, err := r.locs(ctx, k)
	if err == nil {
		keep := locs[:0]
		for _, l := range locs {
			bad := false
			for _, s := range stale {
				bad = bad || l == s
			}
			if !bad {
				keep = append(keep, l)
			}
		}
		if len(keep) == 0 {
			err = r.s.meta.Delete(ctx, refKey(k))
		} else {
			err = r.s.meta.Put(ctx, refKey(k), encodeRefLocs(keep))
		}
	}
	r.mu.Unlock()
	r.trust.del(k.String())
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		r.s.log.Warn("blobstore: dropping stale reference", "key", k, "err", err)
	}
	r.wmu.Lock()
	fns := make([]func(string), 0, len(r.watchers))
	for _, fn := range r.watchers {
		fns = append(fns, fn)
	}
	r.wmu.Unlock()
	for _, l := range stale {
		r.s.log.Debug("blobstore: stale reference", "path", l.path, "offset", l.offset)
		for _, fn := range fns {
			fn(l.path)
		}
	}
}

func (r *refBlocks) Has(ctx context.Context, k ds.Key) (bool, error) {
	ok, err := r.Batching.Has(ctx, k)
	if err != nil || ok {
		return ok, err
	}
	return r.s.meta.Has(ctx, refKey(k))
}

func (r *refBlocks) GetSize(ctx context.Context, k ds.Key) (int, error) {
	n, err := r.Batching.GetSize(ctx, k)
	if !errors.Is(err, ds.ErrNotFound) {
		return n, err
	}
	locs, err := r.locs(ctx, k)
	if err != nil || len(locs) == 0 {
		return -1, ds.ErrNotFound
	}
	return locs[0].size, nil
}

// Query lists stored blocks only (see the comment at the top).
func (r *refBlocks) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	return r.Batching.Query(ctx, q)
}

// PutRefs records where the blocks' data lies, durably (unless
// Config.NoSync). The caller vouches that each place holds the block's
// bytes now; reads verify them, except for a place given with its file's
// State, within trustFor (see the top). A place already recorded for a
// block is not added twice; past maxRefLocations the oldest is forgotten.
func (s *Store) PutRefs(ctx context.Context, refs []Ref) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	r, ok := s.blocks.(*refBlocks)
	if !ok {
		return errors.New("blobstore: put refs: references not enabled")
	}
	if len(refs) == 0 {
		return nil
	}
	r.mu.Lock()
	err := r.putRefs(ctx, refs)
	r.mu.Unlock()
	if err == nil {
		err = s.syncMetaNow(ctx)
	}
	if err != nil {
		return fmt.Errorf("blobstore: put refs (%d): %w", len(refs), err)
	}
	return nil
}

// AddRefs is PutRefs without waiting for durability: for references
// whose loss in a crash costs only availability (another place of the
// same content).
func (s *Store) AddRefs(ctx context.Context, refs []Ref) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	r, ok := s.blocks.(*refBlocks)
	if !ok {
		return errors.New("blobstore: add refs: references not enabled")
	}
	r.mu.Lock()
	err := r.putRefs(ctx, refs)
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("blobstore: add refs (%d): %w", len(refs), err)
	}
	return nil
}

func (r *refBlocks) putRefs(ctx context.Context, refs []Ref) error {
	pending := map[ds.Key][]refLoc{}
	for _, ref := range refs {
		if !ref.Cid.Defined() || ref.Path == "" || ref.Offset < 0 || ref.Size < 0 || ref.Size > MaxChunkSize {
			return fmt.Errorf("invalid reference %v at %s", ref.Cid, ref.Path)
		}
		k := blockKey(ref.Cid)
		locs, seen := pending[k]
		if !seen {
			var err error
			locs, err = r.locs(ctx, k)
			if err != nil && !errors.Is(err, ds.ErrNotFound) && !errors.Is(err, errBadRef) {
				return err
			}
		}
		l := refLoc{path: ref.Path, offset: ref.Offset, size: ref.Size}
		dup := false
		for _, x := range locs {
			dup = dup || x == l
		}
		if !dup {
			// Newest first: the place just written is the likeliest to
			// still hold the bytes.
			locs = append([]refLoc{l}, locs...)
			if len(locs) > maxRefLocations {
				locs = locs[:maxRefLocations]
			}
		}
		pending[k] = locs
	}
	b, err := r.s.meta.Batch(ctx)
	if err != nil {
		return err
	}
	for k, locs := range pending {
		if err := b.Put(ctx, refKey(k), encodeRefLocs(locs)); err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	for _, ref := range refs {
		k := blockKey(ref.Cid).String()
		if ref.State != nil {
			r.trust.put(k, placeState{loc: refLoc{path: ref.Path, offset: ref.Offset, size: ref.Size}, state: *ref.State})
		} else if ps, ok := r.trust.get(k); ok && ps.loc.path == ref.Path {
			r.trust.del(k) // the caller no longer vouches for that file's state
		}
	}
	return nil
}

// HasRef reports whether a reference (verified or not) is recorded for c.
func (s *Store) HasRef(ctx context.Context, c cid.Cid) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.ops.Done()
	ok, err := s.meta.Has(ctx, refKey(blockKey(c)))
	if err != nil {
		return false, fmt.Errorf("blobstore: has ref %s: %w", c, err)
	}
	return ok, nil
}

// DeleteBlocks removes the stored copies of the blocks (not their
// references) in one batch: what a caller does once the blocks are
// referenced in place. It does not wait for the removal to be durable: a
// crash may bring copies back, which costs space, never correctness.
// Missing blocks are not an error. Like DeleteBlock it does not consult
// pins.
func (s *Store) DeleteBlocks(ctx context.Context, cs []cid.Cid) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	if len(cs) == 0 {
		return nil
	}
	b, err := s.blocks.Batch(ctx)
	if err == nil {
		for _, c := range cs {
			if err = b.Delete(ctx, blockKey(c)); err != nil && !errors.Is(err, ds.ErrNotFound) {
				break
			}
			err = nil
		}
		if err == nil {
			err = b.Commit(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("blobstore: delete blocks (%d): %w", len(cs), err)
	}
	return nil
}

// WatchStaleRefs calls fn with the path of every reference found stale
// (the file no longer holds the block's bytes) until stop is called. fn
// runs on the reading goroutine and must not block.
func (s *Store) WatchStaleRefs(fn func(path string)) (stop func()) {
	r, ok := s.blocks.(*refBlocks)
	if !ok {
		return func() {}
	}
	r.wmu.Lock()
	if r.watchers == nil {
		r.watchers = map[int]func(string){}
	}
	id := r.nextW
	r.nextW++
	r.watchers[id] = fn
	r.wmu.Unlock()
	return func() {
		r.wmu.Lock()
		delete(r.watchers, id)
		r.wmu.Unlock()
	}
}
