package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// These tests run the real pcnode binary as separate processes, each with
// a home of the local profile (loopback only) and its API on a free
// loopback port.

var long = flag.Bool("long", os.Getenv("PCNODE_LONG") == "1", "run the slow tests at full size (also PCNODE_LONG=1)")

// Timeouts for process-level steps. They are generous because the binary
// may be built with -race and the machine has 2 cores shared with other
// tests; a step that needs longer is broken, not slow.
const (
	startTimeout = 60 * time.Second // daemon start until its API answers
	stopTimeout  = 30 * time.Second // SIGINT until the process has exited
	cmdTimeout   = 5 * time.Minute  // one CLI command (adds of large files)
)

var (
	binDir   string // temp dir holding the built binary
	binOnce  sync.Once
	binPath  string
	binErr   error
	binBuild time.Duration
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	binDir, err = os.MkdirTemp("", "pcnode-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// raceBinary builds the daemon under test with -race. Off by default: the
// race detector slows block hashing and transfer several times over, and
// the CLI scripts in cmd/pcnode already run a race-enabled pcnode (the
// test binary itself) through the same daemon paths.
var raceBinary = os.Getenv("PCNODE_IT_RACE") == "1"

// pcnodeBinary builds cmd/pcnode once per test run and returns its path.
// Tests that do not run processes never pay for the build.
func pcnodeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		start := time.Now()
		// go test puts its own GOROOT/bin first on PATH.
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "pcnode")
		args := []string{"build", "-o", binPath}
		if raceBinary {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/pcnode")
		cmd := exec.Command(goTool, args...)
		cmd.Dir = srcRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		binBuild = time.Since(start)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	t.Logf("pcnode binary built in %v (race=%v)", binBuild.Round(time.Millisecond), raceBinary)
	return binPath
}

// srcRoot is the module root: the parent of this package's directory.
func srcRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// proc is one node's home and, while it runs, its daemon process.
type proc struct {
	t    *testing.T
	name string
	bin  string
	home string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the daemon has exited
	log    *os.File      // the daemon's stdout and stderr
}

// newProc creates an initialised home of the local profile with the API on
// a free loopback port. The daemon is not started.
func newProc(t *testing.T, name string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: pcnodeBinary(t), home: filepath.Join(t.TempDir(), name)}
	p.must("init", "--profile", "local")
	p.must("config", "set", "api.listen", "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

// env is the environment of every pcnode process: ours without PCNODE_*
// variables, which would override the test's config.
func procEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PCNODE_") {
			env = append(env, kv)
		}
	}
	return env
}

// run runs one CLI command on p's home and returns its stdout and the
// error, which carries stderr.
func (p *proc) run(args ...string) (string, error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--home", p.home}, args...)...)
	cmd.Env = procEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("pcnode %s (%s): %w: %s", strings.Join(args, " "), p.name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), err
}

// must runs a command that has to succeed.
func (p *proc) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// mustJSON runs a command with --json and decodes its one JSON object.
func (p *proc) mustJSON(v any, args ...string) {
	p.t.Helper()
	out := p.must(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		p.t.Fatalf("pcnode %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// start runs the daemon and returns when its API answers.
func (p *proc) start() {
	p.t.Helper()
	if p.cmd != nil {
		p.t.Fatalf("%s: daemon already running", p.name)
	}
	log, err := os.OpenFile(p.home+".daemon.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "--home", p.home, "daemon", "--log-level", "info")
	cmd.Env = procEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		p.t.Fatal(err)
	}
	p.cmd, p.log, p.exited = cmd, log, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(p.exited)

	deadline := time.Now().Add(startTimeout)
	for {
		_, err := api.DialHome(p.home)
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s: daemon exited during start: %v\n%s", p.name, cmd.ProcessState, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: daemon API not up after %v: %v\n%s", p.name, startTimeout, err, p.logs())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}

// stop interrupts the daemon and waits for it to exit; it kills it if it
// does not. It does nothing when no daemon runs.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.t.Errorf("%s: daemon did not stop within %v of SIGINT; killing it\n%s", p.name, stopTimeout, p.logs())
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.release()
}

// kill9 kills the daemon with SIGKILL, as a crash or power cut would.
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
	p.release()
}

// alive reports whether the daemon process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return p.cmd != nil
	}
}

func (p *proc) release() {
	p.cmd = nil
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
}

// logs returns the tail of the daemon's log, for failure messages.
func (p *proc) logs() string {
	b, _ := os.ReadFile(p.home + ".daemon.log")
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// status is `pcnode status --json`.
func (p *proc) status() api.Status {
	p.t.Helper()
	var st api.Status
	p.mustJSON(&st, "status")
	return st
}

// writeRandom writes size pseudo-random bytes (from seed) to a new file in
// dir and returns its path.
func writeRandom(t *testing.T, dir string, size int64, seed uint64) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("random-%d-%d.bin", size, seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	if _, err := io.CopyN(f, rand.NewChaCha8(key), size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileHash is the SHA-256 of a file's content.
func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// sameFile fails the test unless a and b hold the same bytes.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	if fileHash(t, a) != fileHash(t, b) {
		t.Fatalf("%s and %s differ", a, b)
	}
}

// loopbackAddr returns the first of st's addresses on 127.0.0.1 over TCP.
func loopbackAddr(t *testing.T, st api.Status) string {
	t.Helper()
	for _, a := range st.Addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	t.Fatalf("no /ip4/127.0.0.1/tcp address in %q", st.Addrs)
	return ""
}
