package integration

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pcnode/pcnode/node/api"
)

// syncWait bounds how long devices on loopback may take to converge.
const syncWait = 60 * time.Second

type treeEntry struct {
	Dir   bool
	Mode  fs.FileMode
	MTime int64
	Hash  [32]byte
}

// folderTree is what synced devices must agree on (pcnode's own files left out).
func folderTree(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		name := d.Name()
		if rel == ".pcnode" || rel == ".pcnode-folder" || rel == ".pcignore" || strings.HasPrefix(name, ".pcnode-tmp-") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		e := treeEntry{Dir: d.IsDir(), Mode: fi.Mode()}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			e.MTime, e.Hash = fi.ModTime().UnixNano(), sha256.Sum256(b)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitSame waits until every root holds the same tree as want (nil: as
// the first root), and returns it.
func waitSame(t *testing.T, want map[string]treeEntry, roots ...string) map[string]treeEntry {
	t.Helper()
	deadline := time.Now().Add(syncWait)
	for {
		ref := want
		if ref == nil {
			ref = folderTree(t, roots[0])
		}
		diff := ""
		for _, r := range roots {
			if got := folderTree(t, r); !cmp.Equal(ref, got) {
				diff = fmt.Sprintf("%s (-want +got):\n%s", r, cmp.Diff(ref, got))
				break
			}
		}
		if diff == "" {
			return ref
		}
		if time.Now().After(deadline) {
			t.Fatalf("folders did not converge within %v: %s", syncWait, diff)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

func writeAt(t *testing.T, root, rel, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// Three daemons of one cloud sync a folder: changes on any device reach
// the others; a device that was stopped catches up; a device whose folder
// lost its marker deletes nothing anywhere.
func TestFolderThreeDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	a := newProc(t, "a")
	b := newDevice(t, "b")
	c := newDevice(t, "c")
	a.start()
	b.start()
	c.start()
	for _, p := range []*proc{b, c} {
		var inv api.InviteResult
		a.mustJSON(&inv, "invite", "--ttl", "5m")
		var ci api.CloudInfo
		p.mustJSON(&ci, "join", inv.Code)
	}
	a.waitDevices("b and c online", func(m map[string]api.Device) bool { return connected("b")(m) && connected("c")(m) })

	t0 := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	ra := filepath.Join(t.TempDir(), "docs-a")
	writeAt(t, ra, "hello.txt", "hello", t0)
	writeAt(t, ra, "sub/dir/deep.txt", "deep", t0)
	writeAt(t, ra, "empty", "", t0)
	writeAt(t, ra, "Ünïcödé/名前.txt", "unicode", t0)
	var fi api.FolderInfo
	a.mustJSON(&fi, "folder", "add", ra)
	if fi.ID == "" {
		t.Fatalf("folder add: %+v", fi)
	}
	rb := filepath.Join(t.TempDir(), "docs-b")
	rc := filepath.Join(t.TempDir(), "docs-c")
	b.must("folder", "join", fi.ID, rb)
	c.must("folder", "join", fi.ID, rc)
	waitSame(t, nil, ra, rb, rc)

	// Edit on b, rename across directories on c, chmod and delete on a.
	writeAt(t, rb, "hello.txt", "hello from b", t0.Add(time.Hour))
	waitSame(t, nil, rb, ra, rc)
	if err := os.Rename(filepath.Join(rc, "sub/dir/deep.txt"), filepath.Join(rc, "moved.txt")); err != nil {
		t.Fatal(err)
	}
	waitSame(t, nil, rc, ra, rb)
	if err := os.Chmod(filepath.Join(ra, "hello.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ra, "empty")); err != nil {
		t.Fatal(err)
	}
	got := waitSame(t, nil, ra, rb, rc)
	if e, ok := got["hello.txt"]; !ok || e.Mode.Perm() != 0o600 {
		t.Errorf("hello.txt: %+v", e)
	}
	if _, ok := got["empty"]; ok {
		t.Error("empty still there")
	}

	// b stops; a makes 50 changes; b catches up when it is back.
	b.stop()
	for i := range 50 {
		writeAt(t, ra, fmt.Sprintf("batch/f%02d.txt", i), fmt.Sprint("change ", i), t0.Add(2*time.Hour))
	}
	waitSame(t, nil, ra, rc)
	b.start()
	waitSame(t, nil, ra, rb, rc)

	// c's folder loses its marker and its files (an emptied disk): nothing
	// is deleted on a or b, and c reports the folder stopped.
	before := folderTree(t, ra)
	ents, err := os.ReadDir(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != ".pcnode" {
			if err := os.RemoveAll(filepath.Join(rc, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(syncWait)
	for {
		var l struct {
			Folders []api.FolderInfo `json:"folders"`
		}
		c.mustJSON(&l, "folder", "status")
		if len(l.Folders) == 1 && l.Folders[0].State == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c's folder not stopped: %+v", l.Folders)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
	// One more change on a proves a and b still exchange; the rest is intact.
	writeAt(t, ra, "after.txt", "after", t0.Add(3*time.Hour))
	want := folderTree(t, ra)
	if len(want) != len(before)+1 {
		t.Fatalf("a changed: %d entries, was %d", len(want), len(before))
	}
	waitSame(t, want, ra, rb)
}
