package folder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/p2p"
)

const mib = 1 << 20

// Files of several blocks come over the DAG stream straight into place:
// repeated leaves (zeros) and two files of the same content are written
// right, each distinct block crosses the network once, no leaf is kept in
// the receiver's store, and no partial file is left behind.
func TestDirectFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	devs, _ := newDevs(t, 2, "direct", func(i int, c *Config) { c.NoWatch = true })
	a, b := devs[0], devs[1]
	r := randData(7, 3*mib)
	var content []byte
	content = append(content, r...)
	content = append(content, make([]byte, 4*mib)...) // four equal leaves
	content = append(content, r...)                   // three leaves seen before
	content = append(content, randData(8, 100)...)
	for _, name := range []string{"big.bin", "sub/copy.bin"} {
		p := filepath.Join(a.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	a.start(t)
	b.start(t)
	connect(t, a, b)
	waitFor(t, time.Minute, "b has both files", func() bool {
		st := b.f.Status()
		return st.Files == 2 && st.State == "idle"
	})
	waitConverged(t, 30*time.Second, nil, a, b)
	for _, name := range []string{"big.bin", "sub/copy.bin"} {
		got, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content) {
			t.Fatalf("%s differs on b", name)
		}
	}
	// Distinct leaves: 3 random, 1 of zeros, the 100-byte tail; plus the
	// root (a few hundred bytes).
	unique := int64(3*mib + mib + 100)
	if got := b.f.Status().StreamedBytes; got < unique || got > unique+4096 {
		t.Errorf("b received %d bytes over the DAG stream, want %d and the root", got, unique)
	}
	if es, _ := os.ReadDir(filepath.Join(b.dir, stateDir, partialDir)); len(es) > 0 {
		t.Errorf("partial files left behind: %v", es)
	}
	e, _ := b.f.Entry("big.bin")
	rs, err := b.f.leafRefs(context.Background(), e.CID, e.Size, filepath.Join(b.dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range rs {
		ok, err := b.store.HasRef(context.Background(), ref.Cid)
		if err != nil || !ok {
			t.Fatalf("leaf %s not referenced on b (%v)", ref.Cid, err)
		}
	}
	if n := diskUse(t, filepath.Join(filepath.Dir(b.dir), "blocks", "flatfs")); n >= mib {
		t.Errorf("b's store keeps %d bytes of large blocks; leaves should only be referenced", n)
	}
}

// A fetch interrupted earlier resumes from its partial file: what the
// partial holds intact is kept, a corrupted leaf and the missing tail are
// fetched, nothing else.
func TestDirectResume(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	devs, _ := newDevs(t, 2, "resume", func(i int, c *Config) { c.NoWatch = true })
	a, b := devs[0], devs[1]
	content := randData(9, 6*mib+5)
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	waitFor(t, 30*time.Second, "a scanned", func() bool { return a.f.Status().Files == 1 })
	e, _ := a.f.Entry("big.bin")
	ctx := context.Background()
	// b holds the file's root (stored when the interrupted fetch began)
	// and a partial file with leaves 0 and 2 intact, leaf 1 corrupted,
	// and nothing past 3 MiB; the leaves were referenced in it.
	root, err := a.store.Get(ctx, e.CID)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.PutMany(ctx, []blocks.Block{root}); err != nil {
		t.Fatal(err)
	}
	rs, err := a.f.leafRefs(ctx, e.CID, e.Size, "x")
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(b.dir, stateDir, partialDir, e.CID.String())
	if err := os.MkdirAll(filepath.Dir(part), 0o700); err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), content[:3*mib]...)
	data[mib+17] ^= 1
	if err := os.WriteFile(part, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var refs []blobstore.Ref
	for _, r := range rs[:3] {
		r.Path = part
		refs = append(refs, r)
	}
	if err := b.store.AddRefs(ctx, refs); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	connect(t, a, b)
	waitFor(t, time.Minute, "b has the file", func() bool {
		st := b.f.Status()
		return st.Files == 1 && st.State == "idle"
	})
	got, err := os.ReadFile(filepath.Join(b.dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatal("b's file differs from a's")
	}
	if got, want := b.f.Status().StreamedBytes, int64(4*mib+5); got != want {
		t.Errorf("b received %d bytes over the DAG stream, want %d (leaf 1 and the tail)", got, want)
	}
	if _, err := os.Stat(part); err == nil {
		t.Error("the partial file is still there")
	}
}

// innerBytes builds a file's inner node with the given children and
// declared sizes.
func innerBytes(t testing.TB, kids []cid.Cid, sizes []uint64) []byte {
	t.Helper()
	fsn := unixfs.NewFSNode(unixfspb.Data_File)
	for _, s := range sizes {
		fsn.AddBlockSize(s)
	}
	data, err := fsn.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	pn := merkledag.NodeWithData(data)
	for i, k := range kids {
		if err := pn.AddRawLink(strconv.Itoa(i), &ipld.Link{Cid: k, Size: sizes[i]}); err != nil {
			t.Fatal(err)
		}
	}
	_ = pn.SetCidBuilder(dagPrefix)
	return pn.RawData()
}

// A member's inner node that lays blocks outside the file, or whose
// leaves do not have the sizes it declares, is refused before anything
// is written past the file's end.
func TestDirectSinkRefusesBadLayout(t *testing.T) {
	leaf := randData(1, 100)
	lc, _ := rawCID(leaf)
	cases := []struct {
		name  string
		sizes []uint64
		size  int64 // the file's size in the index
	}{
		{"children past the end", []uint64{100, 100}, 150},
		{"declared sizes not the file's", []uint64{100, 100}, 250},
		{"a leaf not of its declared size", []uint64{90, 110}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, pt := sinkFor(t, tc.size)
			b := innerBlock(t, []cid.Cid{lc, lc}, tc.sizes)
			if err := d.want(b.Cid(), slot{p: pt, size: tc.size}); err != nil {
				t.Fatal(err)
			}
			err := d.arrive(b)
			if err == nil {
				err = d.arrive(mustBlock(t, leaf, lc))
			}
			if !errors.Is(err, p2p.ErrDAGCorrupt) {
				t.Fatalf("err = %v, want ErrDAGCorrupt", err)
			}
			if fi, _ := pt.fd.Stat(); fi.Size() > tc.size {
				t.Fatalf("partial grew to %d bytes, file has %d", fi.Size(), tc.size)
			}
		})
	}
}

func innerBlock(t testing.TB, kids []cid.Cid, sizes []uint64) blocks.Block {
	t.Helper()
	data := innerBytes(t, kids, sizes)
	c, err := dagPrefix.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return mustBlock(t, data, c)
}

func mustBlock(t testing.TB, data []byte, c cid.Cid) blocks.Block {
	t.Helper()
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sinkFor is a directSink over one partial file of size bytes.
func sinkFor(t testing.TB, size int64) (*directSink, *partial) {
	t.Helper()
	fd, err := os.CreateTemp(t.TempDir(), "partial")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	pt := &partial{a: action{want: Entry{Path: "f", Size: size}}, path: fd.Name(), fd: fd}
	return newDirectSink(&Folder{}), pt
}

// Whatever inner node a peer sends, placing it never panics and never
// writes past the file's end.
func FuzzDirectSinkInner(f *testing.F) {
	leaf := randData(1, 100)
	lc, _ := rawCID(leaf)
	f.Add(innerBytes(f, []cid.Cid{lc, lc}, []uint64{100, 100}), int64(200))
	f.Add(innerBytes(f, []cid.Cid{lc}, []uint64{1 << 40}), int64(100))
	f.Add([]byte{0x0a, 0x02, 0x08, 0x02}, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		if size < 0 || size > 1<<20 {
			return
		}
		c, err := dagPrefix.Sum(data)
		if err != nil {
			return
		}
		d, pt := sinkFor(t, size)
		if err := d.want(c, slot{p: pt, size: size}); err != nil {
			return
		}
		if err := d.arrive(mustBlock(t, data, c)); err != nil {
			return
		}
		_ = d.arrive(mustBlock(t, leaf, lc))
		if fi, _ := pt.fd.Stat(); fi.Size() > size {
			t.Fatalf("partial grew to %d bytes, file has %d", fi.Size(), size)
		}
	})
}

// Partial files untouched for a day go at the periodic prune, unless a
// batch holds them; recent ones stay (a fetch may resume them).
func TestPrunePartials(t *testing.T) {
	dir := t.TempDir()
	f, err := New(Config{ID: "prune", Path: dir, Device: "dev", Store: &blobstore.Store{}})
	if err != nil {
		t.Fatal(err)
	}
	pd := filepath.Join(dir, stateDir, partialDir)
	if err := os.MkdirAll(pd, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-partialMaxAge - time.Hour)
	for _, name := range []string{"old", "busy", "new"} {
		p := filepath.Join(pd, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if name != "new" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.parts.busy = map[string]bool{filepath.Join(pd, "busy"): true}
	f.prunePartials()
	for name, want := range map[string]bool{"old": false, "busy": true, "new": true} {
		_, err := os.Stat(filepath.Join(pd, name))
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v", name, got, want)
		}
	}
}

// A pull's own renames and new directories do not make the watcher
// rescan the folder: a large pull would otherwise rescan it after each
// batch.
func TestPullDoesNotTriggerScans(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	devs, _ := newDevs(t, 2, "ownevents", func(i int, c *Config) {
		if i == 0 {
			c.NoWatch = true
		}
	})
	a, b := devs[0], devs[1]
	n := 1500
	if raceEnabled {
		n = 600
	}
	for i := range n {
		p := filepath.Join(a.dir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i))
		if i < 20 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, randData(uint64(i), 100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.start(t)
	waitFor(t, 10*time.Second, "b's first scan", func() bool { return b.f.Status().State == "idle" })
	before := b.f.scans.Load()
	a.start(t)
	connect(t, a, b)
	waitFor(t, time.Minute, "b has every file", func() bool {
		st := b.f.Status()
		return st.Files == n && st.State == "idle"
	})
	// The watcher's debounce is 30 ms here: a scan its events asked for
	// would have started well within this window.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if got := b.f.scans.Load(); got != before {
			t.Fatalf("b scanned %d times during or after its pull: its own renames triggered the watcher", got-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A change by the user is still seen.
	write(t, b, "d00/mine.txt", "by hand", time.Time{})
	waitFor(t, 10*time.Second, "b's scan of a user's file", func() bool {
		e, ok := b.f.Entry("d00/mine.txt")
		return ok && !e.Deleted
	})
}
