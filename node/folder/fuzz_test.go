package folder

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func seedEntries() []Entry {
	c, _ := rawCID([]byte("x"))
	return []Entry{
		{Path: "a/b.txt", Mode: 0o644, Size: 1, MTime: 1700000000123456789, CID: c, Version: Vector{{1, 2}, {7, 1}}, Writer: 7, Seq: 9},
		{Path: "dir", Dir: true, Mode: 0o755, Version: Vector{{3, 1}}, Writer: 3, Seq: 1},
		{Path: "gone", Deleted: true, Version: Vector{{3, 4}}, Writer: 3, Seq: 2, MTime: -5},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range seedEntries() {
		got, err := decodeEntry(appendEntry(nil, &e))
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if !cmp.Equal(e, got, cmp.Comparer(func(a, b Entry) bool { return string(appendEntry(nil, &a)) == string(appendEntry(nil, &b)) })) {
			t.Errorf("round trip of %s: got %+v", e.Path, got)
		}
	}
	bad := []Entry{
		{Path: "../x", Deleted: true},
		{Path: "/abs", Deleted: true},
		{Path: "a//b", Deleted: true},
		{Path: "f"}, // a file without CID
	}
	for _, e := range bad {
		if _, err := decodeEntry(appendEntry(nil, &e)); err == nil {
			t.Errorf("%q decoded", e.Path)
		}
	}
}

// FuzzEntry: the decoder never panics, and what it accepts encodes back
// to the same bytes.
func FuzzEntry(f *testing.F) {
	for _, e := range seedEntries() {
		f.Add(appendEntry(nil, &e))
		r := record{Entry: e, Ino: 5, StatSize: 1, StatMTime: 2, StatMode: 0o644}
		f.Add(appendRecord(nil, &r))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err == nil {
			if again := appendEntry(nil, &e); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
			}
		}
		if r, err := decodeRecord(b); err == nil && !validPath(r.Path) {
			t.Fatalf("record with invalid path %q", r.Path)
		}
	})
}

// FuzzMessage: wire messages never panic the decoder, and accepted
// batches are bounded and re-encode identically.
func FuzzMessage(f *testing.F) {
	f.Add(encodeRequest(request{Epoch: 3, After: 100}))
	f.Add(encodeBatch(&batch{Epoch: 3, Reset: true, Entries: seedEntries()[:1]}))
	ents := seedEntries()
	ents[0].Seq, ents[1].Seq, ents[2].Seq = 1, 2, 3
	f.Add(encodeBatch(&batch{Epoch: 1, Entries: ents}))
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, m, err := decodeMessage(b)
		switch {
		case err != nil:
			if q != nil || m != nil {
				t.Fatal("result with error")
			}
		case q != nil:
			if !bytes.Equal(encodeRequest(*q), b) {
				t.Fatal("request re-encodes differently")
			}
		case m != nil:
			if len(m.Entries) > maxBatchEntries {
				t.Fatal("batch too large")
			}
			if !bytes.Equal(encodeBatch(m), b) {
				t.Fatal("batch re-encodes differently")
			}
		default:
			t.Fatal("nothing decoded, no error")
		}
	})
}

// FuzzIgnore: any .pcignore parses or fails cleanly, and matching never panics.
func FuzzIgnore(f *testing.F) {
	f.Add("*.tmp\n/build/\n!keep.tmp\n**/cache\n# c\n", "a/b/cache")
	f.Add("[", "x")
	f.Add("a/**/b/**/c", "a/x/y/b/c")
	f.Fuzz(func(t *testing.T, pat, p string) {
		if len(pat) > 512 || len(p) > 256 {
			return
		}
		ig, err := parseIgnore([]byte(pat))
		if err != nil {
			return
		}
		_ = ig.match(p, false)
		_ = ig.ignoredTree(p, true)
	})
}
