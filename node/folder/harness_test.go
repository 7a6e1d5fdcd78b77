package folder

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/p2p"
)

// dev is one device of a test: a loopback libp2p host with bitswap, a
// block store and one folder.
type dev struct {
	name  string
	h     *p2p.Host
	store *blobstore.Store
	f     *Folder
	dir   string
	cfg   Config
}

type testNet struct {
	mu      sync.Mutex
	members map[peer.ID]bool
}

func (n *testNet) isMember(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[p]
}

// newDevs starts n devices with folder id, none connected yet. tweak may
// adjust each folder's Config before New.
func newDevs(t *testing.T, n int, id string, tweak func(i int, c *Config)) ([]*dev, *testNet) {
	t.Helper()
	ctx := context.Background()
	net := &testNet{members: map[peer.ID]bool{}}
	var devs []*dev
	for i := range n {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		base := t.TempDir()
		store, err := blobstore.Open(ctx, blobstore.Config{Dir: filepath.Join(base, "blocks"), NoSync: os.Getenv("FOLDER_SYNC") == ""})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		h, err := p2p.New(p2p.Config{Key: key, Blockstore: store, Profile: p2p.ProfileLocal, DHTPrefix: "/pcnode-test", DAGStreamAllowed: net.isMember})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		net.members[h.ID()] = true
		d := &dev{name: string(rune('A' + i)), h: h, store: store, dir: filepath.Join(base, "folder")}
		d.cfg = Config{
			ID: id, Path: d.dir, Device: h.ID(), Store: store,
			DAG: blobstore.NewDAG(store, h.Exchange()), Host: h.Libp2p(), Members: net.isMember,
			Dir: filepath.Join(base, "state"), Debounce: 30 * time.Millisecond, RescanInterval: -1,
		}
		if tweak != nil {
			tweak(i, &d.cfg)
		}
		devs = append(devs, d)
	}
	return devs, net
}

func (d *dev) start(t *testing.T) {
	t.Helper()
	f, err := New(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.f = f
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
}

func connect(t *testing.T, a, b *dev) {
	t.Helper()
	if _, err := a.h.Connect(context.Background(), b.h.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
}

func disconnect(t *testing.T, a, b *dev) {
	t.Helper()
	_ = a.h.Libp2p().Network().ClosePeer(b.h.ID())
	_ = b.h.Libp2p().Network().ClosePeer(a.h.ID())
}

// fileState is what must be equal on every device.
type fileState struct {
	Dir   bool
	Mode  fs.FileMode
	MTime int64
	Hash  string
}

// tree lists a folder as devices must agree on it (internal files left out).
func tree(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // changing under our feet: the next poll sees it
		}
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if internal(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st := fileState{Dir: d.IsDir(), Mode: fi.Mode()}
		if !d.IsDir() {
			st.MTime = fi.ModTime().UnixNano()
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			st.Hash = hex.EncodeToString(h[:8])
		}
		out[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitConverged waits until every device's tree equals want (or, with
// want nil, until all trees are equal) and returns the tree.
func waitConverged(t *testing.T, timeout time.Duration, want map[string]fileState, devs ...*dev) map[string]fileState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var diff string
	for {
		ref := want
		if ref == nil {
			ref = tree(t, devs[0].dir)
		}
		diff = ""
		for _, d := range devs {
			if got := tree(t, d.dir); !cmp.Equal(ref, got) {
				diff = fmt.Sprintf("device %s differs (-want +got):\n%s", d.name, cmp.Diff(ref, got))
				break
			}
		}
		if diff == "" {
			return ref
		}
		if time.Now().After(deadline) {
			for _, d := range devs {
				t.Logf("%s status: %+v", d.name, d.f.Status())
			}
			t.Fatalf("not converged after %v: %s", timeout, diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitEvery(t, 10*time.Millisecond, timeout, what, cond)
}

// waitEvery is waitFor polling every interval.
func waitEvery(t *testing.T, interval, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// waitScanned waits until d's index has rel with content (or deleted when
// content is nil).
func waitScanned(t *testing.T, d *dev, rel string, content []byte) {
	t.Helper()
	d.f.Scan()
	waitFor(t, 5*time.Second, d.name+" scanned "+rel, func() bool {
		e, ok := d.f.Entry(rel)
		if content == nil {
			return ok && e.Deleted
		}
		c, _ := rawCID(content)
		return ok && !e.Deleted && e.CID.Equals(c)
	})
}

// write puts content at rel with mtime (zero: now) in one rename, so that
// a scan the watcher starts meanwhile never sees a half-written file or
// the mtime before Chtimes: each call is exactly one new version, which
// tests that count versions rely on.
func write(t *testing.T, d *dev, rel, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(d.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// Next to the folder (same file system), outside it.
	stage, err := os.MkdirTemp(filepath.Dir(d.dir), "stage-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stage)
	tmp := filepath.Join(stage, "f")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, d *dev, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func conflictsIn(tr map[string]fileState) []string {
	var out []string
	for p := range tr {
		if strings.Contains(p, conflictMarker) {
			out = append(out, p)
		}
	}
	return out
}
