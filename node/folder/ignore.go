package folder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// IgnoreFile is the name of the ignore file in a folder's root. It is
// not synced: each device keeps its own, which is also how a device
// leaves a subfolder out (selective sync).
const IgnoreFile = ".pcignore"

// MarkerFile is the marker in a folder's root. A folder whose marker is
// missing stops: nothing is scanned as deleted, nothing applied.
const MarkerFile = ".pcnode-folder"

// stateDir is the folder's own directory in its root (versions, and the
// index when Config.Dir is empty). It is never synced.
const stateDir = ".pcnode"

// tmpPrefix starts the names of files being materialized.
const tmpPrefix = ".pcnode-tmp-"

// internal reports paths that are pcnode's own and never synced.
func internal(rel string) bool {
	first, _, _ := strings.Cut(rel, "/")
	if first == stateDir || rel == MarkerFile || rel == IgnoreFile {
		return true
	}
	return strings.HasPrefix(path.Base(rel), tmpPrefix)
}

// rule is one line of a .pcignore file.
type rule struct {
	negate  bool     // "!pattern": include again
	dirOnly bool     // "pattern/": directories only
	parts   []string // pattern split at "/"; "**" matches any number of elements
}

// ignorer is a parsed .pcignore. The zero value ignores nothing.
//
// Syntax (one pattern per line, gitignore-like):
//
//	# comment           blank lines and lines starting with # are skipped
//	*.tmp               no slash: matches the name at any depth
//	/build              leading slash: anchored at the folder root
//	docs/*.pdf          a slash inside: matched against the whole path
//	**/cache            ** matches zero or more path elements
//	logs/               trailing slash: directories only
//	!keep.tmp           ! includes again what an earlier line excluded
//
// Elements are matched with path.Match (*, ?, [...], \ escapes). The last
// matching line decides. An ignored directory is skipped with everything
// below it.
type ignorer struct{ rules []rule }

// maxIgnoreFile bounds what is read of a .pcignore.
const maxIgnoreFile = 1 << 20

func parseIgnore(data []byte) (*ignorer, error) {
	if len(data) > maxIgnoreFile {
		return nil, fmt.Errorf("%s larger than %d bytes", IgnoreFile, maxIgnoreFile)
	}
	ig := &ignorer{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxIgnoreFile)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), " \t\r")
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		var r rule
		if strings.HasPrefix(s, "!") {
			r.negate, s = true, s[1:]
		}
		if strings.HasSuffix(s, "/") {
			r.dirOnly, s = true, strings.TrimRight(s, "/")
		}
		anchored := strings.HasPrefix(s, "/")
		s = strings.TrimLeft(s, "/")
		if s == "" {
			return nil, fmt.Errorf("%s line %d: empty pattern", IgnoreFile, line)
		}
		r.parts = strings.Split(s, "/")
		if !anchored && len(r.parts) == 1 {
			r.parts = append([]string{"**"}, r.parts...)
		}
		for _, p := range r.parts {
			if p == "**" {
				continue
			}
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%s line %d: %q: %w", IgnoreFile, line, sc.Text(), err)
			}
		}
		ig.rules = append(ig.rules, r)
	}
	return ig, sc.Err()
}

// loadIgnore reads root's .pcignore; a missing file ignores nothing.
func loadIgnore(root string) (*ignorer, error) {
	data, err := os.ReadFile(filepath.Join(root, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &ignorer{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseIgnore(data)
}

// match reports whether rel (a slash path) is ignored. Parent directories
// are not consulted: the scanner never descends into an ignored directory,
// and pull asks ignoredTree.
func (ig *ignorer) match(rel string, dir bool) bool {
	if ig == nil {
		return false
	}
	parts := strings.Split(rel, "/")
	ignored := false
	for _, r := range ig.rules {
		if r.dirOnly && !dir {
			continue
		}
		if matchParts(r.parts, parts) {
			ignored = !r.negate
		}
	}
	return ignored
}

// ignoredTree reports whether rel or any of its parent directories is ignored.
func (ig *ignorer) ignoredTree(rel string, dir bool) bool {
	if ig == nil || len(ig.rules) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && ig.match(rel[:i], true) {
			return true
		}
	}
	return ig.match(rel, dir)
}

// matchParts matches path elements against pattern elements.
func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if matchParts(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
