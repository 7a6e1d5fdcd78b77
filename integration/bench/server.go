package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
		if !o.keep {
			os.RemoveAll(dir)
		}
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
