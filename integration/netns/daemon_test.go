package netns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcnode/pcnode/integration/netns"
	"github.com/pcnode/pcnode/node/api"
)

// The scenarios of issue 8 run the real pcnode daemon, one per host
// namespace, with homes of the lan profile (p2p.ProfileLAN: listen on the
// namespace's interfaces, mDNS, a private DHT served by the home server,
// no port mapping, dials only to the documentation ranges). The CLI runs
// inside the namespace too, since each daemon's API is on that
// namespace's own loopback.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// removeBinary deletes the built daemon (TestMain calls it after the
// tests).
func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// pcnodeBinary builds cmd/pcnode once per test process (without -race:
// the daemons' speed is what the figures measure, and the race detector
// runs on p2p's own tests).
//
// PCNODE_NETNS_PCNODE=<path> runs that binary instead (built elsewhere:
// from another revision, or while the working tree does not build).
func pcnodeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PCNODE_NETNS_PCNODE"); p != "" {
		return p
	}
	binOnce.Do(func() {
		sweepBinaries()
		dir, err := os.MkdirTemp("", fmt.Sprintf("pcnode-netns-bin-%d-", os.Getpid()))
		if err != nil {
			binErr = err
			return
		}
		binDir, binPath = dir, filepath.Join(dir, "pcnode")
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command(goTool, "build", "-o", binPath, "./cmd/pcnode")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/pcnode: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// sweepBinaries deletes the build directories of test processes that died
// before removing theirs (killed, or timed out).
func sweepBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pcnode-netns-bin-*-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "pcnode-netns-bin-%d-", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// daemonEnv is the environment of pcnode processes: ours without PCNODE_*
// variables, which would override the homes' config.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PCNODE_") {
			env = append(env, kv)
		}
	}
	return env
}

// daemon is one device: a pcnode home and, once started, its daemon
// running in a host namespace.
type daemon struct {
	t    *testing.T
	name string
	host *netns.Host
	bin  string
	home string
	ID   string

	proc    *netns.Proc
	started time.Time
	logPath string
}

func newDaemon(t *testing.T, h *netns.Host, name string) *daemon {
	return &daemon{t: t, name: name, host: h, bin: pcnodeBinary(t), home: filepath.Join(t.TempDir(), name)}
}

// run runs one CLI command on the home inside the host's namespace.
func (d *daemon) run(ctx context.Context, args ...string) (string, error) {
	cmd := d.host.Command(ctx, d.bin, append([]string{"--home", d.home}, args...)...)
	cmd.Env = daemonEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: pcnode %s: %w: %s", d.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (d *daemon) must(args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := d.run(ctx, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *daemon) mustJSON(v any, args ...string) {
	d.t.Helper()
	out := d.must(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("%s: pcnode %s: %v\n%s", d.name, strings.Join(args, " "), err, out)
	}
}

// start runs the daemon in its namespace and returns when its API answers.
func (d *daemon) start() {
	d.t.Helper()
	level := "info"
	if os.Getenv("PCNODE_NETNS_DEBUG") == "1" {
		level = "debug"
	}
	d.logPath = d.home + ".log"
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := d.host.Command(context.Background(), d.bin, "--home", d.home, "daemon", "--log-level", level)
	cmd.Env = daemonEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	d.started = time.Now()
	if d.proc, err = d.host.Start(cmd); err != nil {
		logf.Close()
		d.t.Fatal(err)
	}
	t := d.t
	t.Cleanup(func() {
		d.proc.Stop()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			if len(b) > 16<<10 {
				b = b[len(b)-16<<10:]
			}
			t.Logf("daemon %s (%s) log tail:\n%s", d.name, d.ID, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Ask only once the daemon has written its API address: a
		// command run before would open the home itself, and the
		// daemon, finding it in use, would exit.
		err := fmt.Errorf("no %s file yet", api.APIFile)
		if _, serr := os.Stat(filepath.Join(d.home, api.APIFile)); serr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var out string
			out, err = d.run(ctx, "--json", "status")
			cancel()
			var st struct {
				Online bool `json:"online"`
			}
			if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Online {
				return
			}
		}
		select {
		case <-d.proc.Done():
			d.t.Fatalf("%s: daemon exited during start: %v", d.name, d.proc.Wait())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: daemon API not up after 60 s: %v", d.name, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}

// devices is `pcnode devices ls --json`, by name.
func (d *daemon) devices() (map[string]api.Device, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := d.run(ctx, "--json", "devices", "ls")
	if err != nil {
		return nil, err
	}
	var l struct {
		Devices []api.Device `json:"devices"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("%s: devices ls: %w\n%s", d.name, err, out)
	}
	m := map[string]api.Device{}
	for _, dev := range l.Devices {
		m[dev.Name] = dev
	}
	return m, nil
}

// waitDevice waits until cond holds for the device named other as d sees
// it, and returns it and the time since since.
func (d *daemon) waitDevice(other string, within time.Duration, since time.Time, what string, cond func(api.Device) bool) (api.Device, time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	var last api.Device
	var lastErr error
	for {
		m, err := d.devices()
		if err == nil {
			last = m[other]
			if cond(last) {
				return last, time.Since(since)
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: %s %s not within %v; last %+v (err %v)", d.name, other, what, within, last, lastErr)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

// metric returns the value of a metric without labels from the daemon's
// /metrics, read inside its namespace by `pcnode metrics`-equivalent
// API access: the agent role "metrics" of this test binary.
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	v, n := d.metricSum(name)
	if n == 0 {
		d.t.Fatalf("%s: no metric %s", d.name, name)
	}
	return v
}

// metricSum returns the sum of the samples of metric name whose labels
// contain every one of labels (such as `direction="received"`; none
// matches only samples without labels), and how many samples were summed.
func (d *daemon) metricSum(name string, labels ...string) (float64, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := d.host.Command(ctx, agentPath(d.t))
	cmd.Env = append(daemonEnv(), roleEnv+"=metrics", "PCNODE_NETNS_HOME="+d.home)
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("%s: metrics: %v", d.name, err)
	}
	var sum float64
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		metric, have, _ := strings.Cut(f[0], "{")
		if metric != name || (len(labels) == 0 && have != "") || !containsAll(have, labels) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(f[1], "%g", &v); err == nil {
			sum += v
			n++
		}
	}
	return sum, n
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// runMetrics is the agent role "metrics": print the daemon's /metrics.
func runMetrics(ctx context.Context) error {
	c, err := api.DialHome(os.Getenv("PCNODE_NETNS_HOME"))
	if err != nil {
		return err
	}
	b, err := c.Metrics(ctx)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}
