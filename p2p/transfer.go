package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	msmux "github.com/multiformats/go-multistream"
)

// DAGProtocol is the members' fast path: the receiver names the roots of
// the subtrees it lacks and the sender streams every block under them in
// one go, with none of bitswap's per-block want/have round trips. The wire
// format is described in transfer_wire.go.
const DAGProtocol protocol.ID = "/pcnode/dag/1.0.0"

// Errors of FetchDAG that callers branch on.
var (
	// ErrDAGRefused: the peer does not serve the DAG stream to this host
	// (not a member there), or does not speak the protocol.
	ErrDAGRefused = errors.New("dag stream refused")
	// ErrDAGIncomplete: the transfer ended without every block of the
	// DAG; what did arrive was stored, and a later FetchDAG resumes.
	ErrDAGIncomplete = errors.New("dag incomplete")
	// ErrDAGCorrupt: the peer sent a block whose data does not match its
	// CID, or one that is not part of the DAG asked for. Nothing of that
	// block was stored.
	ErrDAGCorrupt = errors.New("corrupt dag stream")
)

// BlockSink receives the verified blocks of a FetchDAG, in large batches.
// *blobstore.BlockWriter is one; a boxo Blockstore is another.
type BlockSink interface {
	PutMany(ctx context.Context, bs []blocks.Block) error
}

// DAGStats counts what one FetchDAG received.
type DAGStats struct {
	Blocks int   // blocks received, verified and stored
	Bytes  int64 // their total size
}

const (
	// dagRequestTimeout bounds how long a sender waits for the request.
	dagRequestTimeout = 30 * time.Second
	// dagWriteTimeout bounds each block write: a receiver that stops
	// reading for this long is dropped.
	dagWriteTimeout = time.Minute
	// dagSinkBatch is the bytes handed to the sink at once: large writes
	// keep the per-commit cost of the store negligible.
	dagSinkBatch = 8 << 20
	// dagInFlight bounds blocks read but not yet verified and handed on
	// (at most 2 MiB each; 1 MiB file leaves make it 32 MiB).
	dagInFlight = 32
	// dagWriteBuffer is the sender's buffer: many small blocks go out in
	// few stream writes.
	dagWriteBuffer = 256 << 10
	// dagGroupWait bounds how long the receiver gathers blocks into one
	// verification group: a stream that brings 16 leaves in less (over
	// 80 MB/s for 1 MiB leaves) is verified 16 at a time.
	dagGroupWait = 200 * time.Millisecond
)

// handleDAG serves one DAG stream request. A peer DAGStreamAllowed
// accepts gets every block under its wants; any other peer, when a
// BlockFilter is set, gets the blocks BlockFilter gives it, each checked
// as bitswap checks it (a refused block is reported missing, as one the
// host lacks, and its subtree is not walked): the fast path for a
// friend fetching a share, with exactly bitswap's policy.
func (h *Host) handleDAG(s network.Stream) {
	p := s.Conn().RemotePeer()
	allowed, filter := h.s.dagAllowed, h.s.blockFilter
	var pass func(cid.Cid) bool
	if allowed == nil || !allowed(p) {
		if filter != nil {
			pass = func(c cid.Cid) bool { return filter(p, c) }
		}
	}
	if pass == nil && (allowed == nil || !allowed(p)) {
		_ = s.SetWriteDeadline(time.Now().Add(dagWriteTimeout))
		_ = writeRefusedFrame(s, "not a member of this cloud")
		_ = s.Close()
		h.s.log.Debug("p2p dag stream refused", "peer", p)
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(dagRequestTimeout))
	wants, err := decodeDAGRequest(bufio.NewReaderSize(s, 4<<10))
	if err != nil {
		h.s.log.Debug("p2p dag stream: bad request", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	_, ctx := h.runningCtx()
	if ctx == nil {
		_ = s.Reset()
		return
	}
	start := time.Now()
	w := bufio.NewWriterSize(s, dagWriteBuffer)
	st, err := sendDAG(ctx, h.s.blockstore, s, w, wants, pass)
	if err == nil {
		err = w.WriteByte(frameEnd)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		h.s.log.Debug("p2p dag stream aborted", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
	h.s.log.Debug("p2p dag stream served", "peer", p, "blocks", st.Blocks, "bytes", st.Bytes, "took", time.Since(start))
}

// sendDAG writes every block under wants, depth first in link order, each
// once. A block it lacks, or that pass (if not nil) refuses, is reported
// with a missing frame and its subtree skipped. Blocks are sent as stored:
// the receiver verifies them.
func sendDAG(ctx context.Context, bs blockstore.Blockstore, dl interface{ SetWriteDeadline(time.Time) error }, w *bufio.Writer, wants []cid.Cid, pass func(cid.Cid) bool) (DAGStats, error) {
	var st DAGStats
	mg, _ := bs.(manyGetter)
	mv, _ := bs.(manyViewer)
	writeData := func(c cid.Cid, data []byte) error {
		if data == nil {
			return writeMissingFrame(w, c)
		}
		if err := writeBlockFrame(w, c, data); err != nil {
			return err
		}
		st.Blocks++
		st.Bytes += int64(len(data))
		return nil
	}
	writeBlock := func(c cid.Cid, b blocks.Block) error {
		if b == nil {
			return writeMissingFrame(w, c)
		}
		return writeData(c, b.RawData())
	}
	seen := make(map[string]struct{})
	var stack []cid.Cid
	for _, root := range wants {
		stack = append(stack[:0], root)
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if c.Prefix().MhType == mh.IDENTITY {
				continue // the data is in the CID
			}
			k := c.KeyString()
			if _, ok := seen[k]; ok {
				continue
			}
			seen[k] = struct{}{}
			_ = dl.SetWriteDeadline(time.Now().Add(dagWriteTimeout))
			if pass != nil && !pass(c) {
				if err := writeMissingFrame(w, c); err != nil {
					return st, err
				}
				continue
			}
			if (mg != nil || mv != nil) && c.Type() == cid.Raw {
				// A run of leaves (a file's, in order) is read and,
				// with the store's hash-on-read, verified in one go.
				batch := []cid.Cid{c}
				var refused cid.Cid
				for len(batch) < dagReadBatch && len(stack) > 0 {
					n := stack[len(stack)-1]
					if n.Type() != cid.Raw || n.Prefix().MhType == mh.IDENTITY {
						break
					}
					stack = stack[:len(stack)-1]
					nk := n.KeyString()
					if _, ok := seen[nk]; ok {
						continue
					}
					seen[nk] = struct{}{}
					if pass != nil && !pass(n) {
						refused = n
						break
					}
					batch = append(batch, n)
				}
				if mv != nil {
					// Written from the store's reused buffers: a frame
					// is copied on (bufio, the stream) before the next
					// block is read.
					if err := mv.ViewMany(ctx, batch, func(i int, data []byte) error {
						return writeData(batch[i], data)
					}); err != nil {
						return st, err
					}
				} else {
					bs, err := mg.GetMany(ctx, batch)
					if err != nil {
						return st, err
					}
					for i, b := range bs {
						if err := writeBlock(batch[i], b); err != nil {
							return st, err
						}
					}
				}
				if refused.Defined() {
					if err := writeMissingFrame(w, refused); err != nil {
						return st, err
					}
				}
				continue
			}
			b, err := bs.Get(ctx, c)
			if ipld.IsNotFound(err) {
				if err := writeMissingFrame(w, c); err != nil {
					return st, err
				}
				continue
			}
			if err != nil {
				return st, err
			}
			data := b.RawData()
			if err := writeBlockFrame(w, c, data); err != nil {
				return st, err
			}
			st.Blocks++
			st.Bytes += int64(len(data))
			ls, err := dagLinks(c, data)
			if err != nil {
				return st, fmt.Errorf("block %s: %w", c, err)
			}
			for i := len(ls) - 1; i >= 0; i-- {
				stack = append(stack, ls[i])
			}
		}
	}
	return st, nil
}

// manyGetter is a Blockstore that reads many blocks at once (in order, a
// missing one nil), as *blobstore.Store does, hashing them together when it
// re-hashes on read.
type manyGetter interface {
	GetMany(ctx context.Context, cs []cid.Cid) ([]blocks.Block, error)
}

// manyViewer is a Blockstore that lends many blocks at once, each valid
// only during fn (data nil: missing), as *blobstore.Store does: the
// sender's leaves are read into reused buffers.
type manyViewer interface {
	ViewMany(ctx context.Context, cs []cid.Cid, fn func(i int, data []byte) error) error
}

// dagReadBatch is how many leaves the sender reads at once from a
// manyGetter: 16 is what one multi-buffer SHA-256 call hashes.
const dagReadBatch = 16

// dagLinks returns the children of a block in link order. Raw blocks have
// none; blocks of codecs other than dag-pb are treated as leaves by both
// ends (their children, if any, are left to bitswap).
func dagLinks(c cid.Cid, data []byte) ([]cid.Cid, error) {
	if c.Type() != cid.DagProtobuf {
		return nil, nil
	}
	n, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return nil, err
	}
	ls := n.Links()
	out := make([]cid.Cid, len(ls))
	for i, l := range ls {
		out[i] = l.Cid
	}
	return out, nil
}

// DAGPeers returns the connected peers that Config.DAGStreamAllowed
// accepts and that speak DAGProtocol (or whose protocols are not known
// yet). Empty before Start, after Close, and when DAGStreamAllowed is nil.
func (h *Host) DAGPeers() []peer.ID {
	lh, _ := h.runningCtx()
	allowed := h.s.dagAllowed
	if lh == nil || allowed == nil {
		return nil
	}
	var out []peer.ID
	for _, p := range lh.Network().Peers() {
		if !allowed(p) {
			continue
		}
		if ps, _ := lh.Peerstore().GetProtocols(p); len(ps) > 0 {
			if sup, _ := lh.Peerstore().SupportsProtocols(p, DAGProtocol); len(sup) == 0 {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// DAGSources returns the peers to ask for a DAG over DAGProtocol: the
// DAGPeers (members) first, then up to maxOthers other connected peers
// that are known to speak DAGProtocol (other pcnode devices). An other
// peer serves only what its BlockFilter gives it, as bitswap would (see
// handleDAG), and refuses or reports missing what it does not: asking it
// costs one round trip, and where it has the DAG it comes several times
// faster than by bitswap.
func (h *Host) DAGSources(maxOthers int) []peer.ID {
	out := h.DAGPeers()
	lh, _ := h.runningCtx()
	if lh == nil || maxOthers <= 0 {
		return out
	}
	allowed := h.s.dagAllowed
	others := 0
	for _, p := range lh.Network().Peers() {
		if others == maxOthers {
			break
		}
		if allowed != nil && allowed(p) {
			continue // listed already
		}
		if sup, _ := lh.Peerstore().SupportsProtocols(p, DAGProtocol); len(sup) == 0 {
			continue
		}
		out = append(out, p)
		others++
	}
	return out
}

// FetchDAG fetches from peer p every block under root that the
// Blockstore lacks, over DAGProtocol, and hands them to sink in large
// batches (durability is the sink's business). It first walks what is
// stored locally, so an interrupted transfer resumes: only the subtrees
// missing here are asked for. Every block is verified against its CID once,
// on receipt, and must belong to the DAG asked for; a bad one fails the
// call with ErrDAGCorrupt before it reaches sink. A block the peer lacks
// fails it with ErrDAGIncomplete once the rest has arrived. A refusal by p
// is ErrDAGRefused. It blocks until done or ctx ends.
func (h *Host) FetchDAG(ctx context.Context, p peer.ID, root cid.Cid, sink BlockSink) (DAGStats, error) {
	st, err := h.fetchDAG(ctx, p, root, sink)
	if err != nil {
		return st, fmt.Errorf("p2p: fetch dag %s from %s: %w", root, p, err)
	}
	return st, nil
}

func (h *Host) fetchDAG(ctx context.Context, p peer.ID, root cid.Cid, sink BlockSink) (DAGStats, error) {
	lh, _ := h.runningCtx()
	if lh == nil {
		return DAGStats{}, ErrClosed
	}
	wants, truncated, err := localMissing(ctx, h.s.blockstore, root, maxDAGWants)
	if err != nil || len(wants) == 0 {
		return DAGStats{}, err
	}
	return requestDAG(ctx, lh, p, wants, truncated, sink)
}

// requestDAG asks p for the subtrees under wants over DAGProtocol and
// receives them into sink (see FetchDAG); truncated says that more were
// missing than one request may ask for. A sink that is a ProgressSink
// hears of every read from the stream.
func requestDAG(ctx context.Context, lh host.Host, p peer.ID, wants []cid.Cid, truncated bool, sink BlockSink) (DAGStats, error) {
	s, err := newDAGStream(ctx, lh, p)
	if err != nil {
		return DAGStats{}, fmt.Errorf("%w: %w", ErrDAGRefused, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if _, err := s.Write(encodeDAGRequest(wants)); err != nil {
		_ = s.Reset()
		return DAGStats{}, err
	}
	_ = s.CloseWrite()
	var r io.Reader = s
	if ps, ok := sink.(ProgressSink); ok {
		r = progressReader{r: s, fn: ps.StreamRead}
	}
	st, err := receiveDAG(ctx, bufio.NewReaderSize(r, dagWriteBuffer), wants, sink, func() { _ = s.Reset() })
	if err != nil {
		_ = s.Reset()
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return st, err
	}
	if truncated {
		return st, fmt.Errorf("%w: more than %d subtrees were missing; fetch again for the rest", ErrDAGIncomplete, maxDAGWants)
	}
	return st, nil
}

// newDAGStream opens a DAGProtocol stream to p. A bulk transfer costs far
// less CPU over TCP (yamux, one TLS record per 16 KiB) than over QUIC
// (quic-go encrypts, acknowledges and paces every ~1.4 KB packet in user
// space), and two devices are often connected both ways; libp2p picks a
// connection with no regard to its transport, so a direct TCP connection
// is chosen here when there is one. Otherwise the host picks (dialing if
// needed).
func newDAGStream(ctx context.Context, lh host.Host, p peer.ID) (network.Stream, error) {
	for _, c := range lh.Network().ConnsToPeer(p) {
		if c.IsClosed() || c.Stat().Limited || !isDirectTCP(c.RemoteMultiaddr()) {
			continue
		}
		s, err := c.NewStream(ctx)
		if err != nil {
			continue
		}
		if err := s.SetProtocol(DAGProtocol); err != nil {
			_ = s.Reset()
			continue
		}
		if d, ok := ctx.Deadline(); ok {
			_ = s.SetDeadline(d)
		} else {
			_ = s.SetDeadline(time.Now().Add(dagRequestTimeout))
		}
		if err := msmux.SelectProtoOrFail(DAGProtocol, s); err != nil {
			_ = s.Reset()
			return nil, err
		}
		_ = s.SetDeadline(time.Time{})
		return s, nil
	}
	return lh.NewStream(network.WithAllowLimitedConn(ctx, "dag"), p, DAGProtocol)
}

// isDirectTCP reports whether a is a plain TCP address (not a relay
// circuit, websocket or other wrapping).
func isDirectTCP(a multiaddr.Multiaddr) bool {
	tcp := false
	for _, c := range a {
		switch c.Code() {
		case multiaddr.P_TCP:
			tcp = true
		case multiaddr.P_CIRCUIT, multiaddr.P_WS, multiaddr.P_WSS, multiaddr.P_TLS, multiaddr.P_HTTP, multiaddr.P_HTTPS:
			return false
		}
	}
	return tcp
}

// localMissing walks the DAG under root through what bs holds and returns
// the roots of the missing subtrees (at most max; truncated says whether
// there were more).
func localMissing(ctx context.Context, bs blockstore.Blockstore, root cid.Cid, max int) (wants []cid.Cid, truncated bool, err error) {
	seen := make(map[string]struct{})
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().MhType == mh.IDENTITY {
			continue
		}
		k := c.KeyString()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		has, err := bs.Has(ctx, c)
		if err != nil {
			return nil, false, err
		}
		if !has {
			if len(wants) == max {
				return wants, true, nil
			}
			wants = append(wants, c)
			continue
		}
		if c.Type() != cid.DagProtobuf {
			continue
		}
		b, err := bs.Get(ctx, c)
		if err != nil {
			return nil, false, err
		}
		ls, err := dagLinks(c, b.RawData())
		if err != nil {
			return nil, false, fmt.Errorf("local block %s: %w", c, err)
		}
		for i := len(ls) - 1; i >= 0; i-- {
			stack = append(stack, ls[i])
		}
	}
	return wants, false, nil
}

// dagItem is one frame on its way from the reader through a hashing
// worker to the consumer.
type dagItem struct {
	f    dagFrame
	err  error // a read error (with f.kind 0), or the hash check's
	done chan struct{}
}

// receiveDAG reads the response to a request for wants. Frames are read on
// one goroutine and verified in groups of dagSumLanes blocks (16 in one
// AVX-512 call where the CPU has it, else one block per job on every CPU),
// and consumed in stream order here, so that a block is accepted only once
// its parent has named it. abort unblocks a read of r in progress; it is
// called when receiveDAG returns before the stream's end.
//
// Blocks verified and consumed before the stream is cut or ctx ends are
// still handed to sink, so that a later fetch need not
// bring them again.
func receiveDAG(ctx context.Context, r *bufio.Reader, wants []cid.Cid, sink BlockSink, abort func()) (st DAGStats, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lanes := dagSumLanes
	workers := runtime.GOMAXPROCS(0)
	if lanes > 1 {
		// One core verifies 16 blocks at ~2 GiB/s: more workers would
		// only hold more blocks in memory.
		workers = 1
	}
	order := make(chan *dagItem, max(dagInFlight, 2*lanes))
	jobs := make(chan []*dagItem)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for g := range jobs {
				cids := make([]cid.Cid, len(g))
				data := make([][]byte, len(g))
				for i, it := range g {
					cids[i], data[i] = it.f.cid, it.f.data
				}
				for i, err := range verifyBlocks(cids, data) {
					g[i].err = err
					close(g[i].done)
				}
			}
		}()
	}
	// The reader hands frames on as they arrive; the grouper gathers
	// blocks into verification groups. A group goes to a worker when it
	// is full or dagGroupWait after its first block arrived, whichever
	// comes first, even while the next read blocks: the blocks of a
	// stream that then goes quiet reach the sink (and are kept when the
	// fetch gives up on it), not only those followed by another frame.
	frames := make(chan *dagItem, lanes)
	go func() {
		defer close(frames)
		for {
			f, err := readDAGFrame(r)
			it := &dagItem{f: f, err: err, done: make(chan struct{})}
			select {
			case frames <- it:
			case <-ctx.Done():
				return
			}
			if err != nil || f.kind == frameEnd || f.kind == frameRefused {
				return
			}
		}
	}()
	var finished atomic.Bool
	go func() {
		defer close(jobs)
		defer close(order)
		var group []*dagItem
		wait := time.NewTimer(dagGroupWait)
		wait.Stop()
		defer wait.Stop()
		var due <-chan time.Time // the group's wait, while there is a group
		// dispatch hands the group to a worker, then queues its items in
		// stream order: an item is queued only once it is being verified,
		// so the consumer never waits on one that is not.
		dispatch := func() bool {
			if len(group) == 0 {
				return true
			}
			wait.Stop()
			due = nil
			select {
			case jobs <- group:
			case <-ctx.Done():
				return false
			}
			for _, it := range group {
				select {
				case order <- it:
				case <-ctx.Done():
					return false
				}
			}
			group = nil
			return true
		}
		for {
			var it *dagItem
			select {
			case x, ok := <-frames:
				if !ok {
					return // cancelled
				}
				it = x
			case <-due:
				if !dispatch() {
					return
				}
				continue
			case <-ctx.Done():
				return
			}
			f, err := it.f, it.err
			if err == nil && f.kind == frameBlock {
				if len(group) == 0 {
					wait.Reset(dagGroupWait)
					due = wait.C
				}
				group = append(group, it)
				if len(group) == lanes && !dispatch() {
					return
				}
				continue
			}
			if !dispatch() {
				return
			}
			close(it.done)
			select {
			case order <- it:
			case <-ctx.Done():
				return
			}
			if err != nil || f.kind == frameEnd || f.kind == frameRefused {
				finished.Store(true)
				return
			}
		}
	}()
	defer func() {
		cancel()
		if !finished.Load() {
			abort()
		}
		for range frames {
		}
		for range order {
		}
		for range workers {
			<-done
		}
	}()

	pending := make(map[string]struct{}, len(wants))
	seen := make(map[string]struct{}, len(wants))
	for _, c := range wants {
		pending[c.KeyString()] = struct{}{}
		seen[c.KeyString()] = struct{}{}
	}
	var missing []cid.Cid
	var batch []blocks.Block
	var batchBytes int
	sinkFailed := false
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := sink.PutMany(ctx, batch); err != nil {
			sinkFailed = true
			return fmt.Errorf("store: %w", err)
		}
		batch, batchBytes = nil, 0
		return nil
	}
	defer func() {
		// A cut or cancelled stream keeps what arrived; a peer that sent
		// something bad is trusted with nothing.
		if err != nil && !sinkFailed && len(batch) > 0 && !errors.Is(err, ErrDAGCorrupt) && !errors.Is(err, errFrame) {
			_ = sink.PutMany(context.WithoutCancel(ctx), batch)
		}
	}()
	for it := range order {
		select {
		case <-it.done:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		if it.f.kind == 0 {
			return st, it.err
		}
		f := it.f
		switch f.kind {
		case frameRefused:
			return st, fmt.Errorf("%w: %q", ErrDAGRefused, f.data)
		case frameEnd:
			if len(pending) > 0 {
				return st, fmt.Errorf("%w: stream ended with %d blocks neither sent nor reported missing", ErrDAGCorrupt, len(pending))
			}
			if err := flush(); err != nil {
				return st, err
			}
			if len(missing) > 0 {
				return st, fmt.Errorf("%w: the peer lacks %s (%d blocks in all)", ErrDAGIncomplete, missing[0], len(missing))
			}
			return st, nil
		}
		k := f.cid.KeyString()
		if _, ok := pending[k]; !ok {
			return st, fmt.Errorf("%w: block %s was not asked for", ErrDAGCorrupt, f.cid)
		}
		delete(pending, k)
		if f.kind == frameMissing {
			missing = append(missing, f.cid)
			continue
		}
		if it.err != nil {
			return st, it.err
		}
		ls, err := dagLinks(f.cid, f.data)
		if err != nil {
			return st, fmt.Errorf("%w: block %s: %w", ErrDAGCorrupt, f.cid, err)
		}
		for _, l := range ls {
			if l.Prefix().MhType == mh.IDENTITY {
				continue
			}
			lk := l.KeyString()
			if _, ok := seen[lk]; !ok {
				seen[lk] = struct{}{}
				pending[lk] = struct{}{}
			}
		}
		b, err := blocks.NewBlockWithCid(f.data, f.cid)
		if err != nil {
			return st, err
		}
		batch = append(batch, b)
		batchBytes += len(f.data)
		st.Blocks++
		st.Bytes += int64(len(f.data))
		if batchBytes >= dagSinkBatch {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	return st, ctx.Err()
}
