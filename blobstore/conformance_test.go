package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/boxo/blockservice"
	chunker "github.com/ipfs/boxo/chunker"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	h "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// opener makes a fresh, empty store for one test.
type opener func(t *testing.T) *Store

func openers() map[string]opener {
	return map[string]opener{
		"memory": func(t *testing.T) *Store { return mustOpen(t, Config{}) },
		"pebble": func(t *testing.T) *Store { return mustOpen(t, Config{Dir: t.TempDir(), Backend: BackendPebble}) },
		// flatfs alone is only the comparison backend: spare the test time of
		// its per-file fsyncs.
		"flatfs": func(t *testing.T) *Store {
			return mustOpen(t, Config{Dir: t.TempDir(), Backend: BackendFlatfs, NoSync: true})
		},
		"tiered": func(t *testing.T) *Store { return mustOpen(t, Config{Dir: t.TempDir()}) },
	}
}

func mustOpen(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestConformance runs the same checks against every backend.
func TestConformance(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
			}
		})
	}
}

var conformance = []struct {
	name string
	fn   func(t *testing.T, s *Store)
}{
	{"blocks", testBlocks},
	{"missing", testMissing},
	{"pins", testPins},
	{"gc", testGC},
	{"verify", testVerify},
	{"files", testFileRoundTrip},
	{"trees", testTreeRoundTrip},
	{"export-atomic", testExportAtomic},
	{"bad-input", testBadInput},
}

func rawBlock(data string) blocks.Block {
	b, err := blocks.NewBlockWithCid([]byte(data), mustSum(cid.Raw, []byte(data)))
	if err != nil {
		panic(err)
	}
	return b
}

func mustSum(codec uint64, data []byte) cid.Cid {
	c, err := v1.WithCodec(codec).Sum(data)
	if err != nil {
		panic(err)
	}
	return c
}

func testBlocks(t *testing.T, s *Store) {
	ctx := context.Background()
	a, b, c := rawBlock("a"), rawBlock("bb"), rawBlock("ccc")
	if err := s.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMany(ctx, []blocks.Block{b, c}); err != nil {
		t.Fatal(err)
	}
	for _, blk := range []blocks.Block{a, b, c} {
		got, err := s.Get(ctx, blk.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.RawData(), blk.RawData()) || !got.Cid().Equals(blk.Cid()) {
			t.Errorf("Get(%s) = %q under %s", blk.Cid(), got.RawData(), got.Cid())
		}
		if ok, err := s.Has(ctx, blk.Cid()); !ok || err != nil {
			t.Errorf("Has(%s) = %v, %v", blk.Cid(), ok, err)
		}
		if n, err := s.GetSize(ctx, blk.Cid()); n != len(blk.RawData()) || err != nil {
			t.Errorf("GetSize(%s) = %d, %v", blk.Cid(), n, err)
		}
	}
	// The same multihash under another codec is the same block.
	pb := cid.NewCidV1(cid.DagProtobuf, a.Cid().Hash())
	if got, err := s.Get(ctx, pb); err != nil || !got.Cid().Equals(pb) {
		t.Errorf("Get under dag-pb codec = %v, %v", got, err)
	}
	ch, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range ch {
		keys = append(keys, k.String())
	}
	want := []string{a.Cid().String(), b.Cid().String(), c.Cid().String()}
	slices.Sort(keys)
	slices.Sort(want)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("AllKeysChan (-want +got):\n%s", diff)
	}
	if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); ok {
		t.Error("Has after DeleteBlock = true")
	}
	if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
		t.Errorf("second DeleteBlock = %v, want nil", err)
	}
	st, err := s.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 2 || st.Bytes != 4 {
		t.Errorf("Stat = %+v, want 2 blocks, 4 bytes", st)
	}
}

func testMissing(t *testing.T, s *Store) {
	ctx := context.Background()
	c := rawBlock("never stored").Cid()
	_, err := s.Get(ctx, c)
	if !ipld.IsNotFound(err) || !errors.Is(err, ipld.ErrNotFound{}) {
		t.Errorf("Get missing = %v, want ipld.ErrNotFound", err)
	}
	if ok, err := s.Has(ctx, c); ok || err != nil {
		t.Errorf("Has missing = %v, %v", ok, err)
	}
	if n, err := s.GetSize(ctx, c); n != -1 || !ipld.IsNotFound(err) {
		t.Errorf("GetSize missing = %d, %v", n, err)
	}
	// Offline DAG: a missing node is not found, not a hang.
	if _, err := NewDAG(s, nil).Get(ctx, c); !ipld.IsNotFound(err) {
		t.Errorf("DAG Get missing = %v", err)
	}
	if _, err := Cat(ctx, NewDAG(s, nil), c); !ipld.IsNotFound(err) {
		t.Errorf("Cat missing = %v", err)
	}
}

func testPins(t *testing.T, s *Store) {
	ctx := context.Background()
	res, err := s.ImportReader(ctx, bytes.NewReader(randBytes(1, 300_000)), ImportOptions{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	solo := rawBlock("solo")
	if err := s.Put(ctx, solo); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, res.Root, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, solo.Cid(), false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pin{{Cid: res.Root, Recursive: true}, {Cid: solo.Cid()}}
	slices.SortFunc(want, func(a, b Pin) int { return compareStrings(a.Cid.String(), b.Cid.String()) })
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b cid.Cid) bool { return a.Equals(b) })); diff != "" {
		t.Errorf("Pins (-want +got):\n%s", diff)
	}
	missing := rawBlock("absent").Cid()
	if err := s.Pin(ctx, missing, true); !ipld.IsNotFound(err) {
		t.Errorf("Pin of absent DAG = %v, want not found", err)
	}
	if err := s.Pin(ctx, missing, false); !ipld.IsNotFound(err) {
		t.Errorf("direct Pin of absent block = %v, want not found", err)
	}
	if err := s.Unpin(ctx, solo.Cid()); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(ctx, solo.Cid()); !errors.Is(err, ErrNotPinned) {
		t.Errorf("second Unpin = %v, want ErrNotPinned", err)
	}
	if st, _ := s.Stat(ctx); st.Pins != 1 {
		t.Errorf("Stat.Pins = %d, want 1", st.Pins)
	}
}

func testGC(t *testing.T, s *Store) {
	ctx := context.Background()
	opt := ImportOptions{ChunkSize: 16 << 10}
	keep, err := s.ImportReader(ctx, bytes.NewReader(randBytes(2, 200_000)), opt)
	if err != nil {
		t.Fatal(err)
	}
	drop, err := s.ImportReader(ctx, bytes.NewReader(randBytes(3, 400_000)), ImportOptions{ChunkSize: bigBlock})
	if err != nil {
		t.Fatal(err)
	}
	direct, loose := rawBlock("direct"), rawBlock("loose")
	if err := s.PutMany(ctx, []blocks.Block{direct, loose}); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, keep.Root, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, direct.Cid(), false); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stat(ctx)
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != drop.Blocks+1 {
		t.Errorf("GC removed %d, want %d (the unpinned file and the loose block)", res.Removed, drop.Blocks+1)
	}
	after, _ := s.Stat(ctx)
	if after.Blocks != before.Blocks-res.Removed || after.Bytes != before.Bytes-res.Freed {
		t.Errorf("Stat after GC = %+v, before %+v, gc %+v", after, before, res)
	}
	if err := s.walk(ctx, keep.Root, func(cid.Cid) {}); err != nil {
		t.Errorf("pinned DAG damaged by GC: %v", err)
	}
	for _, c := range []cid.Cid{direct.Cid()} {
		if ok, _ := s.Has(ctx, c); !ok {
			t.Errorf("direct pin %s removed", c)
		}
	}
	for _, c := range []cid.Cid{drop.Root, loose.Cid()} {
		if ok, _ := s.Has(ctx, c); ok {
			t.Errorf("unpinned %s survived GC", c)
		}
	}
	// Unpinned, the DAG goes on the next GC.
	if err := s.Unpin(ctx, keep.Root); err != nil {
		t.Fatal(err)
	}
	if res, err := s.GC(ctx); err != nil || res.Removed != keep.Blocks {
		t.Errorf("second GC = %+v, %v; want %d removed", res, err, keep.Blocks)
	}
}

func testVerify(t *testing.T, s *Store) {
	ctx := context.Background()
	good, bad := rawBlock("good"), rawBlock("bad")
	big := rawBlock(string(randBytes(5, bigBlock+1)))
	if err := s.PutMany(ctx, []blocks.Block{good, bad, big}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Verify(ctx, nil); err != nil || res.Checked != 3 || len(res.Corrupt) != 0 {
		t.Fatalf("Verify clean store = %+v, %v", res, err)
	}
	// Corrupt the stored bytes behind the store's back.
	if err := s.blocks.Put(ctx, blockKey(bad.Cid()), []byte("flipped")); err != nil {
		t.Fatal(err)
	}
	var calls int64
	res, err := s.Verify(ctx, func(done, total int64) { calls = done })
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 3 || res.Quarantined != 1 || len(res.Corrupt) != 1 || !res.Corrupt[0].Equals(cid.NewCidV1(cid.Raw, bad.Cid().Hash())) {
		t.Errorf("Verify = %+v, want %s corrupt", res, bad.Cid())
	}
	if calls != 3 {
		t.Errorf("progress reached %d, want 3", calls)
	}
	// A big block (a file of its own in the tiered store), flipped on disk.
	bigData := append([]byte(nil), big.RawData()...)
	bigData[100] ^= 1
	if err := s.blocks.Put(ctx, blockKey(big.Cid()), bigData); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Verify(ctx, nil); err != nil || len(res.Corrupt) != 1 || !bytes.Equal(res.Corrupt[0].Hash(), big.Cid().Hash()) {
		t.Errorf("Verify after flipping a big block = %+v, %v", res, err)
	}
	if ok, _ := s.Has(ctx, big.Cid()); ok {
		t.Error("corrupt big block still served")
	}
	if ok, _ := s.Has(ctx, bad.Cid()); ok {
		t.Error("corrupt block still served")
	}
	if ok, _ := s.Has(ctx, good.Cid()); !ok {
		t.Error("good block quarantined")
	}
	q, err := s.Quarantined(ctx)
	if err != nil || len(q) != 2 {
		t.Errorf("Quarantined = %v, %v", q, err)
	}
	// A refetch puts the good blocks back.
	if err := s.PutMany(ctx, []blocks.Block{bad, big}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Verify(ctx, nil); err != nil || len(res.Corrupt) != 0 {
		t.Errorf("Verify after repair = %+v, %v", res, err)
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testFileRoundTrip(t *testing.T, s *Store) {
	ctx := context.Background()
	d := NewDAG(s, nil)
	for _, tc := range []struct {
		name  string
		size  int
		chunk int
	}{
		{"empty", 0, 0},
		{"one-byte", 1, 0},
		{"exact-chunk", 4096, 4096},
		{"multi-chunk", 10*4096 + 7, 4096},
		{"two-levels", 200*1024 + 3, 1024}, // more than 174 leaves
		{"big-leaves", 700_000, 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(uint64(tc.size), tc.size)
			src := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var last int64
			res, err := s.Import(ctx, src, ImportOptions{ChunkSize: tc.chunk, Progress: func(done, total int64) {
				if total != int64(tc.size) {
					t.Errorf("progress total %d, want %d", total, tc.size)
				}
				last = done
			}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != int64(tc.size) || res.Name != "f" || last != int64(tc.size) {
				t.Errorf("result %+v, progress %d", res, last)
			}
			if want := referenceCID(t, data, tc.chunk); !res.Root.Equals(want) {
				t.Errorf("root %s, boxo's sequential importer gives %s", res.Root, want)
			}
			r, err := Cat(ctx, d, res.Root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Cat: %d bytes, %v; want %d bytes", len(got), err, len(data))
			}
			dst := filepath.Join(t.TempDir(), "out")
			n, err := Export(ctx, d, res.Root, dst, nil)
			if err != nil || n != int64(tc.size) {
				t.Fatalf("Export = %d, %v", n, err)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Error("exported file differs")
			}
			res2, err := s.ImportReader(ctx, bytes.NewReader(data), ImportOptions{ChunkSize: tc.chunk})
			if err != nil || !res2.Root.Equals(res.Root) {
				t.Errorf("ImportReader = %v, %v; want %s", res2.Root, err, res.Root)
			}
		})
	}
}

// referenceCID is what boxo's own importer (as Kubo uses it with
// --cid-version=1 --raw-leaves) makes of data.
func referenceCID(t *testing.T, data []byte, chunk int) cid.Cid {
	t.Helper()
	if chunk == 0 {
		chunk = DefaultChunkSize
	}
	mem := mustOpen(t, Config{})
	db, err := (&h.DagBuilderParams{
		Dagserv: dag.NewDAGService(blockservice.New(mem, nil)), Maxlinks: h.DefaultLinksPerBlock,
		RawLeaves: true, CidBuilder: v1,
	}).New(chunker.NewSizeSplitter(bytes.NewReader(data), int64(chunk)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return n.Cid()
}

// writeTree makes files from a map of relative path → content; a path
// ending in "/" is an empty directory, content starting with "->" a symlink.
func writeTree(t *testing.T, root string, tree map[string]string) {
	t.Helper()
	for p, content := range tree {
		full := filepath.Join(root, filepath.FromSlash(p))
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree is the inverse of writeTree.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case p == root:
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "->" + target
		case d.IsDir():
			ents, _ := os.ReadDir(p)
			if len(ents) == 0 {
				out[rel+"/"] = ""
			}
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testTreeRoundTrip(t *testing.T, s *Store) {
	ctx := context.Background()
	tree := map[string]string{
		"a.txt":           "alpha",
		"empty.txt":       "",
		"sub/b.txt":       "beta",
		"sub/deeper/c":    string(randBytes(9, 50_000)),
		"sub/emptydir/":   "",
		"link":            "->a.txt",
		"z/y/x/w/v/u.txt": "deep",
	}
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, tree)
	res, err := s.Import(ctx, src, ImportOptions{ChunkSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "src" || res.Size != int64(5+4+50_000+4) {
		t.Errorf("Import = %+v", res)
	}
	d := NewDAG(s, nil)
	ents, err := Ls(ctx, d, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name+":"+e.Type)
	}
	if diff := cmp.Diff([]string{"a.txt:file", "empty.txt:file", "link:symlink", "sub:dir", "z:dir"}, names); diff != "" {
		t.Errorf("Ls (-want +got):\n%s", diff)
	}
	if _, err := Cat(ctx, d, res.Root); !errors.Is(err, ErrIsDir) {
		t.Errorf("Cat of a directory = %v, want ErrIsDir", err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	var lastDone, lastTotal int64
	n, err := Export(ctx, d, res.Root, dst, func(done, total int64) { lastDone, lastTotal = done, total })
	if err != nil {
		t.Fatal(err)
	}
	if n != res.Size || lastDone != res.Size || lastTotal != res.Size {
		t.Errorf("Export = %d bytes, progress %d/%d; want %d", n, lastDone, lastTotal, res.Size)
	}
	if diff := cmp.Diff(tree, readTree(t, dst)); diff != "" {
		t.Errorf("exported tree (-want +got):\n%s", diff)
	}
	// Import is deterministic.
	res2, err := s.Import(ctx, dst, ImportOptions{ChunkSize: 8192})
	if err != nil || !res2.Root.Equals(res.Root) {
		t.Errorf("re-import = %v, %v; want %s", res2.Root, err, res.Root)
	}
	// An empty directory alone.
	empty := filepath.Join(t.TempDir(), "e")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	er, err := s.Import(ctx, empty, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := Ls(ctx, d, er.Root); err != nil || len(ents) != 0 {
		t.Errorf("Ls empty dir = %v, %v", ents, err)
	}
	if _, err := Ls(ctx, d, rawBlock("x").Cid()); err == nil {
		t.Error("Ls of a missing root succeeded")
	}
}

func testExportAtomic(t *testing.T, s *Store) {
	ctx := context.Background()
	data := randBytes(4, 100_000)
	res, err := s.ImportReader(ctx, bytes.NewReader(data), ImportOptions{ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	// Remove one leaf in the middle: the export must fail part-way.
	n, err := NewDAG(s, nil).Get(ctx, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlock(ctx, n.Links()[10].Cid); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	if _, err = Export(ctx, NewDAG(s, nil), res.Root, dst, nil); !ipld.IsNotFound(err) {
		t.Fatalf("Export with a missing block = %v, want not found", err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial file under the real name: %v", err)
	}
	// Fail in the middle of writing: cancel once some bytes are out.
	res, err = s.ImportReader(ctx, bytes.NewReader(data), ImportOptions{ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wrote int64
	_, err = Export(cctx, NewDAG(s, nil), res.Root, dst, func(done, total int64) {
		wrote = done
		if done > 10_000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Export = %v", err)
	}
	if wrote == 0 || wrote == int64(len(data)) {
		t.Errorf("export stopped after %d bytes; the test needs a partial write", wrote)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial file under the real name: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func testBadInput(t *testing.T, s *Store) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := s.Import(ctx, filepath.Join(dir, "nope"), ImportOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Import of a missing path = %v, want ErrNotExist", err)
	}
	if _, err := s.ImportReader(ctx, bytes.NewReader(nil), ImportOptions{ChunkSize: MaxChunkSize + 1}); err == nil {
		t.Error("oversized chunk accepted")
	}
	res, err := s.ImportReader(ctx, bytes.NewReader([]byte("x")), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ctx, NewDAG(s, nil), res.Root, existing, nil); !errors.Is(err, ErrExist) {
		t.Errorf("Export over an existing file = %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("existing file overwritten")
	}
	if _, err := Ls(ctx, NewDAG(s, nil), res.Root); !errors.Is(err, ErrNotDir) {
		t.Errorf("Ls of a file = %v, want ErrNotDir", err)
	}
}
