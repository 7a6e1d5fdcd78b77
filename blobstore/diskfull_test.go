package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	ds "github.com/ipfs/go-datastore"
)

func TestDiskFull(t *testing.T) {
	s, err := Open(context.Background(), Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	enospc := fmt.Errorf("write x: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	other := errors.New("ipld: could not find bafk...")

	if got := s.DiskFull(nil, start); got != nil {
		t.Errorf("DiskFull(nil) = %v", got)
	}
	if got := s.DiskFull(other, start); got != other {
		t.Errorf("an unrelated error became %v", got)
	}
	got := s.DiskFull(enospc, start)
	if !errors.Is(got, ErrDiskFull) || !errors.Is(got, syscall.ENOSPC) || !strings.HasPrefix(got.Error(), "disk full: free space in "+s.cfg.Dir+": ") {
		t.Errorf("DiskFull(ENOSPC) = %v", got)
	}
	if again := s.DiskFull(got, start); again != got {
		t.Errorf("wrapped twice: %v", again)
	}
	// A write that failed for want of space explains a later "not found"
	// in the same operation, not in one that started after it.
	s.noteWrite(enospc)
	if got := s.DiskFull(other, start); !errors.Is(got, ErrDiskFull) {
		t.Errorf("after a full write: %v", got)
	}
	if got := s.DiskFull(other, time.Now().Add(time.Second)); got != other {
		t.Errorf("an operation started later: %v", got)
	}
}

// fakeBatch is a ds.Batch whose operations fail with err once fail is set;
// it counts what reaches it and, like flatfs' batch, can be discarded.
type fakeBatch struct {
	failPut, failCommit     error
	puts, commits, discards int
}

func (f *fakeBatch) Put(context.Context, ds.Key, []byte) error { f.puts++; return f.failPut }
func (f *fakeBatch) Delete(context.Context, ds.Key) error      { return nil }
func (f *fakeBatch) Commit(context.Context) error              { f.commits++; return f.failCommit }
func (f *fakeBatch) Discard(context.Context) error             { f.discards++; return nil }

func TestCleaningBatch(t *testing.T) {
	ctx := context.Background()
	enospc := &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name                  string
		failPut, failCommit   error
		wantErr               error
		wantPuts, wantCommits int
		wantDiscards          int
	}{
		{name: "ok", wantPuts: 2, wantCommits: 1},
		// After the first failed Put the batch is discarded once and
		// nothing more reaches it: the second Put and the Commit return
		// the first error.
		{name: "put fails", failPut: enospc, wantErr: enospc, wantPuts: 1, wantDiscards: 1},
		{name: "commit fails", failCommit: enospc, wantErr: enospc, wantPuts: 2, wantCommits: 1, wantDiscards: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBatch{failPut: tc.failPut, failCommit: tc.failCommit}
			b := &cleaningBatch{Batch: f}
			err1 := b.Put(ctx, ds.NewKey("a"), nil)
			err2 := b.Put(ctx, ds.NewKey("b"), nil)
			err := errors.Join(err1, err2, b.Commit(ctx))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if f.puts != tc.wantPuts || f.commits != tc.wantCommits || f.discards != tc.wantDiscards {
				t.Errorf("puts %d commits %d discards %d, want %d %d %d",
					f.puts, f.commits, f.discards, tc.wantPuts, tc.wantCommits, tc.wantDiscards)
			}
		})
	}
}

// TestFlatfsFailedBatchLeavesNoFiles fails a real flatfs batch (a value
// whose temporary file cannot be created: its name is taken by a
// directory) and checks that the batch's other files are gone.
func TestFlatfsFailedBatchLeavesNoFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir, NoSync: true, Backend: BackendFlatfs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.blocks.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	good := blocks.NewBlock([]byte("good"))
	bad := blocks.NewBlock([]byte("bad"))
	if err := b.Put(ctx, blockKey(good.Cid()), good.RawData()); err != nil {
		t.Fatal(err)
	}
	temps := func() []string {
		var names []string
		_ = filepath.WalkDir(filepath.Join(dir, "flatfs", ".temp"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				names = append(names, p)
			}
			return nil
		})
		return names
	}
	// The good value's file is written in the background; wait for it,
	// then block the bad one's name.
	deadline := time.Now().Add(10 * time.Second)
	for len(temps()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the batch wrote no temporary file")
		}
		time.Sleep(10 * time.Millisecond) // polling the background write
	}
	batchDir := filepath.Dir(temps()[0])
	badName := filepath.Join(batchDir, strings.TrimPrefix(blockKey(bad.Cid()).String(), "/")+".data")
	if err := os.Mkdir(badName, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = b.Put(ctx, blockKey(bad.Cid()), bad.RawData())
	if err := b.Commit(ctx); err == nil {
		t.Fatal("commit succeeded with a value that could not be written")
	}
	if left := temps(); len(left) > 0 {
		t.Errorf("a failed batch left %v", left)
	}
	if _, err := os.Stat(batchDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed batch's directory is still there: %v", err)
	}
}

func TestPebbleErrorFunc(t *testing.T) {
	var logs bytes.Buffer
	s, err := Open(context.Background(), Config{Dir: t.TempDir(), NoSync: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	f := s.pebbleErrorFunc(0)
	other := errors.New("ipld: could not find bafk...")
	if got := s.DiskFull(other, start); errors.Is(got, ErrDiskFull) {
		t.Fatalf("disk full before any error: %v", got)
	}
	// Pebble retries a failed flush at once: the same error many times.
	flushErr := fmt.Errorf("pebble: flush: %w", &fs.PathError{Op: "write", Path: "000012.sst", Err: syscall.ENOSPC})
	for range 1000 {
		f(flushErr)
	}
	if got := s.DiskFull(other, start); !errors.Is(got, ErrDiskFull) {
		t.Errorf("after a flush failed with ENOSPC: %v; want disk full", got)
	}
	if n := strings.Count(logs.String(), "background error"); n != 1 {
		t.Errorf("1000 identical background errors logged %d times, want 1:\n%s", n, logs.String())
	}
	f(errors.New("pebble: compaction: something else"))
	if n := strings.Count(logs.String(), "background error"); n != 2 {
		t.Errorf("a different error was not logged:\n%s", logs.String())
	}

	// On ENOSPC the hook holds pebble's retry for the backoff.
	const backoff = 50 * time.Millisecond
	t0 := time.Now()
	s.pebbleErrorFunc(backoff)(flushErr)
	if d := time.Since(t0); d < backoff {
		t.Errorf("a flush that failed for want of space was retried after %v, want at least %v", d, backoff)
	}
}

// smallFS mounts a tmpfs of sizeMiB at a new directory, unmounted in
// cleanup. It needs root: in CI (CI set) it fails without, elsewhere it
// skips.
func smallFS(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the disk-full test needs root to mount a tmpfs, and CI runs as root: is it?")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(sizeMiB)+"m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeSpace(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillTo writes a file that leaves about leave bytes free on dir's
// filesystem and returns its path.
func fillTo(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for freeSpace(t, dir) > leave+int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// diskFullChild names the tmpfs a child process of
// TestDiskFullSmallBlocks writes to.
const diskFullChild = "PCNODE_TEST_DISKFULL_DIR"

// TestDiskFullSmallBlocks fills a small filesystem with blocks under 128
// KiB, which the tiered store keeps in pebble. Without a free-space
// reserve pebble either panics (a WAL write that fails with ENOSPC is
// fatal to it) or, once 4 memtables wait for a flush that cannot be
// written, blocks every write without an error. The store must instead
// refuse with ErrDiskFull, keep what it stored, and take writes again
// once space returns. The writing runs in a child process, so that
// pebble's panic fails this test rather than ending the test binary.
func TestDiskFullSmallBlocks(t *testing.T) {
	if dir := os.Getenv(diskFullChild); dir != "" {
		diskFullSmallBlocks(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("mounts a tmpfs; skipped with -short")
	}
	runChild(t, "TestDiskFullSmallBlocks", smallFS(t, 160))
}

// runChild runs test alone in a child process of this test binary, with
// diskFullChild set to mnt, and fails if it fails (or panics).
func runChild(t *testing.T, test, mnt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), diskFullChild+"="+mnt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 6000 {
			tail = "..." + tail[len(tail)-6000:]
		}
		t.Fatalf("the writer process failed (%v):\n%s", err, tail)
	}
	t.Logf("writer process:\n%s", out)
}

// TestDiskFullReopened: a store opened on a disk that is already full has
// a WAL file without preallocated space, so that pebble's next write to it
// fails, which pebble treats as fatal: "pebble: fatal commit error: write
// .../000015.log: no space left on device" (a panic), and Close panicked
// too (rotateWAL), before the reserve. Now the write is refused and the
// store closes, and after space returns it takes writes again.
func TestDiskFullReopened(t *testing.T) {
	if dir := os.Getenv(diskFullChild); dir != "" {
		diskFullReopened(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("mounts a tmpfs; skipped with -short")
	}
	runChild(t, "TestDiskFullReopened", smallFS(t, 64))
}

func diskFullReopened(t *testing.T, mnt string) {
	ctx := context.Background()
	dir := filepath.Join(mnt, "store")
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	block := func(i, tag int) blocks.Block {
		b := make([]byte, 50<<10)
		b[0], b[1], b[2] = byte(i), byte(i>>8), byte(tag)
		return blocks.NewBlock(b)
	}
	var stored []blocks.Block
	for i := range 20 {
		b := block(i, 1)
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	filler := fillTo(t, mnt, 0)
	t.Logf("%d KiB free when reopened", freeSpace(t, mnt)>>10)
	s, err = Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen on a full disk: %v", err) // pebble v2.1.7 opens
	}
	for i := range 200 { // once past the WAL's few free bytes, pebble panicked
		err := s.Put(ctx, block(i, 2))
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("put %d on a full disk: %v, want ErrDiskFull", i, err)
		}
		t.Logf("put %d: %v", i, err)
		break
	}
	for _, b := range stored {
		if got, err := s.Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("on the full disk: block %s: %v", b.Cid(), err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	more := block(1000, 3)
	if err := s.Put(ctx, more); err != nil {
		t.Fatalf("a put after space returned: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range append(stored, more) {
		if got, err := s.Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("reopened: block %s: %v", b.Cid(), err)
		}
	}
}

func diskFullSmallBlocks(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "store")
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Leave room for some writes before the disk is full.
	filler := fillTo(t, mnt, 72<<20)
	t.Logf("%d MiB free before writing", freeSpace(t, mnt)>>20)

	rng := rand.New(rand.NewPCG(1, 2))
	newBlocks := func(n int) []blocks.Block {
		bs := make([]blocks.Block, n)
		for i := range bs {
			b := make([]byte, 64<<10+rng.IntN(60<<10)) // < 128 KiB: pebble
			for j := 0; j+8 <= len(b); j += 8 {
				v := rng.Uint64()
				copy(b[j:], []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40), byte(v >> 48), byte(v >> 56)})
			}
			bs[i] = blocks.NewBlock(b)
		}
		return bs
	}
	var stored []blocks.Block
	var full error
	for i := 0; i < 400 && full == nil; i++ { // at most 400 × 1.5 MiB
		bs := newBlocks(16)
		// A stalled write (pebble waiting for a flush that cannot be
		// written) does not end with its context: this process ends.
		done := make(chan error, 1)
		go func() { done <- s.PutMany(context.Background(), bs) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			fmt.Printf("a write on a full disk stalled for 30 s without an error (%d MiB free, %d blocks stored)\n", freeSpace(t, mnt)>>20, len(stored))
			os.Exit(3) // Close would wait for the stalled write
		}
		if err != nil {
			full = err
		} else {
			stored = append(stored, bs...)
		}
	}
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("writing until the disk is full: %v; want ErrDiskFull", full)
	}
	if !strings.Contains(full.Error(), "disk full: free space in "+dir) || !strings.Contains(full.Error(), "MiB free") {
		t.Errorf("the error does not say where and how much is free: %v", full)
	}
	t.Logf("stored %d blocks, then: %v", len(stored), full)
	if len(stored) == 0 {
		t.Fatal("nothing was stored before the disk was full")
	}
	// Refused again while full, at once.
	t0 := time.Now()
	if err := s.Put(context.Background(), newBlocks(1)[0]); !errors.Is(err, ErrDiskFull) {
		t.Errorf("a put on the full disk: %v, want ErrDiskFull", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("refusing a put took %v", d)
	}
	check := func(when string) {
		t.Helper()
		for _, b := range stored {
			got, err := s.Get(context.Background(), b.Cid())
			if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("%s: block %s: %v", when, b.Cid(), err)
			}
		}
	}
	check("on the full disk")

	// Space returns: the same store takes writes again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	more := newBlocks(16)
	if err := s.PutMany(context.Background(), more); err != nil {
		t.Fatalf("a put after space returned (%d MiB free): %v", freeSpace(t, mnt)>>20, err)
	}
	stored = append(stored, more...)
	check("after space returned")
	res, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Corrupt) > 0 || res.Checked != len(stored) {
		t.Errorf("verify: %d blocks checked, %d corrupt; want %d, 0", res.Checked, len(res.Corrupt), len(stored))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, everything is there.
	s, err = Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("reopened")
}

// TestSpaceGuard: the guard asks the filesystem rarely while there is
// room, always before refusing, refuses below the reserve with a clear
// error, and admits again once space returns.
func TestSpaceGuard(t *testing.T) {
	const mib = 1 << 20
	var (
		free  int64 = 100 * mib
		calls int
		fails int
	)
	g := newSpaceGuard("/home/x", 50*mib, func(err error) {
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("onFull(%v)", err)
		}
		fails++
	})
	g.statfs = func(string) (int64, error) { calls++; return free, nil }

	// Small writes far from the reserve: one look per spaceCheckBytes.
	for range 100 {
		if err := g.admit(64<<10, g.reserve); err != nil {
			t.Fatal(err)
		}
		free -= 64 << 10
	}
	if want := 100*(64<<10)/spaceCheckBytes + 1; calls > want+1 {
		t.Errorf("%d statfs calls for 100 writes of 64 KiB, want about %d", calls, want)
	}
	// Someone else fills the disk: the next look refuses.
	free = 49 * mib
	g.at = time.Time{}
	err := g.admit(1, g.reserve)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "disk full: free space in /home/x: only 49.0 MiB free") ||
		!strings.Contains(err.Error(), "resume") {
		t.Fatalf("admit below the reserve: %v", err)
	}
	if fails != 1 {
		t.Errorf("onFull called %d times, want 1", fails)
	}
	// A write that would cross the reserve is refused, a smaller one not.
	free = 60 * mib
	if err := g.admit(11*mib, g.reserve); err == nil {
		t.Error("a write that crosses the reserve was admitted")
	}
	if err := g.admit(9*mib, g.reserve); err != nil {
		t.Errorf("a write that fits: %v", err)
	}
	// Small writes (a pin) go on below the reserve, down to
	// smallWriteFloor; anything larger does not.
	free = 3 * mib
	g.at = time.Time{}
	if err := g.admit(200, g.floor(200)); err != nil {
		t.Errorf("a small write with 3 MiB free: %v", err)
	}
	if err := g.admit(smallWrite+1, g.floor(smallWrite+1)); err == nil {
		t.Error("a write of more than smallWrite below the reserve was admitted")
	}
	free = smallWriteFloor - 1
	g.at = time.Time{}
	if err := g.admit(200, g.floor(200)); err == nil {
		t.Error("a small write below smallWriteFloor was admitted")
	}
	// Deletes go on below the reserve, down to deleteReserve.
	free = 2 * mib
	if err := g.admit(0, deleteReserve); err != nil {
		t.Errorf("a delete with 2 MiB free: %v", err)
	}
	free = deleteReserve / 2
	g.at = time.Time{} // the next look
	if err := g.admit(0, deleteReserve); err == nil {
		t.Error("a delete with no room for its WAL record was admitted")
	}
	// Space returns: admitted at once, without waiting for a period.
	free = 80 * mib
	if err := g.admit(mib, g.reserve); err != nil {
		t.Errorf("after space returned: %v", err)
	}
	// A failed statfs does not stop writes.
	g.statfs = func(string) (int64, error) { return 0, syscall.EIO }
	g.at = time.Time{}
	if err := g.admit(mib, g.reserve); err != nil {
		t.Errorf("with statfs failing: %v", err)
	}
}

// TestGuardedPresent: on a full disk, a write of what is stored already is
// skipped, not failed; anything new is refused, in a batch or alone.
func TestGuardedPresent(t *testing.T) {
	ctx := context.Background()
	free := int64(1 << 30)
	g := newSpaceGuard("x", 64<<20, nil)
	g.statfs = func(string) (int64, error) { return free, nil }
	for _, putFirst := range []bool{false, true} {
		d := &guarded{Batching: ds.NewMapDatastore(), g: g, weight: 1, putFirst: putFirst, blocks: true}
		old, new := ds.NewKey("old"), ds.NewKey("new")
		val := make([]byte, 2*smallWrite) // data, not a small write
		free = 1 << 30
		g.at = time.Time{}
		if err := d.Put(ctx, old, val); err != nil {
			t.Fatal(err)
		}
		free = 1 << 20
		g.at = time.Time{}
		if err := d.Put(ctx, old, val); err != nil {
			t.Errorf("putFirst %v: a put of a stored key on a full disk: %v", putFirst, err)
		}
		if err := d.Put(ctx, new, val); !errors.Is(err, ErrDiskFull) {
			t.Errorf("putFirst %v: a new put on a full disk: %v", putFirst, err)
		}
		b, _ := d.Batch(ctx)
		err := errors.Join(b.Put(ctx, old, val), b.Commit(ctx))
		if err != nil {
			t.Errorf("putFirst %v: a batch of stored keys: %v", putFirst, err)
		}
		b, _ = d.Batch(ctx)
		err = errors.Join(b.Put(ctx, old, val), b.Put(ctx, new, val), b.Commit(ctx))
		if !errors.Is(err, ErrDiskFull) {
			t.Errorf("putFirst %v: a batch with a new key: %v", putFirst, err)
		}
		if ok, _ := d.Has(ctx, new); ok {
			t.Errorf("putFirst %v: the refused key was stored", putFirst)
		}
		// Not for pins and references, whose values change.
		d.blocks = false
		if err := d.Put(ctx, old, val); !errors.Is(err, ErrDiskFull) {
			t.Errorf("putFirst %v: a put of a stored pin on a full disk: %v, want ErrDiskFull", putFirst, err)
		}
	}
}
