package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// fileTee follows the verified blocks of a DAG stream and, while they
// arrive in the order of a UnixFS file's leaves, writes the file's content
// to w as well, on a goroutine of its own: `get` then has its output
// written when the fetch ends, in parallel with it, instead of reading
// the whole file back from the store to export it afterwards (a second
// pass over every byte, on one core, after the transfer).
//
// The DAG stream sends a DAG depth first in link order, so a file's
// blocks come as root, inner nodes and leaves in file order. Anything else
// breaks the tee for good and the caller exports as before: a directory,
// a resumed fetch (stored subtrees are not sent), a leaf that occurs twice
// in the file (sent once), inner nodes with data of their own, identity
// CIDs. Blocks reach the tee only after the DAG stream verified them.
type fileTee struct {
	root    cid.Cid
	next    []cid.Cid // blocks still expected, the next one last
	started bool
	broken  bool
	size    uint64 // the file size its root declares

	q       chan [][]byte
	done    chan struct{}
	w       io.Writer
	werr    error // the first write error; read after done
	written uint64
	closed  bool
}

// teeQueue is how many batches of leaves (about 8 MiB each, the DAG
// stream's sink batch) may wait for the writer: enough to absorb a slow
// write, little memory.
const teeQueue = 4

func newFileTee(root cid.Cid, w io.Writer) *fileTee {
	t := &fileTee{root: root, w: w, q: make(chan [][]byte, teeQueue), done: make(chan struct{})}
	// A *blobstore.StagedFile writes a batch in one request.
	bw, _ := w.(interface {
		WriteBuffers([][]byte) (int64, error)
	})
	go func() {
		defer close(t.done)
		for leaves := range t.q {
			if t.werr != nil {
				continue
			}
			if bw != nil {
				n, err := bw.WriteBuffers(leaves)
				t.written += uint64(n)
				t.werr = err
				continue
			}
			for _, d := range leaves {
				n, err := t.w.Write(d)
				t.written += uint64(n)
				if err != nil {
					t.werr = err
					break
				}
			}
		}
	}()
	return t
}

// add follows bs, blocks of the stream in stream order, already stored.
// It blocks while the writer is teeQueue batches behind.
func (t *fileTee) add(ctx context.Context, bs []blocks.Block) error {
	if t.broken || t.closed {
		return nil
	}
	var leaves [][]byte
	for _, b := range bs {
		if !t.follow(b) {
			t.broken = true
			return nil
		}
		if b.Cid().Type() == cid.Raw {
			leaves = append(leaves, b.RawData())
		}
	}
	if len(leaves) == 0 {
		return nil
	}
	select {
	case t.q <- leaves:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// follow checks that b is the block the file's order expects next and
// expects its children.
func (t *fileTee) follow(b blocks.Block) bool {
	c := b.Cid()
	if !t.started {
		if !c.Equals(t.root) {
			return false
		}
		t.started = true
	} else {
		if len(t.next) == 0 || !t.next[len(t.next)-1].Equals(c) {
			return false
		}
		t.next = t.next[:len(t.next)-1]
	}
	switch c.Type() {
	case cid.Raw:
		if c.Equals(t.root) {
			t.size = uint64(len(b.RawData()))
		}
		return true
	case cid.DagProtobuf:
		n, err := merkledag.DecodeProtobuf(b.RawData())
		if err != nil {
			return false
		}
		fsn, err := ft.FSNodeFromBytes(n.Data())
		if err != nil || (fsn.Type() != ft.TFile && fsn.Type() != ft.TRaw) || len(fsn.Data()) > 0 {
			return false
		}
		if c.Equals(t.root) {
			t.size = fsn.FileSize()
		}
		ls := n.Links()
		for i := len(ls) - 1; i >= 0; i-- {
			t.next = append(t.next, ls[i].Cid)
		}
		return true
	}
	return false
}

// errTeeIncomplete: the stream did not carry the whole file in order.
var errTeeIncomplete = errors.New("the stream did not carry the file in order")

// finish waits for the writer and reports whether w got the whole file.
// It must be called once the stream is over, whatever its outcome.
func (t *fileTee) finish() error {
	if !t.closed {
		t.closed = true
		close(t.q)
	}
	<-t.done
	switch {
	case t.werr != nil:
		return t.werr
	case !t.started || t.broken || len(t.next) > 0:
		return errTeeIncomplete
	case t.written != t.size:
		return fmt.Errorf("%w: wrote %d bytes, the file has %d", errTeeIncomplete, t.written, t.size)
	}
	return nil
}
