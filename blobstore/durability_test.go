package blobstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestKillMidImport kills (SIGKILL) a process in the middle of an import
// into an on-disk store, then checks that the store opens, holds no
// corrupt block, and that the import can simply be repeated.
func TestKillMidImport(t *testing.T) {
	if dir := os.Getenv("PCNODE_KILL_CHILD_DIR"); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, randBytes(11, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKillMidImport$")
	cmd.Env = append(os.Environ(), "PCNODE_KILL_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the child has committed some blocks (files of the big
	// tier appear) while still reading, then kill it.
	sc := bufio.NewScanner(out)
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		var done, total int64
		if _, err := fmt.Sscanf(sc.Text(), "progress %d %d", &done, &total); err != nil || done == total {
			continue
		}
		if files, _ := filepath.Glob(filepath.Join(store, "flatfs", "*", "*.data")); len(files) >= 10 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	go func() { // let the child finish writing to the pipe
		for sc.Scan() {
		}
	}()
	_ = cmd.Wait()
	if !killed {
		t.Fatal("child finished or stalled before it could be killed")
	}

	ctx := context.Background()
	s := mustOpen(t, Config{Dir: store})
	v, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Corrupt) != 0 {
		t.Fatalf("corrupt blocks after kill -9: %v", v.Corrupt)
	}
	if v.Checked < 10 {
		t.Fatalf("only %d blocks survived; the kill came too early to test anything", v.Checked)
	}
	res, err := s.Import(ctx, src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Cat(ctx, NewDAG(s, nil), res.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("re-import after kill: %d bytes, %v", got.Len(), err)
	}
}

// killChild is the process that gets killed: it imports and prints progress.
func killChild(dir string) {
	s, err := Open(context.Background(), Config{Dir: filepath.Join(dir, "store")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s.writeBatch = 1 << 20 // commit every 4 leaves, so that some land before the kill
	_, err = s.Import(context.Background(), filepath.Join(dir, "src"), ImportOptions{
		ChunkSize: 256 << 10,
		Progress: func(done, total int64) {
			fmt.Printf("progress %d %d\n", done, total)
			// Slow down so that the parent kills in the middle.
			time.Sleep(20 * time.Millisecond)
		},
	})
	fmt.Println("finished", err)
	os.Exit(0)
}
