package folder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/pcnode/pcnode/blobstore"
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
	if got := b.f.streamed.Load(); got < unique || got > unique+4096 {
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
	if got, want := b.f.streamed.Load(), int64(4*mib+5); got != want {
		t.Errorf("b received %d bytes over the DAG stream, want %d (leaf 1 and the tail)", got, want)
	}
	if _, err := os.Stat(part); err == nil {
		t.Error("the partial file is still there")
	}
}
