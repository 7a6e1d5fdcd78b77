package integration

import (
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
	// daemon once a tenth of the file has reached the store.
	add := exec.Command(n.bin, "--home", n.home, "add", "-q", src)
	add.Env = procEnv()
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	addDone := make(chan error, 1)
	go func() { addDone <- add.Wait() }()

	data := filepath.Join(n.home, "data")
	base := dirSize(data)
	deadline := time.Now().Add(cmdTimeout)
	for dirSize(data)-base < size/10 {
		select {
		case err := <-addDone:
			t.Fatalf("add ended (%v) before a tenth of it was stored; nothing to interrupt", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("add stored < %d bytes in %v\n%s", size/10, cmdTimeout, n.logs())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}
	n.kill9()
	stored := dirSize(data) - base
	if err := <-addDone; err == nil {
		t.Fatalf("add succeeded although its daemon was killed (stored %d of %d bytes)", stored, size)
	}
	t.Logf("killed the daemon with %d of %d bytes stored", stored, size)

	// Restart on the same home: the stale api file and lock must not stop it.
	n.start()
	var v api.VerifyResult
	n.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 {
		t.Fatalf("repo verify after crash: %d corrupt blocks: %v", len(v.Corrupt), v.Corrupt)
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
