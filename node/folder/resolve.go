package folder

import (
	"path"
	"slices"
	"strings"
	"time"
)

// resolve returns the version of one path that every device converges on,
// given every device's entry for it (cands, non-empty), and the conflict
// copies that this implies. It is a pure function of the set of entries,
// so every device that sees the same entries decides the same:
//
//   - an entry that another dominates (its version vector is lesser) drops out;
//   - of several concurrent entries, the winner is the one not deleted, then
//     the newer mtime, then the larger writer ID, then the larger CID;
//   - the target is the winner with the merge of all their vectors, so it
//     dominates every one of them and the question never comes back;
//   - each losing file whose content differs from the winner becomes a
//     conflict copy named by conflictName (an edit beats a concurrent
//     delete; equal content never conflicts).
func resolve(cands []*Entry) (Entry, []Entry) {
	var top []*Entry
	for i, c := range cands {
		dominated := false
		for j, d := range cands {
			if i == j {
				continue
			}
			switch c.Version.Compare(d.Version) {
			case Lesser:
				dominated = true
			case Equal:
				// Keep the first of equal versions only.
				dominated = dominated || j < i
			}
			if dominated {
				break
			}
		}
		if !dominated {
			top = append(top, c)
		}
	}
	if len(top) == 1 {
		t := *top[0]
		t.Seq = 0
		return t, nil
	}
	slices.SortFunc(top, func(a, b *Entry) int {
		switch {
		case a.Deleted != b.Deleted:
			if b.Deleted {
				return -1
			}
			return 1
		case a.MTime != b.MTime:
			return -cmp64(uint64(a.MTime), uint64(b.MTime))
		case a.Writer != b.Writer:
			return -cmp64(uint64(a.Writer), uint64(b.Writer))
		}
		return -strings.Compare(a.CID.KeyString(), b.CID.KeyString())
	})
	t := *top[0]
	t.Seq = 0
	for _, o := range top[1:] {
		t.Version = t.Version.Merge(o.Version)
	}
	var conflicts []Entry
	for _, o := range top[1:] {
		if o.Deleted || o.Dir || sameContent(o, top[0]) {
			continue
		}
		c := *o
		c.Seq = 0
		c.Path = conflictName(o.Path, o.MTime, o.Writer)
		if slices.ContainsFunc(conflicts, func(x Entry) bool { return x.Path == c.Path }) {
			continue
		}
		conflicts = append(conflicts, c)
	}
	return t, conflicts
}

// conflictMarker is in the name of every conflict copy.
const conflictMarker = ".sync-conflict-"

// conflictName is the name of a conflict copy of p for the losing version
// written by writer with mtime (Unix ns):
// dir/name.sync-conflict-YYYYMMDD-HHMMSS-WRITER.ext (UTC).
func conflictName(p string, mtime int64, writer ShortID) string {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base || strings.Contains(ext, "~") {
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	stamp := time.Unix(0, mtime).UTC().Format("20060102-150405")
	return dir + stem + conflictMarker + stamp + "-" + writer.String() + ext
}

// isConflict reports whether p names a conflict copy.
func isConflict(p string) bool { return strings.Contains(path.Base(p), conflictMarker) }
