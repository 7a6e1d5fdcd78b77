package folder

import (
	"testing"
	"time"
)

func TestVectorCompare(t *testing.T) {
	v := func(cs ...uint64) Vector {
		var out Vector
		for i := 0; i < len(cs); i += 2 {
			out = append(out, Counter{ShortID(cs[i]), cs[i+1]})
		}
		return out
	}
	tests := []struct {
		a, b Vector
		want Ordering
	}{
		{nil, nil, Equal},
		{v(1, 1), nil, Greater},
		{nil, v(1, 1), Lesser},
		{v(1, 1), v(1, 1), Equal},
		{v(1, 2), v(1, 1, 2, 1), Concurrent},
		{v(1, 2, 2, 1), v(1, 1, 2, 1), Greater},
		{v(1, 1, 3, 1), v(2, 1), Concurrent},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v vs %v = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	u := v(1, 1, 3, 1).Update(2).Update(3)
	if want := v(1, 1, 2, 1, 3, 2); u.Compare(want) != Equal {
		t.Errorf("Update = %v", u)
	}
	m := v(1, 3, 3, 1).Merge(v(1, 1, 2, 5))
	if want := v(1, 3, 2, 5, 3, 1); m.Compare(want) != Equal || len(m) != 3 {
		t.Errorf("Merge = %v", m)
	}
}

func TestResolve(t *testing.T) {
	ca, _ := rawCID([]byte("a"))
	cb, _ := rawCID([]byte("b"))
	mt := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano()
	a := &Entry{Path: "dir/x.txt", CID: ca, MTime: mt, Writer: 1, Version: Vector{{1, 2}}}
	b := &Entry{Path: "dir/x.txt", CID: cb, MTime: mt + 1, Writer: 2, Version: Vector{{1, 1}, {2, 1}}}
	del := &Entry{Path: "dir/x.txt", Deleted: true, MTime: mt + 5, Writer: 3, Version: Vector{{1, 1}, {3, 1}}}
	old := &Entry{Path: "dir/x.txt", CID: ca, Writer: 1, Version: Vector{{1, 1}}}

	for _, order := range [][]*Entry{{a, b, old}, {old, b, a}} {
		tgt, cs := resolve(order)
		if !tgt.CID.Equals(cb) || tgt.Version.Compare(Vector{{1, 2}, {2, 1}}) != Equal {
			t.Errorf("target %+v", tgt)
		}
		if len(cs) != 1 || cs[0].Path != "dir/x.sync-conflict-20260506-070809-"+ShortID(1).String()+".txt" || !cs[0].CID.Equals(ca) {
			t.Errorf("conflicts %+v", cs)
		}
	}
	if tgt, cs := resolve([]*Entry{del, a}); tgt.Deleted || len(cs) != 0 {
		t.Errorf("edit vs delete: %+v %+v", tgt, cs)
	}
	if tgt, cs := resolve([]*Entry{old, a}); !tgt.CID.Equals(ca) || tgt.Version.Compare(a.Version) != Equal || len(cs) != 0 {
		t.Errorf("dominated: %+v %+v", tgt, cs)
	}
	same := &Entry{Path: a.Path, CID: ca, MTime: mt + 9, Writer: 9, Version: Vector{{9, 1}}}
	if _, cs := resolve([]*Entry{a, same}); len(cs) != 0 {
		t.Errorf("identical content conflicted: %+v", cs)
	}
}

func TestConflictName(t *testing.T) {
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	id := ShortID(0x0123456789abcdef)
	for in, want := range map[string]string{
		"a.txt":         "a.sync-conflict-20260102-030405-" + id.String() + ".txt",
		"d/archive.tar": "d/archive.sync-conflict-20260102-030405-" + id.String() + ".tar",
		".bashrc":       ".bashrc.sync-conflict-20260102-030405-" + id.String(),
		"noext":         "noext.sync-conflict-20260102-030405-" + id.String(),
	} {
		if got := conflictName(in, mt, id); got != want {
			t.Errorf("conflictName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIgnoreMatch(t *testing.T) {
	ig, err := parseIgnore([]byte("*.tmp\n/build/\n!keep.tmp\n**/cache\ndocs/*.pdf\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		dir  bool
		want bool
	}{
		{"x.tmp", false, true},
		{"a/b/x.tmp", false, true},
		{"keep.tmp", false, false},
		{"build", true, true},
		{"build", false, false},
		{"src/build", true, false},
		{"cache", true, true},
		{"a/b/cache", false, true},
		{"docs/a.pdf", false, true},
		{"docs/sub/a.pdf", false, false},
		{"readme", false, false},
	}
	for _, tt := range tests {
		if got := ig.match(tt.path, tt.dir); got != tt.want {
			t.Errorf("match(%q, dir=%v) = %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
	if !ig.ignoredTree("build/out/x", false) {
		t.Error("file under an ignored directory not ignored")
	}
	if _, err := parseIgnore([]byte("[\n")); err == nil {
		t.Error("bad pattern accepted")
	}
}
