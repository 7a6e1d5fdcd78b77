package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/pcnode/pcnode/node/api"
)

// The dashboard (node/api, docs/DASHBOARD.md) shows the node's recent log
// records and resolves conflict copies; this file gives the node those
// two optional api.Backend roles.

// logRingRecords is how many recent records the dashboard can show.
const logRingRecords = api.DefaultLogRecords

// withLogRing returns log teed into a new ring that keeps Info and above,
// whatever level log itself passes on.
func withLogRing(log *slog.Logger) (*slog.Logger, *api.LogRing) {
	ring := api.NewLogRing(logRingRecords, slog.LevelInfo)
	return slog.New(ring.Handler(log.Handler())), ring
}

// Logs returns up to n of the newest Info-and-above log records of this
// node, oldest first; n <= 0 means all kept.
func (n *Node) Logs(ctx context.Context, max int) ([]api.LogRecord, error) {
	if n.logs == nil {
		return nil, nil
	}
	return n.logs.Logs(ctx, max)
}

// ResolveConflict settles a conflict copy in a running folder: KeepCopy
// renames the copy over the original, KeepOriginal deletes the copy. The
// folder is rescanned at once, so the change goes to the other devices
// like any local edit (and the replaced original is kept in their version
// history).
func (n *Node) ResolveConflict(ctx context.Context, req api.ConflictResolveRequest) (api.FolderConflict, error) {
	orig, ok := api.ConflictOriginal(req.Path)
	if !ok {
		return api.FolderConflict{}, api.Errorf(api.ErrInvalid, "node: resolve conflict %s: not a conflict copy's name", req.Path)
	}
	n.folders.mu.Lock()
	if n.folders.running == nil {
		n.folders.mu.Unlock()
		return api.FolderConflict{}, api.Errorf(api.ErrOffline, "node: resolve conflict %s: node is offline: start pcnode daemon", req.Path)
	}
	f := n.folders.running[req.Folder]
	n.folders.mu.Unlock()
	if f == nil || !slices.Contains(f.Conflicts(), req.Path) {
		return api.FolderConflict{}, api.Errorf(api.ErrNotFound, "node: resolve conflict %s: no such conflict copy in folder %q", req.Path, req.Folder)
	}
	root := f.Path()
	cp := filepath.Join(root, filepath.FromSlash(req.Path))
	var err error
	switch req.Keep {
	case api.KeepCopy:
		err = os.Rename(cp, filepath.Join(root, filepath.FromSlash(orig)))
	case api.KeepOriginal:
		err = os.Remove(cp)
	default:
		return api.FolderConflict{}, api.Errorf(api.ErrInvalid, "node: resolve conflict %s: invalid keep %q", req.Path, req.Keep)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return api.FolderConflict{}, api.Errorf(api.ErrNotFound, "node: resolve conflict %s: %w", req.Path, err)
	}
	if err != nil {
		return api.FolderConflict{}, fmt.Errorf("node: resolve conflict %s: %w", req.Path, err)
	}
	f.Scan()
	n.log.Info("conflict resolved", "folder", req.Folder, "path", req.Path, "keep", req.Keep)
	return api.FolderConflict{Folder: req.Folder, Path: req.Path, Abs: cp}, nil
}

var (
	_ api.LogSource        = (*Node)(nil)
	_ api.ConflictResolver = (*Node)(nil)
)
