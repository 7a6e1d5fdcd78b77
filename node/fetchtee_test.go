package node

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/share"
)

// streamOrder returns the blocks under root as the DAG stream sends them:
// depth first in link order, each block once.
func streamOrder(t *testing.T, st *blobstore.Store, root cid.Cid) []blocks.Block {
	t.Helper()
	ctx := context.Background()
	seen := map[string]bool{}
	var out []blocks.Block
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c.KeyString()] {
			continue
		}
		seen[c.KeyString()] = true
		b, err := st.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		if c.Type() == cid.DagProtobuf {
			n, err := merkledag.DecodeProtobuf(b.RawData())
			if err != nil {
				t.Fatal(err)
			}
			ls := n.Links()
			for i := len(ls) - 1; i >= 0; i-- {
				stack = append(stack, ls[i].Cid)
			}
		}
	}
	return out
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestFileTee(t *testing.T) {
	ctx := context.Background()
	st, err := blobstore.Open(ctx, blobstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	random := func(n int, seed uint64) []byte {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
		return b
	}
	importBytes := func(data []byte) cid.Cid {
		// 1 KiB leaves: 200+ leaves make two levels of inner nodes.
		res, err := st.ImportReader(ctx, bytes.NewReader(data), blobstore.ImportOptions{ChunkSize: 1024})
		if err != nil {
			t.Fatal(err)
		}
		return res.Root
	}
	big := random(300*1024+77, 1)
	small := random(500, 2)
	repeated := bytes.Repeat([]byte{0}, 8*1024) // equal leaves: sent once
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	dirRes, err := st.Import(ctx, dir, blobstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bigRoot := importBytes(big)
	bigStream := streamOrder(t, st, bigRoot)
	errDisk := errors.New("disk on fire")

	for _, tc := range []struct {
		name   string
		root   cid.Cid
		stream []blocks.Block
		batch  int
		w      func(*bytes.Buffer) interface{ Write([]byte) (int, error) }
		want   []byte // nil: the tee must fail
		err    error
	}{
		{name: "file in order", root: bigRoot, stream: bigStream, batch: 7, want: big},
		{name: "file in one batch", root: bigRoot, stream: bigStream, batch: len(bigStream), want: big},
		{name: "single raw leaf", root: importBytes(small), batch: 1, want: small},
		{name: "repeated leaf sent once", root: importBytes(repeated), batch: 3, err: errTeeIncomplete},
		{name: "directory", root: dirRes.Root, batch: 1, err: errTeeIncomplete},
		{name: "resumed: root not sent", root: bigRoot, stream: bigStream[1:], batch: 5, err: errTeeIncomplete},
		{name: "last leaf missing", root: bigRoot, stream: bigStream[:len(bigStream)-1], batch: 5, err: errTeeIncomplete},
		{name: "leaves swapped", root: bigRoot, stream: swapped(bigStream, len(bigStream)-1, len(bigStream)-2), batch: 5, err: errTeeIncomplete},
		{name: "nothing sent", root: bigRoot, stream: []blocks.Block{}, batch: 1, err: errTeeIncomplete},
		{name: "write error", root: bigRoot, stream: bigStream, batch: 5, err: errDisk,
			w: func(*bytes.Buffer) interface{ Write([]byte) (int, error) } { return failWriter{errDisk} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := tc.stream
			if stream == nil {
				stream = streamOrder(t, st, tc.root)
			}
			var buf bytes.Buffer
			var w interface{ Write([]byte) (int, error) } = &buf
			if tc.w != nil {
				w = tc.w(&buf)
			}
			tee := newFileTee(tc.root, w)
			for i := 0; i < len(stream); i += tc.batch {
				if err := tee.add(ctx, stream[i:min(i+tc.batch, len(stream))]); err != nil {
					t.Fatal(err)
				}
			}
			err := tee.finish()
			if tc.want == nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("finish = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("finish = %v", err)
			}
			if !bytes.Equal(buf.Bytes(), tc.want) {
				t.Fatalf("tee wrote %d bytes, want the %d of the file", buf.Len(), len(tc.want))
			}
			if err := tee.finish(); err != nil {
				t.Fatalf("second finish = %v", err)
			}
		})
	}
}

func swapped(bs []blocks.Block, i, j int) []blocks.Block {
	out := append([]blocks.Block(nil), bs...)
	out[i], out[j] = out[j], out[i]
	return out
}

func TestUnsealOutput(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	want := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{9}).Read(want)
	if err := os.WriteFile(plain, want, 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := share.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	if _, _, err := share.Seal(&sealed, plain, key); err != nil {
		t.Fatal(err)
	}
	other, _ := share.NewKey()
	for _, tc := range []struct {
		name  string
		key   share.Key
		abort bool
		err   error // of Commit; nil: the output must be the plaintext
	}{
		{name: "commit", key: key},
		{name: "abort", key: key, abort: true},
		{name: "wrong key", key: other, err: share.ErrKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out")
			u := newUnsealOutput(tc.key, dst)
			// Written in leaf-sized pieces, as the tee does. With a
			// wrong key the decryption stops at once: writes must then
			// fail, not block.
			var werr error
			for b := sealed.Bytes(); len(b) > 0 && werr == nil; {
				n := min(len(b), 1<<20)
				_, werr = u.Write(b[:n])
				b = b[n:]
			}
			if tc.abort {
				u.Abort()
				if _, err := os.Stat(dst); err == nil {
					t.Fatal("Abort left an output")
				}
				return
			}
			n, err := u.Commit()
			if tc.err != nil {
				if !errors.Is(err, tc.err) || werr == nil {
					t.Fatalf("Commit = %v (write error %v), want %v", err, werr, tc.err)
				}
				if _, err := os.Stat(dst); err == nil {
					t.Fatal("a failed decryption left an output")
				}
				return
			}
			if err != nil || werr != nil || n != int64(len(want)) {
				t.Fatalf("Commit = %d, %v (write error %v)", n, err, werr)
			}
			if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("output has %d bytes (%v), want the %d of the plaintext", len(got), err, len(want))
			}
		})
	}
}
