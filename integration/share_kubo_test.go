package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

// kuboVersion is the Kubo that scripts/install-kubo.sh builds.
const kuboVersion = "0.43.1"

// kuboBinary finds the Kubo that scripts/install-kubo.sh built ($PCNODE_KUBO
// overrides). Without it the test skips, or fails under CI, where the
// script must have run.
func kuboBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PCNODE_KUBO"); p != "" {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "ipfs-"+kuboVersion)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Kubo %s is not installed: run scripts/install-kubo.sh", kuboVersion)
	}
	t.Skipf("Kubo %s is not installed (scripts/install-kubo.sh builds it)", kuboVersion)
	return ""
}

// kubo is one Kubo repo and its daemon, on loopback only.
type kubo struct {
	t    *testing.T
	bin  string
	repo string
}

func (k *kubo) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, k.bin, args...)
	c.Env = append(os.Environ(), "IPFS_PATH="+k.repo, "IPFS_TELEMETRY=off", "GOLOG_LOG_LEVEL=error")
	c.WaitDelay = 5 * time.Second
	return c
}

func (k *kubo) run(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	c := k.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		return out.String(), &kuboError{args: args, err: err, stderr: errb.String()}
	}
	return out.String(), nil
}

func (k *kubo) must(ctx context.Context, args ...string) string {
	k.t.Helper()
	out, err := k.run(ctx, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

type kuboError struct {
	args   []string
	err    error
	stderr string
}

func (e *kuboError) Error() string {
	return "ipfs " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// startKubo makes a repo with the test profile (loopback addresses, no
// bootstrap, no mDNS, no AutoConf), no routing and no relay, starts its
// daemon and waits until it is ready.
func startKubo(t *testing.T, ctx context.Context) *kubo {
	t.Helper()
	k := &kubo{t: t, bin: kuboBinary(t), repo: filepath.Join(t.TempDir(), "kubo")}
	k.must(ctx, "init", "--profile", "test")
	for _, kv := range [][2]string{
		{"Routing.Type", `"none"`},
		{"Swarm.RelayClient.Enabled", "false"},
		{"Swarm.RelayService.Enabled", "false"},
		{"Swarm.Transports.Network.Relay", "false"},
		{"AutoNAT.ServiceMode", `"disabled"`},
		{"Bootstrap", "[]"},
		{"Peering.Peers", "[]"},
	} {
		k.must(ctx, "config", "--json", kv[0], kv[1])
	}
	dctx, cancel := context.WithCancel(context.Background())
	d := k.cmd(dctx, "daemon")
	stdout, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.Stderr = d.Stdout
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ready := make(chan struct{})
	var log bytes.Buffer
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Daemon is ready") {
				close(ready)
			}
		}
		d.Wait()
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("ipfs daemon exited:\n%s", log.String())
	case <-time.After(60 * time.Second):
		t.Fatal("ipfs daemon not ready after 60 s")
	}
	return k
}

// TestShareKubo: a stock Kubo, connected to the sharer, fetches an
// unencrypted share with ipfs get, byte for byte, and is refused a private
// CID; pcnode fetches a CID that Kubo added; the sharer's gateway serves
// the share to a plain HTTP client.
func TestShareKubo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Kubo; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	k := startKubo(t, ctx)
	a := startShareNode(t, node.RoleServer, newTestClock(), 0)
	dir := t.TempDir()

	file := writeRandom(t, dir, 8<<20, 77)
	s, err := a.Share(ctx, api.ShareRequest{Path: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := a.Add(ctx, api.AddRequest{Path: writeRandom(t, dir, 1<<20, 78)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k.must(ctx, "swarm", "connect", loopbackAddr(t, st))

	out := filepath.Join(dir, "kubo-got")
	start := time.Now()
	k.must(ctx, "get", "-o", out, "/ipfs/"+s.CID)
	t.Logf("kubo got %d MiB from pcnode in %v", 8, time.Since(start).Round(time.Millisecond))
	sameFile(t, file, out)

	// Private: Kubo gets nothing.
	_, err = k.run(ctx, "get", "--timeout", "3s", "-o", filepath.Join(dir, "kubo-private"), "/ipfs/"+priv.CID)
	if err == nil {
		t.Error("kubo got private data")
	}
	if _, err := os.Stat(filepath.Join(dir, "kubo-private")); err == nil {
		t.Error("kubo wrote private data")
	}

	// The other way: pcnode fetches what Kubo added.
	kfile := writeRandom(t, dir, 4<<20, 79)
	kc := strings.TrimSpace(k.must(ctx, "add", "-Q", "--cid-version", "1", kfile))
	if _, err := cid.Decode(kc); err != nil {
		t.Fatalf("ipfs add printed %q", kc)
	}
	var id struct {
		ID        string
		Addresses []string
	}
	if err := json.Unmarshal([]byte(k.must(ctx, "id")), &id); err != nil {
		t.Fatal(err)
	}
	connected := false
	for _, as := range id.Addresses {
		if !strings.HasPrefix(as, "/ip4/127.0.0.1/tcp/") {
			continue
		}
		if _, err := a.Connect(ctx, multiaddr.StringCast(as)); err == nil {
			connected = true
			break
		}
	}
	if !connected {
		t.Fatalf("pcnode could not connect to kubo at %v", id.Addresses)
	}
	got := filepath.Join(dir, "pcnode-got")
	if _, err := a.Get(ctx, api.GetRequest{CID: kc, Output: got}, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, kfile, got)

	// The gateway, to a plain HTTP client.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.GatewayURL()+"/ipfs/"+s.CID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	want, _ := os.ReadFile(file)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("gateway: %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
}
