package folder

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Three devices: every kind of change on one device reaches the others.
func TestConverge(t *testing.T) {
	devs, _ := newDevs(t, 3, "conv", nil)
	a, b, c := devs[0], devs[1], devs[2]
	for _, d := range devs {
		d.start(t)
	}
	connect(t, b, a)
	connect(t, c, b) // c reaches a's changes only through b

	steps := []struct {
		name string
		on   *dev
		do   func(t *testing.T, d *dev)
	}{
		{"create", a, func(t *testing.T, d *dev) {
			write(t, d, "hello.txt", "hello", t0)
			write(t, d, "docs/readme.md", "# readme", t0)
			write(t, d, "empty", "", t0)
			write(t, d, "ünïcödé/日本語.txt", "unicode", t0)
			if err := os.MkdirAll(filepath.Join(d.dir, "emptydir/sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"edit", b, func(t *testing.T, d *dev) { write(t, d, "hello.txt", "hello, edited", t0.Add(time.Minute)) }},
		{"rename across dirs", c, func(t *testing.T, d *dev) {
			if err := os.Rename(filepath.Join(d.dir, "docs/readme.md"), filepath.Join(d.dir, "emptydir/readme.md")); err != nil {
				t.Fatal(err)
			}
		}},
		{"chmod", a, func(t *testing.T, d *dev) {
			if err := os.Chmod(filepath.Join(d.dir, "hello.txt"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete and rmdir", b, func(t *testing.T, d *dev) {
			if err := os.Remove(filepath.Join(d.dir, "empty")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(d.dir, "emptydir/sub")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(d.dir, "docs")); err != nil {
				t.Fatal(err)
			}
		}},
		{"case-only rename", c, func(t *testing.T, d *dev) {
			if err := os.Rename(filepath.Join(d.dir, "hello.txt"), filepath.Join(d.dir, "Hello.txt")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		s.do(t, s.on)
		s.on.f.Scan()
		want := waitConverged(t, 10*time.Second, nil, s.on, s.on) // s.on's own view, settled
		_ = want
		got := waitConverged(t, 10*time.Second, tree(t, s.on.dir), devs...)
		if len(got) == 0 {
			t.Fatalf("%s: empty tree", s.name)
		}
		t.Logf("%s: %d paths equal on 3 devices", s.name, len(got))
	}
	final := tree(t, a.dir)
	for _, p := range []string{"Hello.txt", "emptydir/readme.md", "ünïcödé/日本語.txt"} {
		if _, ok := final[p]; !ok {
			t.Errorf("%s missing at the end: %v", p, final)
		}
	}
	for _, p := range []string{"hello.txt", "empty", "docs", "emptydir/sub", "docs/readme.md"} {
		if _, ok := final[p]; ok {
			t.Errorf("%s still there at the end", p)
		}
	}
	if m := final["Hello.txt"].Mode.Perm(); m != 0o600 {
		t.Errorf("Hello.txt mode %v, want 0600", m)
	}
	if got := readFile(t, c, "Hello.txt"); got != "hello, edited" {
		t.Errorf("Hello.txt = %q", got)
	}
}
