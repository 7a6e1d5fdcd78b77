package integration

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/node/api"
)

// TestReliabilityBitRot (issue 9, item 3): 1% of the blocks in a member's
// store rot on disk. `repo verify` finds exactly those blocks, quarantines
// them and fetches them again from the sibling, after which the store is
// whole with the sibling gone. A block that rots later is never served:
// the gateway (and bitswap and the DAG stream, which read through the same
// Store.Get) re-hash what they read, quarantine the rotten block and answer
// as if it were missing; the next get fetches it from the sibling.
func TestReliabilityBitRot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons; skipped with -short")
	}
	t.Parallel()
	files := 300
	if *long {
		files = 3000
	}
	a, b := memberPair(t)
	tree := writeSmallTree(t, files, 1)
	var added api.AddResult
	a.mustJSON(&added, "add", tree)
	out1 := filepath.Join(t.TempDir(), "out1")
	b.must("get", added.CID, "-o", out1)
	sameTree(t, tree, out1)

	// Rot 1% of b's blocks while it is down.
	b.stop()
	keys := storeKeys(t, b.home)
	rotten := pickPercent(keys, 1, 1)
	rotBlocks(t, b.home, rotten)
	b.start()
	var aci api.CloudInfo
	a.mustJSON(&aci, "cloud", "show")
	b.waitDevices("a online after b's restart", connected(aci.Device))

	// verify finds all of them, and heals them from a.
	start := time.Now()
	out, err := b.run("--json", "repo", "verify")
	if err == nil {
		t.Fatalf("repo verify succeeded with %d rotten blocks:\n%s", len(rotten), out)
	}
	var v api.VerifyResult
	mustUnmarshal(t, out, &v)
	if got, want := hashesOf(t, v.Corrupt), hashesOfCids(rotten); !slices.Equal(got, want) {
		t.Fatalf("verify reported %d corrupt %v, want the %d rotted %v", len(got), got, len(want), want)
	}
	t.Logf("verify of %d blocks found all %d rotten ones and healed them in %v", v.Checked, len(rotten), time.Since(start).Round(time.Millisecond))
	b.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 || v.Checked != len(keys) {
		t.Fatalf("verify after healing: %d corrupt, %d of %d blocks", len(v.Corrupt), v.Checked, len(keys))
	}
	// Healed, not just dropped: b exports the tree with a gone.
	a.stop()
	out2 := filepath.Join(t.TempDir(), "out2")
	b.must("get", added.CID, "-o", out2)
	sameTree(t, tree, out2)

	// A block that rots now is not served: b shares the tree, and its
	// gateway is asked for a leaf that rotted afterwards.
	b.must("share", added.CID)
	b.stop()
	var leaf cid.Cid
	for _, k := range keys {
		if k.Hash().String() != mustCid(t, added.CID).Hash().String() {
			leaf = k
			break
		}
	}
	orig := rotBlocks(t, b.home, []cid.Cid{leaf})[leaf.Hash().String()]
	// A port chosen just before the start: other tests' daemons take
	// random loopback ports too.
	gwPort := freeLoopbackPort(t)
	b.must("config", "set", "gateway.listen", "127.0.0.1:"+strconv.Itoa(gwPort))
	b.start()
	leafRaw := cid.NewCidV1(cid.Raw, leaf.Hash())
	code, body := httpGet(t, "http://127.0.0.1:"+strconv.Itoa(gwPort)+"/ipfs/"+leafRaw.String()+"?format=raw")
	if code == http.StatusOK && string(body) != string(orig) {
		t.Fatalf("the gateway served a rotten block (%d bytes)", len(body))
	}
	if code == http.StatusOK {
		t.Fatalf("the gateway served %s although it had rotted (and nothing healed it: a is down)", leafRaw)
	}
	t.Logf("gateway answered %d for the rotten block", code)
	// It was quarantined on that read: verify finds nothing left.
	b.mustJSON(&v, "repo", "verify")
	if len(v.Corrupt) != 0 || v.Checked != len(keys)-1 {
		t.Fatalf("verify after the read: %d corrupt, %d blocks checked, want 0 and %d", len(v.Corrupt), v.Checked, len(keys)-1)
	}
	// And the next get fetches it from a.
	a.start()
	b.must("peers", "connect", loopbackAddr(t, a.status())) // both listen on new ports now
	b.waitDevices("a online after a's restart", connected(aci.Device))
	out3 := filepath.Join(t.TempDir(), "out3")
	b.must("get", added.CID, "-o", out3)
	sameTree(t, tree, out3)
}

func mustCid(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hashesOf is the sorted multihashes of CIDs in text form.
func hashesOf(t *testing.T, ss []string) []string {
	t.Helper()
	var cs []cid.Cid
	for _, s := range ss {
		cs = append(cs, mustCid(t, s))
	}
	return hashesOfCids(cs)
}

func hashesOfCids(cs []cid.Cid) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Hash().String())
	}
	slices.Sort(out)
	return out
}

// httpGet fetches a URL with a deadline and returns the status and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, body
}
