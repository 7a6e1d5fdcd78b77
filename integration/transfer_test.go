package integration

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// TestTransferBetweenDaemons: a file added on A is fetched, byte for byte,
// by B after B connects to A, all through the CLI of two daemons.
func TestTransferBetweenDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons and moves 64 MiB; skipped with -short")
	}
	t.Parallel()
	a, b := newProc(t, "a"), newProc(t, "b")
	a.start()
	b.start()

	src := writeRandom(t, t.TempDir(), 64<<20, 1)
	start := time.Now()
	var added api.AddResult
	a.mustJSON(&added, "add", src)
	t.Logf("add 64 MiB on A: %v", time.Since(start).Round(time.Millisecond))
	if added.CID == "" || added.Size != 64<<20 {
		t.Fatalf("add: got %+v", added)
	}

	// B is not in A's cloud: A serves it shared blocks only.
	a.must("share", added.CID)
	var p api.Peer
	b.mustJSON(&p, "peers", "connect", loopbackAddr(t, a.status()))
	if want := a.status().ID; p.ID != want {
		t.Fatalf("peers connect: connected to %s, want %s", p.ID, want)
	}

	out := filepath.Join(t.TempDir(), "out")
	start = time.Now()
	var got api.GetResult
	b.mustJSON(&got, "get", added.CID, "-o", out)
	el := time.Since(start)
	t.Logf("get 64 MiB on B from A: %v (%.1f MiB/s)", el.Round(time.Millisecond), 64/el.Seconds())
	if got.Size != 64<<20 {
		t.Errorf("get: size %d, want %d", got.Size, 64<<20)
	}
	sameFile(t, src, out)

	// B has the blocks now: they verify, and A still lists B as a peer.
	var v api.VerifyResult
	b.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 || v.Checked == 0 {
		t.Errorf("verify on B: %+v", v)
	}
	var peers struct{ Peers []api.Peer }
	a.mustJSON(&peers, "peers", "ls")
	found := false
	for _, q := range peers.Peers {
		found = found || q.ID == b.status().ID
	}
	if !found {
		t.Errorf("A's peers %+v lack B", peers.Peers)
	}
}
