package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/api"
)

// Helpers of the reliability tests (docs/RELIABILITY.md).

// memberPair starts two daemons of one cloud: a created it, b joined
// through its daemon; both see each other connected when it returns.
func memberPair(t *testing.T) (a, b *proc) {
	t.Helper()
	a = newProc(t, "a")
	b = newDevice(t, "b")
	a.start()
	b.start()
	var inv api.InviteResult
	a.mustJSON(&inv, "invite", "--ttl", "5m")
	var ci api.CloudInfo
	b.mustJSON(&ci, "join", inv.Code)
	var aci api.CloudInfo
	a.mustJSON(&aci, "cloud", "show")
	a.waitDevices("b online", connected("b"))
	b.waitDevices("a online", connected(aci.Device))
	return a, b
}

// storeKeys lists every block in a home's store (the daemon must be
// stopped: the store is opened directly, as node opens it).
func storeKeys(t *testing.T, home string) []cid.Cid {
	t.Helper()
	ctx := context.Background()
	s, err := blobstore.Open(ctx, blobstore.Config{Dir: filepath.Join(home, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for c := range ch {
		out = append(out, c)
	}
	return out
}

// rotBlocks overwrites the stored bytes of the given blocks (keeping their
// keys) in a stopped home, as bit rot would, and returns what each held.
func rotBlocks(t *testing.T, home string, cs []cid.Cid) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	s, err := blobstore.Open(ctx, blobstore.Config{Dir: filepath.Join(home, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	orig := map[string][]byte{}
	for _, c := range cs {
		b, err := s.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		data := append([]byte(nil), b.RawData()...)
		orig[c.Hash().String()] = data
		bad := append([]byte(nil), data...)
		if len(bad) == 0 {
			bad = []byte("rot")
		} else {
			bad[len(bad)/2] ^= 0x55 // one flipped byte: the size is unchanged
		}
		rotten, err := blocks.NewBlockWithCid(bad, c) // does not re-hash: the point
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, rotten); err != nil {
			t.Fatal(err)
		}
	}
	return orig
}

// pickPercent picks ceil(pct% of cs), at least one, reproducibly from seed.
func pickPercent(cs []cid.Cid, pct float64, seed uint64) []cid.Cid {
	n := int(float64(len(cs))*pct/100 + 0.999)
	n = max(n, 1)
	r := rand.New(rand.NewPCG(seed, seed))
	idx := r.Perm(len(cs))[:n]
	out := make([]cid.Cid, 0, n)
	for _, i := range idx {
		out = append(out, cs[i])
	}
	return out
}

// writeSmallTree writes n files of 1–4 KiB (each one raw block) under a
// new directory and returns it.
func writeSmallTree(t *testing.T, n int, seed uint64) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), fmt.Sprintf("tree-%d", seed))
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		dir := filepath.Join(root, "d"+strconv.Itoa(i%10))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1024+r.IntN(3072))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// sameTree fails unless the regular files under a and b are equal in name
// and content (and there are no others).
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	ha, hb := treeHashes(t, a), treeHashes(t, b)
	if len(ha) != len(hb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(ha), b, len(hb))
	}
	for k, v := range ha {
		if hb[k] != v {
			t.Fatalf("%s differs between %s and %s", k, a, b)
		}
	}
}

func treeHashes(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fileHash(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
