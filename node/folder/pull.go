package folder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/pcnode/pcnode/blobstore"
)

// pullBatch is how many files one step of a pull fetches, writes and
// flushes together (one syncfs and one index commit per step).
const pullBatch = 1000

// action is one change a pull makes to the disk.
type action struct {
	want Entry   // the entry to reach
	own  *record // the device's current record, or nil
}

// plan computes, under f.mu, what the dirty paths need.
func (f *Folder) plan() (dirs, files, dels []action, meta []action) {
	paths := make([]string, 0, len(f.dirty))
	for p := range f.dirty {
		paths = append(paths, p)
	}
	clear(f.dirty)
	seen := map[string]bool{}
	var visit func(p string, want *Entry)
	consider := func(want Entry) {
		own := f.x.own[want.Path]
		if f.ignore.ignoredTree(want.Path, want.Dir) {
			return
		}
		if own != nil {
			o := own.Version.Compare(want.Version)
			if o == Greater || (o == Equal && sameContent(&own.Entry, &want) && sameMeta(&own.Entry, &want)) {
				return
			}
		}
		a := action{want: want, own: own}
		switch {
		case want.Deleted:
			dels = append(dels, a)
		case want.Dir:
			dirs = append(dirs, a)
		case own != nil && !own.Deleted && !own.Dir && own.CID.Equals(want.CID):
			meta = append(meta, a)
		default:
			files = append(files, a)
		}
	}
	visit = func(p string, want *Entry) {
		if seen[p] {
			return
		}
		seen[p] = true
		var cands []*Entry
		if own := f.x.own[p]; own != nil {
			cands = append(cands, &own.Entry)
		}
		for _, rm := range f.x.remotes {
			if e := rm.entries[p]; e != nil && f.cfg.Members(rm.peer) {
				cands = append(cands, e)
			}
		}
		if want != nil {
			cands = append(cands, want)
		}
		if len(cands) == 0 {
			return
		}
		target, conflicts := resolve(cands)
		for i := range conflicts {
			c := conflicts[i]
			visit(c.Path, &c)
		}
		consider(target)
	}
	for _, p := range paths {
		visit(p, nil)
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].want.Path < dirs[j].want.Path })
	sort.Slice(files, func(i, j int) bool { return files[i].want.Path < files[j].want.Path })
	sort.Slice(dels, func(i, j int) bool { return dels[i].want.Path > dels[j].want.Path })
	return dirs, files, dels, meta
}

// pull brings the disk to the resolved state of every dirty path.
func (f *Folder) pull(ctx context.Context) error {
	f.mu.Lock()
	if len(f.dirty) == 0 {
		f.mu.Unlock()
		return nil
	}
	dirs, files, dels, meta := f.plan()
	delFiles, live := 0, 0
	for _, a := range dels {
		if a.own != nil && !a.own.Deleted && !a.own.Dir {
			delFiles++
		}
	}
	for _, r := range f.x.own {
		if !r.Deleted && !r.Dir {
			live++
		}
	}
	held := f.massDelete(delFiles, live) && !f.confirm
	f.log.Debug("pull plan", "dirs", len(dirs), "files", len(files), "deletes", len(dels), "delete_files", delFiles, "live", live, "held", held)
	f.confirm = false
	f.heldRemote = 0
	if held {
		f.heldRemote = delFiles
		for _, a := range dels {
			f.dirty[a.want.Path] = struct{}{} // keep them for after Confirm
		}
		dels = nil
	}
	f.need = needStats{files: len(files)}
	for _, a := range files {
		f.need.bytes += a.want.Size
	}
	f.mu.Unlock()
	if held {
		f.log.Warn("remote mass delete held until confirmed", "deletes", delFiles, "files", live)
	}

	var failed []string
	var firstErr error
	fail := func(p string, err error) {
		failed = append(failed, p)
		if firstErr == nil {
			firstErr = err
		}
	}
	// Directories first (parents before children), then metadata-only
	// changes, then files in batches, then deletes (children first).
	var recs []*record
	for _, a := range dirs {
		rec, err := f.applyDir(a)
		if err != nil {
			fail(a.want.Path, err)
			continue
		}
		recs = append(recs, rec)
	}
	for _, a := range meta {
		rec, err := f.applyMeta(a)
		if err != nil {
			fail(a.want.Path, err)
			continue
		}
		recs = append(recs, rec)
	}
	if err := f.commitPulled(recs); err != nil {
		return err
	}
	// Fetching the next batch overlaps writing this one: one is network
	// bound, the other disk bound.
	chunks := make([][]action, 0, len(files)/pullBatch+1)
	for i := 0; i < len(files); i += pullBatch {
		chunks = append(chunks, files[i:min(i+pullBatch, len(files))])
	}
	prefetch := func(as []action) chan fetchResult {
		ch := make(chan fetchResult, 1)
		go func() { ch <- f.fetch(ctx, as) }()
		return ch
	}
	var pending chan fetchResult
	defer func() {
		if pending != nil {
			res := <-pending
			res.release(f)
			res.discard()
		}
	}()
	if len(chunks) > 0 {
		pending = prefetch(chunks[0])
	}
	for i, chunk := range chunks {
		res := <-pending
		pending = nil
		if i+1 < len(chunks) {
			pending = prefetch(chunks[i+1])
		}
		recs, errs := f.applyFiles(ctx, chunk, res)
		for p, err := range errs {
			fail(p, err)
		}
		if err := f.commitPulled(recs); err != nil {
			return err
		}
		f.mu.Lock()
		f.need.files -= len(chunk)
		for _, a := range chunk {
			f.need.bytes -= a.want.Size
		}
		f.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	recs = nil
	touched := map[string]bool{}
	for _, a := range dels {
		rec, err := f.applyDelete(a)
		if err != nil {
			fail(a.want.Path, err)
			continue
		}
		touched[filepath.Dir(filepath.Join(f.root, filepath.FromSlash(a.want.Path)))] = true
		recs = append(recs, rec)
	}
	for d := range touched {
		_ = syncDir(d)
	}
	if err := f.commitPulled(recs); err != nil {
		return err
	}
	f.mu.Lock()
	for _, p := range failed {
		f.dirty[p] = struct{}{}
	}
	f.need = needStats{}
	f.mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("folder: sync %s: %d paths failed, first: %w", f.cfg.ID, len(failed), firstErr)
	}
	return nil
}

// commitPulled records what a pull applied and announces it, so that
// devices that talk only to this one learn it too.
func (f *Folder) commitPulled(recs []*record) error {
	if len(recs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.x.commitOwn(recs, true); err != nil {
		return fmt.Errorf("folder: sync %s: commit: %w", f.cfg.ID, err)
	}
	f.announce()
	return nil
}

func (f *Folder) abs(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

// errLocalChange: the file on disk changed since the last scan; the pull
// leaves it alone and the next scan turns it into a version of its own
// (which then meets the remote one as a conflict).
var errLocalChange = errors.New("changed locally since the last scan")

// unchanged checks that what is on disk at p is what own recorded (or
// that nothing is there when own is nil or deleted). It returns the
// current stat and whether something exists.
func (f *Folder) unchanged(p string, own *record) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if own == nil || own.Deleted {
		if fi.IsDir() {
			return true, nil // an untracked directory: adopt it
		}
		return true, errLocalChange
	}
	if own.Dir {
		if !fi.IsDir() {
			return true, errLocalChange
		}
		return true, nil
	}
	if !own.matches(statOf(fi)) {
		return true, errLocalChange
	}
	return true, nil
}

func (f *Folder) applyDir(a action) (*record, error) {
	p := f.abs(a.want.Path)
	exists, err := f.unchanged(p, a.own)
	if err != nil && !(errors.Is(err, errLocalChange) && a.own != nil && !a.own.Dir) {
		f.requestScan()
		return nil, err
	}
	if exists {
		fi, _ := os.Lstat(p)
		if fi != nil && !fi.IsDir() {
			// A file becomes a directory: keep the file in the history.
			if err := f.archive(a.want.Path, false); err != nil {
				return nil, err
			}
			exists = false
		}
	}
	if !exists {
		if f.watch != nil {
			f.watch.expect(p)
		}
		if err := os.MkdirAll(p, fs.FileMode(a.want.Mode)|0o700); err != nil {
			return nil, err
		}
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm() != fs.FileMode(a.want.Mode).Perm() {
		// Only when needed: the watcher would take the chmod for a
		// user's change and rescan.
		if err := os.Chmod(p, fs.FileMode(a.want.Mode)); err != nil {
			return nil, err
		}
		if fi, err = os.Lstat(p); err != nil {
			return nil, err
		}
	}
	if f.watch != nil {
		f.watch.addDirs([]string{p})
	}
	rec := &record{Entry: a.want}
	rec.setStat(statOf(fi))
	return rec, nil
}

func (f *Folder) applyMeta(a action) (*record, error) {
	p := f.abs(a.want.Path)
	if _, err := f.unchanged(p, a.own); err != nil {
		f.requestScan()
		return nil, err
	}
	if err := os.Chmod(p, fs.FileMode(a.want.Mode)); err != nil {
		return nil, err
	}
	mt := time.Unix(0, a.want.MTime)
	if err := os.Chtimes(p, mt, mt); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	rec := &record{Entry: a.want}
	rec.setStat(statOf(fi))
	return rec, nil
}

func (f *Folder) applyDelete(a action) (*record, error) {
	rec := &record{Entry: a.want}
	if a.own == nil || a.own.Deleted {
		return rec, nil
	}
	p := f.abs(a.want.Path)
	exists, err := f.unchanged(p, a.own)
	if err != nil {
		f.requestScan()
		return nil, err
	}
	if !exists {
		return rec, nil
	}
	if a.own.Dir {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Not empty: something this device keeps (ignored files, or
			// a local change) is still inside.
			return nil, err
		}
		return rec, nil
	}
	if err := f.archive(a.want.Path, false); err != nil {
		return nil, err
	}
	return rec, nil
}

// stageWorkers write temporary files in parallel: small files cost
// syscalls (and waits on the file system) more than bandwidth. 8 beat 4
// for 10,000 files of 4 KiB on the 2-core development machine
// (docs/FOLDERS.md).
const stageWorkers = 8

// stageAll stages every action without an error yet, recording failures in errs.
func (f *Folder) stageAll(ctx context.Context, as []action, res fetchResult, errs map[string]error) []staged {
	parts := res.parts
	out := make([]staged, len(as))
	fails := make([]error, len(as))
	dirs := &dirCache{made: map[string]bool{}}
	// Each directory is written by one worker at a time: creating files
	// in one directory from several threads only makes them spin on the
	// directory's lock in the kernel (it cost 3/4 of a 10,000-file
	// pull's CPU when workers took files in path order).
	var groups [][]int
	byDir := map[string]int{}
	for i, a := range as {
		if errs[a.want.Path] != nil {
			continue
		}
		d := path.Dir(a.want.Path)
		g, ok := byDir[d]
		if !ok {
			g = len(groups)
			byDir[d] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	var wg sync.WaitGroup
	next := make(chan []int)
	for range min(stageWorkers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				for _, i := range g {
					if s, ok := res.staged[as[i].want.Path]; ok {
						out[i] = s
						continue
					}
					if pt := parts[as[i].want.Path]; pt != nil {
						var ok bool
						if out[i], ok, fails[i] = f.stagePartial(pt, dirs); ok || fails[i] != nil {
							continue
						}
					}
					out[i], fails[i] = f.stage(ctx, as[i], dirs)
				}
			}
		}()
	}
	for _, g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	var st []staged
	for i, a := range as {
		switch {
		case errs[a.want.Path] != nil:
		case fails[i] != nil:
			errs[a.want.Path] = fails[i]
		default:
			st = append(st, out[i])
		}
	}
	return st
}

// staged is a file written under a temporary name, waiting for its rename.
type staged struct {
	a       action
	tmp     string
	dst     string
	st      diskStat // of tmp; a rename keeps inode, size, mtime and mode
	partial bool     // tmp is a partial file (direct.go), kept when not placed
}

// dirCache remembers the directories one batch made sure exist, so that
// files of the same directory cost no MkdirAll each.
type dirCache struct {
	mu   sync.Mutex
	made map[string]bool
}

func (c *dirCache) ensure(dir string) error {
	c.mu.Lock()
	ok := c.made[dir]
	c.mu.Unlock()
	if ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c.mu.Lock()
	c.made[dir] = true
	c.mu.Unlock()
	return nil
}

// applyFiles fetches and writes one batch of files: every file goes to a
// temporary name in its own directory, one syncfs makes them all durable,
// then each is renamed into place, the directories are fsynced and the
// files' leaves referenced in place (before the index records them). A
// crash leaves either the old file or the complete new one under the real
// name, and at worst temporary files, which the next scan removes.
// fetched names the roots whose blocks the fetch brought: their copies go
// once the files reference them.
func (f *Folder) applyFiles(ctx context.Context, as []action, res fetchResult) ([]*record, map[string]error) {
	errs := map[string]error{}
	t0 := time.Now()
	defer func() { f.log.Debug("applied files", "n", len(as), "took", time.Since(t0)) }()
	if res.err != nil {
		// Keep what the failed fetch did bring (files staged from the
		// DAG stream, complete partial files; blocks stored or written
		// into partials are found again by the next fetch) and fetch
		// the rest one by one, up to the first file that cannot be
		// (each failure costs a fetch stall); the rest waits for the
		// next pull.
		f.log.Debug("fetch failed; fetching the rest one by one", "files", len(as), "staged", len(res.staged), "partials", len(res.parts), "err", res.err)
		var stuck error
		for _, a := range as {
			if _, ok := res.staged[a.want.Path]; ok {
				continue
			}
			if _, ok := res.parts[a.want.Path]; ok {
				continue
			}
			if stuck != nil {
				errs[a.want.Path] = stuck
				continue
			}
			got := f.fetch(ctx, []action{a})
			if got.err != nil {
				errs[a.want.Path] = got.err
				stuck = got.err
				got.discard()
				got.staged = nil
			}
			for c := range got.fetched {
				res.fetched[c] = true
			}
			for p, pt := range got.parts {
				res.parts[p] = pt
			}
			for p, st := range got.staged {
				res.staged[p] = st
			}
		}
	}
	defer res.release(f)
	fetched := res.fetched
	f.log.Debug("fetched", "n", len(as), "took", time.Since(t0))
	st := f.stageAll(ctx, as, res, errs)
	f.log.Debug("staged", "n", len(st), "took", time.Since(t0))
	defer func() {
		for _, s := range st {
			if !s.partial {
				_ = os.Remove(s.tmp) // renamed ones are gone already
			}
		}
	}()
	if len(st) == 0 {
		return nil, errs
	}
	if err := f.syncStaged(st); err != nil {
		for _, s := range st {
			errs[s.a.want.Path] = err
		}
		return nil, errs
	}
	f.log.Debug("staged and synced", "n", len(st), "took", time.Since(t0))
	var recs []*record
	var placed []staged
	dirs := map[string]bool{}
	for _, s := range st {
		rec, err := f.place(s)
		if err != nil {
			errs[s.a.want.Path] = err
			continue
		}
		dirs[filepath.Dir(s.dst)] = true
		if s.partial {
			dirs[filepath.Dir(s.tmp)] = true
		}
		recs = append(recs, rec)
		placed = append(placed, s)
	}
	f.syncDirs(dirs)
	f.referencePlaced(ctx, placed, fetched)
	return recs, errs
}

// errNoMember: content is missing and no member is connected.
var errNoMember = errors.New("no member connected to fetch from")

// memberConnected reports whether a member is connected.
func (f *Folder) memberConnected() bool {
	for _, p := range f.cfg.Host.Network().Peers() {
		if p != f.cfg.Device && f.cfg.Members(p) {
			return true
		}
	}
	return false
}

// wantBatch bounds one GetMany (see fetch).
const wantBatch = 1000

// fetchStall is how long a fetch may go without receiving anything
// before it gives up (and the pull retries later): bitswap itself waits
// forever for a block nobody has. The DAG stream counts every read as
// progress (its blocks reach the folder in batches of up to 8 MiB, which
// a slow link takes minutes to fill), bitswap every block.
const fetchStall = 30 * time.Second

// stallGuard returns a context cancelled when progress has not been
// called for d.
func stallGuard(ctx context.Context, d time.Duration) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(d, cancel)
	return ctx, func() { t.Reset(d) }, func() { t.Stop(); cancel() }
}

// emptyCID is the CID of an empty file.
var emptyCID, _ = rawCID(nil)

// fetch makes the content of every action local: single-block files with
// one GetMany for the whole batch (bitswap asks for them all at once),
// larger files with blobstore.Fetch. It returns the roots that were not
// local before. Fetched blocks are not made durable: the files written
// from them are, and a crash before that fetches them again.
func (f *Folder) fetch(ctx context.Context, as []action) fetchResult {
	res := fetchResult{fetched: map[cid.Cid]bool{}, parts: map[string]*partial{}, staged: map[string]staged{}}
	res.err = f.fetchAll(ctx, as, &res)
	return res
}

// fetchResult is what fetch made local for a batch.
type fetchResult struct {
	fetched map[cid.Cid]bool    // roots that were not local before (their stored copies go once placed)
	parts   map[string]*partial // complete partial files, by path
	staged  map[string]staged   // single-block files already staged from the DAG stream, by path
	err     error
}

// release lets other batches use the result's partial files; it removes
// the files staged by the fetch that were not used.
func (r fetchResult) release(f *Folder) {
	for _, pt := range r.parts {
		f.releasePartial(pt.path)
	}
}

// discard removes the files the fetch staged (none of them placed).
func (r fetchResult) discard() {
	for _, s := range r.staged {
		_ = os.Remove(s.tmp)
	}
}

func (f *Folder) fetchAll(ctx context.Context, as []action, res *fetchResult) error {
	stall := f.cfg.fetchStall
	if stall <= 0 {
		stall = fetchStall
	}
	ctx, progress, stop := stallGuard(ctx, stall)
	defer stop()
	parts, fetched := res.parts, res.fetched
	var raws []cid.Cid
	var rawActs, treeActs []action
	for _, a := range as {
		c := a.want.CID
		if c.Equals(emptyCID) {
			continue // bitswap does not move empty blocks
		}
		if ok, _ := f.cfg.Store.Has(ctx, c); ok && c.Prefix().Codec == cid.Raw {
			continue
		} else if !ok {
			fetched[c] = true
		}
		if c.Prefix().Codec == cid.Raw {
			rawActs = append(rawActs, a)
		} else {
			treeActs = append(treeActs, a)
		}
	}
	if f.cfg.Host != nil && len(fetched) > 0 && !f.memberConnected() {
		// Nobody to fetch from (a restart, before the members are
		// back): the pull is retried when they are. Waiting here in
		// bitswap would fetch by bitswap whatever arrives first, not
		// over the DAG stream that resumes partial files.
		return errNoMember
	}
	// Single-block files come over the DAG stream, each written to its
	// temporary file as it arrives (direct.go); the rest by bitswap.
	for _, a := range f.fetchSmall(ctx, rawActs, res.staged, progress) {
		raws = append(raws, a.want.CID)
	}
	for _, s := range res.staged {
		delete(fetched, s.a.want.CID) // never stored
	}
	// Files of several blocks come over the DAG stream straight into
	// place where a member serves it (direct.go); the rest by bitswap.
	done, rest := f.fetchDirect(ctx, treeActs, progress)
	for p, pt := range done {
		parts[p] = pt
	}
	var trees []cid.Cid
	for _, a := range rest {
		trees = append(trees, a.want.CID)
	}
	if len(raws) > 0 {
		ng := merkledag.NewSession(ctx, f.dag)
		// At most wantBatch wants at a time: a bitswap server keeps a
		// bounded want list per peer (1024 by default in boxo) and
		// silently drops the rest, which would stall the fetch.
		for i := 0; i < len(raws); i += wantBatch {
			batch := raws[i:min(i+wantBatch, len(raws))]
			got := cid.NewSet()
			for opt := range ng.GetMany(ctx, batch) {
				if opt.Err != nil {
					return opt.Err
				}
				got.Add(opt.Node.Cid())
				progress()
			}
			for _, c := range batch {
				if !got.Has(c) {
					return blobstore.ErrNotFound{Cid: c}
				}
			}
		}
	}
	for _, c := range trees {
		if err := blobstore.Fetch(ctx, f.dag, c, func(int64, int64) { progress() }); err != nil {
			return err
		}
	}
	return nil
}

func randSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stage writes a's content to a temporary file next to its destination,
// with its mode and mtime, and checks its size.
func (f *Folder) stage(ctx context.Context, a action, dirs *dirCache) (staged, error) {
	return f.stageWith(a, dirs, func(w io.Writer) (int64, error) { return f.copyContent(ctx, w, a.want.CID) })
}

// stageWith is stage with the content written by write.
func (f *Folder) stageWith(a action, dirs *dirCache, write func(io.Writer) (int64, error)) (staged, error) {
	dst := f.abs(a.want.Path)
	dir := filepath.Dir(dst)
	if err := dirs.ensure(dir); err != nil {
		return staged{}, err
	}
	tmp := filepath.Join(dir, tmpPrefix+shorten(filepath.Base(dst))+"-"+randSuffix())
	fd, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return staged{}, err
	}
	n, err := write(fd)
	if err == nil && n != a.want.Size {
		err = fmt.Errorf("content of %s is %d bytes, index says %d", a.want.CID, n, a.want.Size)
	}
	if err == nil {
		err = fd.Chmod(fs.FileMode(a.want.Mode))
	}
	if err == nil {
		mt := time.Unix(0, a.want.MTime)
		err = os.Chtimes(tmp, mt, mt)
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = fd.Stat()
	}
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return staged{}, err
	}
	return staged{a: a, tmp: tmp, dst: dst, st: statOf(fi)}, nil
}

func shorten(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

// copyContent writes the file with root c to w from local blocks. Every
// block was checked against its CID when it entered the store.
func (f *Folder) copyContent(ctx context.Context, w io.Writer, c cid.Cid) (int64, error) {
	if c.Equals(emptyCID) {
		return 0, nil
	}
	if c.Prefix().Codec == cid.Raw {
		b, err := f.cfg.Store.Get(ctx, c)
		if err != nil {
			return 0, err
		}
		n, err := w.Write(b.RawData())
		return int64(n), err
	}
	r, err := blobstore.Cat(ctx, f.dag, c)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(w, r)
}

// syncDirs makes the renames in dirs durable: one syncfs where there
// are several (each directory fsync is a journal commit of its own on
// ext4), else an fsync each.
func (f *Folder) syncDirs(dirs map[string]bool) {
	if len(dirs) > 2 {
		if root, err := os.Open(f.root); err == nil {
			err = unix.Syncfs(int(root.Fd()))
			root.Close()
			if err == nil {
				return
			}
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			f.log.Warn("fsync directory", "dir", d, "err", err)
		}
	}
}

// syncFileMax is the most staged files synced one by one: past it one
// syncfs is cheaper (on ext4 each fsync is a journal commit), below it an
// fsync each spares waiting for the rest of the file system's dirty data
// (other programs' writes, the next batch's fetch).
const syncFileMax = 8

// syncStaged makes the staged files durable: one syncfs of the folder's
// file system instead of one fsync per file for a large batch; for a
// small one, and where syncfs is missing, each file is fsynced.
func (f *Folder) syncStaged(st []staged) error {
	err := errors.ErrUnsupported
	if len(st) > syncFileMax {
		var root *os.File
		root, err = os.Open(f.root)
		if err == nil {
			err = unix.Syncfs(int(root.Fd()))
			root.Close()
		}
	}
	if err == nil {
		return nil
	}
	for _, s := range st {
		fd, err := os.Open(s.tmp)
		if err != nil {
			return err
		}
		err = fd.Sync()
		fd.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// place renames a staged file into place after checking that what it
// replaces is what the index knows (a local edit not yet scanned is never
// overwritten), keeping the replaced file in the history.
func (f *Folder) place(s staged) (*record, error) {
	exists, err := f.unchanged(s.dst, s.a.own)
	if err != nil {
		f.requestScan()
		return nil, err
	}
	if f.watch != nil {
		f.watch.expect(s.dst)
	}
	if exists {
		if fi, _ := os.Lstat(s.dst); fi != nil && fi.IsDir() {
			if err := os.Remove(s.dst); err != nil {
				return nil, err
			}
		} else if err := f.archive(s.a.want.Path, true); err != nil {
			return nil, err
		}
		if err := os.Rename(s.tmp, s.dst); err != nil {
			return nil, err
		}
	} else if err := renameNoReplace(s.tmp, s.dst); err != nil {
		f.requestScan()
		return nil, err
	}
	rec := &record{Entry: s.a.want}
	rec.setStat(s.st)
	return rec, nil
}

func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return errLocalChange
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		if _, err := os.Lstat(new); err == nil {
			return errLocalChange
		}
		return os.Rename(old, new)
	}
	return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
}

func syncDir(dir string) error {
	fd, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer fd.Close()
	return fd.Sync()
}
