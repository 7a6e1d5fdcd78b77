package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
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
