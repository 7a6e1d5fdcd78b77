package cloud

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// newHost starts a libp2p host listening on loopback TCP only: no relay,
// no NAT port mapping, no mDNS, no bootstrap peers.
func newHost(t *testing.T) (host.Host, crypto.PrivKey) {
	t.Helper()
	key := newKey(t)
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, key
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// device is a host with a running Service.
type device struct {
	h   host.Host
	svc *Service
	log *syncBuffer
	dir string
}

func startService(t *testing.T, h host.Host, st *State, now func() time.Time) *device {
	return startServiceWith(t, h, st, Config{Now: now, Timeout: 5 * time.Second})
}

// startServiceWith starts a service for st on h with cfg (Host, State and
// Logger filled in).
func startServiceWith(t *testing.T, h host.Host, st *State, cfg Config) *device {
	t.Helper()
	d := &device{h: h, log: &syncBuffer{}, dir: st.Dir()}
	cfg.Host, cfg.State = h, st
	cfg.Logger = slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	d.svc = svc
	return d
}

// newAdmin creates a cloud on a new host and starts its service.
func newAdmin(t *testing.T, name string, now func() time.Time) *device {
	t.Helper()
	h, key := newHost(t)
	st, err := Create(filepath.Join(t.TempDir(), name), name, key)
	if err != nil {
		t.Fatal(err)
	}
	return startService(t, h, st, now)
}

// join makes a new host join through inviter with a fresh invite and
// starts its service.
func join(t *testing.T, inviter *device, name string, admin bool) *device {
	t.Helper()
	h, _ := newHost(t)
	_, code, err := inviter.svc.NewInvite(0, admin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Join(testCtx(t), h, filepath.Join(t.TempDir(), name), code, JoinOptions{Name: name, Admin: admin})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return startService(t, h, st, nil)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits for cond, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		<-tick.C
	}
}

func TestJoinEndToEnd(t *testing.T) {
	a := newAdmin(t, "laptop", nil)
	b := join(t, a, "phone", false)
	c := join(t, a, "nas", true)

	for _, d := range []*device{b, c} {
		st := d.svc.State()
		if st.ID() != a.svc.State().ID() || !bytes.Equal(st.Secret(), a.svc.State().Secret()) {
			t.Errorf("%s: cloud or secret differ from the inviter's", d.h.ID())
		}
		if !st.IsMember(d.h.ID()) || !a.svc.IsMember(d.h.ID()) {
			t.Errorf("%s: not a member after join", d.h.ID())
		}
		l, err := Load(d.dir)
		if err != nil {
			t.Fatalf("joined state not persisted: %v", err)
		}
		if l.IsAdmin() != (d == c) {
			t.Errorf("%s: admin=%v after reload", d.h.ID(), l.IsAdmin())
		}
	}
	if a.svc.State().Roster().Version != 3 {
		t.Errorf("inviter at roster v%d, want 3", a.svc.State().Roster().Version)
	}
	// b joined at v2 and learns v3 (naming c) by gossip from a.
	eventually(t, 5*time.Second, "b never learned that c joined", func() bool { return b.svc.IsMember(c.h.ID()) })
	if !strings.Contains(a.log.String(), "device joined") {
		t.Errorf("inviter did not log the joins:\n%s", a.log)
	}
	// The admin c can invite too.
	d := join(t, c, "tablet", false)
	eventually(t, 5*time.Second, "a never learned that d joined", func() bool { return a.svc.IsMember(d.h.ID()) })
}

func TestJoinRefused(t *testing.T) {
	clk := &clock{t: time.Now()}
	a := newAdmin(t, "laptop", clk.Now)
	_, used, err := a.svc.NewInvite(0, false)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := newHost(t)
	if _, err := Join(testCtx(t), first, t.TempDir(), used, JoinOptions{Name: "phone"}); err != nil {
		t.Fatal(err)
	}
	wrongInv, _, _ := a.svc.NewInvite(0, false)
	wrongInv.Token[0] ^= 0xff
	wrong, _ := wrongInv.Code()
	_, plain, _ := a.svc.NewInvite(0, false)
	tampered := []byte(plain)
	tampered[len(tampered)/2] ^= 1
	_, late, _ := a.svc.NewInvite(time.Minute, false)

	tests := []struct {
		name       string
		code       string
		opts       JoinOptions
		before     func() // run before joining
		err        error
		inviterLog string // "" when the inviter is never reached
	}{
		{"used", used, JoinOptions{Name: "tablet"}, nil, ErrInviteUsed, "reason=used-invite"},
		{"wrong token", wrong, JoinOptions{Name: "tablet"}, nil, ErrInviteUnknown, "reason=unknown-invite"},
		{"tampered", string(tampered), JoinOptions{Name: "tablet"}, nil, ErrInvalid, ""},
		{"name taken", plain, JoinOptions{Name: "phone"}, nil, ErrNameTaken, "reason=name-taken"},
		{"admin not allowed (joiner side)", plain, JoinOptions{Name: "tablet", Admin: true}, nil, ErrAdminNotAllowed, ""},
		// The joiner's clock says the code is fresh; the inviter's, an
		// hour later, says it has expired.
		{"expired", late, JoinOptions{Name: "tablet", Now: time.Now}, func() { clk.Add(time.Hour) }, ErrInviteExpired, "reason=expired-invite"},
		{"expired (joiner side)", plain, JoinOptions{Name: "tablet", Now: func() time.Time { return time.Now().Add(time.Hour) }}, nil, ErrInviteExpired, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			h, _ := newHost(t)
			logBefore := len(a.log.String())
			dir := t.TempDir()
			_, err := Join(testCtx(t), h, dir, tt.code, tt.opts)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Join = %v, want %v", err, tt.err)
			}
			t.Logf("joiner sees: %v", err)
			if _, err := Load(dir); !errors.Is(err, ErrNoCloud) {
				t.Errorf("a refused join left a cloud in the joiner's dir: %v", err)
			}
			if a.svc.IsMember(h.ID()) {
				t.Errorf("refused joiner is a member")
			}
			if tt.inviterLog == "" {
				if h.Network().Connectedness(a.h.ID()) == network.Connected {
					t.Errorf("the inviter was dialled for a code refused locally")
				}
				return
			}
			eventually(t, 5*time.Second, "inviter did not log the refusal "+tt.inviterLog, func() bool {
				l := a.log.String()[logBefore:]
				return strings.Contains(l, "join refused") && strings.Contains(l, tt.inviterLog) && strings.Contains(l, h.ID().String())
			})
		})
	}
}

func TestRosterStreamFromNonMemberRefused(t *testing.T) {
	a := newAdmin(t, "laptop", nil)
	stranger, _ := newHost(t)
	ctx := testCtx(t)
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	// The stranger pushes the cloud's own (validly signed) roster: it is
	// refused before anything is read.
	b, _ := a.svc.State().Roster().Encode()
	str, err := stranger.NewStream(ctx, a.h.ID(), RosterProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer str.Close()
	writeMsg(str, rosterMsg{Version: 1, Roster: b})
	str.CloseWrite()
	var reply rosterMsg
	if err := readMsg(bufio.NewReader(str), MaxResponseSize, &reply); err == nil {
		t.Fatalf("non-member got a roster reply: v%d", reply.Version)
	}
	eventually(t, 5*time.Second, "refusal not logged", func() bool {
		return strings.Contains(a.log.String(), "non-member refused")
	})
	// A stranger may still use the join protocol and stays connected.
	if !a.svc.Gate(stranger.ID()) {
		t.Error("Gate refuses a stranger; it must let it reach the join protocol")
	}
}

func TestRevokePropagates(t *testing.T) {
	a := newAdmin(t, "laptop", nil)
	_, oldCode, err := a.svc.NewInvite(0, false)
	if err != nil {
		t.Fatal(err)
	}
	hc, _ := newHost(t)
	stC, err := Join(testCtx(t), hc, filepath.Join(t.TempDir(), "c"), oldCode, JoinOptions{Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	c := startService(t, hc, stC, nil)
	b := join(t, a, "nas", false)
	eventually(t, 5*time.Second, "c never learned of b", func() bool { return c.svc.IsMember(b.h.ID()) })

	// b and c talk to each other; a is away.
	ctx := testCtx(t)
	a.h.Network().ClosePeer(b.h.ID())
	a.h.Network().ClosePeer(c.h.ID())
	if err := c.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a still connected to b or c", func() bool {
		return a.h.Network().Connectedness(b.h.ID()) != network.Connected && a.h.Network().Connectedness(c.h.ID()) != network.Connected
	})

	// a revokes c while away from b; when a meets b, b learns of it and
	// drops c.
	if _, err := a.svc.Revoke("phone"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b did not disconnect the revoked c", func() bool {
		return b.svc.State().IsRevoked(c.h.ID()) && b.h.Network().Connectedness(c.h.ID()) != network.Connected
	})
	t.Logf("revocation reached b and c was disconnected in %v", time.Since(start).Round(time.Millisecond))
	if b.svc.Gate(c.h.ID()) || b.svc.IsMember(c.h.ID()) {
		t.Error("b's gate still admits the revoked c")
	}

	// c reconnects to b: b drops it again.
	if err := c.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err == nil {
		eventually(t, 5*time.Second, "b kept a new connection from the revoked c", func() bool {
			return b.h.Network().Connectedness(c.h.ID()) != network.Connected
		})
	}

	// c cannot push a roster to b (its stream is reset: not a member),
	// even one that is validly signed and older.
	if err := c.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err == nil {
		if str, err := c.h.NewStream(ctx, b.h.ID(), RosterProtocol); err == nil {
			old, _ := c.svc.State().Roster().Encode()
			writeMsg(str, rosterMsg{Version: c.svc.State().Roster().Version, Roster: old})
			str.CloseWrite()
			var reply rosterMsg
			if err := readMsg(bufio.NewReader(str), MaxResponseSize, &reply); err == nil {
				t.Errorf("revoked c got a roster reply from b")
			}
			str.Close()
		}
	}
	if !b.svc.State().IsRevoked(c.h.ID()) {
		t.Error("b un-revoked c")
	}

	// c cannot rejoin: not with its old invite, nor with a fresh one. a
	// drops every connection from c as soon as it is made (as the gater
	// will refuse it outright), so c mostly fails to open the join stream;
	// if the stream opens in time, the inviter refuses the token or the
	// revoked peer.
	_, fresh, err := a.svc.NewInvite(0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, code string
		refusal    error
	}{{"old invite", oldCode, ErrInviteUsed}, {"fresh invite", fresh, ErrRevoked}} {
		_, err := Join(ctx, c.h, t.TempDir(), tt.code, JoinOptions{Name: "phone2"})
		if err == nil {
			t.Fatalf("revoked c rejoined with the %s", tt.name)
		}
		if !errors.Is(err, tt.refusal) && !strings.Contains(err.Error(), droppedHint) {
			t.Errorf("rejoin with the %s = %v, want %v or a dropped connection", tt.name, err, tt.refusal)
		}
		t.Logf("rejoin with the %s: %v", tt.name, err)
	}
	if a.svc.IsMember(c.h.ID()) || a.svc.State().PendingInvites(time.Now()) != 1 {
		t.Error("revoked c is a member again, or its attempt spent the fresh invite")
	}
}

func TestServiceLifecycle(t *testing.T) {
	h, key := newHost(t)
	dir := t.TempDir()
	if _, err := New(Config{Host: h, Dir: dir}); !errors.Is(err, ErrNoCloud) {
		t.Errorf("New on an empty dir = %v, want ErrNoCloud", err)
	}
	if _, err := New(Config{Dir: dir}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New without host = %v, want ErrInvalid", err)
	}
	if _, err := Create(dir, "laptop", key); err != nil {
		t.Fatal(err)
	}
	// Close before Start is fine and idempotent.
	s, err := New(Config{Host: h, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || s.Close() != nil {
		t.Fatal("Close before Start failed")
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
	s, err = New(Config{Host: h, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	has := func(id string) bool { return slices.Contains(h.Mux().Protocols(), protocol.ID(id)) }
	if !has(string(JoinProtocol)) || !has(string(RosterProtocol)) {
		t.Errorf("handlers not registered: %v", h.Mux().Protocols())
	}
	s.Close()
	s.Close()
	if has(string(JoinProtocol)) || has(string(RosterProtocol)) {
		t.Errorf("handlers left after Close: %v", h.Mux().Protocols())
	}
}

// ghostOf starts a host with key (the identity of another, live device)
// whose join protocol never answers: a connection to it stands for one to
// an earlier instance of that device, killed, that the transport has not
// yet noticed is dead. done ends its handlers.
func ghostOf(t *testing.T, key crypto.PrivKey, protos ...protocol.ID) host.Host {
	t.Helper()
	g, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); g.Close() })
	for _, p := range protos {
		g.SetStreamHandler(p, func(s network.Stream) {
			select {
			case <-done:
			case <-time.After(time.Minute):
			}
			s.Reset()
		})
	}
	return g
}

// TestJoinOverStaleConnection: the joining device still holds a connection
// to a dead instance of the inviter (an inviter killed mid-join and
// restarted, before QUIC's idle timeout). The join must not time out on
// it: it closes that connection and redoes the exchange on a fresh one.
func TestJoinOverStaleConnection(t *testing.T) {
	h, key := newHost(t)
	st, err := Create(filepath.Join(t.TempDir(), "laptop"), "laptop", key)
	if err != nil {
		t.Fatal(err)
	}
	a := startService(t, h, st, nil)
	ghost := ghostOf(t, key, JoinProtocol)
	joiner, _ := newHost(t)
	ctx := testCtx(t)
	if err := joiner.Connect(ctx, peer.AddrInfo{ID: ghost.ID(), Addrs: ghost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	joiner.Peerstore().ClearAddrs(ghost.ID()) // only the connection is left of the dead instance
	_, code, err := a.svc.NewInvite(0, false)
	if err != nil {
		t.Fatal(err)
	}
	js, err := Join(ctx, joiner, t.TempDir(), code, JoinOptions{Name: "phone", Timeout: time.Second})
	if err != nil {
		t.Fatalf("join over a stale connection: %v", err)
	}
	if !js.IsMember(joiner.ID()) || !a.svc.IsMember(joiner.ID()) {
		t.Error("joiner not a member on both sides")
	}
}

// TestRevocationReachesMemberOverStaleConnection: the admin signed a
// revocation and was killed before pushing it; it is back, connected, but
// the member b still holds a connection to the killed instance, the one
// libp2p picks for new streams (it has the most). b's periodic roster
// exchange must find that connection dead, close it, learn the
// revocation over the live one, and disconnect the revoked device.
func TestRevocationReachesMemberOverStaleConnection(t *testing.T) {
	ha, keyA := newHost(t)
	sa, err := Create(filepath.Join(t.TempDir(), "laptop"), "laptop", keyA)
	if err != nil {
		t.Fatal(err)
	}
	a := startServiceWith(t, ha, sa, Config{SyncInterval: -1}) // a never starts an exchange by itself
	ctx := testCtx(t)
	joinWith := func(name string, cfg Config) *device {
		h, _ := newHost(t)
		_, code, err := a.svc.NewInvite(0, false)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Join(ctx, h, filepath.Join(t.TempDir(), name), code, JoinOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return startServiceWith(t, h, st, cfg)
	}
	b := joinWith("phone", Config{SyncInterval: 200 * time.Millisecond, Timeout: time.Second})
	c := joinWith("tablet", Config{SyncInterval: -1})
	eventually(t, 5*time.Second, "b never learned c joined", func() bool { return b.svc.IsMember(c.h.ID()) })
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: c.h.ID(), Addrs: c.h.Addrs()}); err != nil {
		t.Fatal(err)
	}

	const hang = protocol.ID("/test/hang")
	ghost := ghostOf(t, keyA, RosterProtocol, hang)
	// The ghost dials b: b's swarm would reuse its connection to a.
	if err := ghost.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var stale network.Conn
	for _, cn := range b.h.Network().ConnsToPeer(ghost.ID()) {
		if cn.Stat().Direction == network.DirInbound {
			stale = cn
		}
	}
	if stale == nil || len(b.h.Network().ConnsToPeer(ghost.ID())) != 2 {
		t.Fatal("no second connection to the admin's peer ID")
	}
	for range 3 { // more streams than the live connection: libp2p's pick
		if _, err := stale.NewStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sa.Revoke("tablet", time.Now()); err != nil { // signed, never pushed
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "b never learned the revocation", func() bool { return b.svc.State().IsRevoked(c.h.ID()) })
	eventually(t, 5*time.Second, "b still connected to the revoked device", func() bool {
		return b.h.Network().Connectedness(c.h.ID()) != network.Connected
	})
	if !stale.IsClosed() {
		t.Error("b kept the dead connection open")
	}
	if !strings.Contains(b.log.String(), "did not answer") {
		t.Errorf("b did not log closing the dead connection:\n%s", b.log)
	}
}
