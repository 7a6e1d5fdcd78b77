package integration

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
)

// throttle is a loopback TCP proxy in front of a sharer: the friend reaches
// the sharer only through it (the link's hint is rewritten to it), so the
// test controls the rate from sharer to friend and counts the bytes. It
// keeps a transfer in progress long enough to act on it, whatever the
// machine's speed.
type throttle struct {
	t      *testing.T
	ln     net.Listener
	target string
	rate   atomic.Int64 // bytes per second from sharer to friend; 0: unlimited
	down   atomic.Int64 // bytes forwarded from sharer to friend
	last   atomic.Int64 // UnixNano of the last forwarded byte
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newThrottle(t *testing.T, target string, rate int64) *throttle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &throttle{t: t, ln: ln, target: target}
	p.rate.Store(rate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *throttle) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(u, c)
			u.Close()
			c.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.pump(c, u)
			u.Close()
			c.Close()
		}()
	}
}

// pump copies sharer to friend in 16 KiB pieces at the current rate.
func (p *throttle) pump(dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	start := time.Now()
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if r := p.rate.Load(); r > 0 {
				sent += int64(n)
				due := start.Add(time.Duration(float64(sent) / float64(r) * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d) // pacing the stream, not waiting on a condition
				}
			} else {
				start, sent = time.Now(), 0
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.down.Add(int64(n))
			p.last.Store(time.Now().UnixNano())
		}
		if err != nil {
			return
		}
	}
}

// hint is the proxy as a provider hint for peer id.
func (p *throttle) hint(t *testing.T, id string) multiaddr.Multiaddr {
	t.Helper()
	a := p.ln.Addr().(*net.TCPAddr)
	m, err := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/" + strconv.Itoa(a.Port) + "/p2p/" + id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// idleFor waits until nothing has gone from sharer to friend for quiet, or
// the deadline; it reports whether it got there.
func (p *throttle) idleFor(quiet, deadline time.Duration) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if time.Since(time.Unix(0, p.last.Load())) >= quiet {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	return false
}

// waitDown waits until at least n bytes have gone to the friend.
func (p *throttle) waitDown(t *testing.T, n int64, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for p.down.Load() < n {
		if time.Now().After(end) {
			t.Fatalf("only %d bytes through the proxy after %v, want %d", p.down.Load(), deadline, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
}

func (p *throttle) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// viaProxy rewrites a share link so that its only hint is the proxy.
func viaProxy(t *testing.T, link string, p *throttle, sharer string) string {
	t.Helper()
	l, err := share.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	l.Providers = []multiaddr.Multiaddr{p.hint(t, sharer)}
	s, err := share.Format(l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bgGet runs `pcnode get` on f's home in the background.
type bgGet struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func startGet(t *testing.T, f *proc, args ...string) *bgGet {
	t.Helper()
	g := &bgGet{done: make(chan struct{})}
	g.cmd = exec.Command(f.bin, append([]string{"--home", f.home, "get"}, args...)...)
	g.cmd.Env = procEnv()
	g.cmd.Stderr = &g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.done
	})
	return g
}

// startSharePair starts a sharer and a friend (no cloud between them),
// writes a file of size bytes, shares it (with shareArgs) and returns the share and a link
// whose only hint is a proxy limited to rate bytes/s.
func startSharePair(t *testing.T, size, rate int64, shareArgs ...string) (a, f *proc, sh api.ShareInfo, link string, px *throttle, file string) {
	t.Helper()
	a, f = newProc(t, "sharer"), newProc(t, "friend")
	a.start()
	f.start()
	dir := t.TempDir()
	file = writeRandom(t, dir, size, 77)
	a.mustJSON(&sh, append(append([]string{"share"}, shareArgs...), file)...)
	st := a.status()
	target := strings.TrimPrefix(loopbackAddr(t, st), "/ip4/")
	host, port, _ := strings.Cut(target, "/tcp/")
	port, _, _ = strings.Cut(port, "/")
	px = newThrottle(t, net.JoinHostPort(host, port), rate)
	link = viaProxy(t, sh.Link, px, st.ID)
	return a, f, sh, link, px, file
}

// TestShareRevokeDuringTransfer: a friend's pcnode (not in the cloud) is
// fetching a share by link when the sharer revokes it, or when it
// expires: within 2 s the sharer sends nothing more and the friend's get
// fails saying why, and no file appears under the output name.
func TestShareRevokeDuringTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons; skipped with -short")
	}
	const (
		size = 64 << 20
		rate = 8 << 20 // 8 s for the whole file: the stop comes well before
	)
	for _, tc := range []struct {
		name  string
		args  []string
		state string // in share ls, and what the errors say
	}{
		{"revoke", nil, "revoked"},
		{"expire", []string{"--expires", "5s"}, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, f, sh, link, px, _ := startSharePair(t, size, rate, tc.args...)
			out := filepath.Join(t.TempDir(), "got.bin")
			g := startGet(t, f, link, "-o", out)
			var stopped time.Time
			if tc.state == "revoked" {
				px.waitDown(t, 4<<20, time.Minute)
				a.must("share", "revoke", sh.ID)
				stopped = time.Now()
			} else {
				exp, err := time.Parse(time.RFC3339, sh.Expires)
				if err != nil {
					t.Fatalf("expires %q: %v", sh.Expires, err)
				}
				// The record's expiry is within the second after the
				// printed one.
				stopped = exp.Add(time.Second)
			}
			select {
			case <-g.done:
			case <-time.After(time.Until(stopped) + 10*time.Second):
				t.Fatalf("get still running 10 s after the share stopped (%d bytes through)", px.down.Load())
			}
			if el := time.Since(stopped); el > 2*time.Second {
				t.Errorf("get ended %v after the share stopped, want within 2 s", el)
			}
			if g.err == nil {
				t.Fatal("get succeeded after the share stopped")
			}
			if msg := g.stderr.String(); !strings.Contains(msg, tc.state) {
				t.Errorf("get's error does not say the share was %s: %s", tc.state, msg)
			}
			// The sharer sends nothing from 2 s after the stop.
			if !px.idleFor(300*time.Millisecond, time.Until(stopped.Add(2*time.Second+300*time.Millisecond))) {
				t.Errorf("the sharer was still sending 2 s after the share stopped")
			}
			got := px.down.Load()
			if got >= size {
				t.Errorf("%d bytes went through: the whole file", got)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output after a stopped transfer: %v", err)
			}
			t.Logf("stopped after %d MiB of %d; get ended %v after the stop", got>>20, size>>20, time.Since(stopped).Round(time.Millisecond))

			// A new get fails at once, with the same reason.
			start := time.Now()
			_, err := f.run("get", link, "-o", out)
			if err == nil || !strings.Contains(err.Error(), tc.state) {
				t.Errorf("get of a %s share: %v", tc.state, err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("refusal took %v", el)
			}
			var ls struct {
				Shares []api.ShareInfo `json:"shares"`
			}
			a.mustJSON(&ls, "share", "ls")
			if len(ls.Shares) != 1 || ls.Shares[0].State != tc.state || ls.Shares[0].Downloads != 1 {
				t.Errorf("share ls: %+v", ls.Shares)
			}
		})
	}
}

// TestShareGetResumes: the friend's get is killed midway; run again, it
// completes, fetching only what it did not have (the blocks stay in the
// friend's store), and the output appears only complete.
func TestShareGetResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons; skipped with -short")
	}
	const (
		size = 48 << 20
		rate = 12 << 20
	)
	_, f, _, link, px, file := startSharePair(t, size, rate)
	out := filepath.Join(t.TempDir(), "got.bin")
	g := startGet(t, f, link, "-o", out)
	px.waitDown(t, size/2, time.Minute)
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.done
	// The daemon stops fetching when its client goes.
	if !px.idleFor(500*time.Millisecond, 30*time.Second) {
		t.Fatal("the friend's daemon went on fetching after its client was killed")
	}
	first := px.down.Load()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output after an interrupted get: %v", err)
	}
	var rs api.RepoStat
	f.mustJSON(&rs, "repo", "stat")
	// Some of what went through was still in socket buffers at the kill.
	if rs.Bytes < size/8 {
		t.Fatalf("the friend's store kept %d bytes of the %d it received", rs.Bytes, first)
	}

	px.rate.Store(0)
	f.must("get", link, "-o", out)
	second := px.down.Load() - first
	sameFile(t, file, out)
	t.Logf("first run %d MiB (store kept %d MiB), second run %d MiB, file %d MiB", first>>20, rs.Bytes>>20, second>>20, size>>20)
	// What the store kept is not fetched again: the second run moves the
	// rest, plus protocol overhead and the blocks in flight at the kill.
	if want := size - rs.Bytes + 4<<20; second > want {
		t.Errorf("second run moved %d bytes, want at most %d (the file less what was kept, plus slack)", second, want)
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("output directory holds %d entries, want only the output (no temporary left)", len(entries))
	}
}
