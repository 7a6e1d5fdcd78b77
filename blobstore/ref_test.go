package blobstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestRefs checks blocks referenced in place on every backend: served
// from the file while it holds the bytes, missing (and reported stale)
// once it does not, never wrong bytes.
func TestRefs(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t)
			dir := t.TempDir()
			a, b := randBytes(1, 5000), randBytes(2, 3000)
			file := filepath.Join(dir, "f")
			if err := os.WriteFile(file, append(append([]byte{}, a...), b...), 0o644); err != nil {
				t.Fatal(err)
			}
			ca, cb := mustSum(cid.Raw, a), mustSum(cid.Raw, b)
			var mu sync.Mutex
			var stale []string
			stop := s.WatchStaleRefs(func(p string) { mu.Lock(); stale = append(stale, p); mu.Unlock() })
			defer stop()
			if err := s.PutRefs(ctx, []Ref{{Cid: ca, Path: file, Size: len(a)}, {Cid: cb, Path: file, Offset: int64(len(a)), Size: len(b)}}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				c    cid.Cid
				want []byte
			}{{ca, a}, {cb, b}} {
				got, err := s.Get(ctx, tc.c)
				if err != nil {
					t.Fatalf("get %s: %v", tc.c, err)
				}
				if !bytes.Equal(got.RawData(), tc.want) {
					t.Fatalf("get %s: wrong bytes", tc.c)
				}
				if ok, _ := s.Has(ctx, tc.c); !ok {
					t.Fatalf("has %s: false", tc.c)
				}
				if n, err := s.GetSize(ctx, tc.c); err != nil || n != len(tc.want) {
					t.Fatalf("size %s: %d, %v", tc.c, n, err)
				}
			}
			// References are not blocks.
			st, err := s.Stat(ctx)
			if err != nil || st.Blocks != 0 {
				t.Fatalf("stat: %+v, %v", st, err)
			}
			// The file changes under the second block: it is missing, never wrong.
			fd, err := os.OpenFile(file, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fd.WriteAt([]byte("changed"), int64(len(a)+10)); err != nil {
				t.Fatal(err)
			}
			fd.Close()
			if _, err := s.Get(ctx, cb); !ipld.IsNotFound(err) {
				t.Fatalf("get changed block: %v, want not found", err)
			}
			if ok, _ := s.Has(ctx, cb); ok {
				t.Fatal("stale reference still reported by Has")
			}
			mu.Lock()
			if diff := cmp.Diff([]string{file}, stale); diff != "" {
				t.Errorf("stale paths (-want +got):\n%s", diff)
			}
			mu.Unlock()
			if _, err := s.Get(ctx, ca); err != nil {
				t.Fatalf("unchanged block: %v", err)
			}
			// A second place for a: the first one vanishes, the second serves.
			file2 := filepath.Join(dir, "g")
			if err := os.WriteFile(file2, a, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := s.AddRefs(ctx, []Ref{{Cid: ca, Path: file2, Size: len(a)}}); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, ca); err != nil || !bytes.Equal(got.RawData(), a) {
				t.Fatalf("second place: %v", err)
			}
			// A stored copy wins over references and DeleteBlocks removes
			// only the copy.
			if err := s.Put(ctx, rawBlock("stored")); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteBlocks(ctx, []cid.Cid{rawBlock("stored").Cid(), ca}); err != nil {
				t.Fatal(err)
			}
			if ok, _ := s.Has(ctx, rawBlock("stored").Cid()); ok {
				t.Fatal("deleted block still there")
			}
			if ok, _ := s.HasRef(ctx, ca); !ok {
				t.Fatal("DeleteBlocks removed a reference")
			}
		})
	}
}

func TestRefsInvalid(t *testing.T) {
	s := mustOpen(t, Config{})
	ctx := context.Background()
	c := mustSum(cid.Raw, []byte("x"))
	for _, r := range []Ref{{Path: "/x", Size: 1}, {Cid: c, Size: 1}, {Cid: c, Path: "/x", Offset: -1}, {Cid: c, Path: "/x", Size: MaxChunkSize + 1}} {
		if err := s.PutRefs(ctx, []Ref{r}); err == nil {
			t.Errorf("PutRefs(%+v) accepted", r)
		}
	}
}

// FuzzRefRecord checks that the reference record decoder never panics and
// that what it accepts re-encodes to the same bytes.
func FuzzRefRecord(f *testing.F) {
	f.Add(encodeRefLocs([]refLoc{{path: "/a/b", offset: 10, size: 4}}))
	f.Add(encodeRefLocs([]refLoc{{path: "/a", size: 1}, {path: "/b", offset: 1 << 40, size: 1 << 20}}))
	f.Add([]byte{0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		locs, err := decodeRefLocs(b)
		if err != nil {
			return
		}
		if got := encodeRefLocs(locs); !bytes.Equal(got, b) {
			// Non-minimal varints decode but re-encode shorter; only
			// the parsed values must survive a round trip.
			again, err := decodeRefLocs(got)
			if err != nil || !cmp.Equal(again, locs, cmp.AllowUnexported(refLoc{})) {
				t.Fatalf("round trip: %v %v", again, err)
			}
		}
	})
}
