package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/miekg/dns"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
)

// testClock is a clock a test moves by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// startShareNode starts an in-process node of the local profile with its
// own home (and its own cloud).
func startShareNode(t *testing.T, role string, clk *testClock, stall time.Duration) *node.Node {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	if err := node.Init(home, node.InitOptions{Profile: node.ProfileLocal, APIListen: "127.0.0.1:0", Role: role, Name: "n" + role}); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Home: home, Getenv: func(string) string { return "" }, Now: clk.Now, ShareStallTimeout: stall})
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

// shareSize is the size of the shared file: 16 MiB, 100 MiB with
// PCNODE_LONG=1 (the figure).
func shareSize() int64 {
	if os.Getenv("PCNODE_LONG") == "1" {
		return 100 << 20
	}
	return 16 << 20
}

// writeTree writes a small folder and returns its path.
func writeTree(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "album")
	files := map[string][]byte{
		"a.txt":            []byte("alpha\n"),
		"sub/b.bin":        bytes.Repeat([]byte{7}, 3<<20+5),
		"sub/deep/c.txt":   []byte("gamma"),
		"empty":            nil,
		"space name/ü.txt": []byte("unicode"),
	}
	for p, c := range files {
		fp := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = fmt.Sprintf("%d:%x", len(b), fileSum(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileSum(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// TestShareWithFriend: a friend's node, outside the sharer's cloud, gets a
// shared file and a shared folder by link, byte for byte; private data,
// revoked and expired shares are refused; an encrypted share round-trips
// and serves only ciphertext; the gateway serves shares and nothing else.
func TestShareWithFriend(t *testing.T) {
	if testing.Short() {
		t.Skip("moves tens of MiB between two nodes; skipped with -short")
	}
	sharerClock, friendClock := newTestClock(), newTestClock()
	a := startShareNode(t, node.RoleServer, sharerClock, 0)
	// The friend's stall timeout is the default (15 s): a share that
	// stops is reported at once by the sharer, and a loaded machine under
	// -race can pause a transfer for seconds.
	f := startShareNode(t, node.RoleDevice, friendClock, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	out := t.TempDir()

	size := shareSize()
	file := writeRandom(t, dir, size, 42)
	private := writeRandom(t, dir, 1<<20, 43)
	priv, err := a.Add(ctx, api.AddRequest{Path: private}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A file.
	fs1, err := a.Share(ctx, api.ShareRequest{Path: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fs1.Link, "pcnode://share/"+fs1.CID) || fs1.IPFS != "ipfs://"+fs1.CID || fs1.State != "active" || fs1.Size != size {
		t.Errorf("share: %+v", fs1)
	}
	l, err := share.Parse(fs1.Link)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Providers) == 0 {
		t.Fatalf("link %s has no provider hints", fs1.Link)
	}
	start := time.Now()
	got, err := f.Get(ctx, api.GetRequest{Link: fs1.Link, Output: filepath.Join(out, "file")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("friend got a %d MiB share by link in %v: %.0f MiB/s", size>>20, el.Round(time.Millisecond), float64(size>>20)/el.Seconds())
	if got.Size != size {
		t.Errorf("get size %d", got.Size)
	}
	sameFile(t, file, filepath.Join(out, "file"))

	// A folder.
	tree := writeTree(t, dir)
	ds, err := a.Share(ctx, api.ShareRequest{Path: tree}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, api.GetRequest{Link: ds.Link, Output: filepath.Join(out, "album")}, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(treeOf(t, tree), treeOf(t, filepath.Join(out, "album"))); diff != "" {
		t.Errorf("folder differs (-shared +got):\n%s", diff)
	}

	// Downloads are counted once per peer.
	ls, err := a.Shares(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ls {
		if s.Downloads != 1 {
			t.Errorf("share %s (%s): %d downloads, want 1", s.ID, s.Name, s.Downloads)
		}
	}

	// Private data: refused, nothing arrives. The friend is connected to
	// the sharer, so bitswap asks it directly.
	pc, _ := cid.Decode(priv.CID)
	t.Run("private", func(t *testing.T) {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		_, err := f.Get(pctx, api.GetRequest{CID: priv.CID, Output: filepath.Join(out, "private")}, nil)
		if err == nil {
			t.Fatal("the friend got private data")
		}
		if _, err := os.Stat(filepath.Join(out, "private")); err == nil {
			t.Error("a failed get wrote its output")
		}
		st, err := f.RepoStat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st
		if has := hasBlock(t, f, pc); has {
			t.Error("the private root block reached the friend")
		}
	})

	// Revoked: a new share, revoked before the friend asks, fails within
	// the friend's stall timeout and says why it may have failed.
	t.Run("revoked", func(t *testing.T) {
		rfile := writeRandom(t, dir, 2<<20, 44)
		rs, err := a.Share(ctx, api.ShareRequest{Path: rfile}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.ShareRevoke(ctx, rs.ID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = f.Get(ctx, api.GetRequest{Link: rs.Link, Output: filepath.Join(out, "revoked")}, nil)
		if err == nil || !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("get of a revoked share: %v", err)
		}
		// The sharer says so over the status protocol: no need to wait
		// for the stall timeout (3 s here).
		if el := time.Since(start); el > 2500*time.Millisecond {
			t.Errorf("refusal took %v", el)
		}
		if _, err := a.ShareRevoke(ctx, "nosuchshar"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
	})

	// Expired, on each side's clock.
	var expired api.ShareInfo
	t.Run("expired", func(t *testing.T) {
		efile := writeRandom(t, dir, 1<<20, 45)
		es, err := a.Share(ctx, api.ShareRequest{Path: efile, Expires: "1h"}, nil)
		expired = es
		if err != nil {
			t.Fatal(err)
		}
		if es.Expires == "" {
			t.Fatalf("no expiry in %+v", es)
		}
		sharerClock.Add(2 * time.Hour)
		// The friend's clock has not moved: its pcnode asks, and the
		// sharer says the share expired (bitswap alone would answer as
		// if it had nothing), well before the stall timeout.
		start := time.Now()
		_, err = f.Get(ctx, api.GetRequest{Link: es.Link, Output: filepath.Join(out, "expired1")}, nil)
		if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("get of a share expired at the sharer: %v", err)
		}
		if el := time.Since(start); el > 2500*time.Millisecond {
			t.Errorf("refusal took %v, more than the stall timeout", el)
		}
		// The friend's clock has moved too: refused before asking.
		friendClock.Add(2 * time.Hour)
		_, err = f.Get(ctx, api.GetRequest{Link: es.Link, Output: filepath.Join(out, "expired2")}, nil)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("get of an expired link: %v", err)
		}
		ls, _ := a.Shares(ctx)
		for _, s := range ls {
			if s.ID == es.ID && s.State != "expired" {
				t.Errorf("state %s", s.State)
			}
		}
	})

	// Encrypted.
	t.Run("encrypted", func(t *testing.T) {
		plain := writeRandom(t, dir, 3<<20, 46)
		es, err := a.Share(ctx, api.ShareRequest{Path: plain, Encrypt: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !es.Encrypted || es.IPFS != "" || !strings.Contains(es.Link, "#k=AGE-SECRET-KEY-1") {
			t.Fatalf("encrypted share: %+v", es)
		}
		if _, err := f.Get(ctx, api.GetRequest{Link: es.Link, Output: filepath.Join(out, "decrypted")}, nil); err != nil {
			t.Fatal(err)
		}
		sameFile(t, plain, filepath.Join(out, "decrypted"))
		// By CID alone: ciphertext.
		if _, err := f.Get(ctx, api.GetRequest{CID: es.CID, Output: filepath.Join(out, "cipher")}, nil); err != nil {
			t.Fatal(err)
		}
		pb, _ := os.ReadFile(plain)
		cb, _ := os.ReadFile(filepath.Join(out, "cipher"))
		if bytes.Equal(pb, cb) || bytes.Contains(cb, pb[:4096]) || len(cb) <= len(pb) {
			t.Error("the CID's content is not ciphertext")
		}
		// A link with another key is refused before anything is written.
		other, _ := share.NewKey()
		bad := es.Link[:strings.Index(es.Link, "#k=")] + "#k=" + other.String()
		_, err = f.Get(ctx, api.GetRequest{Link: bad, Output: filepath.Join(out, "badkey")}, nil)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "key") {
			t.Errorf("wrong key: %v", err)
		}
		if _, err := os.Stat(filepath.Join(out, "badkey")); err == nil {
			t.Error("a wrong key wrote output")
		}
		// A link whose key was lost on the way (the fragment cut off) is
		// refused as such, not read as a plain share of ciphertext.
		nokey := es.Link[:strings.Index(es.Link, "#k=")]
		_, err = f.Get(ctx, api.GetRequest{Link: nokey, Output: filepath.Join(out, "nokey")}, nil)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "carries no key") {
			t.Errorf("missing key: %v", err)
		}
		if _, err := os.Stat(filepath.Join(out, "nokey")); err == nil {
			t.Error("a link without its key wrote output")
		}
		// An encrypted folder.
		efs, err := a.Share(ctx, api.ShareRequest{Path: tree, Encrypt: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Get(ctx, api.GetRequest{Link: efs.Link, Output: filepath.Join(out, "ealbum")}, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(treeOf(t, tree), treeOf(t, filepath.Join(out, "ealbum"))); diff != "" {
			t.Errorf("encrypted folder differs (-shared +got):\n%s", diff)
		}
	})

	// A link whose size was altered is refused.
	t.Run("tampered size", func(t *testing.T) {
		bad := strings.Replace(ds.Link, fmt.Sprintf("&s=%d", ds.Size), fmt.Sprintf("&s=%d", ds.Size+1), 1)
		_, err := f.Get(ctx, api.GetRequest{Link: bad, Output: filepath.Join(out, "tampered")}, nil)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "altered") {
			t.Errorf("tampered link: %v", err)
		}
	})

	t.Run("gateway", func(t *testing.T) {
		gw := a.GatewayURL()
		if gw == "" {
			t.Fatal("role server runs no gateway")
		}
		get := func(path string) (int, []byte, http.Header) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, b, resp.Header
		}
		code, body, _ := get("/ipfs/" + fs1.CID)
		want, _ := os.ReadFile(file)
		if code != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("gateway file: %d, %d bytes", code, len(body))
		}
		code, body, _ = get("/ipfs/" + ds.CID + "/sub/deep/c.txt")
		if code != http.StatusOK || string(body) != "gamma" {
			t.Errorf("gateway path in folder: %d %q", code, body)
		}
		code, body, _ = get("/ipfs/" + ds.CID + "/")
		if code != http.StatusOK || !bytes.Contains(body, []byte("a.txt")) {
			t.Errorf("gateway listing: %d", code)
		}
		code, body, _ = get("/ipfs/" + ds.CID + "?format=car")
		if code != http.StatusOK {
			t.Fatalf("gateway CAR: %d %s", code, body)
		}
		verifyCAR(t, body, ds.CID)

		pCode, pBody, _ := get("/ipfs/" + priv.CID)
		missing := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
		mCode, mBody, _ := get("/ipfs/" + missing)
		if pCode != http.StatusNotFound || mCode != http.StatusNotFound || !bytes.Equal(pBody, mBody) {
			t.Errorf("private %d %q vs missing %d %q: want the same 404", pCode, pBody, mCode, mBody)
		}
		code, _, _ = get("/ipfs/" + pc.String() + "?format=raw")
		if code != http.StatusNotFound {
			t.Errorf("private raw block: %d", code)
		}
		// An expired share's root says so; a revoked one is a 404 like
		// any other CID.
		if expired.CID != "" {
			code, body, _ = get("/ipfs/" + expired.CID)
			if code != http.StatusGone || !bytes.Contains(body, []byte("expired at")) {
				t.Errorf("expired share: %d %q, want 410 saying it expired", code, body)
			}
		}

	})
}

// hasBlock reports whether n's store holds c, by an offline-style check:
// a cat with a short deadline either finds it locally or not at all.
func hasBlock(t *testing.T, n *node.Node, c cid.Cid) bool {
	t.Helper()
	pins, err := n.PinLs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pins {
		if p.CID == c.String() {
			return true
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	r, err := n.Cat(ctx, c)
	if err != nil {
		return false
	}
	r.Close()
	return true
}

// verifyCAR checks that b is a CAR whose first root is root and whose
// every block hashes to its CID.
func verifyCAR(t *testing.T, b []byte, root string) {
	t.Helper()
	br, err := carv2.NewBlockReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Roots) == 0 || br.Roots[0].String() != root {
		t.Errorf("CAR roots %v, want %s", br.Roots, root)
	}
	n := 0
	for {
		blk, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := blk.Cid().Prefix().Sum(blk.RawData())
		if err != nil || !c.Equals(blk.Cid()) {
			t.Fatalf("CAR block %s does not verify", blk.Cid())
		}
		n++
	}
	if n < 2 {
		t.Errorf("CAR has %d blocks", n)
	}
}

// TestShareName: --name publishes _dnslink.<name>.<zone> in the zone the
// node serves, and revoking the share withdraws it; without dns.zone the
// error says what to set.
func TestShareName(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	clk := newTestClock()
	plain := startShareNode(t, node.RoleDevice, clk, 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	file := writeRandom(t, t.TempDir(), 1000, 5)
	_, err := plain.Share(ctx, api.ShareRequest{Path: file, Name: "photos"}, nil)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "dns.zone") {
		t.Errorf("--name without a zone: %v", err)
	}

	home := filepath.Join(t.TempDir(), "home")
	if err := node.Init(home, node.InitOptions{Profile: node.ProfileLocal, APIListen: "127.0.0.1:0", Name: "dnsbox"}); err != nil {
		t.Fatal(err)
	}
	s, err := node.LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"dns.zone": "example.test.", "dns.listen": "127.0.0.1:0"} {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(home); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Home: home, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	st, err := n.Status(ctx)
	if err != nil || st.DNS == "" {
		t.Fatalf("status %+v, %v", st, err)
	}
	sh, err := n.Share(ctx, api.ShareRequest{Path: file, Name: "photos"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sh.DNSName != "photos.example.test" {
		t.Errorf("dns name %q", sh.DNSName)
	}
	lookup := func() []string {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("_dnslink.photos.example.test.", dns.TypeTXT)
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, m, st.DNS)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		return out
	}
	if got := lookup(); len(got) != 1 || got[0] != "dnslink=/ipfs/"+sh.CID {
		t.Errorf("_dnslink.photos: %q, want dnslink=/ipfs/%s", got, sh.CID)
	}
	if _, err := n.Share(ctx, api.ShareRequest{Path: file, Name: "photos"}, nil); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a second share under a taken name: %v", err)
	}
	if _, err := n.ShareRevoke(ctx, sh.ID); err != nil {
		t.Fatal(err)
	}
	if got := lookup(); len(got) != 0 {
		t.Errorf("_dnslink.photos after revoke: %q", got)
	}
}

// TestShareGatewayRevokeCuts: a browser downloading a shared file through
// the gateway when the share is revoked gets nothing more within 2 s: the
// response breaks off (the gateway checks the policy for every block it
// reads), well short of the file.
func TestShareGatewayRevokeCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("moves tens of MiB; skipped with -short")
	}
	const size = 48 << 20
	a := startShareNode(t, node.RoleServer, newTestClock(), 0)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sh, err := a.Share(ctx, api.ShareRequest{Path: writeRandom(t, t.TempDir(), size, 61)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.GatewayURL()+"/ipfs/"+sh.CID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway: %s", resp.Status)
	}
	// The client reads slowly: 1 MiB, then the sharer revokes.
	got, err := io.CopyN(io.Discard, resp.Body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ShareRevoke(ctx, sh.ID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := io.Copy(io.Discard, resp.Body)
		done <- result{n, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		resp.Body.Close()
		t.Fatal("the response was still streaming 10 s after the revoke")
	}
	el := time.Since(revoked)
	got += r.n
	t.Logf("after the revoke: %d MiB more, response ended in %v (%v)", r.n>>20, el.Round(time.Millisecond), r.err)
	if r.err == nil || got >= size {
		t.Errorf("the whole file came through after the revoke: %d bytes, err %v", got, r.err)
	}
	if el > 2*time.Second {
		t.Errorf("the response ended %v after the revoke, want within 2 s", el)
	}
	// And a new request is refused like any unknown CID.
	code := func() int {
		resp, err := http.Get(a.GatewayURL() + "/ipfs/" + sh.CID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}()
	if code != http.StatusNotFound {
		t.Errorf("revoked share through the gateway: %d, want 404", code)
	}
}
