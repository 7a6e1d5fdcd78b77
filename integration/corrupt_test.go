package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/api"
)

// TestVerifyFindsCorruptBlock: a block whose stored bytes no longer hash
// to its CID (bit rot, a bad disk) is reported by `pcnode repo verify`,
// which exits 1, quarantines it, and is clean the next time; reading the
// file then fails instead of returning wrong bytes.
func TestVerifyFindsCorruptBlock(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pcnode; skipped with -short")
	}
	t.Parallel()
	n := newProc(t, "corrupt")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.txt")
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(good, []byte("this block stays intact\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("this block will rot on disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Offline: the CLI opens the home itself. A small file is one raw block.
	goodCID := strings.TrimSpace(n.must("add", "-q", good))
	badCID := strings.TrimSpace(n.must("add", "-q", bad))

	// Rot the block behind the CLI's back, through the store's own
	// layout (the home's data directory, as node opens it).
	corruptBlock(t, filepath.Join(n.home, "data"), badCID)

	out, err := n.run("--json", "repo", "verify")
	if err == nil {
		t.Fatalf("repo verify succeeded on a corrupt store:\n%s", out)
	}
	var v struct {
		api.VerifyResult
		Error string `json:"error"`
	}
	mustUnmarshal(t, out, &v)
	if !slices.Equal(v.Corrupt, []string{badCID}) || v.Quarantined != 1 || v.Error == "" {
		t.Fatalf("verify: %+v, want corrupt [%s], 1 quarantined and an error", v, badCID)
	}

	// The next verify is clean; the good file still reads; the bad one
	// is gone rather than wrong.
	n.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 {
		t.Fatalf("second verify: %+v", v)
	}
	if got := n.must("cat", goodCID); got != "this block stays intact\n" {
		t.Errorf("cat good: %q", got)
	}
	if got, err := n.run("cat", badCID); err == nil {
		t.Errorf("cat of the quarantined block succeeded: %q", got)
	}

	// Adding the file again repairs it.
	if c := strings.TrimSpace(n.must("add", "-q", bad)); c != badCID {
		t.Fatalf("re-add: %s, want %s", c, badCID)
	}
	if got := n.must("cat", badCID); got != "this block will rot on disk\n" {
		t.Errorf("cat after re-add: %q", got)
	}
}

// corruptBlock overwrites the stored bytes of block c with other bytes,
// keeping its key. The home must not be open.
func corruptBlock(t *testing.T, dataDir, c string) {
	t.Helper()
	id, err := cid.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := blobstore.Open(ctx, blobstore.Config{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Has(ctx, id); err != nil || !ok {
		t.Fatalf("block %s not in the store at %s (has=%v, err=%v): has the layout changed?", c, dataDir, ok, err)
	}
	// NewBlockWithCid does not check the hash: that is the point.
	rotten, err := blocks.NewBlockWithCid([]byte("rotten bytes\n"), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, rotten); err != nil {
		t.Fatal(err)
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
}
