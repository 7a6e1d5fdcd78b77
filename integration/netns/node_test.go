package netns_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pcnode/pcnode/integration/netns"
)

// nodeAgent is a node agent (role "node") running in a host, and the
// latest state it printed.
type nodeAgent struct {
	host    *netns.Host
	ID      peer.ID
	started time.Time

	mu      sync.Mutex
	state   nodeState
	changed chan struct{} // closed and replaced at each new state
	stderr  bytes.Buffer
	stdin   io.WriteCloser
	proc    *netns.Proc
}

// newKey makes a device key and its peer ID.
func newKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

// listenOn is the agent's listen setting for h's address: TCP and QUIC on
// port 4001, as the default profile would, but on that address only.
func listenOn(h *netns.Host) string {
	return fmt.Sprintf("PCNODE_NETNS_LISTEN=/ip4/%s/tcp/4001,/ip4/%s/udp/4001/quic-v1", h.Addr, h.Addr)
}

func members(ids ...peer.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return "PCNODE_NETNS_MEMBERS=" + strings.Join(s, ",")
}

// startNode runs a node agent with key in h; env adds PCNODE_NETNS_*
// settings (see runNode). The agent stops at the test's end.
func startNode(t *testing.T, ctx context.Context, h *netns.Host, key crypto.PrivKey, env ...string) *nodeAgent {
	t.Helper()
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	n := &nodeAgent{host: h, ID: id, changed: make(chan struct{})}
	cmd := h.Command(ctx, agentPath(t))
	cmd.Env = append(os.Environ(), "PCNODE_NETNS_ROLE=node", "PCNODE_NETNS_KEY="+hex.EncodeToString(raw))
	cmd.Env = append(cmd.Env, env...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	cmd.Stderr = &lockedWriter{mu: &n.mu, w: &n.stderr}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	n.started = time.Now()
	if n.proc, err = h.Start(cmd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var st nodeState
			if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
				continue
			}
			n.mu.Lock()
			n.state = st
			close(n.changed)
			n.changed = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			// A goroutine dump of the agent on its stderr, for the log.
			_ = n.proc.Cmd.Process.Signal(syscall.SIGUSR1)
			select {
			case <-n.proc.Done():
			case <-time.After(2 * time.Second):
			}
		}
		n.stdin.Close()
		n.proc.Stop()
		<-done
		if t.Failed() {
			n.mu.Lock()
			t.Logf("node %s (%s) last state %+v\nstderr:\n%s", h.Name, n.ID, n.state, n.stderr.String())
			n.mu.Unlock()
		}
	})
	return n
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitFor waits until cond holds for the node's state, and returns that
// state and the time since the agent was started. It fails the test at
// the deadline or if the agent exits.
func (n *nodeAgent) waitFor(t *testing.T, d time.Duration, what string, cond func(nodeState) bool) (nodeState, time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		st, ch := n.state, n.changed
		n.mu.Unlock()
		if st.ID != "" && cond(st) {
			return st, time.Since(n.started)
		}
		select {
		case <-ch:
		case <-n.proc.Done():
			t.Fatalf("node %s exited (%v) before %s", n.host.Name, n.proc.Wait(), what)
		case <-deadline.C:
			t.Fatalf("node %s: no %s within %v; last state %+v", n.host.Name, what, d, st)
		}
	}
}

// sibling returns the state's record of id.
func (st nodeState) sibling(id peer.ID) (siblingJSON, bool) {
	for _, s := range st.Siblings {
		if s.ID == id {
			return s, true
		}
	}
	return siblingJSON{}, false
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
