package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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
