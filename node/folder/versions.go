package folder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Version is one old version of a file in the folder's version store,
// <root>/.pcnode/versions/<path>~<time>, where replaced and deleted files
// go instead of away.
type Version struct {
	Path string    `json:"path"` // the file's slash path in the folder
	Time time.Time `json:"time"` // when it was replaced or deleted
	Size int64     `json:"size"`
	File string    `json:"file"` // where it is kept
}

const stampLayout = "20060102-150405.000000000"

func (f *Folder) versionsDir() string { return filepath.Join(f.root, stateDir, "versions") }

// archive keeps the file at rel in the version store: by hard link when
// link is true (the caller replaces the file next, atomically), else by
// rename (the file goes away). With KeepVersions < 0 nothing is kept.
func (f *Folder) archive(rel string, link bool) error {
	src := f.abs(rel)
	if f.cfg.KeepVersions < 0 {
		if link {
			return nil
		}
		return os.Remove(src)
	}
	dst := filepath.Join(f.versionsDir(), filepath.FromSlash(rel)) + "~" + f.now().UTC().Format(stampLayout)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	var err error
	if link {
		err = os.Link(src, dst)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			err = copyFile(src, dst) // a file system without hard links
		}
	} else {
		err = os.Rename(src, dst)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keep old version of %s: %w", rel, err)
	}
	f.referenceVersion(rel, dst)
	f.prune(rel)
	return nil
}

// referenceVersion points the store at the kept version of rel, before
// the file at rel is replaced: its content may be the only copy a member
// still fetches (a conflict copy being made elsewhere, a device that is
// behind), and without this it would be unavailable from the moment the
// file is replaced. Not made durable: losing it costs availability of an
// old version, nothing else.
func (f *Folder) referenceVersion(rel, kept string) {
	f.mu.Lock()
	var own Entry
	if f.x != nil {
		if r := f.x.own[rel]; r != nil {
			own = r.Entry
		}
	}
	ctx := f.ctx
	f.mu.Unlock()
	if ctx == nil {
		return
	}
	if own.Dir || own.Deleted || !own.CID.Defined() || own.Size == 0 {
		return
	}
	refs, err := f.leafRefs(ctx, own.CID, own.Size, kept)
	if err == nil {
		err = f.cfg.Store.AddRefs(ctx, refs)
	}
	if err != nil {
		f.log.Debug("old version not referenced", "path", rel, "err", err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Versions lists the kept versions of rel, newest first.
func (f *Folder) Versions(rel string) ([]Version, error) {
	if !validPath(rel) {
		return nil, fmt.Errorf("folder: versions %q: invalid path", rel)
	}
	dir := filepath.Join(f.versionsDir(), filepath.FromSlash(path.Dir(rel)))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("folder: versions %s: %w", rel, err)
	}
	prefix := path.Base(rel) + "~"
	var out []Version
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || e.IsDir() {
			continue
		}
		t, err := time.Parse(stampLayout, name[len(prefix):])
		if err != nil {
			continue
		}
		v := Version{Path: rel, Time: t, File: filepath.Join(dir, name)}
		if fi, err := e.Info(); err == nil {
			v.Size = fi.Size()
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

// prune applies the retention policy to rel's versions.
func (f *Folder) prune(rel string) {
	vs, err := f.Versions(rel)
	if err != nil {
		return
	}
	cutoff := f.now().Add(-f.cfg.KeepFor)
	for i, v := range vs {
		if i >= f.cfg.KeepVersions || v.Time.Before(cutoff) {
			_ = os.Remove(v.File)
		}
	}
}

// pruneVersions applies the age limit to the whole version store.
func (f *Folder) pruneVersions() {
	cutoff := f.now().Add(-f.cfg.KeepFor)
	_ = filepath.WalkDir(f.versionsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		i := strings.LastIndexByte(name, '~')
		if i < 0 {
			return nil
		}
		if t, err := time.Parse(stampLayout, name[i+1:]); err == nil && t.Before(cutoff) {
			_ = os.Remove(p)
		}
		return nil
	})
}

// Restore puts back the newest kept version of rel not newer than at
// (zero at: the newest), keeping the current file as a version in turn.
// The restored file is a local change: the next scan (requested here)
// announces it to the other devices.
func (f *Folder) Restore(ctx context.Context, rel string, at time.Time) (Version, error) {
	vs, err := f.Versions(rel)
	if err != nil {
		return Version{}, err
	}
	var pick *Version
	for i := range vs {
		if at.IsZero() || !vs[i].Time.After(at) {
			pick = &vs[i]
			break
		}
	}
	if pick == nil {
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
	}
	dst := f.abs(rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
	}
	// The copy is made in the state directory (same file system), where
	// the scanner does not clean up temporary files.
	tmpDir := filepath.Join(f.root, stateDir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
	}
	tmp := filepath.Join(tmpDir, "restore-"+randSuffix())
	if err := copyFile(pick.File, tmp); err != nil {
		_ = os.Remove(tmp)
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
	}
	if fi, err := os.Stat(pick.File); err == nil {
		_ = os.Chmod(tmp, fi.Mode().Perm())
	}
	if fd, err := os.Open(tmp); err == nil {
		_ = fd.Sync()
		fd.Close()
	}
	if _, err := os.Lstat(dst); err == nil {
		if err := f.archive(rel, true); err != nil {
			_ = os.Remove(tmp)
			return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return Version{}, fmt.Errorf("folder: restore %s: %w", rel, err)
	}
	_ = syncDir(filepath.Dir(dst))
	f.requestScan()
	return *pick, nil
}
