package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ipfs/go-cid"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/folder"
)

// FoldersDir holds the synced folders' registry (folders.json) and one
// state directory per folder (its index database).
const FoldersDir = "folders"

// folderConf is one folder of the registry.
type folderConf struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	ReceiveOnly bool   `json:"receive_only,omitempty"`
}

// folderSet is the node's folders: the registry and, while the daemon
// runs online, one running folder.Folder each.
type folderSet struct {
	mu      sync.Mutex
	conf    []folderConf
	running map[string]*folder.Folder
}

func (n *Node) foldersFile() string { return filepath.Join(n.home, FoldersDir, "folders.json") }

func (n *Node) loadFolderConf() ([]folderConf, error) {
	b, err := os.ReadFile(n.foldersFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []folderConf
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("%s: %w", n.foldersFile(), err)
	}
	return cs, nil
}

func (n *Node) saveFolderConf(cs []folderConf) error {
	if err := os.MkdirAll(filepath.Join(n.home, FoldersDir), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(n.foldersFile(), append(b, '\n'), 0o600)
}

// startFoldersLocked starts every registered folder; called by wire once
// the host and the DAG are up. A folder that fails to start is logged and
// reported by its status; the others run.
func (n *Node) startFoldersLocked(ctx context.Context) error {
	cs, err := n.loadFolderConf()
	if err != nil {
		return fmt.Errorf("node: start: folders: %w", err)
	}
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	n.folders.conf = cs
	n.folders.running = map[string]*folder.Folder{}
	for _, c := range cs {
		if err := n.startFolder(ctx, c); err != nil {
			n.log.Error("folder not started", "folder", c.ID, "path", c.Path, "err", err)
		}
	}
	return nil
}

// startFolder starts one folder; call with n.folders.mu held.
func (n *Node) startFolder(ctx context.Context, c folderConf) error {
	f, err := folder.New(folder.Config{
		ID: c.ID, Path: c.Path, Device: n.id, Store: n.store, DAG: n.dag,
		Host: n.host.Libp2p(), Members: n.members.IsMember,
		Dir:         filepath.Join(n.home, FoldersDir, c.ID),
		ReceiveOnly: c.ReceiveOnly,
		// A receive-only folder announces no local change, so its
		// safety-net rescan only guards local edits against overwrite,
		// which the watcher and the check before each rename already
		// do: a home server with many replicas rescans rarely.
		RescanInterval: replicaRescan(c.ReceiveOnly),
		Logger:         n.log.With("component", "folder"),
	})
	if err != nil {
		return err
	}
	if err := f.Start(ctx); err != nil {
		return err
	}
	n.folders.running[c.ID] = f
	return nil
}

// closeFolders stops the running folders (before the host closes).
func (n *Node) closeFolders() error {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	var errs []error
	for id, f := range n.folders.running {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(n.folders.running, id)
	}
	n.folders.running = nil
	return errors.Join(errs...)
}

func folderInfo(c folderConf, f *folder.Folder) api.FolderInfo {
	fi := api.FolderInfo{ID: c.ID, Path: c.Path, ReceiveOnly: c.ReceiveOnly, State: "offline"}
	if f == nil {
		return fi
	}
	st := f.Status()
	fi.State, fi.Error = st.State, st.Error
	fi.Files, fi.Dirs, fi.Bytes = st.Files, st.Dirs, st.Bytes
	fi.NeedFiles, fi.NeedBytes = st.NeedFiles, st.NeedBytes
	fi.HeldDeletes, fi.HeldLocalDeletes, fi.Conflicts = st.HeldDeletes, st.HeldLocalDeletes, st.Conflicts
	fi.Devices = len(st.Peers)
	for _, p := range st.Peers {
		if p.Connected {
			fi.Connected++
		}
	}
	if !st.LastScan.IsZero() {
		fi.LastScan = st.LastScan.UTC().Format(time.RFC3339)
	}
	return fi
}

// Folders lists the folders with their status ("offline" when the
// daemon is not running).
func (n *Node) Folders(ctx context.Context) ([]api.FolderInfo, error) {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	cs := n.folders.conf
	if n.folders.running == nil {
		var err error
		if cs, err = n.loadFolderConf(); err != nil {
			return nil, fmt.Errorf("node: folders: %w", err)
		}
	}
	out := make([]api.FolderInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, folderInfo(c, n.folders.running[c.ID]))
	}
	return out, nil
}

// checkFolderPath cleans an absolute path and refuses one inside, or
// around, a folder already synced.
func (n *Node) checkFolderPath(op, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", api.Errorf(api.ErrInvalid, "node: %s: path %q is not absolute", op, p)
	}
	p = filepath.Clean(p)
	for _, c := range n.folders.conf {
		if within(p, c.Path) || within(c.Path, p) {
			return "", api.Errorf(api.ErrConflict, "node: %s: %s overlaps folder %s at %s", op, p, c.ID, c.Path)
		}
	}
	return p, nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// FolderAdd syncs an existing directory as a new folder with a new ID.
func (n *Node) FolderAdd(ctx context.Context, req api.FolderAddRequest) (api.FolderInfo, error) {
	fi, err := os.Stat(req.Path)
	if err != nil || !fi.IsDir() {
		return api.FolderInfo{}, api.Errorf(api.ErrInvalid, "node: folder add: %s is not a directory", req.Path)
	}
	return n.addFolder(ctx, "folder add", folderConf{ID: folder.NewID(), Path: req.Path, ReceiveOnly: req.ReceiveOnly})
}

// FolderJoin subscribes this device to a folder that another member
// has, into req.Path (created if missing).
func (n *Node) FolderJoin(ctx context.Context, req api.FolderJoinRequest) (api.FolderInfo, error) {
	return n.addFolder(ctx, "folder join", folderConf{ID: req.ID, Path: req.Path, ReceiveOnly: req.ReceiveOnly})
}

func (n *Node) addFolder(ctx context.Context, op string, c folderConf) (api.FolderInfo, error) {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	if n.folders.running == nil {
		return api.FolderInfo{}, api.Errorf(api.ErrOffline, "node: %s: node is offline: start pcnode daemon", op)
	}
	if slices.ContainsFunc(n.folders.conf, func(x folderConf) bool { return x.ID == c.ID }) {
		return api.FolderInfo{}, api.Errorf(api.ErrConflict, "node: %s: folder %s already on this device", op, c.ID)
	}
	p, err := n.checkFolderPath(op, c.Path)
	if err != nil {
		return api.FolderInfo{}, err
	}
	c.Path = p
	if err := n.startFolder(ctx, c); err != nil {
		return api.FolderInfo{}, api.Errorf(api.ErrInvalid, "node: %s: %w", op, err)
	}
	cs := append(slices.Clip(n.folders.conf), c)
	if err := n.saveFolderConf(cs); err != nil {
		f := n.folders.running[c.ID]
		_ = f.Close()
		delete(n.folders.running, c.ID)
		return api.FolderInfo{}, fmt.Errorf("node: %s: %w", op, err)
	}
	n.folders.conf = cs
	n.sharesChanged() // the home servers replicate it (server.go)
	return folderInfo(c, n.folders.running[c.ID]), nil
}

// FolderLeave stops syncing a folder on this device: its files stay, its
// index and marker go.
func (n *Node) FolderLeave(ctx context.Context, id string) (api.FolderInfo, error) {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	cs := n.folders.conf
	if n.folders.running == nil {
		var err error
		if cs, err = n.loadFolderConf(); err != nil {
			return api.FolderInfo{}, fmt.Errorf("node: folder leave: %w", err)
		}
	}
	i := slices.IndexFunc(cs, func(c folderConf) bool { return c.ID == id })
	if i < 0 {
		return api.FolderInfo{}, api.Errorf(api.ErrNotFound, "node: folder leave: no folder %s on this device", id)
	}
	c := cs[i]
	rest := slices.Delete(slices.Clone(cs), i, i+1)
	if err := n.saveFolderConf(rest); err != nil {
		return api.FolderInfo{}, fmt.Errorf("node: folder leave %s: %w", id, err)
	}
	if n.folders.running != nil {
		n.folders.conf = rest
		if f := n.folders.running[id]; f != nil {
			_ = f.Close()
			delete(n.folders.running, id)
		}
	}
	_ = os.RemoveAll(filepath.Join(n.home, FoldersDir, id))
	_ = os.Remove(filepath.Join(c.Path, folder.MarkerFile))
	fi := folderInfo(c, nil)
	fi.State = "left"
	return fi, nil
}

// runningFolder returns the running folder id.
func (n *Node) runningFolder(op, id string) (folderConf, *folder.Folder, error) {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	if n.folders.running == nil {
		return folderConf{}, nil, api.Errorf(api.ErrOffline, "node: %s: node is offline: start pcnode daemon", op)
	}
	for _, c := range n.folders.conf {
		if c.ID == id {
			if f := n.folders.running[id]; f != nil {
				return c, f, nil
			}
			return folderConf{}, nil, fmt.Errorf("node: %s: folder %s is not running (see the daemon's log)", op, id)
		}
	}
	return folderConf{}, nil, api.Errorf(api.ErrNotFound, "node: %s: no folder %s on this device", op, id)
}

// FolderConfirm releases the deletes held by the mass-delete guard.
func (n *Node) FolderConfirm(ctx context.Context, id string) (api.FolderInfo, error) {
	c, f, err := n.runningFolder("folder confirm", id)
	if err != nil {
		return api.FolderInfo{}, err
	}
	f.Confirm()
	return folderInfo(c, f), nil
}

// locate finds the folder and relative path of p: an absolute path in a
// folder, or a path relative to folder id's root.
func (n *Node) locate(op, id, p string) (folderConf, *folder.Folder, string, error) {
	if filepath.IsAbs(p) {
		p = filepath.Clean(p)
		n.folders.mu.Lock()
		for _, c := range n.folders.conf {
			if within(p, c.Path) && p != c.Path && (id == "" || id == c.ID) {
				id = c.ID
				break
			}
		}
		n.folders.mu.Unlock()
		if id == "" {
			return folderConf{}, nil, "", api.Errorf(api.ErrNotFound, "node: %s: %s is in no synced folder", op, p)
		}
	} else if id == "" {
		return folderConf{}, nil, "", api.Errorf(api.ErrInvalid, "node: %s: a relative path needs the folder's ID", op)
	}
	c, f, err := n.runningFolder(op, id)
	if err != nil {
		return folderConf{}, nil, "", err
	}
	rel := p
	if filepath.IsAbs(p) {
		r, err := filepath.Rel(c.Path, p)
		if err != nil {
			return folderConf{}, nil, "", api.Errorf(api.ErrInvalid, "node: %s: %w", op, err)
		}
		rel = r
	}
	return c, f, filepath.ToSlash(rel), nil
}

// FolderVersions lists the kept versions of a file, newest first.
func (n *Node) FolderVersions(ctx context.Context, id, p string) ([]api.FolderVersion, error) {
	c, f, rel, err := n.locate("folder versions", id, p)
	if err != nil {
		return nil, err
	}
	vs, err := f.Versions(rel)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "node: %w", err)
	}
	out := make([]api.FolderVersion, 0, len(vs))
	for _, v := range vs {
		out = append(out, api.FolderVersion{Folder: c.ID, Path: v.Path, Time: v.Time.UTC().Format(time.RFC3339Nano), Size: v.Size})
	}
	return out, nil
}

// FolderRestore puts back a kept version of a file.
func (n *Node) FolderRestore(ctx context.Context, req api.FolderRestoreRequest) (api.FolderVersion, error) {
	c, f, rel, err := n.locate("folder restore", req.Folder, req.Path)
	if err != nil {
		return api.FolderVersion{}, err
	}
	var at time.Time
	if req.At != "" {
		if at, err = time.Parse(time.RFC3339Nano, req.At); err != nil {
			return api.FolderVersion{}, api.Errorf(api.ErrInvalid, "node: folder restore: at %q: want RFC 3339", req.At)
		}
	}
	v, err := f.Restore(ctx, rel, at)
	if errors.Is(err, folder.ErrNotFound) {
		return api.FolderVersion{}, api.Errorf(api.ErrNotFound, "node: %w", err)
	}
	if err != nil {
		return api.FolderVersion{}, err
	}
	return api.FolderVersion{Folder: c.ID, Path: v.Path, Time: v.Time.UTC().Format(time.RFC3339Nano), Size: v.Size}, nil
}

// Conflicts lists the conflict copies in every running folder.
func (n *Node) Conflicts(ctx context.Context) ([]api.FolderConflict, error) {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	if n.folders.running == nil {
		return nil, api.Errorf(api.ErrOffline, "node: conflicts: node is offline: start pcnode daemon")
	}
	var out []api.FolderConflict
	for _, c := range n.folders.conf {
		f := n.folders.running[c.ID]
		if f == nil {
			continue
		}
		for _, p := range f.Conflicts() {
			out = append(out, api.FolderConflict{Folder: c.ID, Path: p, Abs: filepath.Join(c.Path, filepath.FromSlash(p))})
		}
	}
	return out, nil
}

var _ api.Folders = (*Node)(nil)

// folderRoots returns the content roots of every running folder, for GC.
// With folders registered but not running (an offline node) it refuses:
// collecting then could delete blocks other devices still fetch.
func (n *Node) folderRoots() ([]cid.Cid, error) {
	cs, err := n.loadFolderConf()
	if err != nil {
		return nil, fmt.Errorf("node: gc: folders: %w", err)
	}
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	var roots []cid.Cid
	for _, fc := range cs {
		f := n.folders.running[fc.ID]
		if f == nil {
			return nil, api.Errorf(api.ErrConflict, "node: gc: folder %s (%s) is not running, and its blocks are kept only through its index: run gc through the daemon (pcnode daemon)", fc.ID, fc.Path)
		}
		roots = append(roots, f.Roots()...)
	}
	return roots, nil
}
