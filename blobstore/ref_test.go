package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	blocks "github.com/ipfs/go-block-format"
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

// TestRefsMany checks GetMany and ViewMany over blocks referenced in place,
// mixed with stored ones: read and verified together, and a block whose
// file was modified under its reference is never served as the old CID.
// It is missing (its stale place dropped and reported) unless another
// place still holds it.
func TestRefsMany(t *testing.T) {
	const n = 20 // more than one group of 16
	read := map[string]func(s *Store, cs []cid.Cid) ([][]byte, error){
		"GetMany": func(s *Store, cs []cid.Cid) ([][]byte, error) {
			bs, err := s.GetMany(context.Background(), cs)
			out := make([][]byte, len(bs))
			for i, b := range bs {
				if b != nil {
					out[i] = b.RawData()
				}
			}
			return out, err
		},
		"ViewMany": func(s *Store, cs []cid.Cid) ([][]byte, error) {
			out := make([][]byte, len(cs))
			err := s.ViewMany(context.Background(), cs, func(i int, data []byte) error {
				if data != nil {
					out[i] = append([]byte{}, data...)
				}
				return nil
			})
			return out, err
		},
	}
	for name, fn := range read {
		for _, hashOnRead := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/HashOnRead=%v", name, hashOnRead), func(t *testing.T) {
				ctx := context.Background()
				s := mustOpen(t, Config{Dir: t.TempDir(), HashOnRead: hashOnRead, NoSync: true})
				dir := t.TempDir()
				file, other := filepath.Join(dir, "f"), filepath.Join(dir, "g")
				var whole []byte
				var cs []cid.Cid
				var want [][]byte
				var refs []Ref
				for i := range n {
					size := 64<<10 + i*4099 // unaligned, different sizes
					if i == 3 {
						size = 0 // an empty block is a valid leaf
					}
					d := randBytes(uint64(900+i), size)
					c := mustSum(cid.Raw, d)
					refs = append(refs, Ref{Cid: c, Path: file, Offset: int64(len(whole)), Size: size})
					whole = append(whole, d...)
					cs = append(cs, c)
					want = append(want, d)
				}
				if err := os.WriteFile(file, whole, 0o644); err != nil {
					t.Fatal(err)
				}
				const (
					stored    = 1  // also a stored copy
					edited    = 5  // changed in the file: missing
					elsewhere = 9  // changed in the file, intact in another file
					cut       = 19 // the file is truncated into it
				)
				// The other file's place first, so the edited file's
				// (newer) place is the one read first.
				if err := os.WriteFile(other, want[elsewhere], 0o644); err != nil {
					t.Fatal(err)
				}
				if err := s.AddRefs(ctx, []Ref{{Cid: cs[elsewhere], Path: other, Size: len(want[elsewhere])}}); err != nil {
					t.Fatal(err)
				}
				if err := s.PutRefs(ctx, refs); err != nil {
					t.Fatal(err)
				}
				b, _ := blocks.NewBlockWithCid(want[stored], cs[stored])
				if err := s.Put(ctx, b); err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				stale := map[string]int{}
				stop := s.WatchStaleRefs(func(p string) { mu.Lock(); stale[p]++; mu.Unlock() })
				defer stop()

				// All intact: every block served, none stale.
				got, err := fn(s, cs)
				if err != nil {
					t.Fatal(err)
				}
				for i := range cs {
					if !bytes.Equal(got[i], want[i]) || got[i] == nil {
						t.Fatalf("intact block %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
					}
				}
				// Edit the file under two blocks (same size: only the
				// hash can tell) and cut it short in the last one.
				fd, err := os.OpenFile(file, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, i := range []int{edited, elsewhere} {
					if _, err := fd.WriteAt([]byte("edited"), refs[i].Offset+100); err != nil {
						t.Fatal(err)
					}
				}
				if err := fd.Truncate(refs[cut].Offset + 10); err != nil {
					t.Fatal(err)
				}
				fd.Close()
				for round := range 2 {
					got, err := fn(s, cs)
					if err != nil {
						t.Fatal(err)
					}
					for i := range cs {
						switch i {
						case edited, cut:
							if got[i] != nil {
								t.Errorf("round %d: block %d of a modified file served (%d bytes)", round, i, len(got[i]))
							}
						default:
							if got[i] == nil || !bytes.Equal(got[i], want[i]) {
								t.Errorf("round %d: block %d: %d bytes, want %d", round, i, len(got[i]), len(want[i]))
							}
						}
					}
				}
				mu.Lock()
				if diff := cmp.Diff(map[string]int{file: 3}, stale); diff != "" {
					t.Errorf("stale reports (-want +got):\n%s", diff)
				}
				mu.Unlock()
				for _, tc := range []struct {
					i    int
					want bool
				}{{edited, false}, {cut, false}, {elsewhere, true}, {0, true}} {
					if ok, _ := s.HasRef(ctx, cs[tc.i]); ok != tc.want {
						t.Errorf("HasRef(block %d) = %v, want %v", tc.i, ok, tc.want)
					}
				}
				if q, err := s.Quarantined(ctx); err != nil || len(q) != 0 {
					t.Errorf("quarantined %v, %v: a stale reference is not rot in the store", q, err)
				}
			})
		}
	}
}

// TestRefsTrustedState: a place recorded with its file's state (StateOf)
// is read without hashing while the file stays in that state and within
// trustFor; a change of the file (same size, same place), the end of the
// window, or a stale drop brings the hashing back, so no wrong bytes are
// served. The hashing is shown skipped by planting a state the file was
// not hashed in (which no real write can produce: it changes ctime).
func TestRefsTrustedState(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Config{Dir: t.TempDir()})
	r := s.blocks.(*refBlocks)
	file := filepath.Join(t.TempDir(), "f")
	a, b := randBytes(3, 1<<20), randBytes(4, 1<<20)
	if err := os.WriteFile(file, append(append([]byte{}, a...), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if StateOf(fi) != nil {
		t.Fatal("StateOf vouches for a file written just now (racy)")
	}
	time.Sleep(racyFor + 20*time.Millisecond)
	if fi, err = os.Stat(file); err != nil {
		t.Fatal(err)
	}
	state := StateOf(fi)
	if state == nil {
		t.Fatalf("StateOf(%s) = nil %v after the racy window", file, racyFor)
	}
	ca, cb := mustSum(cid.Raw, a), mustSum(cid.Raw, b)
	refs := []Ref{{Cid: ca, Path: file, Size: len(a), State: state}, {Cid: cb, Path: file, Offset: 1 << 20, Size: len(b), State: state}}
	if err := s.PutRefs(ctx, refs); err != nil {
		t.Fatal(err)
	}
	getBoth := func() ([]blocks.Block, blocks.Block, error) {
		bs, err := s.GetMany(ctx, []cid.Cid{ca, cb})
		if err != nil {
			return nil, nil, err
		}
		one, err := s.Get(ctx, ca)
		return bs, one, err
	}
	bs, one, err := getBoth()
	if err != nil || len(bs) != 2 || bs[0] == nil || bs[1] == nil || !bytes.Equal(bs[1].RawData(), b) || !bytes.Equal(one.RawData(), a) {
		t.Fatalf("trusted places: %v", err)
	}

	// Plant the state of the file after an overwrite of leaf a: a trusted
	// read then serves what the file holds without hashing it.
	x := randBytes(5, 1<<20)
	if err := os.WriteFile(file, append(append([]byte{}, x...), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(file); err != nil {
		t.Fatal(err)
	}
	now, _ := fileState(fi)
	if now == *state {
		t.Fatal("an overwrite left the file's state as it was")
	}
	r.trust.put(blockKey(ca).String(), placeState{loc: refLoc{path: file, size: len(a)}, state: now})
	if got, err := s.Get(ctx, ca); err != nil || !bytes.Equal(got.RawData(), x) {
		t.Fatalf("a planted trusted state still hashed the block (%v): the trust is not used", err)
	}

	// The real state was recorded: the overwrite shows, a is stale.
	r.trust.put(blockKey(ca).String(), placeState{loc: refLoc{path: file, size: len(a)}, state: *state})
	if bs, err := s.GetMany(ctx, []cid.Cid{ca}); err == nil && bs[0] != nil {
		t.Fatal("GetMany served a changed file's bytes under the old CID")
	}
	if _, err := s.Get(ctx, ca); !ipld.IsNotFound(err) {
		t.Fatalf("Get of a changed place = %v, want not found", err)
	}
	if _, ok := r.trust.get(blockKey(ca).String()); ok {
		t.Error("a stale place stays trusted")
	}

	// Past trustFor, b (unchanged) is hashed again, and still served.
	later := time.Now().Add(trustFor)
	r.trust.now = func() time.Time { return later }
	if _, ok := r.trust.get(blockKey(cb).String()); ok {
		t.Error("a place stays trusted past trustFor")
	}
	if got, err := s.Get(ctx, cb); err != nil || !bytes.Equal(got.RawData(), b) {
		t.Fatalf("an unchanged place past trustFor: %v", err)
	}
}
