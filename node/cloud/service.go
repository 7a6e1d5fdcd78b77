package cloud

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
)

// Protocol IDs.
const (
	// JoinProtocol is the one exchange with which a new device redeems an
	// invite. It is the only cloud protocol a non-member may open.
	JoinProtocol protocol.ID = "/pcnode/join/1.0.0"
	// RosterProtocol exchanges roster versions and pushes the newer signed
	// roster. Members only: a stream from anyone else is reset.
	RosterProtocol protocol.ID = "/pcnode/roster/1.0.0"
)

// DefaultTimeout bounds one protocol exchange (open, write, read). Ten
// seconds covers a relayed connection with a slow first byte while keeping
// a stalled stranger from holding a stream for long.
const DefaultTimeout = 10 * time.Second

// DefaultSyncInterval is how often a Service exchanges rosters with every
// connected member besides on each new connection. A roster change is
// pushed at once when it is made; the periodic exchange carries one that
// was lost (the admin was killed after signing it, before pushing it) and
// finds connections that no longer carry anything (see syncOnce). Once
// every 30 s is one small message each way per member.
const DefaultSyncInterval = 30 * time.Second

// maxSyncAttempts bounds the exchanges one sync request makes when each
// fails on a dead connection that is then closed.
const maxSyncAttempts = 3

// Config configures a Service. Host is required; everything else has a
// working zero value.
type Config struct {
	// Host is the libp2p host the protocols run on. Required. The caller
	// owns it and closes it after the Service.
	Host host.Host
	// Dir is the cloud directory Load reads when State is nil.
	Dir string
	// State is the cloud to serve. Default: Load(Dir).
	State *State
	// Logger receives the service's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock for invites and revocations. Default time.Now.
	Now func() time.Time
	// Timeout bounds one protocol exchange. Default DefaultTimeout.
	Timeout time.Duration
	// SyncInterval is how often rosters are exchanged with every
	// connected member, and connections to revoked devices closed, besides
	// on each new connection. Default DefaultSyncInterval; negative: only
	// on connection.
	SyncInterval time.Duration
}

// Service runs the join and roster protocols for one device, disconnects
// revoked peers, and answers membership questions for the rest of the
// node. All methods are safe for concurrent use.
type Service struct {
	host    host.Host
	state   *State
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	every   time.Duration

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	notify *network.NotifyBundle

	mu      sync.Mutex
	started bool
	closed  bool
	syncing map[peer.ID]*syncReq // a sync runs for the peer
	wg      sync.WaitGroup
}

// New allocates a Service; it starts nothing. It fails if Host is nil or
// the cloud cannot be loaded (ErrNoCloud for a device that has not
// created or joined a cloud).
func New(cfg Config) (*Service, error) {
	if cfg.Host == nil {
		return nil, fmt.Errorf("cloud: new service: %w: no host", ErrInvalid)
	}
	st := cfg.State
	if st == nil {
		var err error
		if st, err = Load(cfg.Dir); err != nil {
			return nil, err
		}
	}
	s := &Service{
		host:    cfg.Host,
		state:   st,
		log:     cfg.Logger,
		now:     cfg.Now,
		timeout: cfg.Timeout,
		every:   cfg.SyncInterval,
		syncing: map[peer.ID]*syncReq{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.every == 0 {
		s.every = DefaultSyncInterval
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.notify = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) { s.onConnect(c.RemotePeer(), c) }}
	return s, nil
}

// Start registers the stream handlers and the connection watcher, then
// starts a roster exchange with every member already connected, and the
// periodic exchange (Config.SyncInterval). It returns at once; it is an
// error to start a Service twice or after Close.
func (s *Service) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cloud: start: %w", err)
	}
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return fmt.Errorf("cloud: start: %w: already started or closed", ErrInvalid)
	}
	s.started = true
	s.mu.Unlock()
	s.host.SetStreamHandler(JoinProtocol, s.tracked(s.handleJoin))
	s.host.SetStreamHandler(RosterProtocol, s.tracked(s.handleRoster))
	s.host.Network().Notify(s.notify)
	s.syncAll()
	if s.every > 0 {
		s.spawn(s.syncPeriodically)
	}
	s.log.Info("cloud: started", "cloud", s.state.ID().String(), "version", s.state.Roster().Version, "admin", s.state.IsAdmin())
	return nil
}

// tracked makes Close wait for a stream handler libp2p runs, and refuses
// streams once Close has begun. Handlers end within the exchange timeout.
func (s *Service) tracked(h network.StreamHandler) network.StreamHandler {
	return func(str network.Stream) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			str.Reset()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		h(str)
	}
}

// Close removes the handlers, stops watching connections and waits for
// every exchange in progress, started by the Service or by a peer (each
// ends within Config.Timeout). It is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if started {
		s.host.RemoveStreamHandler(JoinProtocol)
		s.host.RemoveStreamHandler(RosterProtocol)
		s.host.Network().StopNotify(s.notify)
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// State returns the cloud the Service serves.
func (s *Service) State() *State { return s.state }

// IsMember reports whether p is a live member of the cloud.
func (s *Service) IsMember(p peer.ID) bool { return s.state.IsMember(p) }

// Gate reports whether a connection with p may be kept once p is
// authenticated; the p2p connection gater calls it from InterceptSecured.
// It refuses only revoked peers: members must connect, and non-members
// must be able to reach the join protocol (and, later, to fetch blocks of
// active shares). Every members-only protocol checks IsMember itself.
func (s *Service) Gate(p peer.ID) bool { return !s.state.IsRevoked(p) }

// NewInvite issues an invite reachable at this host's current addresses
// (see State.NewInvite), valid for ttl (DefaultInviteTTL if <= 0).
func (s *Service) NewInvite(ttl time.Duration, admin bool) (Invite, string, error) {
	var full []multiaddr.Multiaddr
	p2p, err := multiaddr.NewComponent("p2p", s.host.ID().String())
	if err != nil {
		return Invite{}, "", fmt.Errorf("cloud: new invite: %w", err)
	}
	for _, a := range s.host.Addrs() {
		full = append(full, slices.Clip(a).AppendComponent(p2p)) // Clip: never write into the host's slice
	}
	return s.state.NewInvite(full, ttl, admin, s.now())
}

// Revoke revokes the member named or with peer ID nameOrPeer, signs and
// stores the roster, disconnects the revoked device and pushes the roster
// to every connected member. It needs the cloud key (ErrNotAdmin).
func (s *Service) Revoke(nameOrPeer string) (*Roster, error) {
	r, err := s.state.Revoke(nameOrPeer, s.now())
	if err != nil {
		return nil, err
	}
	s.rosterChanged(r)
	return r, nil
}

// Rename renames a member, signs and stores the roster and pushes it to
// every connected member. It needs the cloud key (ErrNotAdmin).
func (s *Service) Rename(nameOrPeer, name string) (*Roster, error) {
	r, err := s.state.Rename(nameOrPeer, name)
	if err != nil {
		return nil, err
	}
	s.rosterChanged(r)
	return r, nil
}

// Sync exchanges rosters with p now and waits for the exchange. Exchanges
// also run by themselves whenever a member connects and every
// Config.SyncInterval.
func (s *Service) Sync(ctx context.Context, p peer.ID) error {
	if !s.state.IsMember(p) {
		return fmt.Errorf("cloud: sync %s: %w", p, ErrNotFound)
	}
	_, err := s.syncOnce(ctx, p, nil)
	return err
}

// syncAll acts on every connected peer as on a new connection: revoked
// devices are disconnected, members get a roster exchange.
func (s *Service) syncAll() {
	for _, p := range s.host.Network().Peers() {
		s.onConnect(p, nil)
	}
}

// syncPeriodically runs syncAll every s.every until Close.
func (s *Service) syncPeriodically() {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.syncAll()
		}
	}
}

// onConnect runs in the swarm's notification path, so it only schedules.
// c is the new connection, nil when called for a peer already connected.
func (s *Service) onConnect(p peer.ID, c network.Conn) {
	switch {
	case s.state.IsRevoked(p):
		s.spawn(func() {
			s.log.Info("cloud: disconnecting revoked device", "peer", p.String())
			s.host.Network().ClosePeer(p)
		})
	case s.state.IsMember(p) && p != s.host.ID():
		s.requestSync(p, c)
	}
}

// spawn runs f in a goroutine Close waits for, unless closed.
func (s *Service) spawn(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// syncReq is the state of the sync running for one peer.
type syncReq struct {
	again bool         // run once more when this exchange ends
	conn  network.Conn // the connection to use next, if set and open
}

// requestSync starts a roster exchange with p, or, if one is running,
// asks it to run once more so it carries the latest roster. c, if not
// nil, is the connection to run it on: the newest one, which a peer that
// restarted just made, while libp2p would pick the one with the most
// streams, perhaps to the peer's killed instance.
func (s *Service) requestSync(p peer.ID, c network.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if r, running := s.syncing[p]; running {
		r.again = true
		if c != nil {
			r.conn = c
		}
		return
	}
	r := &syncReq{conn: c}
	s.syncing[p] = r
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failed := 0
		for {
			s.mu.Lock()
			c := r.conn
			r.conn, r.again = nil, false
			s.mu.Unlock()
			broken, err := s.syncOnce(s.ctx, p, c)
			if err != nil {
				s.log.Debug("cloud: roster exchange failed", "peer", p.String(), "err", err)
			}
			if broken != nil && s.ctx.Err() == nil {
				// A member that does not answer a roster exchange within
				// the timeout on a connection is not there: most likely
				// an earlier instance of it was killed and the transport
				// (QUIC notices only at its idle timeout) has not seen it.
				// New streams would keep going to that connection.
				s.log.Info("cloud: closing a connection on which a member did not answer", "peer", p.String(), "addr", broken.RemoteMultiaddr().String(), "err", err)
				broken.Close()
				if failed++; failed < maxSyncAttempts && s.host.Network().Connectedness(p) == network.Connected {
					s.mu.Lock()
					r.again = true
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			if r.again && !s.closed {
				s.mu.Unlock()
				continue
			}
			delete(s.syncing, p)
			s.mu.Unlock()
			return
		}
	}()
}

// openRoster opens a roster stream to p, on c if c is set and open, else
// on the connection libp2p picks (never dialling).
func (s *Service) openRoster(ctx context.Context, p peer.ID, c network.Conn) (network.Stream, error) {
	if c == nil || c.IsClosed() {
		return s.host.NewStream(network.WithNoDial(ctx, "roster exchange"), p, RosterProtocol)
	}
	str, err := c.NewStream(ctx)
	if err != nil {
		return nil, err
	}
	str.SetDeadline(time.Now().Add(s.timeout))
	if err := str.SetProtocol(RosterProtocol); err != nil {
		str.Reset()
		return nil, err
	}
	if err := msmux.SelectProtoOrFail(RosterProtocol, str); err != nil {
		str.Reset()
		return nil, err
	}
	return str, nil
}

// syncOnce is the initiator's side of the roster protocol: send our
// roster, read the reply, accept a newer roster if one comes back. It
// runs on c if c is set and open. When the exchange timed out for want of
// an answer, it returns the connection it ran on as broken; a reset (a
// peer that refuses us is alive), a malformed or refused message is not
// that.
func (s *Service) syncOnce(ctx context.Context, p peer.ID, c network.Conn) (broken network.Conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	str, err := s.openRoster(ctx, p, c)
	if err != nil {
		if c != nil && isTimeout(err) {
			broken = c
		}
		return broken, fmt.Errorf("cloud: sync %s: %w", p, err)
	}
	defer str.Close()
	str.SetDeadline(time.Now().Add(s.timeout))
	mine := s.state.Roster()
	b, err := mine.Encode()
	if err != nil {
		str.Reset()
		return nil, err
	}
	if err := writeMsg(str, rosterMsg{Version: mine.Version, Roster: b}); err != nil {
		str.Reset()
		if isTimeout(err) {
			broken = str.Conn()
		}
		return broken, fmt.Errorf("cloud: sync %s: %w", p, err)
	}
	str.CloseWrite()
	var reply rosterMsg
	if err := readMsg(bufio.NewReader(str), MaxResponseSize, &reply); err != nil {
		str.Reset()
		if isTimeout(err) {
			broken = str.Conn()
		}
		return broken, fmt.Errorf("cloud: sync %s: %w", p, err)
	}
	if len(reply.Roster) > 0 {
		return nil, s.accept(p, reply.Roster)
	}
	return nil, nil
}

// handleRoster is the responder's side of the roster protocol.
func (s *Service) handleRoster(str network.Stream) {
	p := str.Conn().RemotePeer()
	if !s.state.IsMember(p) {
		s.log.Debug("cloud: roster stream from a non-member refused", "peer", p.String())
		str.Reset()
		return
	}
	defer str.Close()
	str.SetDeadline(time.Now().Add(s.timeout))
	var in rosterMsg
	if err := readMsg(bufio.NewReader(str), MaxResponseSize, &in); err != nil {
		s.log.Debug("cloud: bad roster message", "peer", p.String(), "err", err)
		str.Reset()
		return
	}
	if len(in.Roster) > 0 {
		if err := s.accept(p, in.Roster); err != nil {
			s.log.Warn("cloud: roster from member refused", "peer", p.String(), "err", err)
		}
	}
	mine := s.state.Roster()
	out := rosterMsg{Version: mine.Version}
	if mine.Version > in.Version {
		b, err := mine.Encode()
		if err != nil {
			str.Reset()
			return
		}
		out.Roster = b
	}
	if err := writeMsg(str, out); err != nil {
		str.Reset()
	}
}

// accept decodes and accepts a roster received from p.
func (s *Service) accept(p peer.ID, raw []byte) error {
	r, err := DecodeRoster(raw)
	if err != nil {
		return fmt.Errorf("cloud: roster from %s: %w", p, err)
	}
	changed, err := s.state.Accept(r)
	if err != nil {
		return fmt.Errorf("cloud: roster from %s: %w", p, err)
	}
	if changed {
		s.log.Info("cloud: roster updated", "version", r.Version, "from", p.String())
		s.rosterChanged(r)
	}
	return nil
}

// rosterChanged acts on a new roster: revoked peers are disconnected,
// connected members get the roster pushed.
func (s *Service) rosterChanged(r *Roster) {
	if r.IsRevoked(s.host.ID()) {
		s.log.Error("cloud: this device has been revoked from the cloud", "cloud", r.Cloud.String())
	}
	s.syncAll()
}

// isTimeout reports whether err is a deadline passing, not a refusal.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}
