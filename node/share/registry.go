package share

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	dag "github.com/ipfs/boxo/ipld/merkledag"
)

// RegistryFile is the file, in Config.Dir, that holds the share records.
const RegistryFile = "shares.json"

// Bounds on the registry: they keep a hostile or broken file from making
// Open use unbounded memory, and the downloads bookkeeping bounded.
const (
	// MaxShares is the most shares a registry holds; Create refuses more.
	MaxShares = 10000
	// maxRegistryBytes bounds shares.json when it is read.
	maxRegistryBytes = 64 << 20
	// maxCountedPeers is how many distinct downloaders a share remembers
	// in memory, to count each one once per process; past it every
	// request of the root counts.
	maxCountedPeers = 4096
)

// Errors callers branch on.
var (
	// ErrNotFound: no share has that ID.
	ErrNotFound = errors.New("no such share")
	// ErrIncomplete: the item's DAG is not all in the local store, so it
	// cannot be shared (a friend could not fetch it from here).
	ErrIncomplete = errors.New("item is not complete in the local store")
)

// State is a share's serving state at a given time.
type State string

const (
	StateActive  State = "active"
	StateRevoked State = "revoked"
	StateExpired State = "expired"
)

// Share is one share record.
type Share struct {
	// ID is a short random identifier (10 base32 characters) chosen by
	// Create.
	ID string `json:"id"`
	// Root is the UnixFS root CID served (the ciphertext's when
	// Encrypted).
	Root cid.Cid `json:"root"`
	// Name is the item's file or folder name, shown to the friend.
	Name string `json:"name,omitempty"`
	// DNSName is the label under the person's zone at which the share is
	// published (_dnslink.<DNSName>.<zone>), "" for none.
	DNSName string `json:"dns_name,omitempty"`
	// Size is the item's size in bytes as served (file data of Root).
	Size int64 `json:"size"`
	// Created is set by Create.
	Created time.Time `json:"created"`
	// Expires is when serving stops, zero for never.
	Expires time.Time `json:"expires,omitzero"`
	// Revoked is when Revoke was called, zero if it was not.
	Revoked time.Time `json:"revoked,omitzero"`
	// Encrypted: Root is an age-encrypted stream made by Seal.
	Encrypted bool `json:"encrypted,omitempty"`
	// Key is the age identity of an encrypted share, kept so that the
	// link can be shown again. The registry file is mode 0600.
	Key string `json:"key,omitempty"`
	// Unlisted shares are not announced to the DHT.
	Unlisted bool `json:"unlisted,omitempty"`
	// Downloads counts fetches of the root by distinct peers (each peer
	// once per daemon run) and by the gateway (each request).
	Downloads int64 `json:"downloads"`
	// Blocks is the number of blocks of the DAG under Root.
	Blocks int `json:"blocks"`
}

// State reports whether s is active, revoked or expired at now.
func (s Share) State(now time.Time) State {
	switch {
	case !s.Revoked.IsZero():
		return StateRevoked
	case !s.Expires.IsZero() && !now.Before(s.Expires):
		return StateExpired
	}
	return StateActive
}

// Blocks is what the registry reads the shared DAGs from: the local
// block store. Get and Has must not fetch from the network; Get must
// report a missing block with an error satisfying ipld.IsNotFound. Raw
// leaves are only checked with Has: a share of a large file reads its
// inner nodes, not its data.
type Blocks interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
	Has(ctx context.Context, c cid.Cid) (bool, error)
}

// Config configures a Registry.
type Config struct {
	// Dir holds RegistryFile; it is created (mode 0700) if missing.
	// Required.
	Dir string
	// Blocks is the local block store the shared DAGs are walked in.
	// Required.
	Blocks Blocks
	// Now is the clock for expiry, read on every Active call. Default nil:
	// time.Now.
	Now func() time.Time
	// Logger receives the registry's logs. Default nil: discard.
	Logger *slog.Logger
}

// Registry holds the shares and answers the serving policy. Its methods are
// safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu     sync.RWMutex
	closed bool
	shares map[string]*Share
	// index maps a block's multihash to the IDs of the shares whose DAG
	// holds it. Bitswap and blockstores key blocks by multihash, so a
	// block is served whatever CID version or codec it is asked under.
	index map[string][]string
	// roots maps a root's multihash to the IDs of the shares it roots.
	roots map[string][]string
	// counted remembers who has been counted as a download, per share.
	counted map[string]map[string]struct{}
	// dirty: downloads changed since the last save.
	dirty bool
	// changed is closed, and replaced, when a share is created or
	// revoked (Changed).
	changed chan struct{}

	// fmu guards fetchers apart from mu, for Serve records under mu's
	// read lock.
	fmu sync.Mutex
	// fetchers remembers, per share, who has been served its blocks
	// since the last TakeFetchers, so that a revocation can cut them off.
	fetchers map[string]map[string]struct{}
}

// Open reads the registry in cfg.Dir (an empty registry if there is none)
// and rebuilds the block set of every share that is not revoked by walking
// its DAG in cfg.Blocks. A share whose blocks have gone missing serves the
// blocks still there, and a warning is logged.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Dir == "" {
		return nil, errors.New("share: open: Dir is required")
	}
	if cfg.Blocks == nil {
		return nil, errors.New("share: open: Blocks is required")
	}
	r := &Registry{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		shares:  map[string]*Share{},
		index:   map[string][]string{},
		roots:   map[string][]string{},
		counted: map[string]map[string]struct{}{},
		changed: make(chan struct{}),

		fetchers: map[string]map[string]struct{}{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("share: open %s: %w", cfg.Dir, err)
	}
	ss, err := readRegistry(filepath.Join(cfg.Dir, RegistryFile))
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		r.shares[s.ID] = s
		r.addRoot(s)
		if !s.Revoked.IsZero() {
			continue
		}
		set, err := walk(ctx, cfg.Blocks, s.Root)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("share: open: %w", ctx.Err())
			}
			r.log.Warn("share: blocks missing; serving what is left", "id", s.ID, "root", s.Root, "err", err)
		}
		r.addBlocks(s.ID, set)
	}
	return r, nil
}

func readRegistry(path string) ([]*Share, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("share: open %s: %w", path, err)
	}
	defer f.Close()
	var file registryFile
	dec := json.NewDecoder(&limitedReader{f, maxRegistryBytes})
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("share: open %s: %w", path, err)
	}
	if file.Version != 1 {
		return nil, fmt.Errorf("share: open %s: version %d, want 1", path, file.Version)
	}
	if len(file.Shares) > MaxShares {
		return nil, fmt.Errorf("share: open %s: %d shares, at most %d", path, len(file.Shares), MaxShares)
	}
	seen := map[string]bool{}
	for _, s := range file.Shares {
		if s == nil || !validID(s.ID) || seen[s.ID] || !s.Root.Defined() {
			return nil, fmt.Errorf("share: open %s: a record with a missing, repeated or malformed ID or root", path)
		}
		seen[s.ID] = true
	}
	return file.Shares, nil
}

type registryFile struct {
	Version int      `json:"version"`
	Shares  []*Share `json:"shares"`
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Create records a new share of s.Root, whose DAG must be complete in the
// local store (else ErrIncomplete). It sets ID, Created, Blocks and
// Downloads and ignores Revoked; the other fields are kept as given. The
// share is active, and saved, when Create returns. The caller pins the
// root, so that GC keeps what is shared.
func (r *Registry) Create(ctx context.Context, s Share) (Share, error) {
	if !s.Root.Defined() {
		return Share{}, errors.New("share: create: no root CID")
	}
	if err := checkName(s.Name); err != nil {
		return Share{}, fmt.Errorf("share: create %s: name: %w", s.Root, err)
	}
	set, err := walk(ctx, r.cfg.Blocks, s.Root)
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrIncomplete, err)
		}
		return Share{}, fmt.Errorf("share: create %s: %w", s.Root, err)
	}
	id, err := newID()
	if err != nil {
		return Share{}, fmt.Errorf("share: create %s: %w", s.Root, err)
	}
	s.ID = id
	s.Created = r.now().UTC().Truncate(time.Second)
	s.Revoked = time.Time{}
	s.Downloads = 0
	s.Blocks = len(set)
	if !s.Expires.IsZero() {
		s.Expires = s.Expires.UTC()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Share{}, fmt.Errorf("share: create %s: registry closed", s.Root)
	}
	if len(r.shares) >= MaxShares {
		return Share{}, fmt.Errorf("share: create %s: %d shares already, at most %d: revoke and remove some", s.Root, len(r.shares), MaxShares)
	}
	rec := s
	r.shares[id] = &rec
	if err := r.saveLocked(); err != nil {
		delete(r.shares, id)
		return Share{}, fmt.Errorf("share: create %s: %w", s.Root, err)
	}
	r.addRoot(&rec)
	r.addBlocks(id, set)
	r.notifyLocked()
	r.log.Info("share: created", "id", id, "root", s.Root, "blocks", len(set), "encrypted", s.Encrypted)
	return rec, nil
}

// Get returns the share id, or ErrNotFound.
func (r *Registry) Get(id string) (Share, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.shares[id]
	if !ok {
		return Share{}, fmt.Errorf("share: get %s: %w", id, ErrNotFound)
	}
	return *s, nil
}

// List returns every share, revoked and expired ones too, newest first.
func (r *Registry) List() []Share {
	r.mu.RLock()
	out := make([]Share, 0, len(r.shares))
	for _, s := range r.shares {
		out = append(out, *s)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Share) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke stops serving share id: Active answers false for its blocks (those
// no other active share holds) from the moment Revoke returns. Revoking a
// revoked share changes nothing. An unknown id is ErrNotFound.
func (r *Registry) Revoke(id string) (Share, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.shares[id]
	if !ok {
		return Share{}, fmt.Errorf("share: revoke %s: %w", id, ErrNotFound)
	}
	if !s.Revoked.IsZero() {
		return *s, nil
	}
	s.Revoked = r.now().UTC()
	// The block set goes before the save, so that a failed save does not
	// leave the share served.
	r.dropBlocks(id)
	r.notifyLocked()
	if err := r.saveLocked(); err != nil {
		return Share{}, fmt.Errorf("share: revoke %s: %w", id, err)
	}
	r.log.Info("share: revoked", "id", id, "root", s.Root)
	return *s, nil
}

// Active reports whether the block c belongs to a share that is active
// now (not revoked, not expired by Config.Now). It costs one map look-up
// and a clock read, for bitswap asks it for every block a non-member wants.
func (r *Registry) Active(c cid.Cid) bool {
	if !c.Defined() {
		return false
	}
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, id := range r.index[string(c.Hash())] {
		if s := r.shares[id]; s != nil && s.State(now) == StateActive {
			return true
		}
	}
	return false
}

// Serve is Active for a block that who (a peer ID) asks for: when it
// answers true it also remembers who as a fetcher of every active share
// holding c, until TakeFetchers hands the set over. A share remembers at
// most 4096 fetchers.
func (r *Registry) Serve(c cid.Cid, who string) bool {
	if !c.Defined() {
		return false
	}
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	ok := false
	for _, id := range r.index[string(c.Hash())] {
		s := r.shares[id]
		if s == nil || s.State(now) != StateActive {
			continue
		}
		ok = true
		r.fmu.Lock()
		set := r.fetchers[id]
		if set == nil {
			set = map[string]struct{}{}
			r.fetchers[id] = set
		}
		if len(set) < maxCountedPeers {
			set[who] = struct{}{}
		}
		r.fmu.Unlock()
	}
	return ok
}

// TakeFetchers returns who Serve has served share id's blocks to since
// the last call, and forgets them.
func (r *Registry) TakeFetchers(id string) []string {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	set := r.fetchers[id]
	delete(r.fetchers, id)
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Changed returns a channel that is closed at the next Create or Revoke.
// Expiry is no event: a caller that cares reads the clock.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changed
}

func (r *Registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// RootState is the state of the share rooted at c, for telling a friend
// why a link no longer works: StateActive if an active share has that
// root; else StateExpired, with the latest expiry, if an expired share
// (not revoked) has; else ok is false. A revoked share reads as unknown,
// as a root this node never shared does.
func (r *Registry) RootState(c cid.Cid) (st State, expired time.Time, ok bool) {
	if !c.Defined() {
		return "", time.Time{}, false
	}
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, id := range r.roots[string(c.Hash())] {
		s := r.shares[id]
		if s == nil {
			continue
		}
		switch s.State(now) {
		case StateActive:
			return StateActive, time.Time{}, true
		case StateExpired:
			if s.Expires.After(expired) {
				expired = s.Expires
			}
			ok = true
		}
	}
	if ok {
		return StateExpired, expired, true
	}
	return "", time.Time{}, false
}

// Root returns the active share rooted at c, if there is one.
func (r *Registry) Root(c cid.Cid) (Share, bool) {
	if !c.Defined() {
		return Share{}, false
	}
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, id := range r.roots[string(c.Hash())] {
		if s := r.shares[id]; s != nil && s.State(now) == StateActive {
			return *s, true
		}
	}
	return Share{}, false
}

// CountDownload counts a download of the active share rooted at c by who
// (a peer ID; "" counts every call, as the gateway does per request). A
// peer is counted once per share while the registry is open. The count is
// saved with the next change and at Close.
func (r *Registry) CountDownload(c cid.Cid, who string) {
	if !c.Defined() {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.roots[string(c.Hash())] {
		s := r.shares[id]
		if s == nil || s.State(now) != StateActive {
			continue
		}
		if who != "" {
			seen := r.counted[id]
			if seen == nil {
				seen = map[string]struct{}{}
				r.counted[id] = seen
			}
			if _, ok := seen[who]; ok {
				continue
			}
			if len(seen) < maxCountedPeers {
				seen[who] = struct{}{}
			}
		}
		s.Downloads++
		r.dirty = true
	}
}

// Flush saves the download counts if they changed.
func (r *Registry) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.dirty || r.closed {
		return nil
	}
	if err := r.saveLocked(); err != nil {
		return fmt.Errorf("share: flush: %w", err)
	}
	return nil
}

// Close saves the download counts. Later calls change nothing; Active
// keeps answering from memory. Close is idempotent.
func (r *Registry) Close() error {
	err := r.Flush()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return err
}

func (r *Registry) addRoot(s *Share) {
	k := string(s.Root.Hash())
	r.roots[k] = append(r.roots[k], s.ID)
}

func (r *Registry) addBlocks(id string, set map[string]struct{}) {
	for k := range set {
		r.index[k] = append(r.index[k], id)
	}
}

// dropBlocks removes share id from the index. It visits the whole index,
// which is fine for a revocation, a rare event.
func (r *Registry) dropBlocks(id string) {
	for k, ids := range r.index {
		ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
		if len(ids) == 0 {
			delete(r.index, k)
		} else {
			r.index[k] = ids
		}
	}
}

// saveLocked writes the registry atomically: a temporary file in Dir,
// synced, renamed over RegistryFile, the directory synced.
func (r *Registry) saveLocked() error {
	file := registryFile{Version: 1, Shares: make([]*Share, 0, len(r.shares))}
	for _, s := range r.shares {
		file.Shares = append(file.Shares, s)
	}
	slices.SortFunc(file.Shares, func(a, b *Share) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(r.cfg.Dir, RegistryFile), append(data, '\n'), 0o600); err != nil {
		return err
	}
	r.dirty = false
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 10 base32 characters: 50 random bits, enough that IDs of
// one person's shares never collide and short enough to type.
func newID() (string, error) {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return idEncoding.EncodeToString(b[:])[:10], nil
}

func validID(id string) bool {
	if len(id) != 10 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// walk returns the multihashes of every block of the DAG under root in bs.
// Raw and dag-pb blocks (UnixFS files, directories, HAMT shards) are
// understood; any other codec is an error, for a share must serve a DAG
// that a friend can fetch whole. On a missing block it returns the blocks
// found so far with the error.
func walk(ctx context.Context, bs Blocks, root cid.Cid) (map[string]struct{}, error) {
	set := map[string]struct{}{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return set, err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().MhType == mh.IDENTITY {
			continue // the data is in the CID: nothing to serve
		}
		k := string(c.Hash())
		if _, ok := set[k]; ok {
			continue
		}
		if c.Type() == cid.Raw {
			ok, err := bs.Has(ctx, c)
			if err == nil && !ok {
				err = ipld.ErrNotFound{Cid: c}
			}
			if err != nil {
				return set, fmt.Errorf("block %s: %w", c, err)
			}
			set[k] = struct{}{}
			continue
		}
		b, err := bs.Get(ctx, c)
		if err != nil {
			return set, fmt.Errorf("block %s: %w", c, err)
		}
		set[k] = struct{}{}
		switch c.Type() {
		case cid.DagProtobuf:
			n, err := dag.DecodeProtobuf(b.RawData())
			if err != nil {
				return set, fmt.Errorf("decode %s: %w", c, err)
			}
			for _, l := range n.Links() {
				stack = append(stack, l.Cid)
			}
		default:
			return set, fmt.Errorf("block %s: codec 0x%x is not UnixFS", c, c.Type())
		}
	}
	return set, nil
}
