package folder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// An emptied folder without its marker (an unmounted disk) deletes
// nothing, neither locally nor on the other device.
func TestMarkerMissing(t *testing.T) {
	devs := partitioned(t, "marker", map[string]string{"a": "1", "b": "2", "d/c": "3"})
	a, b := devs[0], devs[1]
	connect(t, a, b)
	before := tree(t, b.dir)
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == stateDir {
			continue
		}
		if err := os.RemoveAll(filepath.Join(a.dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	a.f.Scan()
	waitFor(t, 5*time.Second, "a stopped", func() bool { return a.f.Status().State == "stopped" })
	if st := a.f.Status(); !errors.Is(a.f.err, ErrNoMarker) && st.Error == "" {
		t.Errorf("status %+v has no error", st)
	}
	for _, p := range []string{"a", "b", "d/c"} {
		if e, ok := a.f.Entry(p); !ok || e.Deleted {
			t.Errorf("%s recorded as deleted on a", p)
		}
	}
	// b gets a's whole log (still no deletes) and keeps everything.
	seq := a.f.Status().Seq
	waitFor(t, 5*time.Second, "b has read a's log", func() bool {
		for _, ps := range b.f.Status().Peers {
			if ps.Peer == a.h.ID() {
				return ps.Seq == seq
			}
		}
		return false
	})
	b.f.Scan()
	waitFor(t, 5*time.Second, "b idle", func() bool { return b.f.Status().State == "idle" })
	if got := tree(t, b.dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("b changed: %v, was %v", got, before)
	}
	// The marker back: the folder runs again (and the deletes are real now).
	if err := a.f.writeMarker(); err != nil {
		t.Fatal(err)
	}
	a.f.Scan()
	waitFor(t, 5*time.Second, "a runs", func() bool { return a.f.Status().State != "stopped" })
}

// Deleting most of a folder is held until confirmed, on the receiving side.
func TestMassDeleteHeld(t *testing.T) {
	base := map[string]string{}
	for i := range 20 {
		base[fmt.Sprintf("f%02d", i)] = fmt.Sprint(i)
	}
	devs, _ := newDevs(t, 2, "mass", func(i int, c *Config) {
		if i == 0 {
			c.MassDeleteMin = 1000 // a may delete freely; b guards
			// One scan sees all 15 deletes at once: a watcher-driven
			// scan in the middle of the removals would send them in two
			// batches, the first small enough to pass the guard.
			c.NoWatch = true
		} else if os.Getenv("FOLDER_DEBUG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c.NoWatch = true // one scan sees all 15 deletes at once
		}
	})
	a, b := devs[0], devs[1]
	for rel, content := range base {
		write(t, a, rel, content, t0)
	}
	for _, d := range devs {
		d.start(t)
	}
	connect(t, b, a)
	waitConverged(t, 10*time.Second, nil, a, b)
	for i := range 15 {
		if err := os.Remove(filepath.Join(a.dir, fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitScanned(t, a, "f00", nil)
	waitFor(t, 5*time.Second, "b holds the deletes", func() bool { return b.f.Status().HeldDeletes == 15 })
	if n := len(tree(t, b.dir)); n != 20 {
		t.Fatalf("b has %d files while deletes are held, want 20", n)
	}
	b.f.Confirm()
	got := waitConverged(t, 10*time.Second, nil, a, b)
	if len(got) != 5 {
		t.Errorf("after confirm %d files, want 5", len(got))
	}
	if st := b.f.Status(); st.HeldDeletes != 0 {
		t.Errorf("still held: %+v", st)
	}
}

// Replaced and deleted files go to the version store; restore brings one
// back and the other device follows.
func TestVersionsRestore(t *testing.T) {
	var mu sync.Mutex
	now := t0.Add(24 * time.Hour)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	devs, _ := newDevs(t, 2, "vers", func(i int, c *Config) { c.Now = clock; c.KeepVersions = 2 })
	a, b := devs[0], devs[1]
	write(t, a, "r.txt", "one", t0)
	a.start(t)
	b.start(t)
	connect(t, b, a)
	waitConverged(t, 10*time.Second, nil, a, b)
	for i, s := range []string{"two", "three", "four"} {
		write(t, a, "r.txt", s, t0.Add(time.Duration(i+1)*time.Minute))
		waitScanned(t, a, "r.txt", []byte(s))
		waitConverged(t, 10*time.Second, nil, a, b)
	}
	vs, err := b.f.Versions("r.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("b keeps %d versions, want 2 (KeepVersions): %+v", len(vs), vs)
	}
	old, _ := os.ReadFile(vs[1].File)
	if string(old) != "two" {
		t.Errorf("oldest kept version holds %q, want two", old)
	}
	v, err := b.f.Restore(context.Background(), "r.txt", vs[1].Time)
	if err != nil {
		t.Fatal(err)
	}
	if v.Time != vs[1].Time {
		t.Errorf("restored %v, want %v", v.Time, vs[1].Time)
	}
	waitScanned(t, b, "r.txt", []byte("two"))
	waitConverged(t, 10*time.Second, nil, a, b)
	if s := readFile(t, a, "r.txt"); s != "two" {
		t.Errorf("a has %q after restore on b", s)
	}
	if _, err := b.f.Restore(context.Background(), "nope", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("restore of unknown path: %v", err)
	}
	// A delete keeps the file too.
	if err := os.Remove(filepath.Join(a.dir, "r.txt")); err != nil {
		t.Fatal(err)
	}
	waitScanned(t, a, "r.txt", nil)
	waitFor(t, 10*time.Second, "b deleted r.txt", func() bool {
		_, err := os.Lstat(filepath.Join(b.dir, "r.txt"))
		return os.IsNotExist(err)
	})
	vs, _ = b.f.Versions("r.txt")
	if len(vs) == 0 {
		t.Fatal("deleted file not kept")
	}
	if last, _ := os.ReadFile(vs[0].File); string(last) != "two" {
		t.Errorf("newest version %q, want two", last)
	}
}

// .pcignore keeps paths out in both directions, per device.
func TestIgnore(t *testing.T) {
	devs, _ := newDevs(t, 2, "ign", nil)
	a, b := devs[0], devs[1]
	write(t, a, ".pcignore", "*.tmp\n/build/\n", time.Time{})
	write(t, a, "keep.txt", "k", t0)
	write(t, a, "x.tmp", "t", t0)
	write(t, a, "build/out", "o", t0)
	write(t, b, ".pcignore", "private/\n", time.Time{})
	write(t, b, "private/secret", "s", t0)
	a.start(t)
	b.start(t)
	connect(t, b, a)
	write(t, a, "private/from-a", "p", t0)
	waitScanned(t, a, "private/from-a", []byte("p"))
	waitScanned(t, b, "keep.txt", []byte("k"))
	if _, ok := b.f.Entry("private/secret"); ok {
		t.Error("b indexed an ignored path")
	}
	for _, p := range []string{"x.tmp", "build/out", "build"} {
		if _, ok := a.f.Entry(p); ok {
			t.Errorf("a indexed ignored %s", p)
		}
	}
	if _, err := os.Lstat(filepath.Join(b.dir, "private/from-a")); err == nil {
		t.Error("b pulled into a directory it ignores")
	}
}
