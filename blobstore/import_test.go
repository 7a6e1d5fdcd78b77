package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	mh "github.com/multiformats/go-multihash"
)

func TestImportBlake3(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Config{Dir: t.TempDir()})
	data := randBytes(7, 3*bigBlock+5)
	res, err := s.ImportReader(ctx, bytes.NewReader(data), ImportOptions{ChunkSize: bigBlock, Hash: mh.BLAKE3})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Root.Prefix().MhType; got != mh.BLAKE3 {
		t.Fatalf("root hash 0x%x, want blake3", got)
	}
	n, err := NewDAG(s, nil).Get(ctx, res.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range n.Links() {
		if l.Cid.Prefix().MhType != mh.BLAKE3 {
			t.Errorf("leaf %s is not blake3", l.Cid)
		}
	}
	r, err := Cat(ctx, NewDAG(s, nil), res.Root)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, data) {
		t.Error("blake3 round trip differs")
	}
	if v, err := s.Verify(ctx, nil); err != nil || v.Checked != res.Blocks || len(v.Corrupt) != 0 {
		t.Errorf("Verify = %+v, %v", v, err)
	}
	if _, err := s.ImportReader(ctx, strings.NewReader("x"), ImportOptions{Hash: mh.MD5}); err == nil {
		t.Error("md5 accepted")
	}
}

// TestImportCancel checks that a cancelled import returns promptly with
// the context's error and leaks no goroutine-held state (Close returns).
func TestImportCancel(t *testing.T) {
	s := mustOpen(t, Config{Dir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	r := io.MultiReader(bytes.NewReader(randBytes(1, 1<<20)), readerFunc(func(p []byte) (int, error) {
		cancel()
		return 0, errors.New("source broke")
	}))
	if _, err := s.ImportReader(ctx, r, ImportOptions{ChunkSize: 64 << 10}); err == nil {
		t.Fatal("import of a failing reader succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
