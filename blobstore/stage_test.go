package blobstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// leftovers lists what a StagedFile left in dir besides want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestStagedFile(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: writeback starts twice
	for _, tc := range []struct {
		name   string
		before func(dst string) // runs after CreateStaged, before Commit
		abort  bool
		err    error // of Commit; nil: dst must hold data
	}{
		{name: "commit"},
		{name: "abort", abort: true},
		{name: "dst appears meanwhile", before: func(dst string) {
			if err := os.WriteFile(dst, []byte("theirs"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, err: ErrExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.bin")
			s, err := CreateStaged(dst)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(data); i += 1 << 20 {
				if _, err := s.Write(data[i : i+1<<20]); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("direct I/O after aligned writes: %v", s.direct)
			if s.Size() != int64(len(data)) {
				t.Errorf("Size = %d, want %d", s.Size(), len(data))
			}
			if _, err := os.Stat(dst); tc.before == nil && err == nil {
				t.Fatal("dst visible before Commit")
			}
			if tc.before != nil {
				tc.before(dst)
			}
			if tc.abort {
				s.Abort()
				if _, err := s.Commit(); err == nil {
					t.Fatal("Commit after Abort succeeded")
				}
				if got := leftovers(t, dir); len(got) > 0 {
					t.Fatalf("Abort left %q", got)
				}
				return
			}
			n, err := s.Commit()
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Commit = %v, want %v", err, tc.err)
				}
				if got, _ := os.ReadFile(dst); string(got) != "theirs" {
					t.Fatalf("dst replaced: %q", got)
				}
				if got := leftovers(t, dir, "out.bin"); len(got) > 0 {
					t.Fatalf("failed Commit left %q", got)
				}
				return
			}
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Commit = %d, %v", n, err)
			}
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("dst has %d bytes (%v), want the %d written", len(got), err, len(data))
			}
			if got := leftovers(t, dir, "out.bin"); len(got) > 0 {
				t.Fatalf("Commit left %q", got)
			}
			s.Abort() // after Commit: nothing happens
			if _, err := os.Stat(dst); err != nil {
				t.Fatalf("Abort after Commit removed dst: %v", err)
			}
		})
	}
	t.Run("mixed alignment", func(t *testing.T) {
		// Aligned leaves go direct, the rest through the page cache:
		// the bytes must come out in order whatever the mix.
		dst := filepath.Join(t.TempDir(), "out.bin")
		s, err := CreateStaged(dst)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for _, p := range [][]byte{data[:1<<20], data[1<<20 : 2<<20], data[5:4101], data[2<<20 : 3<<20], data[7 : 1<<20+7], data[:777]} {
			if _, err := s.Write(p); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
		}
		if _, err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dst has %d bytes (%v), want the %d written", len(got), err, len(want))
		}
	})
	t.Run("buffers", func(t *testing.T) {
		for _, groups := range [][][][]byte{
			{{data[:1<<20], data[1<<20 : 2<<20], data[2<<20 : 3<<20]}, {data[3<<20 : 4<<20]}},
			{{data[:1<<20]}, {data[1<<20 : 2<<20], data[9:100], data[2<<20 : 3<<20]}, {data[3<<20 : 4<<20]}},
			{{data[1:4097], data[:1<<20]}, {}},
		} {
			dst := filepath.Join(t.TempDir(), "out.bin")
			s, err := CreateStaged(dst)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for _, g := range groups {
				n, err := s.WriteBuffers(g)
				var glen int
				for _, p := range g {
					want = append(want, p...)
					glen += len(p)
				}
				if err != nil || n != int64(glen) {
					t.Fatalf("WriteBuffers = %d, %v; want %d", n, err, glen)
				}
			}
			if n, err := s.Commit(); err != nil || n != int64(len(want)) {
				t.Fatalf("Commit = %d, %v; want %d", n, err, len(want))
			}
			if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("dst has %d bytes (%v), want the %d written", len(got), err, len(want))
			}
		}
	})
	t.Run("existing dst", func(t *testing.T) {
		dir := t.TempDir()
		dst := filepath.Join(dir, "out.bin")
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := CreateStaged(dst); !errors.Is(err, ErrExist) {
			t.Fatalf("CreateStaged over an existing file = %v, want ErrExist", err)
		}
		if got := leftovers(t, dir, "out.bin"); len(got) > 0 {
			t.Fatalf("left %q", got)
		}
	})
}
