package folder

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"github.com/ipfs/go-cid"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pcnode/pcnode/blobstore"
)

// Defaults of Config.
const (
	DefaultRescanInterval = time.Minute
	DefaultDebounce       = 200 * time.Millisecond
	DefaultKeepVersions   = 10
	DefaultKeepFor        = 30 * 24 * time.Hour
	DefaultMassDeleteMin  = 10
	// MassDeleteMax is the number of deletes that is held for
	// confirmation whatever the folder's size.
	MassDeleteMax = 1000
)

// Sentinel errors.
var (
	// ErrNoMarker: the marker file is missing from the folder's root (an
	// unmounted or emptied disk). The folder stops until it returns.
	ErrNoMarker = errors.New("folder marker " + MarkerFile + " missing")
	// ErrClosed is returned by a closed Folder.
	ErrClosed = errors.New("folder: closed")
	// ErrNotFound: no such path or version.
	ErrNotFound = errors.New("not found")
)

// Config describes one folder on this device.
type Config struct {
	// ID names the folder on every device (NewID makes one). Required; at
	// most 64 characters of [a-z0-9-].
	ID string
	// Path is the folder's root directory. Required. Created (with the
	// marker) when the folder's state is new.
	Path string
	// Device is this device's peer ID. Required.
	Device peer.ID
	// Store holds file content by CID. Required.
	Store *blobstore.Store
	// DAG reads content, fetching missing blocks from members. nil means
	// blobstore.NewDAG(Store, nil): offline.
	DAG ipld.DAGService
	// Host exchanges the index with members. nil means no network: the
	// folder only scans.
	Host host.Host
	// Members reports which peers may exchange this folder's index. nil
	// means nobody.
	Members func(peer.ID) bool
	// Dir is the folder's state directory (index database). "" means
	// <Path>/.pcnode/index.
	Dir string
	// ReceiveOnly makes the folder apply remote changes but never announce
	// local ones (a backup replica). Default false: send and receive.
	ReceiveOnly bool
	// RescanInterval is the period of the safety-net full scan. 0 means
	// DefaultRescanInterval; negative means never.
	RescanInterval time.Duration
	// Debounce is how long the watcher waits for changes to settle before
	// it scans. 0 means DefaultDebounce.
	Debounce time.Duration
	// NoWatch turns fsnotify watching off. Default false: watch.
	NoWatch bool
	// KeepVersions is how many old versions of a path the version store
	// keeps. 0 means DefaultKeepVersions; negative keeps none.
	KeepVersions int
	// KeepFor is how long old versions are kept. 0 means DefaultKeepFor.
	KeepFor time.Duration
	// MassDeleteMin: deletes of fewer files are never held. 0 means
	// DefaultMassDeleteMin. More than half of the folder's files, or more
	// than MassDeleteMax, at once waits for Confirm.
	MassDeleteMin int
	// Logger receives the folder's logs. nil discards them.
	Logger *slog.Logger
	// Now is the clock (version names). nil means time.Now.
	Now func() time.Time

	// fetchStall is how long a fetch may receive nothing (tests shorten
	// it). 0 means the package's fetchStall.
	fetchStall time.Duration
}

// NewID returns a new random folder ID (16 characters of base32).
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Folder is one synced folder on this device. Its methods are safe for
// concurrent use.
type Folder struct {
	cfg  Config
	log  *slog.Logger
	root string
	self ShortID
	dag  ipld.DAGService
	now  func() time.Time

	scanCh chan struct{}
	pullCh chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	x       *index
	dirty   map[string]struct{} // paths whose remote entries changed since the last pull
	changed chan struct{}       // closed and replaced when the own log grows
	subs    map[peer.ID]bool
	state   string
	err     error
	// held deletes waiting for Confirm
	heldRemote, heldLocal int
	confirm               bool
	need                  needStats
	ignore                *ignorer
	watchDirs             map[string]bool
	lastScan              time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	notify *network.NotifyBundle
	watch  *watcher

	parts partials // partial files held by a batch (direct.go)
	// streamed counts the block bytes received over the DAG stream.
	streamed atomic.Int64
	// scans counts the scans run (tests check what triggers them).
	scans atomic.Int64

	// Files whose references the store found stale: the next scan
	// re-hashes them whatever their stat says. Its own lock, because the
	// store reports from whichever goroutine read the block.
	staleMu   sync.Mutex
	stale     map[string]bool
	stopStale func()
}

type needStats struct {
	files int
	bytes int64
}

// New checks cfg and allocates a Folder. It starts nothing.
func New(cfg Config) (*Folder, error) {
	switch {
	case !validID(cfg.ID):
		return nil, fmt.Errorf("folder: new: invalid id %q", cfg.ID)
	case cfg.Path == "":
		return nil, errors.New("folder: new: no path")
	case cfg.Device == "":
		return nil, errors.New("folder: new: no device")
	case cfg.Store == nil:
		return nil, errors.New("folder: new: no store")
	}
	root, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("folder: new %s: %w", cfg.ID, err)
	}
	f := &Folder{
		cfg: cfg, log: cfg.Logger, root: root, self: ShortIDOf(cfg.Device), dag: cfg.DAG, now: cfg.Now,
		scanCh: make(chan struct{}, 1), pullCh: make(chan struct{}, 1),
		dirty: map[string]struct{}{}, changed: make(chan struct{}), subs: map[peer.ID]bool{},
		state: "new", watchDirs: map[string]bool{},
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.log = f.log.With("folder", cfg.ID)
	if f.dag == nil {
		f.dag = blobstore.NewDAG(cfg.Store, nil)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.cfg.RescanInterval == 0 {
		f.cfg.RescanInterval = DefaultRescanInterval
	}
	if f.cfg.Debounce <= 0 {
		f.cfg.Debounce = DefaultDebounce
	}
	if f.cfg.KeepVersions == 0 {
		f.cfg.KeepVersions = DefaultKeepVersions
	}
	if f.cfg.KeepFor <= 0 {
		f.cfg.KeepFor = DefaultKeepFor
	}
	if f.cfg.MassDeleteMin <= 0 {
		f.cfg.MassDeleteMin = DefaultMassDeleteMin
	}
	if f.cfg.Members == nil {
		f.cfg.Members = func(peer.ID) bool { return false }
	}
	return f, nil
}

// ID returns the folder's ID.
func (f *Folder) ID() string { return f.cfg.ID }

// Path returns the folder's root directory.
func (f *Folder) Path() string { return f.root }

// Start opens the index, creates the root and its marker if the folder's
// state is new, starts watching and serving the index, and returns. The
// first scan runs in the background (Status says "scanning"). A missing
// marker does not fail Start: the folder reports ErrNoMarker in Status and
// does nothing until the marker is back.
func (f *Folder) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.started {
		return nil
	}
	dir := f.cfg.Dir
	if dir == "" {
		dir = filepath.Join(f.root, stateDir, "index")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("folder: start %s: %w", f.cfg.ID, err)
	}
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		return fmt.Errorf("folder: start %s: %w", f.cfg.ID, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("folder: start %s: %w", f.cfg.ID, err)
	}
	x, fresh, err := openIndex(dir, f.log)
	if err != nil {
		return fmt.Errorf("folder: start %s: open index: %w", f.cfg.ID, err)
	}
	if fresh {
		if err := f.writeMarker(); err != nil {
			x.close()
			return fmt.Errorf("folder: start %s: %w", f.cfg.ID, err)
		}
	}
	f.x = x
	for _, rm := range x.remotes {
		for p := range rm.entries {
			f.dirty[p] = struct{}{}
		}
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.started = true
	f.state = "scanning"
	if !f.cfg.NoWatch {
		w, err := newWatcher(f)
		if err != nil {
			f.log.Warn("no file watching; relying on periodic scans", "err", err)
		} else {
			f.watch = w
			f.wg.Add(1)
			go func() { defer f.wg.Done(); w.run(f.ctx) }()
		}
	}
	f.stopStale = f.cfg.Store.WatchStaleRefs(f.onStale)
	f.wg.Add(1)
	go func() { defer f.wg.Done(); f.run(f.ctx) }()
	if f.cfg.Host != nil {
		f.startNet()
	}
	f.requestScan()
	return nil
}

func (f *Folder) writeMarker() error {
	p := filepath.Join(f.root, MarkerFile)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	return os.WriteFile(p, []byte("pcnode folder "+f.cfg.ID+"\n"), 0o644)
}

// checkMarker returns ErrNoMarker when the marker is missing.
func (f *Folder) checkMarker() error {
	if _, err := os.Lstat(filepath.Join(f.root, MarkerFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrNoMarker
		}
		return err
	}
	return nil
}

// Close stops the folder and waits for its goroutines. It is idempotent.
func (f *Folder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	started := f.started
	f.mu.Unlock()
	if !started {
		return nil
	}
	if f.cfg.Host != nil {
		f.stopNet()
	}
	f.stopStale()
	f.cancel()
	if f.watch != nil {
		f.watch.close()
	}
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.x.close(); err != nil {
		return fmt.Errorf("folder: close %s: %w", f.cfg.ID, err)
	}
	return nil
}

// onStale hears from the store that the file at p no longer holds a block
// it referenced: the file changed (or rotted) without a scan noticing.
func (f *Folder) onStale(p string) {
	rel, err := filepath.Rel(f.root, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return
	}
	f.staleMu.Lock()
	if f.stale == nil {
		f.stale = map[string]bool{}
	}
	f.stale[filepath.ToSlash(rel)] = true
	f.staleMu.Unlock()
	f.requestScan()
}

// takeStale reports whether rel was found stale, and forgets it.
func (f *Folder) takeStale(rel string) bool {
	f.staleMu.Lock()
	defer f.staleMu.Unlock()
	if !f.stale[rel] {
		return false
	}
	delete(f.stale, rel)
	return true
}

func (f *Folder) requestScan() {
	select {
	case f.scanCh <- struct{}{}:
	default:
	}
}

func (f *Folder) requestPull() {
	select {
	case f.pullCh <- struct{}{}:
	default:
	}
}

// Scan asks for a scan now and returns without waiting.
func (f *Folder) Scan() { f.requestScan() }

// run is the folder's worker: scans and pulls happen here, one at a time,
// so that they never race each other over the index and the disk.
func (f *Folder) run(ctx context.Context) {
	var tick <-chan time.Time
	if f.cfg.RescanInterval > 0 {
		t := time.NewTicker(f.cfg.RescanInterval)
		defer t.Stop()
		tick = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.scanCh:
			f.doScan(ctx)
			f.doPull(ctx, retry)
		case <-f.pullCh:
			f.doPull(ctx, retry)
		case <-tick:
			f.doScan(ctx)
			f.doPull(ctx, retry)
			f.pruneVersions()
			f.prunePartials()
		case <-retry.C:
			f.doPull(ctx, retry)
		}
	}
}

func (f *Folder) setState(state string, err error) {
	f.mu.Lock()
	f.state, f.err = state, err
	f.mu.Unlock()
}

func (f *Folder) doScan(ctx context.Context) {
	f.scans.Add(1)
	f.setState("scanning", nil)
	t0 := time.Now()
	err := f.scan(ctx)
	if ctx.Err() != nil {
		return
	}
	f.log.Debug("scanned", "took", time.Since(t0), "err", err)
	switch {
	case errors.Is(err, ErrNoMarker):
		f.log.Error("folder stopped: marker missing; nothing is deleted until it is back", "path", f.root)
		f.setState("stopped", err)
	case err != nil:
		f.log.Warn("scan failed", "err", err)
		f.setState("error", err)
	default:
		f.setState("idle", nil)
	}
}

func (f *Folder) doPull(ctx context.Context, retry *time.Timer) {
	f.mu.Lock()
	stopped := f.state == "stopped"
	f.mu.Unlock()
	if stopped {
		return
	}
	if err := f.checkMarker(); err != nil {
		f.setState("stopped", err)
		return
	}
	f.setState("syncing", nil)
	err := f.pull(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil && errors.Is(err, errNoMember) {
		// Retried when a member connects (startNet's notifee).
		f.log.Debug("sync waits for a member", "err", err)
		f.setState("error", err)
		return
	}
	if err != nil {
		f.log.Warn("sync incomplete; will retry", "err", err)
		f.setState("error", err)
		retry.Reset(2 * time.Second)
		return
	}
	f.setState("idle", nil)
}

// Confirm releases deletes held by the mass-delete guard (local and
// remote) and applies them.
func (f *Folder) Confirm() {
	f.mu.Lock()
	f.confirm = true
	f.mu.Unlock()
	f.requestScan()
}

// PeerStatus is how far this device has read another device's log.
type PeerStatus struct {
	Peer      peer.ID `json:"peer"`
	Seq       uint64  `json:"seq"`
	Connected bool    `json:"connected"`
}

// Status describes a folder at one moment.
type Status struct {
	ID    string `json:"id"`
	Path  string `json:"path"`
	State string `json:"state"` // new, scanning, syncing, idle (in sync), stopped, error, held
	Error string `json:"error,omitempty"`
	// Local content.
	Files int   `json:"files"`
	Dirs  int   `json:"dirs"`
	Bytes int64 `json:"bytes"`
	// What the last pull still needed (files and bytes to fetch or apply).
	NeedFiles int   `json:"need_files"`
	NeedBytes int64 `json:"need_bytes"`
	// Deletes held by the mass-delete guard until Confirm.
	HeldDeletes      int `json:"held_deletes"`
	HeldLocalDeletes int `json:"held_local_deletes"`
	Conflicts        int `json:"conflicts"`
	// StreamedBytes counts the block bytes this folder received over the
	// members' DAG stream since Start (bitswap's are the node's to count).
	StreamedBytes int64        `json:"streamed_bytes"`
	Seq           uint64       `json:"seq"`
	Peers         []PeerStatus `json:"peers,omitempty"`
	LastScan      time.Time    `json:"last_scan"`
}

// Status returns the folder's status.
func (f *Folder) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{ID: f.cfg.ID, Path: f.root, State: f.state, NeedFiles: f.need.files, NeedBytes: f.need.bytes,
		HeldDeletes: f.heldRemote, HeldLocalDeletes: f.heldLocal, LastScan: f.lastScan, StreamedBytes: f.streamed.Load()}
	if f.err != nil {
		st.Error = f.err.Error()
	}
	if (f.heldRemote > 0 || f.heldLocal > 0) && f.state == "idle" {
		st.State = "held"
	}
	if f.x == nil {
		return st
	}
	st.Seq = f.x.seq
	for _, r := range f.x.own {
		switch {
		case r.Deleted:
		case r.Dir:
			st.Dirs++
		default:
			st.Files++
			st.Bytes += r.Size
			if isConflict(r.Path) {
				st.Conflicts++
			}
		}
	}
	for _, rm := range f.x.remotes {
		ps := PeerStatus{Peer: rm.peer, Seq: rm.seq}
		if f.cfg.Host != nil {
			ps.Connected = f.cfg.Host.Network().Connectedness(rm.peer) == network.Connected
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// Conflicts returns the conflict copies in the folder (slash paths).
func (f *Folder) Conflicts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if f.x == nil {
		return nil
	}
	for p, r := range f.x.own {
		if !r.Deleted && !r.Dir && isConflict(p) {
			out = append(out, p)
		}
	}
	sortStrings(out)
	return out
}

// Roots returns the content CIDs of the files in this device's index (not
// deleted ones): what garbage collection must keep so this device can
// serve its folder to the others. Safe for concurrent use.
func (f *Folder) Roots() []cid.Cid {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.x == nil {
		return nil
	}
	out := make([]cid.Cid, 0, len(f.x.own))
	for _, r := range f.x.own {
		if !r.Deleted && !r.Dir && r.CID.Defined() {
			out = append(out, r.CID)
		}
	}
	return out
}

// Entry returns this device's entry for rel, and whether there is one.
func (f *Folder) Entry(rel string) (Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.x == nil {
		return Entry{}, false
	}
	r := f.x.own[rel]
	if r == nil {
		return Entry{}, false
	}
	return r.Entry, true
}
