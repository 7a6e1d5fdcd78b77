package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// TestKillDuringAdd: SIGKILL of the daemon in the middle of an add leaves
// a store that verifies clean, and the add run again gives the CID that a
// fresh node gives for the same file.
func TestKillDuringAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 128 MiB twice and kills a daemon; skipped with -short")
	}
	t.Parallel()
	size := int64(128 << 20)
	if *long {
		size = 1 << 30
	}
	n := newProc(t, "crash")
	n.start()
	src := writeRandom(t, t.TempDir(), size, 2)

	// The add runs as its own process against the daemon; we kill the
	// daemon once a quarter of the file is in the store (several of the
	// importer's write batches), well before the end.
	add := exec.Command(n.bin, "--home", n.home, "add", "-q", src)
	add.Env = procEnv()
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	addDone := make(chan error, 1)
	go func() { addDone <- add.Wait() }()

	c, err := api.DialHome(n.home)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stored int64
	for stored < size/4 {
		select {
		case err := <-addDone:
			t.Fatalf("add ended (%v) with only %d of %d bytes seen in the store; nothing to interrupt", err, stored, size)
		case <-ctx.Done():
			t.Fatalf("add stored %d of %d bytes in %v\n%s", stored, size, cmdTimeout, n.logs())
		case <-time.After(20 * time.Millisecond): // polling a condition under a deadline
		}
		rs, err := c.RepoStat(ctx)
		if err != nil {
			t.Fatalf("repo stat during add: %v", err)
		}
		stored = rs.Bytes
	}
	n.kill9()
	if err := <-addDone; err == nil {
		t.Fatalf("add succeeded although its daemon was killed (%d of %d bytes were stored)", stored, size)
	}
	t.Logf("killed the daemon with %d of %d bytes stored", stored, size)

	// Restart on the same home: the stale api file and lock must not stop it.
	n.start()
	var v api.VerifyResult
	n.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 {
		t.Fatalf("repo verify after crash: %d corrupt blocks: %v", len(v.Corrupt), v.Corrupt)
	}
	if v.Checked == 0 {
		t.Fatalf("repo verify after crash checked no blocks: the %d bytes stored before the kill are gone", stored)
	}
	t.Logf("verify after crash: %d blocks checked, none corrupt", v.Checked)

	var again api.AddResult
	n.mustJSON(&again, "add", src)

	// A fresh node (offline, no daemon) computes the reference CID.
	ref := newProc(t, "reference")
	var want api.AddResult
	ref.mustJSON(&want, "add", src)
	if again.CID != want.CID {
		t.Fatalf("add after crash gave %s; a fresh node gives %s", again.CID, want.CID)
	}

	out := filepath.Join(t.TempDir(), "out")
	n.must("get", again.CID, "-o", out)
	sameFile(t, src, out)
	n.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 {
		t.Fatalf("repo verify after the second add: %v", v.Corrupt)
	}
}
