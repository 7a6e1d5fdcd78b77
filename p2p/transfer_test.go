package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// dagPair is two connected hosts: a serves the DAG stream to whom allow
// accepts, b fetches into its own blockstore.
func dagPair(t testing.TB, bsA blockstore.Blockstore, allow func(peer.ID) bool) (a, b *Host, bsB blockstore.Blockstore) {
	t.Helper()
	ca, cb := localConfig(t), localConfig(t)
	ca.Blockstore, ca.DAGStreamAllowed = bsA, allow
	bsB = newBlockstore()
	cb.Blockstore = bsB
	cb.DAGStreamAllowed = func(peer.ID) bool { return true }
	a, b = startHost(t, ca), startHost(t, cb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Connect(ctx, addrWith(t, a, "tcp")); err != nil {
		t.Fatal(err)
	}
	return a, b, bsB
}

// countingSink is a BlockSink over a blockstore that records its calls.
type countingSink struct {
	blockstore.Blockstore
	mu     sync.Mutex
	calls  int
	blocks int
}

func (s *countingSink) PutMany(ctx context.Context, bs []blocks.Block) error {
	s.mu.Lock()
	s.calls++
	s.blocks += len(bs)
	s.mu.Unlock()
	return s.Blockstore.PutMany(ctx, bs)
}

func offlineDAG(bs blockstore.Blockstore) ipld.DAGService {
	return merkledag.NewDAGService(blockservice.New(bs, nil))
}

func TestFetchDAGFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA := newBlockstore()
	data := make([]byte, 5<<20+777)
	rand.NewChaCha8([32]byte{3}).Read(data)
	root := importFile(t, offlineDAG(bsA), data).Cid()

	var a *Host
	allow := func(p peer.ID) bool { return true }
	a, b, bsB := dagPair(t, bsA, allow)
	sink := &countingSink{Blockstore: bsB}
	st, err := b.FetchDAG(ctx, a.ID(), root, sink)
	if err != nil {
		t.Fatal(err)
	}
	// 21 leaves of 256 KiB and the root.
	if st.Blocks != 22 || sink.blocks != 22 || st.Bytes < int64(len(data)) {
		t.Errorf("stats %+v, sink got %d blocks; want 22 blocks of at least %d bytes", st, sink.blocks, len(data))
	}
	nd, err := offlineDAG(bsB).Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(ctx, nd, offlineDAG(bsB))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ from the %d sent", len(got), len(data))
	}

	// Everything is local now: a second fetch asks for nothing.
	st, err = b.FetchDAG(ctx, a.ID(), root, sink)
	if err != nil || st.Blocks != 0 {
		t.Errorf("second fetch: %+v, %v; want nothing to do", st, err)
	}
}

func TestFetchDAGTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bsA := newBlockstore()
	const files = 1000
	root := buildTree(t, ctx, offlineDAG(bsA), files, 4<<10)
	a, b, bsB := dagPair(t, bsA, func(peer.ID) bool { return true })
	if ps := b.DAGPeers(); len(ps) != 1 || ps[0] != a.ID() {
		t.Errorf("DAGPeers = %v, want [%s]", ps, a.ID())
	}
	start := time.Now()
	st, err := b.FetchDAG(ctx, a.ID(), root, bsB)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched %d blocks (%d bytes) in %v", st.Blocks, st.Bytes, time.Since(start))
	// Walk the tree with no network: every block must be there, and equal.
	n := fetchTree(t, ctx, offlineDAG(bsB), root)
	if n < files+1 || st.Blocks != n {
		t.Fatalf("walked %d blocks offline, fetched %d; want at least %d", n, st.Blocks, files+1)
	}
	keys, err := bsA.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for c := range keys {
		want, _ := bsA.Get(ctx, c)
		got, err := bsB.Get(ctx, c)
		if err != nil || !bytes.Equal(got.RawData(), want.RawData()) {
			t.Fatalf("block %s differs or is missing: %v", c, err)
		}
	}
}

func TestFetchDAGRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow func(peer.ID) bool
	}{
		{"nil allows nobody", nil},
		{"not a member", func(peer.ID) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			bsA := newBlockstore()
			blk := rawBlock(t, []byte("secret"))
			if err := bsA.Put(ctx, blk); err != nil {
				t.Fatal(err)
			}
			a, b, bsB := dagPair(t, bsA, tc.allow)
			_, err := b.FetchDAG(ctx, a.ID(), blk.Cid(), bsB)
			if !errors.Is(err, ErrDAGRefused) {
				t.Fatalf("err = %v, want ErrDAGRefused", err)
			}
			if ok, _ := bsB.Has(ctx, blk.Cid()); ok {
				t.Error("a refused fetch stored the block")
			}
			if ps := a.DAGPeers(); len(ps) != 0 {
				t.Errorf("a's DAGPeers = %v, want none", ps)
			}
			// b is no member of a's, but speaks the DAG stream: a get on
			// a may ask it (once identify has told a its protocols).
			deadline := time.Now().Add(5 * time.Second)
			for ps := a.DAGSources(4); len(ps) != 1 || ps[0] != b.ID(); ps = a.DAGSources(4) {
				if time.Now().After(deadline) {
					t.Fatalf("a's DAGSources = %v, want [%s]", ps, b.ID())
				}
				time.Sleep(20 * time.Millisecond) // identify runs on its own
			}
			if ps := a.DAGSources(0); len(ps) != 0 {
				t.Errorf("a's DAGSources(0) = %v, want none", ps)
			}
		})
	}
}

// TestFetchDAGThroughBlockFilter: a peer that is not a member gets over
// the DAG stream exactly the blocks BlockFilter gives it (a share), and
// nothing of what it refuses: refused blocks are reported missing, as
// bitswap would answer for them.
func TestFetchDAGThroughBlockFilter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA := newBlockstore()
	data := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{9}).Read(data)
	shared := importFile(t, offlineDAG(bsA), data).Cid()
	private := importFile(t, offlineDAG(bsA), []byte("private notes")).Cid()
	sharedSet := cid.NewSet()
	if err := merkledag.Walk(ctx, merkledag.GetLinksWithDAG(offlineDAG(bsA)), shared, sharedSet.Visit); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := 0
	ca, cb := localConfig(t), localConfig(t)
	ca.Blockstore = bsA
	ca.DAGStreamAllowed = func(peer.ID) bool { return false }
	ca.BlockFilter = func(_ peer.ID, c cid.Cid) bool {
		mu.Lock()
		asked++
		mu.Unlock()
		return sharedSet.Has(c)
	}
	bsB := newBlockstore()
	cb.Blockstore = bsB
	a, b := startHost(t, ca), startHost(t, cb)
	if _, err := b.Connect(ctx, addrWith(t, a, "tcp")); err != nil {
		t.Fatal(err)
	}

	st, err := b.FetchDAG(ctx, a.ID(), shared, bsB)
	if err != nil {
		t.Fatalf("shared DAG: %v", err)
	}
	if st.Blocks != sharedSet.Len() {
		t.Errorf("fetched %d blocks, the share has %d", st.Blocks, sharedSet.Len())
	}
	r, err := uio.NewDagReader(ctx, mustGet(t, offlineDAG(bsB), shared), offlineDAG(bsB))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("shared file read back: %v (equal %v)", err, bytes.Equal(got, data))
	}
	mu.Lock()
	if asked < sharedSet.Len() {
		t.Errorf("BlockFilter was asked %d times for %d blocks sent", asked, sharedSet.Len())
	}
	mu.Unlock()

	_, err = b.FetchDAG(ctx, a.ID(), private, bsB)
	if !errors.Is(err, ErrDAGIncomplete) {
		t.Fatalf("unshared DAG: err = %v, want ErrDAGIncomplete (reported missing)", err)
	}
	if ok, _ := bsB.Has(ctx, private); ok {
		t.Error("a block BlockFilter refused was sent")
	}
}

// manyStore is a Blockstore with GetMany, as *blobstore.Store has.
type manyStore struct {
	blockstore.Blockstore
	mu    sync.Mutex
	calls int
}

func (m *manyStore) GetMany(ctx context.Context, cs []cid.Cid) ([]blocks.Block, error) {
	m.mu.Lock()
	m.calls++
	m.mu.Unlock()
	out := make([]blocks.Block, len(cs))
	for i, c := range cs {
		b, err := m.Get(ctx, c)
		if ipld.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// TestFetchDAGReadsLeavesInBatches: a sender whose store has GetMany reads
// a file's leaves through it, and a leaf it lacks is still reported
// missing in its place while the others arrive.
func TestFetchDAGReadsLeavesInBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA := &manyStore{Blockstore: newBlockstore()}
	data := make([]byte, 5<<20+777)
	rand.NewChaCha8([32]byte{4}).Read(data)
	rootNode := importFile(t, offlineDAG(bsA), data)
	lost := rootNode.Links()[17].Cid
	if err := bsA.DeleteBlock(ctx, lost); err != nil {
		t.Fatal(err)
	}
	a, b, bsB := dagPair(t, bsA, func(peer.ID) bool { return true })
	st, err := b.FetchDAG(ctx, a.ID(), rootNode.Cid(), bsB)
	if !errors.Is(err, ErrDAGIncomplete) {
		t.Fatalf("err = %v, want ErrDAGIncomplete", err)
	}
	if st.Blocks != 21 { // the root and 20 of 21 leaves
		t.Errorf("received %d blocks, want 21", st.Blocks)
	}
	for i, l := range rootNode.Links() {
		if ok, _ := bsB.Has(ctx, l.Cid); ok == (l.Cid == lost) {
			t.Errorf("leaf %d: stored %v", i, ok)
		}
	}
	bsA.mu.Lock()
	defer bsA.mu.Unlock()
	if bsA.calls != 2 { // 16 + 5 leaves
		t.Errorf("GetMany called %d times, want 2", bsA.calls)
	}
}

func mustGet(t *testing.T, d ipld.DAGService, c cid.Cid) ipld.Node {
	t.Helper()
	n, err := d.Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// corruptStore returns bad data for one CID.
type corruptStore struct {
	blockstore.Blockstore
	bad cid.Cid
}

func (s *corruptStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := s.Blockstore.Get(ctx, c)
	if err != nil || !c.Equals(s.bad) {
		return b, err
	}
	d := bytes.Clone(b.RawData())
	d[len(d)/2] ^= 1
	return blocks.NewBlockWithCid(d, c)
}

func TestFetchDAGRejectsCorruptBlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA := newBlockstore()
	data := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{4}).Read(data)
	nd := importFile(t, offlineDAG(bsA), data)
	bad := nd.Links()[3].Cid
	a, b, bsB := dagPair(t, &corruptStore{Blockstore: bsA, bad: bad}, func(peer.ID) bool { return true })
	_, err := b.FetchDAG(ctx, a.ID(), nd.Cid(), bsB)
	if !errors.Is(err, ErrDAGCorrupt) {
		t.Fatalf("err = %v, want ErrDAGCorrupt", err)
	}
	if ok, _ := bsB.Has(ctx, bad); ok {
		t.Fatal("the corrupt block was stored")
	}
}

func TestFetchDAGResumesAndReportsMissing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsA := newBlockstore()
	data := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{5}).Read(data)
	nd := importFile(t, offlineDAG(bsA), data)
	leaves := nd.Links() // 16 leaves of 256 KiB
	a, b, bsB := dagPair(t, bsA, func(peer.ID) bool { return true })

	// b already has the root and the first 10 leaves; a has lost leaf 14.
	for i, l := range append([]*ipld.Link{{Cid: nd.Cid()}}, leaves[:10]...) {
		blk, err := bsA.Get(ctx, l.Cid)
		if err != nil {
			t.Fatal(i, err)
		}
		if err := bsB.Put(ctx, blk); err != nil {
			t.Fatal(err)
		}
	}
	lost := leaves[14].Cid
	if err := bsA.DeleteBlock(ctx, lost); err != nil {
		t.Fatal(err)
	}
	st, err := b.FetchDAG(ctx, a.ID(), nd.Cid(), bsB)
	if !errors.Is(err, ErrDAGIncomplete) {
		t.Fatalf("err = %v, want ErrDAGIncomplete", err)
	}
	if st.Blocks != 5 {
		t.Errorf("received %d blocks, want the 5 missing ones a has", st.Blocks)
	}
	for i, l := range leaves {
		ok, _ := bsB.Has(ctx, l.Cid)
		if ok != (i != 14) {
			t.Errorf("leaf %d stored: %v", i, ok)
		}
	}
}

// TestReceiveDAGHostileStreams feeds receiveDAG hand-made streams (no
// sockets) and checks that nothing bad reaches the sink.
func TestReceiveDAGHostileStreams(t *testing.T) {
	ctx := context.Background()
	bs := newBlockstore()
	data := make([]byte, 600<<10)
	rand.NewChaCha8([32]byte{6}).Read(data)
	nd := importFile(t, offlineDAG(bs), data) // root and 3 leaves
	get := func(c cid.Cid) []byte {
		b, err := bs.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return b.RawData()
	}
	root, l0, l1, l2 := nd.Cid(), nd.Links()[0].Cid, nd.Links()[1].Cid, nd.Links()[2].Cid
	stranger := rawBlock(t, []byte("not in this DAG"))
	type frame struct {
		kind byte
		c    cid.Cid
		data []byte
	}
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[0] ^= 0xff; return b }
	for _, tc := range []struct {
		name   string
		frames []frame
		want   error
		stored int
	}{
		{"complete", []frame{{'B', root, get(root)}, {'B', l0, get(l0)}, {'B', l1, get(l1)}, {'B', l2, get(l2)}, {'E', cid.Undef, nil}}, nil, 4},
		{"corrupt leaf", []frame{{'B', root, get(root)}, {'B', l0, get(l0)}, {'B', l1, flip(get(l1))}, {'B', l2, get(l2)}, {'E', cid.Undef, nil}}, ErrDAGCorrupt, 0},
		{"block not asked for", []frame{{'B', root, get(root)}, {'B', stranger.Cid(), stranger.RawData()}}, ErrDAGCorrupt, 0},
		{"child before parent", []frame{{'B', l0, get(l0)}}, ErrDAGCorrupt, 0},
		{"ends early", []frame{{'B', root, get(root)}, {'E', cid.Undef, nil}}, ErrDAGCorrupt, 0},
		{"truncated", []frame{{'B', root, get(root)}}, io.ErrUnexpectedEOF, 1}, // a cut stream keeps what arrived
		{"missing", []frame{{'B', root, get(root)}, {'B', l0, get(l0)}, {'M', l1, nil}, {'B', l2, get(l2)}, {'E', cid.Undef, nil}}, ErrDAGIncomplete, 3},
		{"refused", []frame{{'X', cid.Undef, []byte("no")}}, ErrDAGRefused, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			for _, f := range tc.frames {
				switch f.kind {
				case 'B':
					_ = writeBlockFrame(w, f.c, f.data)
				case 'M':
					_ = writeMissingFrame(w, f.c)
				case 'X':
					_ = writeRefusedFrame(w, string(f.data))
				default:
					_ = w.WriteByte(f.kind)
				}
			}
			_ = w.Flush()
			sink := &countingSink{Blockstore: newBlockstore()}
			_, err := receiveDAG(ctx, bufio.NewReader(&buf), []cid.Cid{root}, sink, func() {})
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if sink.blocks != tc.stored {
				t.Errorf("sink got %d blocks, want %d", sink.blocks, tc.stored)
			}
			if ok, _ := sink.Has(ctx, stranger.Cid()); ok {
				t.Error("a block outside the DAG was stored")
			}
		})
	}
}

// A stream that goes quiet after some blocks, and is then given up on,
// keeps those blocks: they are handed on while the next read blocks, not
// only once another frame arrives.
func TestReceiveDAGQuietStreamKeepsWhatArrived(t *testing.T) {
	bs := newBlockstore()
	data := make([]byte, 600<<10)
	rand.NewChaCha8([32]byte{7}).Read(data)
	nd := importFile(t, offlineDAG(bs), data)
	root, l0 := nd.Cid(), nd.Links()[0].Cid
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriter(pw)
		for _, c := range []cid.Cid{root, l0} {
			b, err := bs.Get(context.Background(), c)
			if err != nil {
				_ = pw.CloseWithError(err)
				return
			}
			_ = writeBlockFrame(w, c, b.RawData())
		}
		_ = w.Flush() // then silence, until the receiver gives up
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*dagGroupWait+time.Second)
	defer cancel()
	abort := func() { _ = pr.CloseWithError(errors.New("aborted")) }
	stop := context.AfterFunc(ctx, abort) // as requestDAG resets the stream
	defer stop()
	sink := &countingSink{Blockstore: newBlockstore()}
	_, err := receiveDAG(ctx, bufio.NewReader(pr), []cid.Cid{root}, sink, abort)
	if err == nil { // the deadline, or the read it cut short
		t.Fatal("a stream that went quiet was taken for complete")
	}
	for _, c := range []cid.Cid{root, l0} {
		if ok, _ := sink.Has(context.Background(), c); !ok {
			t.Errorf("block %s, which arrived before the stream went quiet, was not kept", c)
		}
	}
}

func FuzzDAGFrames(f *testing.F) {
	c := rawBlock(f, []byte("x")).Cid()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	_ = writeBlockFrame(w, c, []byte("x"))
	_ = writeMissingFrame(w, c)
	_ = writeRefusedFrame(w, "no")
	_ = w.WriteByte(frameEnd)
	_ = w.Flush()
	f.Add(buf.Bytes())
	f.Add(encodeDAGRequest([]cid.Cid{c, c}))
	f.Add([]byte{frameBlock, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for range 64 {
			fr, err := readDAGFrame(r)
			if err != nil {
				break
			}
			if fr.kind == frameBlock && len(fr.data) > maxDAGBlock {
				t.Fatalf("block of %d bytes accepted", len(fr.data))
			}
		}
		wants, err := decodeDAGRequest(bufio.NewReader(bytes.NewReader(in)))
		if err == nil {
			again, err := decodeDAGRequest(bufio.NewReader(bytes.NewReader(encodeDAGRequest(wants))))
			if err != nil || len(again) != len(wants) {
				t.Fatalf("request does not round-trip: %v", err)
			}
			for i := range wants {
				if !again[i].Equals(wants[i]) {
					t.Fatalf("want %d: %s became %s", i, wants[i], again[i])
				}
			}
		}
	})
}

type discardSink struct{}

func (discardSink) PutMany(context.Context, []blocks.Block) error { return nil }

// BenchmarkFetchDAG moves a -p2p.mib MiB UnixFS file (1 MiB leaves) over
// the DAG stream, verifying every block; compare BenchmarkFetch (bitswap).
//
//	go test -run - -bench FetchDAG -benchtime 1x ./p2p -p2p.mib 1024
func BenchmarkFetchDAG(b *testing.B) {
	ctx := context.Background()
	bsA := newBlockstore()
	data := make([]byte, *benchMiB<<20)
	rand.NewChaCha8([32]byte{8}).Read(data)
	root := importFileChunk(b, offlineDAG(bsA), data, 1<<20).Cid()
	data = nil
	for b.Loop() {
		b.StopTimer()
		a, h, _ := dagPair(b, bsA, func(peer.ID) bool { return true })
		cpu0 := cpuTime(b)
		b.StartTimer()
		st, err := h.FetchDAG(ctx, a.ID(), root, discardSink{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.SetBytes(st.Bytes)
		b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(st.Bytes>>20), "cpu-ms/MiB")
		b.StartTimer()
	}
}
