package node

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// The node keeps its Info records for the dashboard whatever level its
// own logger passes on.
func TestNodeLogs(t *testing.T) {
	home := newHome(t)
	var out bytes.Buffer
	n, err := New(Config{Home: home, Offline: true, Getenv: noEnv,
		Logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	recs, err := n.Logs(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(recs, func(r api.LogRecord) bool {
		return r.Message == "node started" && r.Level == "INFO" && strings.Contains(r.Attrs, "id="+n.ID().String())
	}) {
		t.Errorf("no node started record in %+v", recs)
	}
	if strings.Contains(out.String(), "node started") {
		t.Errorf("the Warn logger got an Info record: %s", out.String())
	}
}

func TestNodeResolveConflict(t *testing.T) {
	ctx := t.Context()
	off := startNode(t, newHome(t), true)
	req := api.ConflictResolveRequest{Folder: "x", Path: "a.sync-conflict-20260102-030405-ABC.txt", Keep: api.KeepCopy}
	if _, err := off.ResolveConflict(ctx, req); !errors.Is(err, api.ErrOffline) {
		t.Errorf("offline: %v, want ErrOffline", err)
	}
	if _, err := off.ResolveConflict(ctx, api.ConflictResolveRequest{Folder: "x", Path: "a.txt", Keep: api.KeepCopy}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("not a conflict name: %v, want ErrInvalid", err)
	}

	n := startNode(t, newHome(t), false)
	root := filepath.Join(t.TempDir(), "docs")
	write := func(rel, s string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "mine")
	write("a.sync-conflict-20260102-030405-ABC.txt", "theirs")
	write("d/b.sync-conflict-20260102-030405-ABC", "stray")
	write("d/b", "keep me")
	fi, err := n.FolderAdd(ctx, api.FolderAddRequest{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, err := n.Conflicts(ctx)
		if err == nil && len(cs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conflicts not listed: %+v, %v", cs, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}

	tests := []struct {
		name    string
		req     api.ConflictResolveRequest
		wantErr error
		check   func() bool
	}{
		{name: "unknown folder", req: api.ConflictResolveRequest{Folder: "nope", Path: "a.sync-conflict-20260102-030405-ABC.txt", Keep: api.KeepCopy}, wantErr: api.ErrNotFound},
		{name: "not listed", req: api.ConflictResolveRequest{Folder: fi.ID, Path: "z.sync-conflict-20260102-030405-ABC.txt", Keep: api.KeepCopy}, wantErr: api.ErrNotFound},
		{name: "bad keep", req: api.ConflictResolveRequest{Folder: fi.ID, Path: "a.sync-conflict-20260102-030405-ABC.txt", Keep: "both"}, wantErr: api.ErrInvalid},
		{name: "keep copy", req: api.ConflictResolveRequest{Folder: fi.ID, Path: "a.sync-conflict-20260102-030405-ABC.txt", Keep: api.KeepCopy}, check: func() bool {
			b, err := os.ReadFile(filepath.Join(root, "a.txt"))
			_, serr := os.Stat(filepath.Join(root, "a.sync-conflict-20260102-030405-ABC.txt"))
			return err == nil && string(b) == "theirs" && errors.Is(serr, os.ErrNotExist)
		}},
		{name: "keep original", req: api.ConflictResolveRequest{Folder: fi.ID, Path: "d/b.sync-conflict-20260102-030405-ABC", Keep: api.KeepOriginal}, check: func() bool {
			b, err := os.ReadFile(filepath.Join(root, "d", "b"))
			_, serr := os.Stat(filepath.Join(root, "d", "b.sync-conflict-20260102-030405-ABC"))
			return err == nil && string(b) == "keep me" && errors.Is(serr, os.ErrNotExist)
		}},
	}
	for _, tt := range tests {
		_, err := n.ResolveConflict(ctx, tt.req)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !tt.check() {
			t.Errorf("%s: %v, or the files are not as resolved", tt.name, err)
		}
	}
	// The rescan drops both from the list.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		cs, err := n.Conflicts(wctx)
		if err == nil && len(cs) == 0 {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("conflicts still listed: %+v, %v", cs, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
}
