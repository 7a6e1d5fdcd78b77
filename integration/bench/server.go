package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The idle home server (issue 7): a server daemon with 3 member devices
// and 5 folders of -files files each (10,000 by default), replicated on
// the server, all in sync; then nothing happens, and the server's
// resident memory and CPU use are read.

const (
	serverMembers = 3
	serverFolders = 5
	// serverSyncTimeout bounds the initial replication of the folders.
	serverSyncTimeout = 15 * time.Minute
)

// serverScenarios are the idle home server's figures.
type serverScenarios struct {
	// rss and cpu are read once the replicas are in sync; restartRSS and
	// restartCPU after the server restarts on the same homes (the steady
	// state: without the initial sync's garbage and filled caches).
	rss, cpu, restartRSS, restartCPU *scenario
	// window is how long the idle CPU is measured over: 12 × -idle, a
	// minute by default, so that it includes each folder's safety-net
	// rescan (folder.DefaultRescanInterval).
	window time.Duration
}

func newServerScenarios(o *options) *serverScenarios {
	what := fmt.Sprintf("idle home server, %d devices, %d folders of %d files", serverMembers, serverFolders, o.treeFiles)
	s := &serverScenarios{
		rss: &scenario{Name: what + ", just synced: RSS", Unit: "MiB",
			Target: target{"< 150 MiB", func(m, _ float64) bool { return m < 150 }}},
		cpu: &scenario{Name: what + ", just synced: CPU", Unit: "% of a core",
			Target: target{"< 1%", func(m, _ float64) bool { return m < 1 }}},
		restartRSS: &scenario{Name: what + ", restarted: RSS", Unit: "MiB",
			Target: target{"< 150 MiB", func(m, _ float64) bool { return m < 150 }}},
		restartCPU: &scenario{Name: what + ", restarted: CPU", Unit: "% of a core",
			Target: target{"< 1%", func(m, _ float64) bool { return m < 1 }}},
		window: 12 * o.idle,
	}
	return s
}

// list returns the scenarios to report.
func (s *serverScenarios) list() []*scenario {
	return []*scenario{s.rss, s.cpu, s.restartRSS, s.restartCPU}
}

// serverFolder is the part of `pcnode folder ls --json` the bench reads.
type serverFolder struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Files int    `json:"files"`
}

// serverRun is one run: fresh homes, the folders written and added on the
// members (two, two and one), the server replicating all five; once every
// replica is in sync the server idles for o.idle, then its CPU time is
// measured over the window and its RSS read. The same again after the
// server restarts on its home: the steady state of a server that has been
// up for a while, without the initial sync's garbage and filled caches.
func (b *bench) serverRun(ctx context.Context, i int, s *serverScenarios) (err error) {
	o := b.o
	dir := filepath.Join(b.tmp, fmt.Sprintf("server-run%d", i+1))
	defer func() {
		b.pc.stopAll()
		b.discard(dir)
		if err != nil {
			for _, sc := range s.list() {
				if sc.Err == nil {
					sc.Err = err
				}
			}
			err = fmt.Errorf("run %d: idle home server: %w", i+1, err)
		}
	}()
	n := fmt.Sprintf("run %d/%d", i+1, o.runs)
	pc := b.pc

	home := filepath.Join(dir, "server")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	if _, err := pc.run(ctx, home, "init", "--profile", "local", "--role", "server", "--name", "bench-server"); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"api.listen", "127.0.0.1:0"}, {"store.nosync", "true"}} {
		if _, err := pc.run(ctx, home, "config", "set", kv[0], kv[1]); err != nil {
			return err
		}
	}
	srv, err := pc.startDaemon(ctx, home)
	if err != nil {
		return err
	}

	b.logf("%s: idle home server: %d members join, %d folders of %d files", n, serverMembers, serverFolders, o.treeFiles)
	var members []string
	for m := range serverMembers {
		mh := filepath.Join(dir, fmt.Sprintf("member%d", m+1))
		if err := os.MkdirAll(mh, 0o700); err != nil {
			return err
		}
		if err := pc.initMemberHome(ctx, mh); err != nil {
			return err
		}
		if _, err := pc.run(ctx, mh, "config", "set", "store.nosync", "true"); err != nil {
			return err
		}
		code, err := pc.invite(ctx, home)
		if err != nil {
			return err
		}
		if _, err := pc.run(ctx, mh, "join", "--name", fmt.Sprintf("member%d", m+1), code); err != nil {
			return err
		}
		if _, err := pc.startDaemon(ctx, mh); err != nil {
			return err
		}
		members = append(members, mh)
	}
	for f := range serverFolders {
		root := filepath.Join(dir, fmt.Sprintf("folder%d", f+1))
		if _, err := writeRandomTree(root, o.treeFiles, o.treeFile, uint64(100+f)); err != nil {
			return err
		}
		if _, err := pc.run(ctx, members[f%serverMembers], "folder", "add", root); err != nil {
			return err
		}
	}

	start := time.Now()
	if err := b.waitReplicas(ctx, home, srv); err != nil {
		return err
	}
	b.logf("%s: the server replicated %d × %d files in %v; idling %v, then measuring CPU over %v",
		n, serverFolders, o.treeFiles, time.Since(start).Round(time.Second), o.idle, s.window)
	if err := b.idleServer(ctx, srv, s.window, s.rss, s.cpu); err != nil {
		return err
	}
	b.logf("%s: just synced: RSS %s MiB, CPU %s%% of a core", n, num(last(s.rss.Samples), ""), num(last(s.cpu.Samples), ""))
	b.logf("%s: just synced: %s", n, readMemBreakdown(ctx, srv))

	pc.stop(srv)
	if srv, err = pc.startDaemon(ctx, home); err != nil {
		return err
	}
	if err := b.waitReplicas(ctx, home, srv); err != nil {
		return err
	}
	if err := b.idleServer(ctx, srv, s.window, s.restartRSS, s.restartCPU); err != nil {
		return err
	}
	b.logf("%s: restarted: RSS %s MiB, CPU %s%% of a core", n, num(last(s.restartRSS.Samples), ""), num(last(s.restartCPU.Samples), ""))
	b.logf("%s: restarted: %s", n, readMemBreakdown(ctx, srv))
	return nil
}

func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// waitReplicas waits until the server at home has every folder in sync.
func (b *bench) waitReplicas(ctx context.Context, home string, srv *daemon) error {
	o := b.o
	deadline := time.Now().Add(serverSyncTimeout)
	for {
		fs, err := b.serverFolders(ctx, home)
		if err != nil {
			return err
		}
		done := 0
		for _, f := range fs {
			if f.State == "idle" && f.Files == o.treeFiles {
				done++
			}
		}
		if done == serverFolders {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas not in sync after %v: %+v\n%s", serverSyncTimeout, fs, srv.logTail(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second): // polling the replicas' state
		}
	}
}

// idleServer lets the server idle for -idle, then records its CPU use over
// window (as % of one core) and its RSS at the end.
func (b *bench) idleServer(ctx context.Context, srv *daemon, window time.Duration, rssSc, cpuSc *scenario) error {
	o := b.o
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.idle):
	}
	cpu0, err := procCPU(srv.pid())
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	cpu1, err := procCPU(srv.pid())
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	r, err := rss(srv.pid())
	if err != nil {
		return err
	}
	pct := 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	rssSc.record(float64(r)/mib, measurement{})
	cpuSc.record(pct, measurement{})
	return nil
}

func (b *bench) serverFolders(ctx context.Context, home string) ([]serverFolder, error) {
	out, err := b.pc.run(ctx, home, "folder", "ls", "--json")
	if err != nil {
		return nil, err
	}
	var l struct {
		Folders []serverFolder `json:"folders"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("pcnode folder ls --json: %w in %q", err, lastLines(out, 3))
	}
	return l.Folders, nil
}

// memBreakdown is where an idle daemon's resident memory is, from
// /proc/<pid>/status and the Go runtime's own figures on its /metrics.
type memBreakdown struct {
	anon, file int64 // RssAnon, RssFile (the binary's mapped text, mostly)
	// goHeld is what Go's runtime has from the system and not returned
	// (go_memstats_sys_bytes - go_memstats_heap_released_bytes): an upper
	// bound of the Go part of anon. goHeap is the heap in use.
	goHeld, goHeap int64
	err            error // why the Go figures are missing
}

func (m memBreakdown) String() string {
	const mib = 1 << 20
	s := fmt.Sprintf("RSS %.0f MiB = %.0f MiB anonymous + %.0f MiB files", float64(m.anon+m.file)/mib, float64(m.anon)/mib, float64(m.file)/mib)
	if m.err != nil {
		return s + fmt.Sprintf(" (Go's share unknown: %v)", m.err)
	}
	return s + fmt.Sprintf("; of the anonymous memory Go holds at most %.0f MiB (heap in use %.0f MiB), the rest, at least %.0f MiB, is outside Go's heap (pebble's memtables and caches, the C allocator)",
		float64(m.goHeld)/mib, float64(m.goHeap)/mib, float64(max(0, m.anon-m.goHeld))/mib)
}

// readMemBreakdown reads d's memory breakdown; errors are kept in it (the
// breakdown is a diagnostic, not a figure of the report).
func readMemBreakdown(ctx context.Context, d *daemon) memBreakdown {
	var m memBreakdown
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid()))
	if err != nil {
		m.err = err
		return m
	}
	if m.anon, err = statusBytes(string(st), "RssAnon"); err == nil {
		m.file, err = statusBytes(string(st), "RssFile")
	}
	if err != nil {
		m.err = err
		return m
	}
	text, err := daemonMetrics(ctx, d.home)
	if err != nil {
		m.err = err
		return m
	}
	vals := make(map[string]float64)
	for _, name := range []string{"go_memstats_sys_bytes", "go_memstats_heap_released_bytes", "go_memstats_heap_inuse_bytes"} {
		v, ok := promValue(text, name)
		if !ok {
			m.err = fmt.Errorf("no %s on /metrics", name)
			return m
		}
		vals[name] = v
	}
	m.goHeld = int64(vals["go_memstats_sys_bytes"] - vals["go_memstats_heap_released_bytes"])
	m.goHeap = int64(vals["go_memstats_heap_inuse_bytes"])
	return m
}

// statusBytes returns the field key ("RssAnon") of a /proc/<pid>/status
// text, in bytes.
func statusBytes(status, key string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return 0, fmt.Errorf("%s: bad number %q", key, f[0])
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no %s in the process status", key)
}

// promValue returns the value of the unlabelled sample name in a
// Prometheus text exposition.
func promValue(text, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// daemonMetrics is GET /metrics of the daemon at home (its API's URL and
// bearer token are in the home, as the CLI finds them).
func daemonMetrics(ctx context.Context, home string) (string, error) {
	base, err := os.ReadFile(filepath.Join(home, "api"))
	if err != nil {
		return "", err
	}
	tok, err := os.ReadFile(filepath.Join(home, "api.token"))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSpace(string(base))+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), nil
}
