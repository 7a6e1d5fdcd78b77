package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// Synced folders (issue 4): two member daemons with durable stores; a
// folder written on A is added there (the scan starts) and joined on B;
// the time until B's copy is identical. Registered by one line in main.go.

// folderSyncTimeout bounds one folder sync.
const folderSyncTimeout = 10 * time.Minute

// folderScenarios adds the folder scenarios to rep now (so that -only
// filters them with the others) and returns the function that runs them
// o.runs times, which main.go defers to the end of the bench. It runs
// nothing when a limit failed or ctx is done; errors are recorded in the
// scenarios.
func (b *bench) folderScenarios(ctx context.Context, rep *report) func() {
	o := b.o
	tree := &scenario{Name: fmt.Sprintf("folder of %d × %s files: from the scan on A to identical on B", o.treeFiles, sizeString(int64(o.treeFile))), Unit: "s",
		Target: target{"< 4 s", func(m, _ float64) bool { return m < 4 }}}
	file := &scenario{Name: "folder with a " + sizeString(o.fileSize) + " file: from the scan on A to identical on B", Unit: "MiB/s",
		Target: target{"≥ 300 MiB/s", func(m, _ float64) bool { return m >= 300 }}}
	// The third folder figure: a new device's initial index sync
	// of 100,000 entries under 30 s, its daemon under 300 MiB. The
	// entries are empty files (no content to move): what is timed is the
	// index exchange and the files' creation on B, an upper bound of the
	// index sync alone (node/folder's TestInitialIndexSync times that).
	entries := 10 * o.treeFiles
	many := &scenario{Name: fmt.Sprintf("folder of %d entries (empty files): from the join on B to every entry on B", entries), Unit: "s",
		Target: target{"< 30 s", func(m, _ float64) bool { return m < 30 }}}
	manyRSS := &scenario{Name: fmt.Sprintf("folder of %d entries: B's daemon peak RSS during that sync", entries), Unit: "MiB",
		Target: target{"< 300 MiB", func(m, _ float64) bool { return m < 300 }}}
	rep.Scenarios = append(rep.Scenarios, tree, file, many, manyRSS)
	return func() {
		for _, l := range rep.Limits {
			if l.Err != nil {
				return
			}
		}
		for i := range o.runs {
			for _, s := range []*scenario{tree, file, many} {
				if ctx.Err() != nil || !slices.Contains(rep.Scenarios, s) {
					continue
				}
				var err error
				switch s {
				case tree:
					err = b.folderRun(ctx, i, s, "tree", nil, func(root string) (int, int64, error) {
						n, err := writeRandomTree(root, o.treeFiles, o.treeFile, uint64(300+i))
						return o.treeFiles, n, err
					})
				case file:
					err = b.folderRun(ctx, i, s, "file", nil, func(root string) (int, int64, error) {
						return 1, o.fileSize, writeRandomFile(filepath.Join(root, "file.bin"), o.fileSize, uint64(400+i))
					})
				case many:
					rss := manyRSS
					if !slices.Contains(rep.Scenarios, rss) {
						rss = &scenario{}
					}
					err = b.folderRun(ctx, i, s, "many", rss, func(root string) (int, int64, error) {
						return entries, 0, writeEmptyTree(root, entries)
					})
				}
				if err != nil {
					s.Err = err
					b.logf("%s: %v", s.Name, err)
				}
			}
		}
	}
}

// benchFolder is the part of `pcnode folder ls --json` the bench reads.
type benchFolder struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// folderList asks c's daemon for its folders over the HTTP API (what
// `pcnode folder ls --json` prints): polled every 50 ms, a CLI process
// each time would take CPU from the daemons being measured.
func folderList(ctx context.Context, c *api.Client) ([]benchFolder, error) {
	fs, err := c.Folders(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]benchFolder, len(fs))
	for i, f := range fs {
		out[i] = benchFolder{ID: f.ID, State: f.State, Files: f.Files, Bytes: f.Bytes}
	}
	return out, nil
}

// writeEmptyTree writes n empty files over n/200 directories.
func writeEmptyTree(root string, n int) error {
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%03d", i%max(n/200, 1)), fmt.Sprintf("e%06d", i))
		if i < max(n/200, 1) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// folderRun is one run of s: fresh homes A and B in one cloud, the data
// written by fill into A's folder, then `folder add` on A and `folder
// join` on B, timed until B reports every file and byte and its tree has
// A's digest. With rss set, A's scan completes before B joins, the time
// runs from the join, and B's daemon peak RSS goes to rss.
func (b *bench) folderRun(ctx context.Context, i int, s *scenario, tag string, rss *scenario, fill func(root string) (int, int64, error)) (err error) {
	o := b.o
	pc := b.pc
	dir := filepath.Join(b.tmp, fmt.Sprintf("folder-%s-run%d-%d", tag, i+1, len(s.Samples)))
	defer func() {
		pc.stopAll()
		b.discard(dir)
	}()
	ha, hb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, h := range []string{ha, hb} {
		if err := os.MkdirAll(h, 0o700); err != nil {
			return err
		}
	}
	if err := pc.initHome(ctx, ha); err != nil {
		return err
	}
	if err := pc.initMemberHome(ctx, hb); err != nil {
		return err
	}
	da, err := pc.startDaemon(ctx, ha)
	if err != nil {
		return err
	}
	code, err := pc.invite(ctx, ha)
	if err != nil {
		return err
	}
	if err := pc.join(ctx, hb, code); err != nil {
		return err
	}
	db, err := pc.startDaemon(ctx, hb)
	if err != nil {
		return err
	}
	ca, err := api.DialHome(ha)
	if err != nil {
		return err
	}
	cb, err := api.DialHome(hb)
	if err != nil {
		return err
	}
	ra, rb := filepath.Join(dir, "folder-a"), filepath.Join(dir, "folder-b")
	if err := os.MkdirAll(ra, 0o755); err != nil {
		return err
	}
	files, size, err := fill(ra)
	if err != nil {
		return err
	}
	want, err := folderDigest(ra)
	if err != nil {
		return err
	}
	b.logf("run %d/%d: %s", i+1, o.runs, s.Name)
	cpu0, cpuOK := daemonsCPU([]*daemon{da, db})
	start := time.Now()
	out, err := pc.run(ctx, ha, "folder", "add", "--json", ra)
	if err != nil {
		return err
	}
	var added struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.ID == "" {
		return fmt.Errorf("pcnode folder add --json: no id in %q (%v)", lastLines(out, 3), err)
	}
	if rss != nil {
		// A's scan first: what is timed is B's initial sync.
		for {
			fs, err := folderList(ctx, ca)
			if err != nil {
				return err
			}
			if len(fs) == 1 && fs[0].Files == files && fs[0].State == "idle" {
				break
			}
			if time.Since(start) > folderSyncTimeout {
				return fmt.Errorf("device A did not scan in %v: %+v\n%s", folderSyncTimeout, fs, da.logTail(10))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond): // polling A's folder state
			}
		}
		b.logf("run %d/%d: A scanned %d entries in %v", i+1, o.runs, files, time.Since(start).Round(time.Millisecond))
		cpu0, cpuOK = daemonsCPU([]*daemon{da, db})
		start = time.Now()
	}
	if _, err := pc.run(ctx, hb, "folder", "join", added.ID, rb); err != nil {
		return err
	}
	deadline := start.Add(folderSyncTimeout)
	for {
		fs, err := folderList(ctx, cb)
		if err != nil {
			return err
		}
		if len(fs) == 1 && fs[0].Files == files && fs[0].Bytes == size {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device B not in sync after %v: %+v\n%s", folderSyncTimeout, fs, db.logTail(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling B's folder state
		}
	}
	took := time.Since(start)
	cpu1, cpuOK1 := daemonsCPU([]*daemon{da, db})
	if rss != nil {
		hwm, err := peakRSS(db.cmd.Process.Pid)
		if err != nil {
			return err
		}
		rss.record(float64(hwm)/(1<<20), measurement{})
		b.logf("run %d/%d: B's daemon peak RSS %d MiB", i+1, o.runs, hwm>>20)
	}
	got, err := folderDigest(rb)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("device B's folder differs from A's (digest %s, want %s)", got, want)
	}
	v := took.Seconds()
	if s.Unit == "MiB/s" {
		v = mibps(size, took)
	}
	// CPU: the daemons' (the CLI calls are not counted).
	s.record(v, measurement{wall: took, cpu: cpu1 - cpu0, cpuOK: cpuOK && cpuOK1})
	b.logf("run %d/%d: %s: %v", i+1, o.runs, s.Name, took.Round(time.Millisecond))
	return nil
}

// folderDigest is treeDigest of a synced folder without pcnode's own
// files (the marker, .pcnode/, temporary files).
func folderDigest(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".pcnode") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case d.Type().IsRegular():
			sum, err := fileDigest(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %s\n", rel, sum)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// peakRSS reads VmHWM, the peak resident set of process pid, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
