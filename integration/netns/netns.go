package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tools the harness drives; scripts/install-netns-tools.sh installs them.
var tools = []string{"ip", "nft", "ping"}

// namePrefix starts every namespace the harness makes: "pcn<pid>x<n>-".
const namePrefix = "pcn"

// nameRE picks the owning pid out of a namespace name.
var nameRE = regexp.MustCompile(`^` + namePrefix + `(\d+)x\d+-`)

// strict reports whether a missing prerequisite must fail the test rather
// than skip it: in CI (CI=1 or CI=true) and with PCNODE_REQUIRE_TOOLS=1.
func strict() bool {
	truthy := func(v string) bool {
		b, err := strconv.ParseBool(v)
		return err == nil && b
	}
	return truthy(os.Getenv("CI")) || truthy(os.Getenv("PCNODE_REQUIRE_TOOLS"))
}

var (
	probeOnce sync.Once
	probeErr  error
)

// Available reports why network-namespace tests cannot run here, or nil
// if they can: the process must be root, the tools must be on PATH and
// `ip netns add` must work. The probe runs once per process.
func Available() error {
	probeOnce.Do(func() { probeErr = probe() })
	return probeErr
}

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("network-namespace tests need root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("network-namespace tests need %s (scripts/install-netns-tools.sh): %w", tool, err)
		}
	}
	name := fmt.Sprintf("%s%dx0-probe", namePrefix, os.Getpid())
	if err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("ip netns unavailable: %w", err)
	}
	if err := run(context.Background(), "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("ip netns del: %w", err)
	}
	return nil
}

// Require skips t when network-namespace tests cannot run here, naming the
// reason, except in CI or with PCNODE_REQUIRE_TOOLS=1, where it fails t
// instead: there a skipped scenario would hide a broken setup.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if strict() {
		t.Fatalf("netns: %v (CI or PCNODE_REQUIRE_TOOLS=1 demands it)", err)
	}
	t.Skipf("netns: %v", err)
}

// testbeds numbers the Testbeds of this process, for unique prefixes.
var testbeds atomic.Int64

// Testbed is one test's network: its namespaces, links and processes.
// Its methods fail the test (t.Fatal) on any setup error, so they must be
// called from the test's goroutine; Host.Exec and Host.Start may be called
// from any goroutine.
type Testbed struct {
	t      testing.TB
	prefix string

	mu     sync.Mutex
	nss    []string // namespaces made, in order
	procs  []*Proc
	lines  map[*Link]*delayLine // user-space delay lines running
	closed bool
}

// New makes an empty Testbed for t, after Require(t) and a sweep of
// namespaces left behind by test processes that no longer exist. Its
// cleanup (t.Cleanup) stops every process started with Host.Start and
// deletes every namespace, whatever the test's outcome.
func New(t testing.TB) *Testbed {
	t.Helper()
	Require(t)
	Sweep(t)
	tb := &Testbed{
		t:      t,
		prefix: fmt.Sprintf("%s%dx%d-", namePrefix, os.Getpid(), testbeds.Add(1)),
	}
	t.Cleanup(tb.close)
	return tb
}

// Sweep deletes the namespaces that earlier test processes left behind:
// those whose name carries the pid of a process that no longer runs.
// Processes still inside such a namespace are killed first (they can only
// be the harness's own, started there by the dead test).
func Sweep(t testing.TB) {
	t.Helper()
	out, err := output(context.Background(), "ip", "netns", "list")
	if err != nil {
		t.Fatalf("netns: sweep: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		m := nameRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || processAlive(pid) {
			continue
		}
		killInside(name)
		if err := run(context.Background(), "ip", "netns", "del", name); err != nil {
			t.Logf("netns: sweep %s: %v", name, err)
			continue
		}
		t.Logf("netns: swept %s, left by pid %d", name, pid)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killInside kills the processes that run in namespace name.
func killInside(name string) {
	out, err := output(context.Background(), "ip", "netns", "pids", name)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// close stops the processes, then deletes the namespaces in reverse order.
func (tb *Testbed) close() {
	tb.mu.Lock()
	tb.closed = true
	procs := tb.procs
	nss := tb.nss
	lines := tb.lines
	tb.lines = nil
	tb.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	// The lines' sockets would keep their switch namespaces alive after
	// `ip netns del`; their interfaces go with the namespaces.
	for _, dl := range lines {
		dl.pump.Close()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		killInside(nss[i])
		if err := run(context.Background(), "ip", "netns", "del", nss[i]); err != nil {
			tb.t.Errorf("netns: cleanup: %v", err)
		}
	}
}

// Namespaces returns the names of the namespaces the testbed made so far.
func (tb *Testbed) Namespaces() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.nss...)
}

// newNS makes a namespace with loopback up. short is the caller's name
// for it; the namespace's full name carries the testbed's prefix.
func (tb *Testbed) newNS(short string) string {
	tb.t.Helper()
	name := tb.prefix + short
	tb.mu.Lock()
	for _, n := range tb.nss {
		if n == name {
			tb.mu.Unlock()
			tb.t.Fatalf("netns: name %q used twice", short)
		}
	}
	tb.mu.Unlock()
	tb.must("ip", "netns", "add", name)
	tb.mu.Lock()
	tb.nss = append(tb.nss, name)
	tb.mu.Unlock()
	tb.must("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// must runs a command in the root namespace and fails the test if it fails.
func (tb *Testbed) must(name string, args ...string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, name, args...); err != nil {
		tb.t.Fatalf("netns: %v", err)
	}
}

// mustIn runs a command inside namespace ns.
func (tb *Testbed) mustIn(ns, name string, args ...string) {
	tb.t.Helper()
	tb.must("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// mustNft loads an nft script into namespace ns.
func (tb *Testbed) mustNft(ns, script string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.t.Fatalf("netns: nft in %s: %v: %s\n%s", ns, err, bytes.TrimSpace(out), script)
	}
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// documentation are the only ranges a LAN may use (RFC 5737).
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// checkPrefix accepts an IPv4 prefix inside one documentation range.
func checkPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	p = p.Masked()
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%s is not IPv4", p)
	}
	for _, d := range documentation {
		if d.Bits() <= p.Bits() && d.Contains(p.Addr()) {
			return p, nil
		}
	}
	return p, fmt.Errorf("%s is outside the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24", p)
}
