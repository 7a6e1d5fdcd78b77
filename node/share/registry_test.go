package share

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/blobstore"
)

// clock is an injected clock the test moves by hand.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newStore(t *testing.T) *blobstore.Store {
	t.Helper()
	st, err := blobstore.Open(context.Background(), blobstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func importBytes(t *testing.T, st *blobstore.Store, data []byte, chunk int) blobstore.ImportResult {
	t.Helper()
	res, err := st.ImportReader(context.Background(), bytes.NewReader(data), blobstore.ImportOptions{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dagBlocks lists the blocks of a file imported with one level of raw
// leaves, independently of the registry's walk: the root and its links.
func dagBlocks(t *testing.T, st *blobstore.Store, root cid.Cid) []cid.Cid {
	t.Helper()
	b, err := st.Get(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	n, err := merkledag.DecodeProtobuf(b.RawData())
	if err != nil {
		t.Fatal(err)
	}
	out := []cid.Cid{root}
	for _, l := range n.Links() {
		if l.Cid.Type() != cid.Raw {
			t.Fatalf("dagBlocks: %s is not a leaf", l.Cid)
		}
		out = append(out, l.Cid)
	}
	return out
}

func openReg(t *testing.T, dir string, st *blobstore.Store, clk *clock) *Registry {
	t.Helper()
	r, err := Open(context.Background(), Config{Dir: dir, Blocks: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegistryServingPolicy(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	clk := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	dir := t.TempDir()
	r := openReg(t, dir, st, clk)

	shared := importBytes(t, st, randBytes(40<<10, 1), 4<<10)  // 10 leaves and a root
	private := importBytes(t, st, randBytes(40<<10, 2), 4<<10) // never shared
	expiring := importBytes(t, st, randBytes(9<<10, 3), 4<<10)

	s, err := r.Create(ctx, Share{Root: shared.Root, Name: "a.bin", Size: shared.Size})
	if err != nil {
		t.Fatal(err)
	}
	if !validID(s.ID) || s.Blocks != 11 || !s.Created.Equal(clk.Now().Truncate(time.Second)) {
		t.Errorf("created %+v", s)
	}
	e, err := r.Create(ctx, Share{Root: expiring.Root, Expires: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	sharedBlocks := dagBlocks(t, st, shared.Root)
	privateBlocks := dagBlocks(t, st, private.Root)
	expBlocks := dagBlocks(t, st, expiring.Root)
	check := func(when string, cs []cid.Cid, want bool) {
		t.Helper()
		for _, c := range cs {
			if got := r.Active(c); got != want {
				t.Errorf("%s: Active(%s) = %v, want %v", when, c, got, want)
			}
		}
	}
	check("shared", sharedBlocks, true)
	check("private", privateBlocks, false)
	check("expiring before expiry", expBlocks, true)
	// The same block asked for under another CID version or codec is the
	// same bytes: the policy follows the multihash.
	v0 := cid.NewCidV1(cid.DagProtobuf, shared.Root.Hash())
	if !r.Active(v0) {
		t.Error("the root under another codec is not active")
	}
	if r.Active(cid.Undef) {
		t.Error("Active(Undef)")
	}

	clk.Add(time.Hour - time.Second)
	check("one second before expiry", expBlocks, true)
	clk.Add(time.Second)
	check("at expiry", expBlocks, false)
	if got, _ := r.Get(e.ID); got.State(clk.Now()) != StateExpired {
		t.Errorf("state %s", got.State(clk.Now()))
	}
	if _, ok := r.Root(expiring.Root); ok {
		t.Error("Root finds an expired share")
	}

	if rs, ok := r.Root(shared.Root); !ok || rs.ID != s.ID {
		t.Errorf("Root(shared) = %+v, %v", rs, ok)
	}
	rv, err := r.Revoke(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rv.State(clk.Now()) != StateRevoked {
		t.Errorf("state after revoke %s", rv.State(clk.Now()))
	}
	check("revoked", sharedBlocks, false)
	if _, err := r.Revoke("nosuchshar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}

	// Reopened from disk: the same answers.
	r.Close()
	fi, err := os.Stat(filepath.Join(dir, RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("registry file mode %v", fi.Mode().Perm())
	}
	r2 := openReg(t, dir, st, clk)
	if len(r2.List()) != 2 {
		t.Errorf("reopened with %d shares", len(r2.List()))
	}
	check2 := func(cs []cid.Cid, want bool) {
		t.Helper()
		for _, c := range cs {
			if r2.Active(c) != want {
				t.Errorf("after reopen: Active(%s) != %v", c, want)
			}
		}
	}
	check2(sharedBlocks, false)
	check2(expBlocks, false)
	s3, err := r2.Create(ctx, Share{Root: private.Root})
	if err != nil {
		t.Fatal(err)
	}
	check2(privateBlocks, true)
	r2.Close()
	r3 := openReg(t, dir, st, clk)
	for _, c := range privateBlocks {
		if !r3.Active(c) {
			t.Errorf("block set not rebuilt at open: %s", c)
		}
	}
	if g, err := r3.Get(s3.ID); err != nil || !g.Root.Equals(private.Root) {
		t.Errorf("Get = %+v, %v", g, err)
	}
}

func TestRegistryBlockInTwoShares(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	clk := newClock(time.Now())
	r := openReg(t, t.TempDir(), st, clk)
	data := randBytes(8<<10, 7)
	a := importBytes(t, st, data, 4<<10)
	b := importBytes(t, st, append(bytes.Clone(data), 'x'), 4<<10) // shares a's two leaves
	sa, err := r.Create(ctx, Share{Root: a.Root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, Share{Root: b.Root}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(sa.ID); err != nil {
		t.Fatal(err)
	}
	if r.Active(a.Root) {
		t.Error("revoked root still active")
	}
	common := dagBlocks(t, st, a.Root)
	n := 0
	for _, c := range common {
		if r.Active(c) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d blocks of the revoked share still active, want 2 (the leaves the other share holds)", n)
	}
}

func TestRegistryIncomplete(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	r := openReg(t, t.TempDir(), st, newClock(time.Now()))
	res := importBytes(t, st, randBytes(16<<10, 9), 4<<10)
	leaves := dagBlocks(t, st, res.Root)
	if err := st.DeleteBlock(ctx, leaves[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, Share{Root: res.Root}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Create of an incomplete DAG: %v, want ErrIncomplete", err)
	}
	if len(r.List()) != 0 {
		t.Error("an incomplete share was recorded")
	}
}

func TestRegistryDownloads(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	dir := t.TempDir()
	clk := newClock(time.Now())
	r := openReg(t, dir, st, clk)
	res := importBytes(t, st, []byte("hello"), 0)
	s, err := r.Create(ctx, Share{Root: res.Root})
	if err != nil {
		t.Fatal(err)
	}
	r.CountDownload(res.Root, "peerA")
	r.CountDownload(res.Root, "peerA")
	r.CountDownload(res.Root, "peerB")
	r.CountDownload(res.Root, "")
	r.CountDownload(res.Root, "")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := openReg(t, dir, st, clk)
	g, err := r2.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Downloads != 4 {
		t.Errorf("downloads %d, want 4 (two peers once each, two gateway requests)", g.Downloads)
	}
}

func TestRegistryOpenErrors(t *testing.T) {
	st := newStore(t)
	tests := []struct{ name, content string }{
		{"not json", "{"},
		{"version", `{"version":2,"shares":[]}`},
		{"bad id", `{"version":1,"shares":[{"id":"../x","root":{"/":"` + testCID + `"}}]}`},
		{"repeated id", `{"version":1,"shares":[{"id":"aaaaaaaaaa","root":{"/":"` + testCID + `"}},{"id":"aaaaaaaaaa","root":{"/":"` + testCID + `"}}]}`},
		{"no root", `{"version":1,"shares":[{"id":"aaaaaaaaaa"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, RegistryFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if r, err := Open(context.Background(), Config{Dir: dir, Blocks: st}); err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestRegistryConcurrent(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	r := openReg(t, t.TempDir(), st, newClock(time.Now()))
	var roots []cid.Cid
	for i := range 8 {
		roots = append(roots, importBytes(t, st, randBytes(3000, uint64(100+i)), 1024).Root)
	}
	var wg sync.WaitGroup
	ids := make(chan string, len(roots))
	for _, c := range roots {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := r.Create(ctx, Share{Root: c})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- s.ID
		}()
		go func() {
			defer wg.Done()
			for range 200 {
				r.Active(c)
				r.CountDownload(c, "p")
			}
		}()
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		if _, err := r.Revoke(id); err != nil {
			t.Error(err)
		}
	}
	for _, c := range roots {
		if r.Active(c) {
			t.Errorf("%s active after revoking everything", c)
		}
	}
}

// BenchmarkActive measures the bitswap filter's cost per block.
func BenchmarkActive(b *testing.B) {
	ctx := context.Background()
	st, err := blobstore.Open(ctx, blobstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	res, err := st.ImportReader(ctx, bytes.NewReader(randBytes(4<<20, 1)), blobstore.ImportOptions{ChunkSize: 4 << 10})
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(ctx, Config{Dir: b.TempDir(), Blocks: st})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Create(ctx, Share{Root: res.Root}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Active(res.Root) {
			b.Fatal("not active")
		}
	}
}

// TestRegistryStopSignals: what the node needs to cut transfers when a
// share stops: Changed fires on Create and Revoke, Serve remembers who was
// served (only for active shares), TakeFetchers hands them over once, and
// RootState tells an expired root from a revoked or unknown one.
func TestRegistryStopSignals(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	clk := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := openReg(t, t.TempDir(), st, clk)
	a := importBytes(t, st, randBytes(20<<10, 11), 4<<10)
	b := importBytes(t, st, randBytes(20<<10, 12), 4<<10)
	private := importBytes(t, st, randBytes(20<<10, 13), 4<<10)

	fired := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := r.Changed()
	sa, err := r.Create(ctx, Share{Root: a.Root})
	if err != nil {
		t.Fatal(err)
	}
	if !fired(ch) {
		t.Error("Changed did not fire on Create")
	}
	sb, err := r.Create(ctx, Share{Root: b.Root, Expires: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ch = r.Changed()
	if fired(ch) {
		t.Error("Changed fired with no change")
	}

	leaf := dagBlocks(t, st, a.Root)[1]
	if !r.Serve(leaf, "peer1") || !r.Serve(a.Root, "peer2") || !r.Serve(leaf, "peer1") {
		t.Error("Serve refused a block of an active share")
	}
	if r.Serve(private.Root, "peer3") {
		t.Error("Serve served a private block")
	}
	if !r.Serve(b.Root, "peer4") {
		t.Error("Serve refused the root of an active share")
	}
	if st, _, ok := r.RootState(a.Root); !ok || st != StateActive {
		t.Errorf("RootState(active) = %s %v", st, ok)
	}

	if _, err := r.Revoke(sa.ID); err != nil {
		t.Fatal(err)
	}
	if !fired(ch) {
		t.Error("Changed did not fire on Revoke")
	}
	if r.Serve(leaf, "peer5") {
		t.Error("Serve served a revoked share's block")
	}
	if got := r.TakeFetchers(sa.ID); !slices.Equal(got, []string{"peer1", "peer2"}) {
		t.Errorf("fetchers of a: %q", got)
	}
	if got := r.TakeFetchers(sa.ID); len(got) != 0 {
		t.Errorf("fetchers handed over twice: %q", got)
	}
	if _, _, ok := r.RootState(a.Root); ok {
		t.Error("a revoked root reads as known")
	}
	if _, _, ok := r.RootState(private.Root); ok {
		t.Error("a private root reads as known")
	}

	clk.Add(2 * time.Hour)
	st2, exp, ok := r.RootState(b.Root)
	if !ok || st2 != StateExpired || !exp.Equal(sb.Expires) {
		t.Errorf("RootState(expired) = %s %v %v, want expired at %v", st2, exp, ok, sb.Expires)
	}
	if got := r.TakeFetchers(sb.ID); !slices.Equal(got, []string{"peer4"}) {
		t.Errorf("fetchers of b: %q", got)
	}
}

// leafReads counts the raw leaves read through Get.
type leafReads struct {
	*blobstore.Store
	n int
}

func (l *leafReads) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Type() == cid.Raw {
		l.n++
	}
	return l.Store.Get(ctx, c)
}

// TestRegistryWalkSkipsLeafData: a share (and a reopened registry) checks
// a file's leaves by presence; only its inner nodes are read, so sharing
// a large file does not read its data.
func TestRegistryWalkSkipsLeafData(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	bs := &leafReads{Store: st}
	dir := t.TempDir()
	r, err := Open(ctx, Config{Dir: dir, Blocks: bs, Now: newClock(time.Now()).Now})
	if err != nil {
		t.Fatal(err)
	}
	res := importBytes(t, st, randBytes(64<<10, 11), 4<<10)
	s, err := r.Create(ctx, Share{Root: res.Root})
	if err != nil {
		t.Fatal(err)
	}
	if s.Blocks != 17 || bs.n != 0 {
		t.Fatalf("share of 16 leaves and a root: %d blocks, %d leaves read; want 17 and 0", s.Blocks, bs.n)
	}
	r.Close()
	r2, err := Open(ctx, Config{Dir: dir, Blocks: bs, Now: newClock(time.Now()).Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if bs.n != 0 {
		t.Fatalf("reopening read %d leaves", bs.n)
	}
	for _, c := range dagBlocks(t, st, res.Root) {
		if !r2.Active(c) {
			t.Fatalf("block %s of the share is not served after reopening", c)
		}
	}
}
