package p2p

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Want-flood defence. boxo's bitswap server answers every want a peer
// sends: a block the BlockFilter refuses becomes a DONT_HAVE task, queued,
// packed and sent back on a new stream. A stranger sending want-lists of a
// thousand random CIDs as fast as it can keeps the server's decision
// engine, its message senders and the stream machinery busy, and on a
// small box that is the CPU the members' transfers need (measured in
// docs/RELIABILITY.md: members kept 34–71% of their speed). Nothing in
// boxo limits the rate of refused wants, and its options bound only the
// wants it accepts (MaxQueuedWantlistEntriesPerPeer, the outstanding bytes
// per peer), not the refused ones.
//
// The wantGuard counts, per peer that is not a member, the wants the
// BlockFilter refuses. A peer over wantRefusalLimit in wantWindow is
// dropped: its connections are closed and the host refuses it (dial and
// accept, as a connection gater) for wantBan. Members are never counted
// or dropped, and a friend fetching a share asks only for the share's
// blocks, which are not refusals.
//
// Why not a task comparator that serves members first: boxo's TaskInfo
// carries no want priority, so a comparator replacing the default one
// loses the order in which a client asked for blocks; and it would only
// reorder work the flood still makes. Dropping the flooder removes it.
const (
	// wantRefusalLimit is how many refused wants a non-member may send in
	// wantWindow. A stranger's IPFS node that broadcasts want-haves for
	// its own sessions to every peer it is connected to sends a few a
	// second; a flood of 1,000-want messages passes the limit with its
	// third message.
	wantRefusalLimit = 2000
	// wantWindow is the counting window.
	wantWindow = 10 * time.Second
	// wantBan is how long a dropped peer stays refused. Long enough that
	// a flood gives up or costs its sender a new identity (and a new
	// handshake) per ban; short enough that a peer dropped by mistake
	// comes back by itself.
	wantBan = 10 * time.Minute
	// maxWantPeers bounds the peers tracked at once, counted and banned
	// each, so that a flood from many identities cannot grow the maps
	// without bound: counts older than a window and expired bans are
	// pruned first, then new peers go uncounted until there is room.
	maxWantPeers = 4096
)

// wantGuard is the want-flood defence of one host. It is the bitswap
// server's peer block request filter (wrapping Config.BlockFilter) and a
// connection gater. Safe for concurrent use.
type wantGuard struct {
	isMember func(peer.ID) bool          // nil: nobody is a member
	allow    func(peer.ID, cid.Cid) bool // Config.BlockFilter; nil: everything is served
	now      func() time.Time
	log      *slog.Logger
	limit    int
	window   time.Duration
	ban      time.Duration

	// drop closes every connection to a peer; set once the libp2p host
	// runs (nil before: the ban alone applies).
	drop atomic.Pointer[func(peer.ID)]

	mu      sync.Mutex
	counts  map[peer.ID]*refusals
	banned  map[peer.ID]time.Time // until
	dropped int                   // peers dropped so far
}

// refusals counts one peer's refused wants in the window that began at
// start.
type refusals struct {
	start time.Time
	n     int
}

var _ connmgr.ConnectionGater = (*wantGuard)(nil)

// newWantGuard makes the guard for a host of settings s.
func newWantGuard(s settings) *wantGuard {
	g := &wantGuard{
		allow:  s.blockFilter,
		now:    s.now,
		log:    s.log,
		limit:  wantRefusalLimit,
		window: wantWindow,
		ban:    wantBan,
		counts: map[peer.ID]*refusals{},
		banned: map[peer.ID]time.Time{},
	}
	if s.members != nil {
		g.isMember = s.members.IsMember
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// setDrop sets how the guard closes a peer's connections.
func (g *wantGuard) setDrop(f func(peer.ID)) { g.drop.Store(&f) }

// bitswapOptions returns the options that install the guard in a bitswap
// server: its filter in place of Config.BlockFilter's.
func (g *wantGuard) bitswapOptions() []bitswap.Option {
	return []bitswap.Option{bitswap.WithPeerBlockRequestFilter(g.filter)}
}

// filter is the bitswap server's peer block request filter: members get
// what Config.BlockFilter gives them; a banned peer gets nothing; other
// peers get what it gives them, and each refusal counts against them.
func (g *wantGuard) filter(p peer.ID, c cid.Cid) bool {
	if g.isMember != nil && g.isMember(p) {
		return g.allow == nil || g.allow(p, c)
	}
	if g.allow == nil {
		// Every peer gets every block: nothing is refused, so there is
		// nothing to count (a host without a policy, in tests).
		return true
	}
	if g.isBanned(p) {
		return false
	}
	if g.allow(p, c) {
		return true
	}
	if g.refused(p) {
		g.dropPeer(p)
	}
	return false
}

// refused counts one refused want of p and reports whether p has just
// gone over the limit.
func (g *wantGuard) refused(p peer.ID) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.counts[p]
	if r == nil {
		if len(g.counts) >= maxWantPeers {
			g.pruneCountsLocked(now)
			if len(g.counts) >= maxWantPeers {
				return false
			}
		}
		r = &refusals{start: now}
		g.counts[p] = r
	}
	if now.Sub(r.start) >= g.window {
		r.start, r.n = now, 0
	}
	r.n++
	return r.n == g.limit+1
}

func (g *wantGuard) pruneCountsLocked(now time.Time) {
	for p, r := range g.counts {
		if now.Sub(r.start) >= g.window {
			delete(g.counts, p)
		}
	}
}

// dropPeer bans p and closes its connections.
func (g *wantGuard) dropPeer(p peer.ID) {
	now := g.now()
	g.mu.Lock()
	if len(g.banned) >= maxWantPeers {
		for q, until := range g.banned {
			if !now.Before(until) {
				delete(g.banned, q)
			}
		}
	}
	if len(g.banned) < maxWantPeers {
		g.banned[p] = now.Add(g.ban)
	}
	delete(g.counts, p)
	g.dropped++
	g.mu.Unlock()
	g.log.Warn("p2p: dropping a peer that floods bitswap with wants for blocks it may not have",
		"peer", p.String(), "refused", g.limit, "within", g.window, "banned_for", g.ban)
	if f := g.drop.Load(); f != nil {
		(*f)(p)
	}
}

// isBanned reports whether p is refused now.
func (g *wantGuard) isBanned(p peer.ID) bool {
	g.mu.Lock()
	until, ok := g.banned[p]
	g.mu.Unlock()
	if !ok {
		return false
	}
	if g.now().Before(until) {
		return true
	}
	g.mu.Lock()
	if u, ok := g.banned[p]; ok && u == until {
		delete(g.banned, p)
	}
	g.mu.Unlock()
	return false
}

// droppedPeers returns how many peers the guard has dropped.
func (g *wantGuard) droppedPeers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dropped
}

// The gater: a banned peer is neither dialled nor accepted. Members are
// never banned (filter does not count them), so this needs no membership
// check of its own.

func (g *wantGuard) InterceptPeerDial(p peer.ID) bool { return !g.isBanned(p) }

func (*wantGuard) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }

func (*wantGuard) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *wantGuard) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.isBanned(p)
}

func (*wantGuard) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
