package integration

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node"
	"github.com/pcnode/pcnode/node/api"
)

// wireLog records what a peer answered over bitswap.
type wireLog struct {
	mu        sync.Mutex
	blocks    map[cid.Cid]int
	haves     map[cid.Cid]int
	dontHaves map[cid.Cid]int
	changed   chan struct{}
}

func (w *wireLog) ReceiveMessage(_ context.Context, _ peer.ID, m bsmsg.BitSwapMessage) {
	w.mu.Lock()
	for _, b := range m.Blocks() {
		w.blocks[b.Cid()]++
	}
	for _, c := range m.Haves() {
		w.haves[c]++
	}
	for _, c := range m.DontHaves() {
		w.dontHaves[c]++
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}
func (w *wireLog) ReceiveError(error)       {}
func (w *wireLog) PeerConnected(peer.ID)    {}
func (w *wireLog) PeerDisconnected(peer.ID) {}

// waitFor waits until cond holds (read under the lock) or the deadline.
func (w *wireLog) waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-w.changed:
		case <-deadline.C:
			return false
		}
	}
}

// TestShareRefusalRevealsNothing speaks bitswap to a sharer as a stranger
// and checks, on the wire, that a private block and a missing block get
// the same answer: DONT_HAVE when asked for one, nothing otherwise, and
// never the block. Once the share is revoked its blocks get that answer
// too.
func TestShareRefusalRevealsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	clk := newTestClock()
	a := startShareNode(t, node.RoleDevice, clk, 0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	shared, err := a.Share(ctx, api.ShareRequest{Path: writeRandom(t, dir, 1000, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := a.Add(ctx, api.AddRequest{Path: writeRandom(t, dir, 1000, 2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := cid.Decode(shared.CID)
	pc, _ := cid.Decode(priv.CID)
	mc, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	w := &wireLog{blocks: map[cid.Cid]int{}, haves: map[cid.Cid]int{}, dontHaves: map[cid.Cid]int{}, changed: make(chan struct{}, 1)}
	net := bsnet.NewFromIpfsHost(h)
	net.Start(w)
	defer net.Stop()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []multiaddr.Multiaddr
	for _, s := range st.Addrs {
		addrs = append(addrs, multiaddr.StringCast(s))
	}
	ai, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(ai) != 1 {
		t.Fatalf("addr info: %v", err)
	}
	if err := h.Connect(ctx, ai[0]); err != nil {
		t.Fatal(err)
	}

	// want-block, send DONT_HAVE: the shared block comes, the other two
	// get DONT_HAVE, alike.
	m := bsmsg.New(false)
	for _, c := range []cid.Cid{sc, pc, mc} {
		m.AddEntry(c, 1, pb.Message_Wantlist_Block, true)
	}
	if err := net.SendMessage(ctx, ai[0].ID, m); err != nil {
		t.Fatal(err)
	}
	if !w.waitFor(t, 10*time.Second, func() bool { return w.blocks[sc] == 1 && w.dontHaves[pc] == 1 && w.dontHaves[mc] == 1 }) {
		w.mu.Lock()
		t.Fatalf("after want-block: blocks %v haves %v dont-haves %v", w.blocks, w.haves, w.dontHaves)
	}

	// want-have without DONT_HAVE: HAVE (or, for a block this small,
	// the block itself) for the shared block, silence for the others. Then a marker want proves the silence was not delay:
	// answers to one peer come in order.
	m = bsmsg.New(false)
	for _, c := range []cid.Cid{pc, mc, sc} {
		m.AddEntry(c, 1, pb.Message_Wantlist_Have, false)
	}
	if err := net.SendMessage(ctx, ai[0].ID, m); err != nil {
		t.Fatal(err)
	}
	if !w.waitFor(t, 10*time.Second, func() bool { return w.haves[sc] >= 1 || w.blocks[sc] >= 2 }) {
		t.Fatal("no answer for the shared block")
	}
	marker := bsmsg.New(false)
	marker.AddEntry(mc, 1, pb.Message_Wantlist_Have, true)
	if err := net.SendMessage(ctx, ai[0].ID, marker); err != nil {
		t.Fatal(err)
	}
	if !w.waitFor(t, 10*time.Second, func() bool { return w.dontHaves[mc] == 2 }) {
		t.Fatal("no DONT_HAVE for the marker")
	}
	// Revoked: the sharer closes the connection of a stranger it served
	// the share to, which drops whatever was queued for it, and from then
	// on the shared block is refused like the others.
	if _, err := a.ShareRevoke(ctx, shared.ID); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	sentBefore := w.blocks[sc]
	w.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for h.Network().Connectedness(ai[0].ID) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatal("the sharer did not close the stranger's connection within 2 s of the revoke")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}
	if err := h.Connect(ctx, ai[0]); err != nil {
		t.Fatal(err)
	}
	m = bsmsg.New(false)
	m.AddEntry(sc, 1, pb.Message_Wantlist_Block, true)
	if err := net.SendMessage(ctx, ai[0].ID, m); err != nil {
		t.Fatal(err)
	}
	if !w.waitFor(t, 2*time.Second, func() bool { return w.dontHaves[sc] == 1 }) {
		t.Fatal("no DONT_HAVE for a revoked share's block within 2 s")
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.blocks[sc] != sentBefore {
		t.Errorf("the revoked block was sent again")
	}
	for _, c := range []cid.Cid{pc, mc} {
		if w.blocks[c] != 0 || w.haves[c] != 0 {
			t.Errorf("%s: %d blocks, %d haves sent to a stranger", c, w.blocks[c], w.haves[c])
		}
	}
	if w.dontHaves[pc] != 1 {
		t.Errorf("private block: %d DONT_HAVEs, want exactly the one asked for", w.dontHaves[pc])
	}
	got := []int{w.blocks[pc], w.haves[pc], w.dontHaves[pc]}
	want := []int{w.blocks[mc], w.haves[mc], w.dontHaves[mc] - 1} // less the marker
	if !slices.Equal(got, want) {
		t.Errorf("private %v vs missing %v: a stranger can tell them apart", got, want)
	}
}
