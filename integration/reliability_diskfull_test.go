package integration

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pcnode/pcnode/node/api"
)

// Disk full (issue 9, item 2): a daemon whose home is on a small
// filesystem made by the test adds and fetches more than fits. The
// operation fails with "disk full: free space in <path>", the daemon keeps
// running, nothing stored before is damaged (verify clean, earlier files
// export whole), and once space returns the same operation succeeds
// without a restart. The filesystems are 128 MiB: the store keeps 48.8
// MiB free (blobstore's spaceReserve) and refuses writes below that.

// smallFS mounts a tmpfs of sizeMiB at a new directory and unmounts it in
// cleanup. It needs root: in CI (CI set) it fails without, elsewhere it
// skips.
func smallFS(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the disk-full test needs root to mount a tmpfs, and CI runs as root: is it?")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(sizeMiB)+"m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Registered after the daemons' cleanups would be too late: cleanups
	// run last-in first-out, so this runs after every proc stopped that
	// was created after this call.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// freeBytes is the space left for an unprivileged writer on dir's
// filesystem.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a filler file that leaves about leave bytes free on dir's
// filesystem, and returns its path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for freeBytes(t, dir) > leave+int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// noTempFiles fails if the store under home kept temporary files of a
// failed write: they would keep the disk full after the user freed space.
func noTempFiles(t *testing.T, home string) {
	t.Helper()
	tmp := filepath.Join(home, "data", "flatfs", ".temp")
	var left []string
	_ = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("a failed write left %d temporary files (%s ...)\n%s", len(left), left[0], usage(home))
	}
}

// usage lists the files under dir of 1 MiB or more, for a failure message
// that says what holds the space.
func usage(dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Blocks*512 >= 1<<20 {
			fmt.Fprintf(&b, "%6.1f MiB allocated  %s\n", float64(st.Blocks*512)/(1<<20), p)
		}
		return nil
	})
	return b.String()
}

// procAt is newProc (or newDevice, with no cloud) with its home at home.
func procAt(t *testing.T, name, home string, cloud bool) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: pcnodeBinary(t), home: home}
	args := []string{"init", "--profile", "local", "--name", name}
	if !cloud {
		args = append(args, "--no-cloud")
	}
	p.must(args...)
	p.must("config", "set", "api.listen", "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

// wantDiskFull fails unless err is the clear disk-full error naming dir.
func wantDiskFull(t *testing.T, what string, err error, dir string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded on a full disk", what)
	}
	if !strings.Contains(err.Error(), "disk full: free space in "+dir) {
		t.Fatalf("%s on a full disk: %v; want \"disk full: free space in %s\"", what, err, dir)
	}
}

func TestReliabilityDiskFullAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and runs a daemon; skipped with -short")
	}
	t.Parallel()
	mnt := smallFS(t, 128)
	n := procAt(t, "full", filepath.Join(mnt, "home"), true)
	n.start()
	src := t.TempDir() // sources and outputs live outside the small fs
	first := writeRandom(t, src, 8<<20, 41)
	second := writeRandom(t, src, 32<<20, 42)
	var one api.AddResult
	n.mustJSON(&one, "add", first)

	filler := fill(t, mnt, 12<<20)
	t.Logf("%d MiB free before the add of 32 MiB", freeBytes(t, mnt)>>20)
	_, err := n.run("add", second)
	wantDiskFull(t, "add", err, filepath.Join(mnt, "home"))
	if !n.alive() {
		t.Fatalf("the daemon died on a full disk\n%s", n.logs())
	}
	noTempFiles(t, n.home)
	n.verifyClean("on the full disk")
	out := filepath.Join(t.TempDir(), "one")
	n.must("get", one.CID, "-o", out)
	sameFile(t, first, out)

	// Space returns; the same add succeeds on the same daemon.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var two api.AddResult
	res, err := n.run("--json", "add", second)
	if err != nil {
		t.Fatalf("add after space returned (%d MiB free): %v\n%s", freeBytes(t, mnt)>>20, err, usage(mnt))
	}
	if err := json.Unmarshal([]byte(res), &two); err != nil {
		t.Fatalf("add --json: %v\n%s", err, res)
	}
	out2 := filepath.Join(t.TempDir(), "two")
	n.must("get", two.CID, "-o", out2)
	sameFile(t, second, out2)
	n.verifyClean("after space returned")
}

func TestReliabilityDiskFullFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and runs two daemons; skipped with -short")
	}
	t.Parallel()
	mnt := smallFS(t, 128)
	a := newProc(t, "a")
	b := procAt(t, "b", filepath.Join(mnt, "home"), false)
	a.start()
	b.start()
	var inv api.InviteResult
	a.mustJSON(&inv, "invite", "--ttl", "5m")
	b.must("join", inv.Code)
	var aci api.CloudInfo
	a.mustJSON(&aci, "cloud", "show")
	b.waitDevices("a online", connected(aci.Device))

	src := t.TempDir()
	small := writeRandom(t, src, 4<<20, 51)
	big := writeRandom(t, src, 32<<20, 52)
	var s1, s2 api.AddResult
	a.mustJSON(&s1, "add", small)
	a.mustJSON(&s2, "add", big)
	outDir := t.TempDir()
	b.must("get", s1.CID, "-o", filepath.Join(outDir, "small"))

	filler := fill(t, mnt, 12<<20)
	_, err := b.run("get", s2.CID, "-o", filepath.Join(outDir, "big"))
	wantDiskFull(t, "get", err, filepath.Join(mnt, "home"))
	if !b.alive() {
		t.Fatalf("the daemon died on a full disk\n%s", b.logs())
	}
	if _, err := os.Lstat(filepath.Join(outDir, "big")); err == nil {
		t.Fatal("a failed get left its output behind")
	}
	noTempFiles(t, b.home)
	b.verifyClean("on the full disk")
	out := filepath.Join(outDir, "small-again")
	b.must("get", s1.CID, "-o", out)
	sameFile(t, small, out)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := b.run("get", s2.CID, "-o", filepath.Join(outDir, "big")); err != nil {
		t.Fatalf("get after space returned (%d MiB free): %v\n%s", freeBytes(t, mnt)>>20, err, usage(mnt))
	}
	sameFile(t, big, filepath.Join(outDir, "big"))
	b.verifyClean("after space returned")
}
