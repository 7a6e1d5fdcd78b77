package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node/api"
)

// newHome makes an initialised home for the local profile with the API
// on a random loopback port and fsync off (tests do not survive power
// loss anyway).
func newHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	if err := Init(home, InitOptions{Profile: ProfileLocal, APIListen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("store.nosync", "true"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(home); err != nil {
		t.Fatal(err)
	}
	return home
}

func noEnv(string) string { return "" }

func startNode(t *testing.T, home string, offline bool) *Node {
	t.Helper()
	n, err := New(Config{Home: home, Offline: offline, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

func writeRandom(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// metric returns the value of an unlabelled series from a scrape.
func metric(t *testing.T, c *api.Client, name string) float64 {
	t.Helper()
	b, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in scrape", name)
	return 0
}

func TestNodeThroughAPI(t *testing.T) {
	home := newHome(t)
	n := startNode(t, home, false)
	ctx := t.Context()

	c, err := api.DialHome(home)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != n.APIURL() || !strings.HasPrefix(n.APIURL(), "http://127.0.0.1:") {
		t.Fatalf("api file %q, APIURL %q", c.BaseURL(), n.APIURL())
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != n.ID().String() || !st.Online || st.Profile != ProfileLocal || len(st.Addrs) == 0 || st.API != n.APIURL() {
		t.Fatalf("status %+v", st)
	}
	for _, a := range st.Addrs {
		if !strings.HasSuffix(a, "/p2p/"+st.ID) {
			t.Errorf("addr %s does not end in /p2p/<id>", a)
		}
	}
	blocks0 := metric(t, c, "pcnode_store_blocks")

	const size = 2<<20 + 12345 // several chunks, so a DAG with links
	path, want := writeRandom(t, t.TempDir(), "f.bin", size)
	var progress int64
	res, err := c.Add(ctx, api.AddRequest{Path: path}, func(done, _ int64) { progress = done })
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != size || res.Name != "f.bin" || res.Blocks < 2 {
		t.Errorf("add result %+v", res)
	}
	if progress != 0 && progress > size {
		t.Errorf("progress %d beyond size", progress)
	}
	root, err := api.ParseCID(res.CID)
	if err != nil {
		t.Fatal(err)
	}
	if got := metric(t, c, "pcnode_store_blocks"); got < blocks0+float64(res.Blocks) {
		t.Errorf("pcnode_store_blocks %v after adding %d blocks to %v", got, res.Blocks, blocks0)
	}
	if got := metric(t, c, "pcnode_store_bytes"); got < size {
		t.Errorf("pcnode_store_bytes %v < %d", got, size)
	}

	rc, err := c.Cat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("cat: %d bytes, %v; want %d identical bytes", len(got), err, len(want))
	}

	// A directory lists its entries.
	dir := t.TempDir()
	writeRandom(t, dir, "a.txt", 10)
	writeRandom(t, dir, "b.txt", 20)
	dres, err := c.Add(ctx, api.AddRequest{Path: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	droot, _ := api.ParseCID(dres.CID)
	es, err := c.Ls(ctx, droot)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name != "a.txt" || es[1].Name != "b.txt" || es[0].Type != "file" || es[1].Size != 20 {
		t.Errorf("ls = %+v", es)
	}
	if _, err := c.Cat(ctx, droot); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("cat of a directory: %v, want ErrInvalid", err)
	}

	pins, err := c.PinLs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !hasPin(pins, res.CID, "recursive") || !hasPin(pins, dres.CID, "recursive") {
		t.Errorf("pins %+v lack the added roots", pins)
	}
	if got := metric(t, c, "pcnode_store_pins"); got != 2 {
		t.Errorf("pcnode_store_pins = %v, want 2", got)
	}

	v, err := c.Verify(ctx, nil)
	if err != nil || v.Checked < res.Blocks || len(v.Corrupt) != 0 {
		t.Errorf("verify %+v, %v", v, err)
	}

	// Pinned data survives GC; unpinned data goes.
	if g, err := c.GC(ctx); err != nil || g.Removed != 0 {
		t.Errorf("gc with everything pinned: %+v, %v", g, err)
	}
	if err := c.PinRm(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := c.PinRm(ctx, root); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second pin rm: %v, want ErrNotFound", err)
	}
	g, err := c.GC(ctx)
	if err != nil || g.Removed < res.Blocks || g.FreedBytes < size {
		t.Errorf("gc after unpin: %+v, %v (want ≥ %d blocks)", g, err, res.Blocks)
	}
	// Online, a missing root is searched for on the network until the
	// context ends; the short context keeps this bounded.
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if rc, err := c.Cat(sctx, root); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Error("cat after GC still returned the content")
		}
	}
	rs, err := c.RepoStat(ctx)
	if err != nil || rs.Pins != 1 || rs.Path != filepath.Join(home, DataDir) {
		t.Errorf("repo stat %+v, %v", rs, err)
	}
	if got := metric(t, c, "pcnode_store_blocks"); got != float64(rs.Blocks) {
		t.Errorf("pcnode_store_blocks %v, repo stat %d", got, rs.Blocks)
	}
	b, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`pcnode_api_requests_total{code="200",route="/api/v1/add"} 2`, "go_goroutines", "pcnode_p2p_received_bytes_total", "pcnode_online 1"} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("scrape lacks %q", s)
		}
	}
}

func hasPin(ps []api.Pin, c, typ string) bool {
	for _, p := range ps {
		if p.CID == c && p.Type == typ {
			return true
		}
	}
	return false
}

func TestNodeLockedHome(t *testing.T) {
	home := newHome(t)
	startNode(t, home, false)
	for _, offline := range []bool{false, true} {
		n, err := New(Config{Home: home, Offline: offline, Getenv: noEnv})
		if err != nil {
			t.Fatal(err)
		}
		err = n.Start(t.Context())
		if !errors.Is(err, ErrHomeLocked) {
			t.Fatalf("second Start (offline %v): %v, want ErrHomeLocked", offline, err)
		}
		want := "home " + home + " is in use by another pcnode (pid " + strconv.Itoa(os.Getpid()) + "): stop it or use its API"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
	// The refused node did not remove the running daemon's api file.
	if _, err := api.DialHome(home); err != nil {
		t.Errorf("daemon unreachable after a refused second start: %v", err)
	}
}

func TestNodeCloseReleases(t *testing.T) {
	home := newHome(t)
	n, err := New(Config{Home: home, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, api.APIFile)); err != nil {
		t.Fatalf("api file: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, f := range []string{api.APIFile, PIDFile} {
		if _, err := os.Stat(filepath.Join(home, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close: %v", f, err)
		}
	}
	if _, err := api.DialHome(home); !errors.Is(err, api.ErrNoDaemon) {
		t.Errorf("DialHome after Close: %v, want ErrNoDaemon", err)
	}
	if _, err := n.Status(t.Context()); err == nil {
		t.Error("Status on a closed node succeeded")
	}
	// The lock is free again.
	startNode(t, home, true)
}

func TestNodeOffline(t *testing.T) {
	home := newHome(t)
	n := startNode(t, home, true)
	ctx := t.Context()
	if n.APIURL() != "" {
		t.Errorf("offline APIURL %q", n.APIURL())
	}
	if _, err := os.Stat(filepath.Join(home, api.APIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("offline node wrote an api file: %v", err)
	}
	st, err := n.Status(ctx)
	if err != nil || st.Online || st.ID == "" || len(st.Addrs) != 0 {
		t.Fatalf("status %+v, %v", st, err)
	}
	path, want := writeRandom(t, t.TempDir(), "x", 3<<20)
	res, err := n.Add(ctx, api.AddRequest{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := api.ParseCID(res.CID)
	out := filepath.Join(t.TempDir(), "out")
	g, err := n.Get(ctx, api.GetRequest{CID: res.CID, Output: out}, nil)
	if err != nil || g.Size != int64(len(want)) {
		t.Fatalf("get %+v, %v", g, err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get wrote %d bytes, %v", len(got), err)
	}
	if _, err := n.Get(ctx, api.GetRequest{CID: res.CID, Output: out}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("get over an existing output: %v, want ErrInvalid", err)
	}
	if _, err := n.Connect(ctx, multiaddr.StringCast("/ip4/127.0.0.1/tcp/1/p2p/"+n.ID().String())); !errors.Is(err, api.ErrOffline) {
		t.Errorf("connect offline: %v, want ErrOffline", err)
	}
	if ps, err := n.PeerList(ctx); err != nil || len(ps) != 0 {
		t.Errorf("peers offline: %v, %v", ps, err)
	}
	if err := n.PinRm(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := n.GC(ctx); err != nil {
		t.Fatal(err)
	}
	// Gone locally, and offline there is nowhere else to look: a quick,
	// clear not-found instead of a hang.
	start := time.Now()
	_, err = n.Get(ctx, api.GetRequest{CID: res.CID, Output: filepath.Join(t.TempDir(), "o2")}, nil)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "pcnode daemon") {
		t.Errorf("get of missing data offline: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("offline get of missing data took %v", time.Since(start))
	}
	tests := []struct {
		name string
		err  error
		kind error
		msg  string
	}{
		{"relative add", func() error { _, err := n.Add(ctx, api.AddRequest{Path: "rel/x"}, nil); return err }(), api.ErrInvalid, "absolute"},
		{"missing add", func() error { _, err := n.Add(ctx, api.AddRequest{Path: "/nonexistent/pcnode"}, nil); return err }(), api.ErrNotFound, "no such file"},
		{"bad cid get", func() error {
			_, err := n.Get(ctx, api.GetRequest{CID: "bogus", Output: "/tmp/x"}, nil)
			return err
		}(), api.ErrInvalid, `invalid CID "bogus"`},
		{"relative output", func() error {
			_, err := n.Get(ctx, api.GetRequest{CID: res.CID, Output: "o"}, nil)
			return err
		}(), api.ErrInvalid, "absolute"},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.kind) || !strings.Contains(tt.err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %v containing %q", tt.name, tt.err, tt.kind, tt.msg)
		}
	}
}

// TestTwoNodes: B connects to A and gets by CID what only A has. B is not
// in A's cloud, so A shares it first: A serves strangers shared blocks only.
func TestTwoNodes(t *testing.T) {
	a := startNode(t, newHome(t), false)
	b := startNode(t, newHome(t), false)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	path, want := writeRandom(t, t.TempDir(), "shared.bin", 3<<20+12345)
	res, err := a.Add(ctx, api.AddRequest{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Share(ctx, api.ShareRequest{CID: res.CID}, nil); err != nil {
		t.Fatal(err)
	}
	ast, _ := a.Status(ctx)
	addr, err := multiaddr.NewMultiaddr(ast.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	bc, err := api.DialHome(b.Home())
	if err != nil {
		t.Fatal(err)
	}
	p, err := bc.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != a.ID().String() {
		t.Errorf("connected to %s, want %s", p.ID, a.ID())
	}
	if ps, _ := bc.PeerList(ctx); len(ps) != 1 || ps[0].ID != a.ID().String() {
		t.Errorf("B's peers %+v", ps)
	}
	out := filepath.Join(t.TempDir(), "got.bin")
	var last int64
	g, err := bc.Get(ctx, api.GetRequest{CID: res.CID, Output: out}, func(done, _ int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, want) || g.Size != int64(len(want)) {
		t.Fatalf("B got %d bytes (result %+v), %v; want %d identical bytes", len(got), g, err, len(want))
	}
	_ = last
	pins, _ := bc.PinLs(ctx)
	if !hasPin(pins, res.CID, "recursive") {
		t.Errorf("get did not pin: %+v", pins)
	}
	if in := metric(t, bc, "pcnode_p2p_received_bytes_total"); in < float64(len(want)) {
		t.Errorf("B received %v bytes, want ≥ %d", in, len(want))
	}
	if peers := metric(t, bc, "pcnode_p2p_peers"); peers != 1 {
		t.Errorf("pcnode_p2p_peers = %v", peers)
	}
}

// TestNodeCloseDuringFetch: a get of data nobody has waits on the network;
// Close must end it with an error and return promptly, not hang.
func TestNodeCloseDuringFetch(t *testing.T) {
	home := newHome(t)
	n, err := New(Config{Home: home, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := api.DialHome(home)
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := api.ParseCID("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), api.GetRequest{CID: nobody.String(), Output: filepath.Join(t.TempDir(), "o")}, nil)
		errc <- err
	}()
	// Wait until bitswap wants the block: the request is then in the fetch.
	type wantlister interface{ GetWantlist() []cid.Cid }
	wl, ok := n.Host().Exchange().(wantlister)
	if !ok {
		t.Fatalf("exchange %T has no wantlist", n.Host().Exchange())
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(wl.GetWantlist(), nobody.Equals) {
		if time.Now().After(deadline) {
			t.Fatal("get never reached the network")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a fetch in flight", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("get succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("get still running 10s after Close")
	}
}
