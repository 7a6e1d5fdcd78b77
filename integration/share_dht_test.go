package integration

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
)

// startDHTNode starts an in-process node of the local profile whose DHT
// (a server, on loopback only) bootstraps from boot.
func startDHTNode(t *testing.T, name string, boot []string, stall time.Duration, log *slog.Logger) *node.Node {
	t.Helper()
	home := filepath.Join(t.TempDir(), name)
	if err := node.Init(home, node.InitOptions{Profile: node.ProfileLocal, APIListen: "127.0.0.1:0", Name: name}); err != nil {
		t.Fatal(err)
	}
	if len(boot) > 0 {
		s, err := node.LoadSettings(home)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Set("p2p.bootstrap", strings.Join(boot, ",")); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(home); err != nil {
			t.Fatal(err)
		}
	}
	n, err := node.New(node.Config{Home: home, Getenv: func(string) string { return "" }, ShareStallTimeout: stall, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestShareByDHT: a link whose hints do not answer still works, for the
// friend finds the sharer in the DHT (a private one on loopback: a third
// node both bootstrap from); an --unlisted share, and private data, are
// not announced there.
func TestShareByDHT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b := startDHTNode(t, "boot", nil, 0, nil)
	bs, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boot := []string{loopbackAddr(t, bs)}
	a := startDHTNode(t, "sharer", boot, 0, nil)
	var flog logBuffer
	f := startDHTNode(t, "friend", boot, 20*time.Second, slog.New(slog.NewTextHandler(&flog, nil)))

	dir := t.TempDir()
	file := writeRandom(t, dir, 3<<20, 91)
	listed, err := a.Share(ctx, api.ShareRequest{Path: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := a.Share(ctx, api.ShareRequest{Path: writeRandom(t, dir, 1<<20, 92), Unlisted: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	private, err := a.Add(ctx, api.AddRequest{Path: writeRandom(t, dir, 1<<20, 93)}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A link without hints (as if none were reachable): the friend can
	// only find the sharer in the DHT.
	l, err := share.Parse(listed.Link)
	if err != nil {
		t.Fatal(err)
	}
	ast, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Providers = nil
	link, err := share.Format(l)
	if err != nil {
		t.Fatal(err)
	}
	// DHT traffic may have connected the two: cut that, so that the
	// friend has to find the sharer.
	if err := f.Host().Disconnect(mustPeerID(t, ast.ID)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := filepath.Join(t.TempDir(), "got.bin")
	if _, err := f.Get(ctx, api.GetRequest{Link: link, Output: out}, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, file, out)
	if !strings.Contains(flog.String(), "connected to a provider found in the DHT") {
		t.Errorf("the friend did not find the sharer in the DHT; its log:\n%s", flog.String())
	}
	t.Logf("got the share through the DHT in %v", time.Since(start).Round(time.Millisecond))

	// The listed root is in the DHT under the sharer; the unlisted one is
	// not, though the same sharer announced the other in the same DHT.
	provs := findProviders(t, ctx, f, mustCID(t, listed.CID), 20*time.Second)
	if len(provs) == 0 || provs[0].ID.String() != ast.ID {
		t.Errorf("providers of the listed share: %v, want the sharer", provs)
	}
	if p := findProviders(t, ctx, b, mustCID(t, hidden.CID), 2*time.Second); len(p) != 0 {
		t.Errorf("the unlisted share is announced: %v", p)
	}
	if p := findProviders(t, ctx, b, mustCID(t, private.CID), 2*time.Second); len(p) != 0 {
		t.Errorf("private data is announced: %v", p)
	}
}

// logBuffer collects a node's logs for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// findProviders asks n's DHT for c until it finds a provider or d ends.
func findProviders(t *testing.T, ctx context.Context, n *node.Node, c cid.Cid, d time.Duration) []peer.AddrInfo {
	t.Helper()
	end := time.Now().Add(d)
	for {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		ps, err := n.Host().FindProviders(lctx, c, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) > 0 || time.Now().After(end) {
			return ps
		}
	}
}

func mustCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustPeerID(t *testing.T, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
