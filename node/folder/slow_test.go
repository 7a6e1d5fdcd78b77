package folder

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/p2p"
)

// slowSender serves the DAG stream (/pcnode/dag/1.0.0, wire format in
// p2p/transfer_wire.go) from a store, slowly: each block frame goes out
// in chunks, one per tick. It stands for a slow, lossy link.
type slowSender struct {
	store  *blobstore.Store
	chunk  int
	tick   time.Duration
	stopAt int           // the first call stops after this many blocks (0: never)
	hold   chan struct{} // the stopped call waits for it
	// what it did, by call
	mu    sync.Mutex
	calls int
	sent  int64 // block bytes written in full, all calls
	wants []int // wants asked for, by call
}

func (s *slowSender) handle(st network.Stream) {
	defer st.Close()
	r := bufio.NewReader(st)
	wants, err := readWants(r)
	if err != nil {
		_ = st.Reset()
		return
	}
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.wants = append(s.wants, len(wants))
	s.mu.Unlock()
	ctx := context.Background()
	n := 0
	var stack []cid.Cid
	for _, root := range wants {
		stack = append(stack[:0], root)
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if call == 1 && s.stopAt > 0 && n == s.stopAt {
				<-s.hold // a link that goes quiet
				_ = st.Reset()
				return
			}
			b, err := s.store.Get(ctx, c)
			if err != nil {
				_ = st.Reset()
				return
			}
			frame := append([]byte{'B'}, binary.AppendUvarint(nil, uint64(len(c.KeyString())))...)
			frame = append(frame, c.KeyString()...)
			frame = binary.AppendUvarint(frame, uint64(len(b.RawData())))
			frame = append(frame, b.RawData()...)
			for i := 0; i < len(frame); i += s.chunk {
				if _, err := st.Write(frame[i:min(i+s.chunk, len(frame))]); err != nil {
					return
				}
				time.Sleep(s.tick) // the link's pace, not a synchronisation
			}
			s.mu.Lock()
			s.sent += int64(len(b.RawData()))
			s.mu.Unlock()
			n++
			if c.Type() == cid.DagProtobuf {
				nd, err := merkledag.DecodeProtobuf(b.RawData())
				if err != nil {
					_ = st.Reset()
					return
				}
				ls := nd.Links()
				for i := len(ls) - 1; i >= 0; i-- {
					stack = append(stack, ls[i].Cid)
				}
			}
		}
	}
	_, _ = st.Write([]byte{'E'})
}

func readWants(r *bufio.Reader) ([]cid.Cid, error) {
	if v, err := binary.ReadUvarint(r); err != nil || v != 1 {
		return nil, fmt.Errorf("version %d: %v", v, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	var out []cid.Cid
	for range n {
		l, err := binary.ReadUvarint(r)
		if err != nil || l > 256 {
			return nil, fmt.Errorf("cid length %d: %v", l, err)
		}
		buf := make([]byte, l)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		c, err := cid.Cast(buf)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *slowSender) stats() (calls int, sent int64, wants []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.sent, append([]int(nil), s.wants...)
}

// slowCase is a folder's content for the slow-stream tests: files is the
// file sizes; chunk and tick pace the sender.
type slowCase struct {
	name  string
	files []int
	chunk int
}

var slowCases = []slowCase{
	{"single-block files", []int{48 << 10, 48 << 10, 48 << 10, 48 << 10}, 4 << 10},
	{"files of several blocks", []int{mib + 300<<10, mib + 200<<10}, 64 << 10},
}

// startSlow makes a folder of tc's files on a, served by a slowSender,
// and starts a and b (b's fetch gives up after stall without progress).
func startSlow(t *testing.T, tc slowCase, stall, tick time.Duration, stopAt int) (b *dev, s *slowSender, payload int64) {
	t.Helper()
	devs, _ := newDevs(t, 2, "slow", func(i int, c *Config) {
		c.NoWatch = true
		c.fetchStall = stall
	})
	a, b := devs[0], devs[1]
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, n := range tc.files {
		if err := os.WriteFile(filepath.Join(a.dir, fmt.Sprintf("f%d.bin", i)), randData(uint64(40+i), n), 0o644); err != nil {
			t.Fatal(err)
		}
		payload += int64(n)
	}
	s = &slowSender{store: a.store, chunk: tc.chunk, tick: tick, stopAt: stopAt, hold: make(chan struct{})}
	t.Cleanup(func() { close(s.hold) }) // runs before the hosts close
	a.h.Libp2p().SetStreamHandler(p2p.DAGProtocol, s.handle)
	a.start(t)
	b.start(t)
	connect(t, a, b)
	return b, s, payload
}

// A stream slower than the fetch's stall limit, with steady progress, is
// not cancelled: each read counts, not only the (8 MiB) batches that the
// sink is handed. The sender takes about 2.5 s at one chunk every 50 ms,
// for a stall limit of 1 s: a fetch that counted only batches would be
// cancelled and asked again.
func TestSlowStreamNotCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow by design")
	}
	for _, tc := range slowCases {
		t.Run(tc.name, func(t *testing.T) {
			var total int
			for _, n := range tc.files {
				total += n
			}
			tick := 2500 * time.Millisecond / time.Duration(total/tc.chunk)
			b, s, payload := startSlow(t, tc, time.Second, tick, 0)
			waitFor(t, time.Minute, "b has the files", func() bool {
				st := b.f.Status()
				return st.Files == len(tc.files) && st.State == "idle"
			})
			calls, sent, wants := s.stats()
			if calls != 1 || sent != payload+slowInnerBytes(t, b) {
				t.Errorf("the sender was asked %d times (wants %v) and sent %d bytes for %d bytes of files: the slow stream was cancelled", calls, wants, sent, payload)
			}
			if got := b.f.Status().StreamedBytes; got != sent {
				t.Errorf("b counted %d bytes over the DAG stream, the sender sent %d", got, sent)
			}
		})
	}
}

// A stream that goes quiet is cancelled after the stall limit, and what
// had arrived is kept: the next fetch asks only for the rest.
func TestStalledStreamKeepsWhatArrived(t *testing.T) {
	if testing.Short() {
		t.Skip("slow by design")
	}
	for _, tc := range slowCases {
		t.Run(tc.name, func(t *testing.T) {
			// Two blocks, then silence: two small files, or the root and
			// first leaf of the first large file.
			b, s, payload := startSlow(t, tc, time.Second, 10*time.Millisecond, 2)
			waitFor(t, time.Minute, "b has the files", func() bool {
				st := b.f.Status()
				return st.Files == len(tc.files) && st.State == "idle"
			})
			calls, sent, wants := s.stats()
			if calls < 2 {
				t.Fatalf("the sender was asked %d times: the stalled stream was not cancelled", calls)
			}
			if sent > payload+slowInnerBytes(t, b) {
				t.Errorf("the sender sent %d bytes for %d bytes of files (asked %d times, wants %v): what arrived before the stall came again", sent, payload, calls, wants)
			}
		})
	}
}

// slowInnerBytes is the size of the inner nodes of b's files (sent with
// the leaves).
func slowInnerBytes(t *testing.T, b *dev) int64 {
	t.Helper()
	var n int64
	for _, rel := range []string{"f0.bin", "f1.bin", "f2.bin", "f3.bin"} {
		e, ok := b.f.Entry(rel)
		if !ok || e.CID.Type() != cid.DagProtobuf {
			continue
		}
		blk, err := b.store.Get(context.Background(), e.CID)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(blk.RawData()))
	}
	return n
}
