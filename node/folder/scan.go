package folder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/pcnode/pcnode/blobstore"
)

// scanCommit is how many changed records one scan commits at a time, and
// flushRefs how many leaf references it buffers before one durable write:
// a sync per batch instead of per file.
const (
	scanCommit = 2000
	flushRefs  = 4096
)

// diskStat is what the scanner compares to tell an unchanged file.
type diskStat struct {
	ino   uint64
	size  int64
	mtime int64
	mode  fs.FileMode
}

func statOf(fi fs.FileInfo) diskStat {
	st := diskStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = s.Ino
	}
	return st
}

func (r *record) matches(st diskStat) bool {
	return !r.Deleted && r.Ino == st.ino && r.StatSize == st.size && r.StatMTime == st.mtime && r.StatMode == uint32(st.mode)
}

func (r *record) setStat(st diskStat) {
	r.Ino, r.StatSize, r.StatMTime, r.StatMode = st.ino, st.size, st.mtime, uint32(st.mode)
}

// firstCommit is the size of a scan's first commit: small, so that the
// other devices start fetching while the scan goes on; each commit after
// it doubles, up to scanCommit, which bounds the syncs of a long scan.
const firstCommit = 250

// scanner carries one scan's pending work.
type scanner struct {
	f       *Folder
	ctx     context.Context
	commits int // commits made so far
	refs    []blobstore.Ref
	inner   []blocks.Block
	changed []*record // new versions to announce
	quiet   []*record // same version, new stat (touch, inode change)
}

// scan walks the folder, hashes what changed since the last scan and
// records new versions and deletes in the own log.
func (f *Folder) scan(ctx context.Context) error {
	if err := f.checkMarker(); err != nil {
		return err
	}
	ig, err := loadIgnore(f.root)
	if err != nil {
		return fmt.Errorf("folder: scan %s: %w", f.cfg.ID, err)
	}
	f.mu.Lock()
	f.ignore = ig
	f.mu.Unlock()
	sc := &scanner{f: f, ctx: ctx}
	seen := map[string]bool{}
	var dirs []string
	err = filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == f.root {
				return err
			}
			f.log.Warn("scan: skipping unreadable path", "path", p, "err", err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p == f.root {
			dirs = append(dirs, p)
			return nil
		}
		rel := filepath.ToSlash(p[len(f.root)+1:])
		if internal(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			if name := d.Name(); len(name) > len(tmpPrefix) && name[:len(tmpPrefix)] == tmpPrefix {
				_ = os.Remove(p) // left by a crash during materialize
			}
			return nil
		}
		if !validPath(rel) || ig.match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // symlinks, devices, sockets: not synced
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		seen[rel] = true
		fi, err := d.Info()
		if err != nil {
			return nil // vanished meanwhile
		}
		return sc.visit(rel, p, fi)
	})
	if err != nil {
		return fmt.Errorf("folder: scan %s: %w", f.cfg.ID, err)
	}
	if f.watch != nil {
		f.watch.addDirs(dirs)
	}
	// The marker is checked again after the walk: a disk unmounted during
	// the walk must not turn into deletes.
	if err := f.checkMarker(); err != nil {
		return err
	}
	if err := sc.deletes(seen, ig); err != nil {
		return fmt.Errorf("folder: scan %s: %w", f.cfg.ID, err)
	}
	if err := sc.commit(); err != nil {
		return fmt.Errorf("folder: scan %s: %w", f.cfg.ID, err)
	}
	f.mu.Lock()
	f.lastScan = f.now()
	f.mu.Unlock()
	return nil
}

func (sc *scanner) visit(rel, p string, fi fs.FileInfo) error {
	f := sc.f
	st := statOf(fi)
	f.mu.Lock()
	old := f.x.own[rel]
	f.mu.Unlock()
	perm := uint32(fi.Mode().Perm())
	if fi.IsDir() {
		if old != nil && !old.Deleted && old.Dir && old.Mode == perm {
			return nil
		}
		rec := sc.next(old, rel)
		rec.Dir, rec.Mode, rec.MTime = true, perm, st.mtime
		rec.setStat(st)
		return sc.add(rec, false)
	}
	if old != nil && !old.Dir && old.matches(st) && !f.takeStale(rel) {
		return nil
	}
	c, size, st2, err := sc.hash(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errChanging) {
			return nil // next scan
		}
		f.log.Warn("scan: cannot read", "path", p, "err", err)
		return nil
	}
	if old != nil && !old.Deleted && !old.Dir && old.CID.Equals(c) && old.Mode == perm && old.MTime == st2.mtime {
		rec := *old
		rec.setStat(st2)
		return sc.add(&rec, true)
	}
	rec := sc.next(old, rel)
	rec.CID, rec.Size, rec.Mode, rec.MTime = c, size, perm, st2.mtime
	rec.setStat(st2)
	return sc.add(rec, false)
}

// next starts the record of a new local version of rel.
func (sc *scanner) next(old *record, rel string) *record {
	var v Vector
	if old != nil {
		v = old.Version
	}
	return &record{Entry: Entry{Path: rel, Version: v.Update(sc.f.self), Writer: sc.f.self}}
}

func (sc *scanner) add(r *record, quiet bool) error {
	if quiet {
		sc.quiet = append(sc.quiet, r)
	} else {
		sc.changed = append(sc.changed, r)
	}
	if len(sc.changed)+len(sc.quiet) >= sc.commitAt() {
		return sc.commit()
	}
	return nil
}

var errChanging = errors.New("file changed while being read")

// hash reads the file at p and returns its CID, the CID blobstore.Import
// gives it. The store gets no copy of the content: the leaves are
// referenced in place (refs.go) and only a large file's inner DAG nodes
// are stored, both buffered for one durable write per batch.
func (sc *scanner) hash(p string) (cid.Cid, int64, diskStat, error) {
	fd, err := os.Open(p)
	if err != nil {
		return cid.Undef, 0, diskStat{}, err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return cid.Undef, 0, diskStat{}, err
	}
	st := statOf(fi)
	state := blobstore.StateOf(fi) // before the reads: see Ref.State
	var c cid.Cid
	var size int64
	if fi.Size() <= blobstore.DefaultChunkSize {
		data, err := io.ReadAll(io.LimitReader(fd, blobstore.DefaultChunkSize+1))
		if err != nil {
			return cid.Undef, 0, diskStat{}, err
		}
		if len(data) > blobstore.DefaultChunkSize {
			return cid.Undef, 0, diskStat{}, errChanging
		}
		c, err = rawCID(data)
		if err != nil {
			return cid.Undef, 0, diskStat{}, err
		}
		size = int64(len(data))
		if size > 0 {
			sc.refs = append(sc.refs, blobstore.Ref{Cid: c, Path: p, Size: len(data)})
		}
	} else {
		var refs []blobstore.Ref
		var inner []blocks.Block
		c, size, refs, inner, err = importRefs(fd, p)
		if err != nil {
			return cid.Undef, 0, diskStat{}, err
		}
		// A large file's leaves are read without hashing them again by
		// the devices that fetch it soon, while the file stays as it was.
		for i := range refs {
			refs[i].State = state
		}
		sc.refs = append(sc.refs, refs...)
		sc.inner = append(sc.inner, inner...)
	}
	if len(sc.refs) >= flushRefs {
		if err := sc.flush(); err != nil {
			return cid.Undef, 0, diskStat{}, err
		}
	}
	after, err := os.Lstat(p)
	if err != nil {
		return cid.Undef, 0, diskStat{}, err
	}
	if statOf(after) != st || size != st.size {
		return cid.Undef, 0, diskStat{}, errChanging
	}
	return c, size, st, nil
}

func rawCID(data []byte) (cid.Cid, error) {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, h), nil
}

// flush makes the buffered inner nodes and references durable. The
// references were taken before the file's stat was checked again, so a
// file that changed meanwhile was not recorded (errChanging) and its
// references, if any, are simply stale.
func (sc *scanner) flush() error {
	if len(sc.inner) > 0 {
		if err := sc.f.cfg.Store.PutMany(sc.ctx, sc.inner); err != nil {
			return err
		}
	}
	if err := sc.f.cfg.Store.PutRefs(sc.ctx, sc.refs); err != nil {
		return err
	}
	sc.refs, sc.inner = nil, nil
	return nil
}

// deletes records every own entry not seen on disk as deleted, unless
// the mass-delete guard holds them.
func (sc *scanner) deletes(seen map[string]bool, ig *ignorer) error {
	f := sc.f
	f.mu.Lock()
	var gone []*record
	live := 0
	for p, r := range f.x.own {
		if r.Deleted {
			continue
		}
		if !r.Dir {
			live++
		}
		if seen[p] || ig.ignoredTree(p, r.Dir) {
			continue
		}
		gone = append(gone, r)
	}
	files := 0
	for _, r := range gone {
		if !r.Dir {
			files++
		}
	}
	held := f.massDelete(files, live) && !f.confirm
	if held {
		f.heldLocal = files
	} else {
		f.heldLocal = 0
	}
	f.mu.Unlock()
	if held {
		f.log.Warn("mass delete held until confirmed", "deletes", files, "files", live)
		return nil
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Path < gone[j].Path })
	for _, old := range gone {
		rec := sc.next(old, old.Path)
		rec.Deleted, rec.Dir = true, old.Dir
		rec.MTime = old.MTime
		if err := sc.add(rec, false); err != nil {
			return err
		}
	}
	return nil
}

// massDelete says whether deleting n of live files at once needs
// confirmation. Call with f.mu held.
func (f *Folder) massDelete(n, live int) bool {
	if n < f.cfg.MassDeleteMin {
		return false
	}
	return n > MassDeleteMax || 2*n > live
}

// commitAt is how many records the next commit waits for.
func (sc *scanner) commitAt() int {
	return min(firstCommit<<min(sc.commits, 8), scanCommit)
}

// commit makes the buffered blocks durable, then records the entries.
func (sc *scanner) commit() error {
	sc.commits++
	if err := sc.flush(); err != nil {
		return err
	}
	f := sc.f
	if f.cfg.ReceiveOnly {
		sc.changed = nil // local changes on a receive-only replica are neither sent nor recorded
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.x.commitOwn(sc.quiet, false); err != nil {
		return err
	}
	if err := f.x.commitOwn(sc.changed, true); err != nil {
		return err
	}
	if len(sc.changed) > 0 {
		f.announce()
	}
	sc.changed, sc.quiet = nil, nil
	return nil
}

// announce wakes the publishers. Call with f.mu held.
func (f *Folder) announce() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func sortStrings(s []string) { sort.Strings(s) }
