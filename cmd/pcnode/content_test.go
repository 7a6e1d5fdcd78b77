package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGetCleansStaleTemps: a get killed in the middle leaves its staging
// entry (".NAME.pcnode-tmp-*", a file or a directory) beside the output.
// The next get of the same target removes it and writes the output; the
// staging entries of other names are left alone, and a get that finds
// another get running in the same directory removes nothing.
func TestGetCleansStaleTemps(t *testing.T) {
	t.Setenv("PCNODE_HOME", filepath.Join(t.TempDir(), "home"))
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != exitOK {
			t.Fatalf("pcnode %v: exit %d: %s", args, code, errb.String())
		}
		return out.String() + errb.String()
	}
	cli("init", "--no-cloud")
	src := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(src, bytes.Repeat([]byte("pcnode "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	c := strings.TrimSpace(cli("add", "-q", src))

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	staleDir := filepath.Join(dir, ".out.pcnode-tmp-123")
	staleFile := filepath.Join(dir, ".out.pcnode-tmp-456")
	other := filepath.Join(dir, ".other.pcnode-tmp-789")
	for _, d := range []string{staleDir, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "x"), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(staleFile, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Another get is running in the directory: nothing is removed.
	release, removed := cleanStaleTemps(out)
	if len(removed) != 2 {
		t.Fatalf("removed %v, want the two entries of out", removed)
	}
	for _, p := range []string{staleDir, staleFile} {
		if err := os.MkdirAll(p+"-again", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, removed2 := cleanStaleTemps(out)
	release()
	if len(removed2) != 0 {
		t.Errorf("a second get while the first runs removed %v", removed2)
	}

	msg := cli("get", c, "-o", out)
	if !strings.Contains(msg, "interrupted get") {
		t.Errorf("get did not say it removed the leftovers: %q", msg)
	}
	got, err := os.ReadFile(out)
	if want, _ := os.ReadFile(src); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get wrote %d bytes (%v), want the file", len(got), err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".other.pcnode-tmp-789 out" {
		t.Errorf("left in the directory: %v, want only the other name's entry and out", names)
	}
}
