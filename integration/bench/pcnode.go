package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pcnode runs the pcnode binary. Every command line the bench uses is in
// this file, so a change to the CLI is made here once.
type pcnode struct {
	bin string

	mu      sync.Mutex
	daemons map[*daemon]struct{}
}

// run runs `pcnode --home home args...` and returns its stdout. A failure
// includes the command's stderr.
func (p *pcnode) run(ctx context.Context, home string, args ...string) (string, error) {
	out, _, err := p.runCPU(ctx, home, args...)
	return out, err
}

// runCPU is run that also returns the CPU time (user and system) the
// command used.
func (p *pcnode) runCPU(ctx context.Context, home string, args ...string) (string, time.Duration, error) {
	argv := append([]string{"--home", home}, args...)
	cmd := exec.CommandContext(ctx, p.bin, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "PCNODE_HOME="+home)
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return stdout.String(), cpu, fmt.Errorf("pcnode %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	return stdout.String(), cpu, nil
}

// initHome makes a fresh home of the local profile whose API listens on a
// free loopback port.
func (p *pcnode) initHome(ctx context.Context, home string) error {
	if _, err := p.run(ctx, home, "init", "--profile", "local"); err != nil {
		return err
	}
	_, err := p.run(ctx, home, "config", "set", "api.listen", "127.0.0.1:0")
	return err
}

// initMemberHome makes a fresh home of the local profile with no cloud
// (it joins one next), its API on a free loopback port.
func (p *pcnode) initMemberHome(ctx context.Context, home string) error {
	if _, err := p.run(ctx, home, "init", "--profile", "local", "--no-cloud"); err != nil {
		return err
	}
	_, err := p.run(ctx, home, "config", "set", "api.listen", "127.0.0.1:0")
	return err
}

// invite returns a code from `pcnode invite --json` on home's daemon.
func (p *pcnode) invite(ctx context.Context, home string) (string, error) {
	out, err := p.run(ctx, home, "invite", "--json")
	if err != nil {
		return "", err
	}
	var inv struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Code == "" {
		return "", fmt.Errorf("pcnode invite --json: no code in %q (%v)", lastLines(out, 3), err)
	}
	return inv.Code, nil
}

// join joins home (no daemon running) to the cloud of an invite code.
func (p *pcnode) join(ctx context.Context, home, code string) error {
	_, err := p.run(ctx, home, "join", "--name", "bench-member", code)
	return err
}

// status is the part of `pcnode status --json` the bench uses.
type status struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api"`
}

func (p *pcnode) status(ctx context.Context, home string) (status, error) {
	out, err := p.run(ctx, home, "status", "--json")
	if err != nil {
		return status{}, err
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return status{}, fmt.Errorf("pcnode status --json: %w in %q", err, lastLines(out, 3))
	}
	return st, nil
}

// add adds path and returns the CID `add -q` prints and the CPU time of
// the command.
func (p *pcnode) add(ctx context.Context, home, path string) (string, time.Duration, error) {
	out, cpu, err := p.runCPU(ctx, home, "add", "-q", path)
	if err != nil {
		return "", cpu, err
	}
	c := strings.TrimSpace(lastLines(out, 1))
	if c == "" || strings.ContainsAny(c, " \t") {
		return "", cpu, fmt.Errorf("pcnode add -q printed %q, want a CID", out)
	}
	return c, cpu, nil
}

// shareAdded shares c from home, after the add was timed: another cloud's
// daemon is served shared blocks only. A pcnode from before sharing
// (bench -rev) has no share command and serves everyone, so its failure
// is ignored.
func (p *pcnode) shareAdded(ctx context.Context, home, c string) {
	_, _ = p.run(ctx, home, "share", c)
}

// share shares arg (a CID, or with encrypt a path) from home's daemon and
// returns the link `pcnode share --json` prints.
func (p *pcnode) share(ctx context.Context, home, arg string, encrypt bool) (string, error) {
	args := []string{"share", "--json", arg}
	if encrypt {
		args = []string{"share", "--json", "--encrypt", arg}
	}
	out, err := p.run(ctx, home, args...)
	if err != nil {
		return "", err
	}
	var res struct {
		Link string `json:"link"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Link == "" {
		return "", fmt.Errorf("pcnode %s: no link in %q (%v)", strings.Join(args, " "), lastLines(out, 3), err)
	}
	return res.Link, nil
}

func (p *pcnode) connect(ctx context.Context, home, addr string) error {
	_, err := p.run(ctx, home, "peers", "connect", addr)
	return err
}

// get fetches cid into out and returns the CPU time of the command.
func (p *pcnode) get(ctx context.Context, home, cid, out string) (time.Duration, error) {
	_, cpu, err := p.runCPU(ctx, home, "get", cid, "-o", out)
	return cpu, err
}

// daemon is one running `pcnode daemon`.
type daemon struct {
	home string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, valid after done
}

// startDaemon starts `pcnode --home home daemon` and returns when it has
// written home/api (it is ready), failing if it exits first or ctx ends.
func (p *pcnode) startDaemon(ctx context.Context, home string) (*daemon, error) {
	// A stale api file (a daemon killed earlier) would look ready.
	if err := os.Remove(filepath.Join(home, "api")); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(home, "bench-daemon.log"))
	if err != nil {
		return nil, err
	}
	// Not CommandContext: the daemon outlives this call and is ended by stop.
	cmd := exec.Command(p.bin, "--home", home, "daemon")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PCNODE_HOME="+home)
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d := &daemon{home: home, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	p.mu.Lock()
	if p.daemons == nil {
		p.daemons = make(map[*daemon]struct{})
	}
	p.daemons[d] = struct{}{}
	p.mu.Unlock()

	if err := d.waitReady(ctx, 60*time.Second); err != nil {
		p.stop(d)
		return nil, err
	}
	return d, nil
}

// waitReady polls for a non-empty home/api until the deadline.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited before it was ready (%v): %s", d.err, d.logTail(10))
		case <-ctx.Done():
			return fmt.Errorf("daemon not ready after %v: %w: %s", timeout, ctx.Err(), d.logTail(10))
		case <-tick.C:
		}
		if b, err := os.ReadFile(filepath.Join(d.home, "api")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			select {
			case <-d.done: // wrote it and died: report that above
				continue
			default:
				return nil
			}
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// logTail is the end of the daemon's log, for error messages.
func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.log.Name())
	if err != nil {
		return "(no log)"
	}
	return lastLines(string(b), n)
}

// stop ends the daemon: SIGTERM to its process group, SIGKILL if it has
// not exited within 10 s. It waits for the exit and is safe to call twice.
func (p *pcnode) stop(d *daemon) {
	p.mu.Lock()
	_, ok := p.daemons[d]
	delete(p.daemons, d)
	p.mu.Unlock()
	if !ok {
		return
	}
	defer d.log.Close()
	select {
	case <-d.done:
		return
	default:
	}
	_ = signalGroup(d.pid(), syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = signalGroup(d.pid(), syscall.SIGKILL)
		<-d.done
	}
	// A child the daemon left behind in its group dies with the group.
	_ = signalGroup(d.pid(), syscall.SIGKILL)
}

// stopAll stops every daemon still running.
func (p *pcnode) stopAll() {
	p.mu.Lock()
	ds := make([]*daemon, 0, len(p.daemons))
	for d := range p.daemons {
		ds = append(ds, d)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { p.stop(d) })
	}
	wg.Wait()
}

// loopbackAddr picks the address a second daemon dials: a plain TCP one on
// 127.0.0.1 (the transport the loopback limit measures), else another IPv4
// loopback one, else ::1; addresses over WebSocket or WebTransport only if
// nothing else is there.
func loopbackAddr(addrs []string) (string, error) {
	best, bestRank := "", 99
	for _, a := range addrs {
		if !strings.Contains(a, "/p2p/") {
			continue
		}
		rank := 99
		switch {
		case strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/"):
			rank = 0
		case strings.HasPrefix(a, "/ip4/127."):
			rank = 1
		case strings.HasPrefix(a, "/ip6/::1/"):
			rank = 2
		default:
			continue
		}
		for _, wrapped := range []string{"/ws/", "/wss/", "/tls/", "/webtransport/", "/webrtc"} {
			if strings.Contains(a, wrapped) {
				rank += 10
			}
		}
		if rank < bestRank {
			best, bestRank = a, rank
		}
	}
	if best == "" {
		return "", fmt.Errorf("no loopback address ending in /p2p/<id> among %q", addrs)
	}
	return best, nil
}

// lastLines is the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}
