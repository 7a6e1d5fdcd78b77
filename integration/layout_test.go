package integration

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// These tests keep the tree the shape DESIGN.md ("Layout and direction of
// dependencies") describes. They read the sources with go/parser rather
// than `go list`, so they run in well under a second and still work while
// some package of the tree does not compile.

// pkgKind is the layer a package of the module belongs to.
type pkgKind string

const (
	kindCmd         pkgKind = "cmd"         // cmd/...: the CLI and daemon entry
	kindNode        pkgKind = "node"        // node: the composition root
	kindNodeSub     pkgKind = "node/*"      // node/...: the parts the root wires together
	kindLeaf        pkgKind = "leaf"        // p2p, blobstore, dnslink and their sub-packages
	kindIntegration pkgKind = "integration" // integration/...: multi-node tests and the benchmark
)

// leaves are the bottom layer: they import none of the module's packages
// (except their own sub-packages).
var leaves = []string{"p2p", "blobstore", "dnslink"}

// importRule says which layers a package of a layer may import in its
// non-test files. An import of a package in the importer's own subtree
// (p2p/x importing p2p, cmd/pcnode importing cmd/pcnode/internal) is
// always allowed: it stays inside one part.
type importRule struct {
	from pkgKind
	may  []pkgKind
	why  string
}

var importRules = []importRule{
	{kindCmd, []pkgKind{kindNode, kindNodeSub, kindLeaf},
		"cmd → node → node/* → {p2p, blobstore, dnslink}; nothing imports cmd"},
	{kindNode, []pkgKind{kindNodeSub, kindLeaf},
		"node is imported by cmd only and imports downward"},
	{kindNodeSub, []pkgKind{kindNodeSub, kindLeaf},
		"a part under node/ never imports node itself (it declares the small interface it needs and node hands itself in) nor cmd"},
	{kindLeaf, nil,
		"p2p, blobstore and dnslink import none of the module's packages"},
	{kindIntegration, []pkgKind{kindCmd, kindNode, kindNodeSub, kindLeaf, kindIntegration},
		"integration may import anything"},
}

// testMay is what _test.go files may import: anything but cmd and
// integration. A test of p2p may use a real blobstore; nothing may reach
// into the CLI's main package or the multi-node tests.
var testMay = []pkgKind{kindNode, kindNodeSub, kindLeaf}

// allowedTop are the entries the top level may hold besides dot-files
// (DESIGN.md: the layout "plus README, Makefile, go.mod, docs/, scripts/,
// .ci/").
var allowedTop = []string{
	"node", "p2p", "blobstore", "dnslink", "cmd", "integration",
	"docs", "scripts", "contrib",
	"go.mod", "go.sum", "Makefile", "README.md", "LICENSE",
}

func TestImportDirection(t *testing.T) {
	root, mod := moduleRoot(t)
	for _, msg := range mustCheck(t, func() ([]string, error) { return importViolations(root, mod) }) {
		t.Error(msg)
	}
	if pkgs, err := scanPackages(root); err == nil {
		names := make([]string, len(pkgs))
		for i, p := range pkgs {
			names[i] = p.rel
		}
		t.Logf("checked %d packages: %s", len(pkgs), strings.Join(names, " "))
	}
}

// mustCheck fails the test on a scan error and returns the violations.
func mustCheck(t *testing.T, check func() ([]string, error)) []string {
	t.Helper()
	msgs, err := check()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// importViolations lists every import in the module at root (module path
// mod) that breaks the direction of dependencies.
func importViolations(root, mod string) ([]string, error) {
	pkgs, err := scanPackages(root)
	if err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("found no Go packages under %s", root)
	}
	var msgs []string
	for _, p := range pkgs {
		from, ok := classify(p.rel)
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s: package is in no layer of DESIGN.md's layout; add it to the rules in integration/layout_test.go", p.rel))
			continue
		}
		for _, imp := range p.imports {
			to, inModule := strings.CutPrefix(imp.path, mod)
			if !inModule || (to != "" && !strings.HasPrefix(to, "/")) {
				continue // not the module's (or a module whose path merely starts the same)
			}
			to = strings.TrimPrefix(to, "/")
			if msg := checkImport(p.rel, from, to, imp.test); msg != "" {
				msgs = append(msgs, fmt.Sprintf("%s imports %s (%s): %s", p.rel, imp.path, imp.pos, msg))
			}
		}
	}
	return msgs, nil
}

// checkImport returns why the import from package rel (of layer from) of
// the module package to is not allowed, or "" when it is.
func checkImport(rel string, from pkgKind, to string, test bool) string {
	if (from == kindLeaf || from == kindCmd) && part(rel) == part(to) {
		return "" // inside one part: p2p/x → p2p, cmd/pcnode → cmd/pcnode/internal/cli
	}
	toKind, ok := classify(to)
	if !ok {
		return fmt.Sprintf("%s is in no layer of DESIGN.md's layout", to)
	}
	if from == kindIntegration {
		return ""
	}
	if test {
		if slices.Contains(testMay, toKind) {
			return ""
		}
		return "tests may import any of the module's packages except cmd and integration"
	}
	for _, r := range importRules {
		if r.from != from {
			continue
		}
		if slices.Contains(r.may, toKind) {
			return ""
		}
		return fmt.Sprintf("a %s package may not import a %s package: %s", from, toKind, r.why)
	}
	return fmt.Sprintf("no rule for layer %s", from)
}

// part is the unit inside which imports are free: a leaf (p2p, blobstore,
// dnslink) with its sub-packages, or one command under cmd/.
func part(rel string) string {
	elems := strings.SplitN(rel, "/", 3)
	if elems[0] == "cmd" && len(elems) > 1 {
		return elems[0] + "/" + elems[1]
	}
	return elems[0]
}

// within reports whether package path p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// classify names the layer of the module package at rel ("" is the
// module root).
func classify(rel string) (pkgKind, bool) {
	switch {
	case within(rel, "cmd"):
		return kindCmd, true
	case rel == "node":
		return kindNode, true
	case within(rel, "node"):
		return kindNodeSub, true
	case within(rel, "integration"):
		return kindIntegration, true
	}
	for _, l := range leaves {
		if within(rel, l) {
			return kindLeaf, true
		}
	}
	return "", false
}

func TestImportRules(t *testing.T) {
	// The rules themselves, so that a change to them is a visible decision.
	tests := []struct {
		from, to string
		test     bool
		ok       bool
	}{
		{"cmd/pcnode", "node", false, true},
		{"cmd/pcnode", "node/api", false, true},
		{"cmd/pcnode", "dnslink", false, true},
		{"cmd/pcnode", "cmd/pcnode/internal/cli", false, true},
		{"node", "node/api", false, true},
		{"node", "p2p", false, true},
		{"node", "cmd/pcnode", false, false},
		{"node/api", "node", false, false},
		{"node/api", "node", true, true},
		{"node/folder", "node/cloud", false, true},
		{"node/folder", "blobstore", false, true},
		{"node/api", "cmd/pcnode", false, false},
		{"node/api", "integration", true, false},
		{"p2p", "blobstore", false, false},
		{"p2p", "blobstore", true, true},
		{"p2p", "node", false, false},
		{"p2p/transfer", "p2p", false, true},
		{"p2p", "p2p/transfer", false, true},
		{"blobstore", "dnslink", false, false},
		{"dnslink", "cmd/pcnode", true, false},
		{"integration", "cmd/pcnode", false, true},
		{"integration/bench", "node", false, true},
		{"node", "integration", false, false},
		{"node/x", "node/x/y", false, true},
		{"node/x/y", "node/x", false, true},
		{"p2p/a", "p2p/b", false, true},
		{"cmd/pcnode", "cmd/other", false, false},
		{"blobstore/x", "p2p", false, false},
	}
	for _, tt := range tests {
		from, ok := classify(tt.from)
		if !ok {
			t.Fatalf("classify(%q) failed", tt.from)
		}
		msg := checkImport(tt.from, from, tt.to, tt.test)
		if got := msg == ""; got != tt.ok {
			t.Errorf("import %s → %s (test=%v): allowed=%v, want %v (%s)", tt.from, tt.to, tt.test, got, tt.ok, msg)
		}
	}
	if _, ok := classify("util"); ok {
		t.Error(`classify("util") succeeded; a new top-level package must be a decision`)
	}
}

func TestPackageDocs(t *testing.T) {
	root, _ := moduleRoot(t)
	for _, msg := range mustCheck(t, func() ([]string, error) { return docViolations(root) }) {
		t.Error(msg)
	}
}

// docViolations lists the packages under root without a package doc
// comment, or with one that does not start the conventional way.
func docViolations(root string) ([]string, error) {
	pkgs, err := scanPackages(root)
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, p := range pkgs {
		if p.name == "" {
			continue // only test files
		}
		dir := p.rel
		if dir == "" {
			dir = "."
		}
		if p.doc == "" {
			msgs = append(msgs, fmt.Sprintf("%s: package %s has no package doc comment (put one in %s/doc.go)", dir, p.name, dir))
			continue
		}
		want := "Package " + p.name + " "
		if p.name == "main" {
			want = "Command "
		}
		if !strings.HasPrefix(p.doc, want) {
			msgs = append(msgs, fmt.Sprintf("%s: package doc starts %q; it should start %q", dir, firstLine(p.doc), want))
		}
	}
	return msgs, nil
}

func TestTopLevel(t *testing.T) {
	root, _ := moduleRoot(t)
	for _, msg := range mustCheck(t, func() ([]string, error) { return topViolations(root) }) {
		t.Error(msg)
	}
}

// topViolations lists the entries at root that DESIGN.md's layout does not
// allow, and the parts it requires that are missing.
func topViolations(root string) ([]string, error) {
	names, err := topEntries(root)
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, name := range names {
		if strings.HasPrefix(name, ".") || slices.Contains(allowedTop, name) {
			continue
		}
		msgs = append(msgs, fmt.Sprintf("top level holds %q; DESIGN.md allows only %s and dot-files (put it under one of them, or change DESIGN.md first)",
			name, strings.Join(allowedTop, ", ")))
	}
	for _, need := range []string{"go.mod", "node", "p2p", "blobstore", "dnslink", "cmd", "integration"} {
		if _, err := os.Stat(filepath.Join(root, need)); err != nil {
			msgs = append(msgs, fmt.Sprintf("top level lacks %s: %v", need, err))
		}
	}
	return msgs, nil
}

// topEntries names the top-level entries of the tree at root. In a git
// work tree they are those of the files git tracks (committed or staged),
// so that build output or a binary left by `go build` in a developer's
// checkout does not count; elsewhere (a source archive) they are the
// directory's entries.
func topEntries(root string) ([]string, error) {
	if git, err := exec.LookPath("git"); err == nil {
		cmd := exec.Command(git, "rev-parse", "--is-inside-work-tree")
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil && strings.TrimSpace(string(out)) == "true" {
			cmd := exec.Command(git, "ls-files", "-z")
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("git ls-files: %w", err)
			}
			var names []string
			for _, p := range strings.Split(string(out), "\x00") {
				if p == "" {
					continue
				}
				top, _, _ := strings.Cut(p, "/")
				if !slices.Contains(names, top) {
					names = append(names, top)
				}
			}
			slices.Sort(names)
			return names, nil
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// pkgInfo is what the tests need of one package directory.
type pkgInfo struct {
	rel     string // slash path from the module root; "" for the root
	name    string // package name of the non-test files ("" if none)
	doc     string // first package doc comment found in a non-test file
	imports []importRef
}

type importRef struct {
	path string
	pos  string // file:line
	test bool   // from a _test.go file
}

// scanPackages parses the imports and package doc of every Go package
// under root, skipping testdata, vendor and directories starting with "."
// or "_" as the go command does.
func scanPackages(root string) ([]pkgInfo, error) {
	var pkgs []pkgInfo
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if p != root {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not ours
			}
		}
		info, ok, err := parsePackage(fset, root, p)
		if err != nil {
			return err
		}
		if ok {
			pkgs = append(pkgs, info)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return pkgs, nil
}

func parsePackage(fset *token.FileSet, root, dir string) (pkgInfo, bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return pkgInfo{}, false, err
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return pkgInfo{}, false, err
	}
	info := pkgInfo{rel: filepath.ToSlash(rel)}
	if info.rel == "." {
		info.rel = ""
	}
	found := false
	for _, e := range ents {
		fn := e.Name()
		if e.IsDir() || !strings.HasSuffix(fn, ".go") || strings.HasPrefix(fn, ".") || strings.HasPrefix(fn, "_") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, fn), nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return pkgInfo{}, false, fmt.Errorf("parse %s: %w", filepath.Join(info.rel, fn), err)
		}
		if buildIgnored(f) {
			continue
		}
		found = true
		test := strings.HasSuffix(fn, "_test.go")
		if !test {
			if info.name == "" {
				info.name = f.Name.Name
			}
			if info.doc == "" && f.Doc != nil {
				info.doc = f.Doc.Text()
			}
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return pkgInfo{}, false, err
			}
			pos := fset.Position(imp.Pos())
			info.imports = append(info.imports, importRef{
				path: ip,
				pos:  fmt.Sprintf("%s:%d", path.Join(info.rel, fn), pos.Line),
				test: test,
			})
		}
	}
	return info, found, nil
}

// buildIgnored reports whether the file has `//go:build ignore`, the
// convention for files that are not part of the package (generators).
func buildIgnored(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}

// moduleRoot finds the directory holding go.mod above this test and the
// module path it declares.
func moduleRoot(t *testing.T) (dir, modPath string) {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	dir = filepath.Dir(file)
	for {
		mod, err := readModulePath(filepath.Join(dir, "go.mod"))
		if err == nil {
			return dir, mod
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the integration package")
		}
		dir = parent
	}
}

func readModulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			mod := strings.Trim(strings.TrimSpace(rest), `"`)
			if mod != "" {
				return mod, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestCheckersCatchViolations(t *testing.T) {
	// A small module with one breach of each kind, so the checks above are
	// known to fail when they should.
	root := t.TempDir()
	const mod = "example.org/m"
	files := map[string]string{
		"go.mod":               "module " + mod + "\n",
		"node/doc.go":          "// Package node is the root.\npackage node\n",
		"node/api/doc.go":      "// Package api serves.\npackage api\n",
		"node/api/api.go":      "package api\n\nimport _ \"" + mod + "/node\"\n",
		"node/api/x_test.go":   "package api\n\nimport _ \"" + mod + "/node\"\n",
		"p2p/p2p.go":           "// Package p2p hosts.\npackage p2p\n\nimport (\n\t_ \"" + mod + "/blobstore\"\n\t_ \"" + mod + "/p2p/sub\"\n)\n",
		"p2p/sub/sub.go":       "// Package sub is fine.\npackage sub\n",
		"blobstore/store.go":   "package blobstore\n",
		"dnslink/doc.go":       "// Resolves names.\npackage dnslink\n",
		"cmd/pcnode/main.go":   "// Command pcnode runs.\npackage main\n\nimport _ \"" + mod + "/node\"\n",
		"integration/doc.go":   "// Package integration tests.\npackage integration\n",
		"integration/a.go":     "package integration\n\nimport _ \"" + mod + "/cmd/pcnode\"\n",
		"util/util.go":         "// Package util is not in the layout.\npackage util\n",
		"node/gen/gen.go":      "//go:build ignore\n\npackage main\n",
		"node/gen/doc.go":      "// Package gen generates.\npackage gen\n",
		"p2p/testdata/x/x.go":  "package x\n\nimport _ \"" + mod + "/cmd/pcnode\"\n",
		"stray.txt":            "",
		".hidden/whatever.txt": "",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name  string
		check func() ([]string, error)
		want  []string // substrings, one per expected violation, in order
	}{
		{"imports", func() ([]string, error) { return importViolations(root, mod) }, []string{
			"node/api imports example.org/m/node (node/api/api.go:3): a node/* package may not import a node package",
			"p2p imports example.org/m/blobstore (p2p/p2p.go:5): a leaf package may not import a leaf package",
			"util: package is in no layer",
		}},
		{"docs", func() ([]string, error) { return docViolations(root) }, []string{
			"blobstore: package blobstore has no package doc comment",
			`dnslink: package doc starts "Resolves names."; it should start "Package dnslink "`,
		}},
		{"top", func() ([]string, error) { return topViolations(root) }, []string{
			`top level holds "stray.txt"`,
			`top level holds "util"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustCheck(t, tt.check)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d violations, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
