package p2p

import (
	"context"
	"crypto/rand"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bspb "github.com/ipfs/boxo/bitswap/message/pb"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func randomCid(t testing.TB) cid.Cid {
	b := make([]byte, 16)
	rand.Read(b)
	sum, err := mh.Sum(b, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}

// TestWantGuardCounts: only a non-member's refused wants count; a peer
// over the limit within the window is dropped once and refused until the
// ban ends; a window that passes forgives; members are never dropped.
func TestWantGuardCounts(t *testing.T) {
	member, friend, stranger, slow := newPeerID(t), newPeerID(t), newPeerID(t), newPeerID(t)
	shared := randomCid(t)
	clk := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	g := newWantGuard(settings{
		members: newMemberSet(member),
		blockFilter: func(p peer.ID, c cid.Cid) bool {
			return p == member || c == shared
		},
		now: clk.now,
	})
	g.limit, g.window, g.ban = 10, time.Second, time.Minute
	var dropped []peer.ID
	g.setDrop(func(p peer.ID) { dropped = append(dropped, p) })

	for range 100 {
		if !g.filter(member, randomCid(t)) {
			t.Fatal("a member's want refused")
		}
		if !g.filter(friend, shared) {
			t.Fatal("a friend's want for a shared block refused")
		}
	}
	for i := range g.limit {
		if g.filter(stranger, randomCid(t)) {
			t.Fatal("a stranger's want for an unshared block served")
		}
		if i < g.limit-1 && len(dropped) != 0 {
			t.Fatal("dropped before the limit")
		}
	}
	// The slow peer spreads its refusals over windows: never dropped.
	for range 3 {
		for range g.limit {
			g.filter(slow, randomCid(t))
		}
		clk.add(g.window)
	}
	if len(dropped) != 0 {
		t.Fatalf("dropped %v at or under the limit", dropped)
	}
	g.filter(stranger, randomCid(t)) // the window has passed: counts afresh
	for range g.limit {
		g.filter(stranger, randomCid(t))
	}
	if len(dropped) != 1 || dropped[0] != stranger {
		t.Fatalf("dropped %v, want the stranger once", dropped)
	}
	if g.filter(stranger, shared) {
		t.Error("a banned peer was served a shared block")
	}
	if g.InterceptSecured(network.DirInbound, stranger, nil) || g.InterceptPeerDial(stranger) {
		t.Error("the gater lets a banned peer in")
	}
	if !g.InterceptSecured(network.DirInbound, friend, nil) || !g.InterceptSecured(network.DirInbound, member, nil) {
		t.Error("the gater refuses a peer that was not dropped")
	}
	if len(dropped) != 1 {
		t.Errorf("a banned peer's wants dropped it again: %v", dropped)
	}
	clk.add(g.ban)
	if !g.InterceptSecured(network.DirInbound, stranger, nil) || !g.filter(stranger, shared) {
		t.Error("still refused after the ban")
	}
}

// TestWantGuardBounded: a flood from many identities grows the guard's
// maps to maxWantPeers at most.
func TestWantGuardBounded(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	g := newWantGuard(settings{blockFilter: func(peer.ID, cid.Cid) bool { return false }, now: clk.now})
	g.limit = 1
	c := randomCid(t)
	for i := range maxWantPeers + 100 {
		p := peer.ID(strconv.Itoa(i)) // any string is a peer ID to the guard
		g.filter(p, c)
		g.filter(p, c) // over the limit of 1: banned
		g.filter(peer.ID("x"+strconv.Itoa(i)), c)
	}
	g.mu.Lock()
	nc, nb := len(g.counts), len(g.banned)
	g.mu.Unlock()
	if nc > maxWantPeers || nb > maxWantPeers {
		t.Errorf("%d counted and %d banned peers, bound %d", nc, nb, maxWantPeers)
	}
}

// startGuarded starts a host for cfg whose bitswap server serves by
// filter (Config.BlockFilter), with its want guard, or with the guard
// switched off (a limit no flood reaches) when guarded is false.
func startGuarded(t *testing.T, cfg Config, filter func(peer.ID, cid.Cid) bool, guarded bool) (*Host, *wantGuard) {
	t.Helper()
	cfg.BlockFilter = filter
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !guarded {
		h.wants.limit = math.MaxInt - 1
	}
	return startNew(t, h), h.wants
}

// floodRun has a member fetch 64 blocks of 256 KiB from a host while a
// stranger floods the host with want-lists of 1,000 random CIDs from two
// goroutines (flood false: no stranger). It returns how long the fetch
// took, and whether the host dropped the stranger and kept it out.
func floodRun(t *testing.T, flood, guarded bool) (took time.Duration, dropped bool) {
	t.Helper()
	blks := randomBlocks(t, 64, 256<<10)
	server := localConfig(t)
	for _, b := range blks {
		if err := server.Blockstore.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	memberCfg := localConfig(t)
	memberID, err := peer.IDFromPrivateKey(memberCfg.Key)
	if err != nil {
		t.Fatal(err)
	}
	server.Members = newMemberSet(memberID)
	s, g := startGuarded(t, server, func(p peer.ID, _ cid.Cid) bool { return p == memberID }, guarded)
	m := startHost(t, memberCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := m.Connect(ctx, addrWith(t, s, "tcp")); err != nil {
		t.Fatal(err)
	}

	hostile, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close()
	sInfo := peer.AddrInfo{ID: s.ID(), Addrs: []multiaddr.Multiaddr{addrWith(t, s, "tcp")}}
	if err := hostile.Connect(ctx, sInfo); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	floods := 0
	if flood {
		floods = 2
	}
	for range floods {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				str, err := hostile.NewStream(ctx, s.ID(), bsnet.ProtocolBitswap)
				if err != nil {
					failed.Add(1)
					select { // the host pushed back: the flood retries at a pace
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				msg := bsmsg.New(true)
				for range 1000 {
					msg.AddEntry(randomCid(t), 1, bspb.Message_Wantlist_Block, true)
				}
				if msg.ToNetV1(str) == nil {
					sent.Add(1000)
				}
				str.Close()
			}
		})
	}
	if flood {
		// The flood is under way before the fetch starts.
		waitFor(t, "the flood under way", func() bool { return sent.Load() >= 2000 || failed.Load() > 0 })
	}
	start := time.Now()
	keys := make([]cid.Cid, len(blks))
	for i, b := range blks {
		keys[i] = b.Cid()
	}
	ch, err := m.Exchange().GetBlocks(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range ch {
		got++
	}
	took = time.Since(start)
	if guarded && flood {
		waitFor(t, "the flooder dropped", func() bool { return g.droppedPeers() == 1 })
	}
	close(stop)
	wg.Wait()
	if got != len(blks) {
		t.Fatalf("the member got %d of %d blocks", got, len(blks))
	}
	dropped = hostile.Connect(ctx, sInfo) != nil || s.Libp2p().Network().Connectedness(hostile.ID()) != network.Connected
	t.Logf("flood=%v guarded=%v: member fetched 16 MiB in %v; the flooder sent %d wants, %d stream attempts failed; dropped and kept out: %v",
		flood, guarded, took.Round(time.Millisecond), sent.Load(), failed.Load(), dropped)
	return took, dropped
}

// TestWantFloodDropped: a stranger floods a host with want-lists for
// blocks it may not have while a member fetches from it. The guarded host
// drops the flooder, which cannot come back; the member's fetch completes.
// The speeds (alone, under the flood unguarded and guarded) are logged:
// figures in docs/RELIABILITY.md.
func TestWantFloodDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a host; skipped with -short")
	}
	alone, _ := floodRun(t, false, true)
	guardedTook, dropped := floodRun(t, true, true)
	if !dropped {
		t.Error("the guarded host kept the flooder connected or let it back")
	}
	if testing.Verbose() {
		unguarded, _ := floodRun(t, true, false)
		t.Logf("member speed under the flood: %.0f%% of alone unguarded, %.0f%% guarded",
			100*alone.Seconds()/unguarded.Seconds(), 100*alone.Seconds()/guardedTook.Seconds())
	}
}
