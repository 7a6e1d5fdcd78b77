package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/node/api"
)

// Two devices of one cloud: A adds a folder, B joins it by ID; a file
// written on A appears on B, a delete on B reaches A; leave keeps files.
func TestFoldersTwoDevices(t *testing.T) {
	ctx := t.Context()
	// B finds A from the addresses its join remembered.
	ca, cb := pairOffline(t)

	dirA := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(dirA, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "a.txt"), []byte("from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	fa, err := ca.FolderAdd(ctx, api.FolderAddRequest{Path: dirA})
	if err != nil {
		t.Fatal(err)
	}
	if fa.ID == "" || fa.Path != dirA {
		t.Fatalf("added %+v", fa)
	}
	if _, err := ca.FolderAdd(ctx, api.FolderAddRequest{Path: filepath.Join(dirA, "sub")}); !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrConflict) {
		t.Errorf("add inside a folder: %v", err)
	}
	dirB := filepath.Join(t.TempDir(), "docs-b")
	if _, err := cb.FolderJoin(ctx, api.FolderJoinRequest{ID: fa.ID, Path: dirB}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.FolderJoin(ctx, api.FolderJoinRequest{ID: fa.ID, Path: dirB + "2"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second join: %v", err)
	}
	waitFor(t, "a.txt on b", 15*time.Second, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dirB, "a.txt"))
		return err == nil && string(b) == "from a", string(b)
	})
	if err := os.Remove(filepath.Join(dirB, "a.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete reaches a", 15*time.Second, func() (bool, string) {
		_, err := os.Lstat(filepath.Join(dirA, "a.txt"))
		return errors.Is(err, os.ErrNotExist), ""
	})
	vs, err := ca.FolderVersions(ctx, "", filepath.Join(dirA, "a.txt"))
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions on a = %+v, %v", vs, err)
	}
	if _, err := ca.FolderRestore(ctx, api.FolderRestoreRequest{Path: filepath.Join(dirA, "a.txt")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restore reaches b", 15*time.Second, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dirB, "a.txt"))
		return err == nil && string(b) == "from a", string(b)
	})
	ls, err := cb.Folders(ctx)
	if err != nil || len(ls) != 1 || ls[0].ID != fa.ID || ls[0].Files != 1 {
		t.Errorf("folders on b = %+v, %v", ls, err)
	}
	if cs, err := cb.Conflicts(ctx); err != nil || len(cs) != 0 {
		t.Errorf("conflicts = %+v, %v", cs, err)
	}
	if _, err := cb.FolderLeave(ctx, fa.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirB, "a.txt")); err != nil {
		t.Errorf("leave removed files: %v", err)
	}
	if ls, _ := cb.Folders(ctx); len(ls) != 0 {
		t.Errorf("folders after leave: %+v", ls)
	}
	if _, err := cb.FolderLeave(ctx, fa.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second leave: %v", err)
	}
}

// TestGCKeepsFolderBlocks: a synced folder's blocks are referenced by its
// index, not by pins; GC through the daemon keeps them (other devices
// fetch them from here), and GC without the daemon, which cannot see the
// index, refuses rather than delete them.
func TestGCKeepsFolderBlocks(t *testing.T) {
	ctx := t.Context()
	home := newHomeWith(t, InitOptions{Name: "a"}, map[string]string{})
	n := startNode(t, home, false)
	dir := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("kept by the folder index"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := n.FolderAdd(ctx, api.FolderAddRequest{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	var c cid.Cid
	waitFor(t, "a.txt in the folder's index", 15*time.Second, func() (bool, string) {
		n.folders.mu.Lock()
		f := n.folders.running[fi.ID]
		n.folders.mu.Unlock()
		if f == nil {
			return false, "folder not running"
		}
		e, ok := f.Entry("a.txt")
		c = e.CID
		return ok && c.Defined(), fmt.Sprintf("%+v", e)
	})
	if _, err := n.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if has, err := n.store.Has(ctx, c); err != nil || !has {
		t.Fatalf("after gc the folder's block %s is gone (has %v, %v)", c, has, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	off := startNode(t, home, true)
	if _, err := off.GC(ctx); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "pcnode daemon") {
		t.Errorf("offline gc with a folder: %v, want a refusal naming the daemon", err)
	}
	if has, err := off.store.Has(ctx, c); err != nil || !has {
		t.Errorf("after the refused offline gc the block %s is gone (has %v, %v)", c, has, err)
	}
}
