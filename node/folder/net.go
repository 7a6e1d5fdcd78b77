package folder

import (
	"bufio"
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Backoff between attempts to subscribe to a member's log.
const (
	subscribeMinBackoff = 500 * time.Millisecond
	subscribeMaxBackoff = 30 * time.Second
)

// startNet serves this folder's log to members and subscribes to the log
// of every connected member, now and on each new connection. Call with
// f.mu held.
func (f *Folder) startNet() {
	h := f.cfg.Host
	h.SetStreamHandler(protocolFor(f.cfg.ID), f.handleStream)
	f.notify = &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			f.subscribe(c.RemotePeer())
			if f.cfg.Members(c.RemotePeer()) {
				f.requestPull() // what waited for a member (errNoMember)
			}
		},
	}
	h.Network().Notify(f.notify)
	for _, p := range h.Network().Peers() {
		f.subscribeLocked(p)
	}
}

func (f *Folder) stopNet() {
	h := f.cfg.Host
	h.RemoveStreamHandler(protocolFor(f.cfg.ID))
	h.Network().StopNotify(f.notify)
}

func (f *Folder) subscribe(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribeLocked(p)
}

// subscribeLocked starts following p's log unless already doing so.
func (f *Folder) subscribeLocked(p peer.ID) {
	if f.closed || !f.started || p == f.cfg.Device || f.subs[p] || !f.cfg.Members(p) {
		return
	}
	f.subs[p] = true
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.follow(f.ctx, p)
		f.mu.Lock()
		delete(f.subs, p)
		f.mu.Unlock()
	}()
}

// follow reads p's log for as long as p is connected and a member,
// reconnecting the stream with backoff.
func (f *Folder) follow(ctx context.Context, p peer.ID) {
	backoff := subscribeMinBackoff
	for {
		got, err := f.followOnce(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if f.cfg.Host.Network().Connectedness(p) != network.Connected || !f.cfg.Members(p) {
			return
		}
		if got {
			backoff = subscribeMinBackoff
		}
		f.log.Debug("index stream ended", "peer", p, "err", err, "retry", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, subscribeMaxBackoff)
	}
}

// followOnce opens one stream to p, asks for its log after what this
// device holds, and applies batches until the stream ends. got says
// whether any batch arrived.
func (f *Folder) followOnce(ctx context.Context, p peer.ID) (bool, error) {
	s, err := f.cfg.Host.NewStream(network.WithAllowLimitedConn(ctx, "folder"), p, protocolFor(f.cfg.ID))
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	defer s.Close()
	f.mu.Lock()
	var req request
	if rm := f.x.remotes[ShortIDOf(p)]; rm != nil {
		req = request{Epoch: rm.epoch, After: rm.seq}
	}
	f.mu.Unlock()
	if err := writeFrame(s, encodeRequest(req)); err != nil {
		_ = s.Reset()
		return false, err
	}
	r := bufio.NewReader(s)
	got := false
	for {
		msg, err := readFrame(r)
		if err != nil {
			_ = s.Reset()
			return got, err
		}
		_, b, err := decodeMessage(msg)
		if err != nil || b == nil {
			_ = s.Reset()
			return got, errors.Join(errors.New("bad batch"), err)
		}
		got = true
		if !f.cfg.Members(p) {
			_ = s.Reset()
			return got, errors.New("no longer a member")
		}
		f.mu.Lock()
		changed, err := f.x.applyRemote(p, b)
		if err == nil {
			for _, path := range changed {
				f.dirty[path] = struct{}{}
			}
		}
		f.mu.Unlock()
		if err != nil {
			_ = s.Reset()
			return got, err
		}
		f.requestPull()
	}
}

// handleStream serves this device's log to a member: everything after
// the requested seq, then each change as it is made, until either side
// closes.
func (f *Folder) handleStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !f.cfg.Members(p) {
		_ = s.Reset()
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = s.Reset()
		return
	}
	ctx, cancel := context.WithCancel(f.ctx)
	f.wg.Add(1)
	f.mu.Unlock()
	defer f.wg.Done()
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	// Whatever ends the serving, the stream ends with it, so that the
	// reader below returns (Close waits for it) and the subscriber sees
	// the end instead of waiting on a stream nobody writes.
	defer func() { _ = s.Reset() }()
	// A device that reads our log has the folder: follow its log too
	// (it may have joined after our last attempt).
	f.subscribe(p)

	_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(s)
	msg, err := readFrame(r)
	if err != nil {
		_ = s.Reset()
		return
	}
	q, _, err := decodeMessage(msg)
	if err != nil || q == nil {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	// The subscriber sends nothing more: when it closes or resets the
	// stream, the read returns and the publisher stops.
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, _ = r.ReadByte()
		cancel()
	}()

	f.mu.Lock()
	epoch := f.x.epoch
	f.mu.Unlock()
	after := q.After
	reset := q.Epoch != epoch
	if reset {
		after = 0
	}
	for {
		f.mu.Lock()
		ents := f.x.entriesAfter(after)
		changed := f.changed
		f.mu.Unlock()
		if len(ents) > 0 || reset {
			m := &batch{Epoch: epoch, Reset: reset, Entries: ents}
			if err := writeFrame(s, encodeBatch(m)); err != nil {
				_ = s.Reset()
				return
			}
			reset = false
			if len(ents) > 0 {
				after = ents[len(ents)-1].Seq
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
