package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/pcnode/pcnode/node/api"
)

func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func TestDecodeShareList(t *testing.T) {
	root := testCID(t, "a").String()
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"empty list", `{"v":1,"shares":[]}`, true},
		{"one", `{"v":1,"shares":[{"id":"abc123","root":"` + root + `","size":3}]}`, true},
		{"revoked and expiring", `{"v":1,"shares":[{"id":"x","root":"` + root + `","size":-1,"revoked":true,"expires":"2030-01-01T00:00:00Z"}]}`, true},
		{"version 2", `{"v":2,"shares":[]}`, false},
		{"unknown field", `{"v":1,"shares":[],"x":1}`, false},
		{"bad id", `{"v":1,"shares":[{"id":"a/b","root":"` + root + `","size":3}]}`, false},
		{"empty id", `{"v":1,"shares":[{"id":"","root":"` + root + `","size":3}]}`, false},
		{"duplicate id", `{"v":1,"shares":[{"id":"a","root":"` + root + `"},{"id":"a","root":"` + root + `"}]}`, false},
		{"bad root", `{"v":1,"shares":[{"id":"a","root":"nope","size":3}]}`, false},
		{"bad size", `{"v":1,"shares":[{"id":"a","root":"` + root + `","size":-2}]}`, false},
		{"long name", `{"v":1,"shares":[{"id":"a","root":"` + root + `","name":"` + strings.Repeat("n", 256) + `"}]}`, false},
		{"trailing data", `{"v":1,"shares":[]} {}`, false},
		{"not json", `v=1`, false},
		{"folders", `{"v":1,"shares":[],"folders":["abc-123","z"]}`, true},
		{"bad folder id", `{"v":1,"shares":[],"folders":["ABC"]}`, false},
		{"empty folder id", `{"v":1,"shares":[],"folders":[""]}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeShareList([]byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("decodeShareList(%s): err %v, want ok=%v", c.in, err, c.ok)
			}
		})
	}
}

func TestMirrorItemActive(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		it   mirrorItem
		want bool
	}{
		{mirrorItem{}, true},
		{mirrorItem{Revoked: true}, false},
		{mirrorItem{Expires: now.Add(time.Second)}, true},
		{mirrorItem{Expires: now}, false},
	}
	for i, c := range cases {
		if got := c.it.active(now); got != c.want {
			t.Errorf("case %d: active = %v, want %v", i, got, c.want)
		}
	}
}

// FuzzShareList: the server's decoder of pushed share lists never panics,
// and what it accepts encodes and decodes to the same list.
func FuzzShareList(f *testing.F) {
	root := testCID(f, "seed").String()
	f.Add([]byte(`{"v":1,"shares":[]}`))
	f.Add([]byte(`{"v":1,"shares":[{"id":"abc","root":"` + root + `","name":"a.txt","size":5,"expires":"2030-01-01T00:00:00Z","encrypted":true}]}`))
	f.Add([]byte(`{"v":1,"shares":[{"id":"a","root":"` + root + `","revoked":true,"unlisted":true,"size":-1}]}`))
	f.Add([]byte(`{"v":1,"shares":null}`))
	f.Add([]byte(`{"v":1,"shares":[],"folders":["a1b2c3d4e5f6g7h8"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeShareList(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := decodeShareList(again)
		if err != nil {
			t.Fatalf("re-encoded list refused: %v\n%s", err, again)
		}
		if len(l2.Shares) != len(l.Shares) {
			t.Fatalf("round trip changed the list: %d != %d", len(l2.Shares), len(l.Shares))
		}
	})
}

// TestServerMirrorsAndReplicates runs the home server part in process,
// under the race detector: a device's folder is joined receive-only by
// the server, its share is mirrored and served with a link that names the
// server, and its revoke reaches the mirror.
func TestServerMirrorsAndReplicates(t *testing.T) {
	ctx := t.Context()
	homeS := newHomeWith(t, InitOptions{Name: "srv", Role: RoleServer}, map[string]string{})
	startNode(t, homeS, false)
	cs, err := api.DialHome(homeS)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := cs.Invite(ctx, api.InviteRequest{TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	homeD := newHomeWith(t, InitOptions{Name: "laptop", NoCloud: true}, map[string]string{})
	if _, err := Join(ctx, homeD, inv.Code, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	nd := startNode(t, homeD, false)
	cd, err := api.DialHome(homeD)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("from the laptop"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := cd.FolderAdd(ctx, api.FolderAddRequest{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica on the server", 30*time.Second, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(homeS, ReplicaDir, fi.ID, "a.txt"))
		return err == nil && string(b) == "from the laptop", string(b)
	})
	fs, err := cs.Folders(ctx)
	if err != nil || len(fs) != 1 || !fs[0].ReceiveOnly {
		t.Fatalf("server folders %+v, %v", fs, err)
	}

	p, _ := writeRandom(t, t.TempDir(), "item.bin", 200<<10)
	sh, err := cd.Share(ctx, api.ShareRequest{Path: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sh.Link, nodeIDOf(t, cs)) {
		t.Errorf("the link names no address of the server: %s", sh.Link)
	}
	mirror := func(state string) func() (bool, string) {
		return func() (bool, string) {
			ss, err := cs.Shares(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, s := range ss {
				if s.CID == sh.CID && s.State == state {
					return true, ""
				}
			}
			return false, fmt.Sprint(ss)
		}
	}
	waitFor(t, "the share mirrored", 30*time.Second, mirror("active"))
	if _, err := cd.ShareRevoke(ctx, sh.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mirror revoked", 30*time.Second, mirror("revoked"))
	if err := nd.Close(); err != nil {
		t.Fatal(err)
	}
}

func nodeIDOf(t *testing.T, c *api.Client) string {
	t.Helper()
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}
