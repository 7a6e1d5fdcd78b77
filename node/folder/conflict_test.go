package folder

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// partitioned starts a and b connected with base content, then
// disconnects them.
func partitioned(t *testing.T, id string, base map[string]string) []*dev {
	t.Helper()
	devs, _ := newDevs(t, 2, id, nil)
	for rel, content := range base {
		write(t, devs[0], rel, content, t0)
	}
	for _, d := range devs {
		d.start(t)
	}
	connect(t, devs[1], devs[0])
	waitConverged(t, 10*time.Second, nil, devs...)
	disconnect(t, devs[0], devs[1])
	return devs
}

func TestConcurrentEdit(t *testing.T) {
	devs := partitioned(t, "conc", map[string]string{"notes.txt": "v0"})
	a, b := devs[0], devs[1]
	write(t, a, "notes.txt", "from a", t0.Add(time.Minute))
	write(t, b, "notes.txt", "from b", t0.Add(2*time.Minute))
	waitScanned(t, a, "notes.txt", []byte("from a"))
	waitScanned(t, b, "notes.txt", []byte("from b"))
	connect(t, a, b)
	got := waitConverged(t, 10*time.Second, nil, a, b)
	cs := conflictsIn(got)
	if len(cs) != 1 {
		t.Fatalf("conflict copies %v, want 1; tree %v", cs, got)
	}
	// b's edit is newer: it keeps the name; a's becomes the copy, named
	// after a's mtime and a's device.
	if s := readFile(t, a, "notes.txt"); s != "from b" {
		t.Errorf("notes.txt = %q, want b's", s)
	}
	want := conflictName("notes.txt", t0.Add(time.Minute).UnixNano(), a.f.self)
	if cs[0] != want {
		t.Errorf("conflict copy %q, want %q", cs[0], want)
	}
	if s := readFile(t, b, want); s != "from a" {
		t.Errorf("conflict copy holds %q", s)
	}
	// The index records a file just after it lands on disk.
	waitFor(t, 10*time.Second, "Conflicts() = "+want, func() bool { return slices.Equal(a.f.Conflicts(), []string{want}) })
}

func TestSameContentNoConflict(t *testing.T) {
	devs := partitioned(t, "same", map[string]string{"f": "v0"})
	a, b := devs[0], devs[1]
	write(t, a, "f", "same", t0.Add(time.Minute))
	write(t, b, "f", "same", t0.Add(time.Minute))
	waitScanned(t, a, "f", []byte("same"))
	waitScanned(t, b, "f", []byte("same"))
	connect(t, a, b)
	waitFor(t, 10*time.Second, "equal versions", func() bool {
		ea, _ := a.f.Entry("f")
		eb, _ := b.f.Entry("f")
		return ea.Version.Compare(eb.Version) == Equal
	})
	if cs := conflictsIn(tree(t, a.dir)); len(cs) != 0 {
		t.Errorf("conflicts for identical content: %v", cs)
	}
}

func TestEditBeatsDelete(t *testing.T) {
	devs := partitioned(t, "editdel", map[string]string{"keep.txt": "v0", "other": "x"})
	a, b := devs[0], devs[1]
	if err := os.Remove(filepath.Join(a.dir, "keep.txt")); err != nil {
		t.Fatal(err)
	}
	waitScanned(t, a, "keep.txt", nil)
	write(t, b, "keep.txt", "edited", t0.Add(time.Minute))
	waitScanned(t, b, "keep.txt", []byte("edited"))
	connect(t, a, b)
	got := waitConverged(t, 10*time.Second, nil, a, b)
	if _, ok := got["keep.txt"]; !ok {
		t.Fatalf("the edit lost to the delete: %v", got)
	}
	if s := readFile(t, a, "keep.txt"); s != "edited" {
		t.Errorf("keep.txt = %q", s)
	}
	if cs := conflictsIn(got); len(cs) != 0 {
		t.Errorf("conflicts: %v", cs)
	}
}

// Three devices: two edit while partitioned; the third sees the same
// conflict copy as the two.
func TestConflictThreeDevices(t *testing.T) {
	devs, _ := newDevs(t, 3, "three", nil)
	a, b, c := devs[0], devs[1], devs[2]
	write(t, a, "doc.txt", "v0", t0)
	for _, d := range devs {
		d.start(t)
	}
	connect(t, b, a)
	connect(t, c, a)
	waitConverged(t, 10*time.Second, nil, devs...)
	disconnect(t, a, b)
	disconnect(t, a, c)
	write(t, a, "doc.txt", "a's", t0.Add(time.Hour))
	write(t, b, "doc.txt", "b's", t0.Add(2*time.Hour))
	waitScanned(t, a, "doc.txt", []byte("a's"))
	waitScanned(t, b, "doc.txt", []byte("b's"))
	connect(t, c, a)
	connect(t, c, b)
	got := waitConverged(t, 15*time.Second, nil, devs...)
	if cs := conflictsIn(got); len(cs) != 1 {
		t.Fatalf("conflict copies %v, want 1", cs)
	}
	if s := readFile(t, c, "doc.txt"); s != "b's" {
		t.Errorf("doc.txt = %q", s)
	}
}
