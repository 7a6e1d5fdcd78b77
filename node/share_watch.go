package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"github.com/pcnode/pcnode/node/share"
	"github.com/pcnode/pcnode/p2p"
)

// Cutting transfers when a share stops (docs/SHARE.md, "Revocation and
// expiry"). Bitswap consults the serving policy when a want arrives, not
// when the block goes out, so wants queued before a revocation would still
// be answered. The node therefore (1) tells pcnode friends watching the
// share over share.StatusProtocol, so they stop at once, and (2) closes
// the connections of every stranger it served the share's blocks to,
// which drops their queued wants (and a gateway response stops at its next
// block, for the gateway asks the policy per block).
const (
	// shareCheckInterval is how often expiry is checked: expiry is no
	// event, so a share that expires is cut within this.
	shareCheckInterval = 500 * time.Millisecond
	// maxShareWatchers bounds the status streams served at once; past it
	// a friend gets one answer and the stream is closed.
	maxShareWatchers = 512
	// shareStatusTimeout bounds reading a status request and writing an
	// answer.
	shareStatusTimeout = 10 * time.Second
)

// errShareStopped ends a get by link when the sharer says it no longer
// serves the share.
var errShareStopped = errors.New("the sharer stopped serving this share")

// serveShareStatus registers the status protocol on h and starts the
// cutter. Called once the host runs; n.mu is held.
func (n *Node) serveShareStatusLocked(h *p2p.Host) {
	lh := h.Libp2p()
	if lh == nil {
		return
	}
	n.shares.mu.Lock()
	n.shares.host = h
	ctx := n.shares.bgCtx
	ok := ctx != nil && ctx.Err() == nil
	if ok {
		n.shares.bg.Add(1)
	}
	n.shares.mu.Unlock()
	if !ok {
		return
	}
	lh.SetStreamHandler(protocol.ID(share.StatusProtocol), n.handleShareStatus)
	go func() {
		defer n.shares.bg.Done()
		n.cutStoppedShares(ctx)
	}()
	// Announce the listed shares again: the DHT forgets.
	if reg := n.shares.registry(); reg != nil {
		seen := map[cid.Cid]bool{}
		for _, s := range reg.List() {
			if !seen[s.Root] && !s.Unlisted && s.State(n.now()) == share.StateActive {
				seen[s.Root] = true
				n.provideShare(h, s.Root)
			}
		}
	}
}

// goShare runs f in the background unless the shares are closing; it
// reports whether it did. closeShares waits for f.
func (n *Node) goShare(f func(ctx context.Context)) bool {
	n.shares.mu.RLock()
	defer n.shares.mu.RUnlock()
	ctx := n.shares.bgCtx
	if ctx == nil || ctx.Err() != nil {
		return false
	}
	n.shares.bg.Add(1)
	go func() {
		defer n.shares.bg.Done()
		f(ctx)
	}()
	return true
}

// cutStoppedShares runs until ctx ends: whenever a share is revoked or has
// expired, it closes the connections of the strangers it was served to.
func (n *Node) cutStoppedShares(ctx context.Context) {
	reg := n.shares.registry()
	if reg == nil {
		return
	}
	t := time.NewTicker(shareCheckInterval)
	defer t.Stop()
	for {
		changed := reg.Changed()
		now := n.now()
		for _, s := range reg.List() {
			if s.State(now) == share.StateActive {
				continue
			}
			for _, who := range reg.TakeFetchers(s.ID) {
				p, err := peer.Decode(who)
				if err != nil || n.members.IsMember(p) {
					continue
				}
				n.cutPeer(p, s)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// cutPeer closes the connections to p, a stranger that fetched s. Its
// wants for another active share of this node are dropped with them; a
// pcnode friend reconnects through its link's hints and asks again.
func (n *Node) cutPeer(p peer.ID, s share.Share) {
	n.shares.mu.RLock()
	h := n.shares.host
	n.shares.mu.RUnlock()
	if h == nil {
		return
	}
	lh := h.Libp2p()
	if lh == nil || lh.Network().Connectedness(p) != network.Connected {
		return
	}
	if err := lh.Network().ClosePeer(p); err != nil {
		n.log.Debug("share: cutting a fetcher failed", "peer", p, "err", err)
		return
	}
	n.log.Info("share: stopped serving; disconnected a fetcher", "id", s.ID, "peer", p, "state", s.State(n.now()))
}

// shareStatus is what the status protocol answers for root.
func shareStatus(reg *share.Registry, root cid.Cid) share.Status {
	st, exp, ok := reg.RootState(root)
	if !ok {
		return share.Status{}
	}
	return share.Status{State: st, Expired: exp}
}

// handleShareStatus serves one status stream: the answer now and, while
// the share is active, a second answer when it stops.
func (n *Node) handleShareStatus(s network.Stream) {
	if n.shares.watchers.Add(1) > maxShareWatchers {
		n.shares.watchers.Add(-1)
		_ = s.Reset()
		return
	}
	started := n.goShare(func(ctx context.Context) {
		defer n.shares.watchers.Add(-1)
		n.watchShareStatus(ctx, s)
	})
	if !started {
		n.shares.watchers.Add(-1)
		_ = s.Reset()
	}
}

func (n *Node) watchShareStatus(ctx context.Context, s network.Stream) {
	reg := n.shares.registry()
	if reg == nil {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(shareStatusTimeout))
	root, err := share.ReadStatusRequest(s)
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	// The friend closes its side when done; a read ending tells us.
	gone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(io.Discard, io.LimitReader(s, 1<<10))
		close(gone)
	}()
	defer wg.Wait()
	defer s.Reset() // unblocks the reader; after a Close it changes nothing

	t := time.NewTicker(shareCheckInterval)
	defer t.Stop()
	first := true
	for {
		changed := reg.Changed()
		st := shareStatus(reg, root)
		if first || st.State != share.StateActive {
			_ = s.SetWriteDeadline(time.Now().Add(shareStatusTimeout))
			if err := share.WriteStatus(s, st); err != nil {
				return
			}
			first = false
		}
		if st.State != share.StateActive {
			_ = s.CloseWrite()
			// Give the friend a moment to read the answer before the
			// deferred reset.
			select {
			case <-gone:
			case <-ctx.Done():
			case <-time.After(shareStatusTimeout):
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// watchSharer asks the link's providers (the sharer) over the status
// protocol whether they serve root, and calls stop with errShareStopped
// (wrapped with the reason) when
//
//   - a provider that said it served the share says it no longer does
//     (the share was revoked or expired during the transfer), or
//   - every provider has answered and none serves it.
//
// A provider may answer "not served" and still be useful, for a home
// server that mirrors a share may not have fetched it yet, hence the
// second rule. A provider that does not speak the protocol (not pcnode)
// or cannot be reached is left to the stall timeout. When a stream breaks
// (the sharer closes a stranger's connection when a share stops), it
// reconnects through the hints and asks again. It returns when ctx ends
// or it has called stop.
func (n *Node) watchSharer(ctx context.Context, h *p2p.Host, providers []peer.ID, hints []multiaddr.Multiaddr, root cid.Cid, stop context.CancelCauseFunc) {
	var (
		mu      sync.Mutex
		refused int
		last    error
		wg      sync.WaitGroup
	)
	for _, p := range providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			initial, err := n.watchOne(ctx, h, p, hints, root)
			switch {
			case err == nil:
				return
			case !initial:
				stop(err)
				return
			}
			mu.Lock()
			refused++
			last = err
			all := refused == len(providers)
			mu.Unlock()
			if all {
				stop(last)
			}
		}()
	}
	wg.Wait()
}

// watchOne watches one provider. It returns errShareStopped wrapped when
// p says it does not serve root, with whether that was p's first answer;
// a nil error when ctx ends or p does not speak the protocol.
func (n *Node) watchOne(ctx context.Context, h *p2p.Host, p peer.ID, hints []multiaddr.Multiaddr, root cid.Cid) (bool, error) {
	retry := 200 * time.Millisecond
	served := false
	for ctx.Err() == nil {
		st, err := n.askSharer(ctx, h, p, root, func() { served = true })
		switch {
		case errors.Is(err, errNoStatusProtocol):
			return false, nil
		case err == nil && st.State == share.StateExpired:
			return !served, fmt.Errorf("%w: it expired at %s", errShareStopped, st.Expired.Format(time.RFC3339))
		case err == nil:
			return !served, fmt.Errorf("%w: it was revoked (or was never shared from there)", errShareStopped)
		}
		// The stream broke, or p is not connected: reconnect through the
		// hints and ask again.
		if ctx.Err() != nil {
			break
		}
		n.log.Debug("share: no status from the sharer; asking again", "peer", p, "err", err)
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(retry):
		}
		retry = min(2*retry, 2*time.Second)
		n.redialHints(ctx, h, p, hints)
	}
	return false, nil
}

// redialHints connects to p again through the link's hints for p.
func (n *Node) redialHints(ctx context.Context, h *p2p.Host, p peer.ID, hints []multiaddr.Multiaddr) {
	for _, a := range hints {
		if id, err := peer.IDFromP2PAddr(a); err != nil || id != p {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, shareDialTimeout)
		_, err := h.Connect(dctx, a)
		cancel()
		if err == nil {
			return
		}
	}
}

var errNoStatusProtocol = errors.New("provider does not speak the share status protocol")

// askSharer opens a status stream to p and returns the first answer that
// is not StateActive, or an error when the stream ends without one. It
// calls active when p says it serves root.
func (n *Node) askSharer(ctx context.Context, h *p2p.Host, p peer.ID, root cid.Cid, active func()) (share.Status, error) {
	lh := h.Libp2p()
	if lh == nil {
		return share.Status{}, errors.New("host stopped")
	}
	sctx, cancel := context.WithTimeout(ctx, shareStatusTimeout)
	s, err := lh.NewStream(network.WithNoDial(sctx, "status of a share"), p, protocol.ID(share.StatusProtocol))
	cancel()
	if err != nil {
		if errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
			return share.Status{}, errNoStatusProtocol
		}
		return share.Status{}, err
	}
	defer s.Reset()
	// Close the stream when ctx ends, to unblock the read.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Reset()
		case <-done:
		}
	}()
	// The write side stays open: the sharer takes its closing as the
	// friend going away.
	if err := share.WriteStatusRequest(s, root); err != nil {
		return share.Status{}, err
	}
	for {
		st, err := share.ReadStatus(s)
		if err != nil {
			return share.Status{}, err
		}
		if st.State != share.StateActive {
			return st, nil
		}
		active()
	}
}
