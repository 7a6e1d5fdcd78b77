package cloud

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// handleJoin is the inviter's side of the join protocol: one request, one
// response, then the stream is closed. The joiner's peer ID comes from the
// authenticated connection.
func (s *Service) handleJoin(str network.Stream) {
	defer str.Close()
	joiner := str.Conn().RemotePeer()
	str.SetDeadline(time.Now().Add(s.timeout))
	var req joinRequest
	if err := readMsg(bufio.NewReader(str), MaxRequestSize, &req); err != nil {
		s.log.Warn("cloud: join refused: bad request", "peer", joiner.String(), "err", err)
		s.refuse(str, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	a, err := s.admitRequest(joiner, req)
	if err != nil {
		s.log.Warn("cloud: join refused", "peer", joiner.String(), "name", req.Name, "reason", reasonOf(err), "err", err)
		s.refuse(str, err)
		return
	}
	resp := joinResponse{OK: true, Secret: a.secret}
	if resp.Roster, err = a.roster.Encode(); err == nil && a.key != nil {
		resp.Key, err = crypto.MarshalPrivateKey(a.key)
	}
	if err != nil {
		s.log.Error("cloud: join: encoding the reply failed", "peer", joiner.String(), "err", err)
		s.refuse(str, err)
		return
	}
	if err := writeMsg(str, resp); err != nil {
		// The joiner is in the roster but missed the reply; it can fetch
		// the roster from any member, but not the secret. Say so.
		s.log.Warn("cloud: joined device did not receive the reply", "peer", joiner.String(), "name", req.Name, "err", err)
		str.Reset()
		return
	}
	s.log.Info("cloud: device joined", "peer", joiner.String(), "name", req.Name, "role", string(req.Role), "admin", req.Admin, "version", a.roster.Version)
	s.rosterChanged(a.roster)
}

// admitRequest checks a join request and admits the joiner.
func (s *Service) admitRequest(joiner peer.ID, req joinRequest) (admission, error) {
	switch {
	case req.V != 1:
		return admission{}, fmt.Errorf("%w: join message version %d, this pcnode speaks 1", ErrInvalid, req.V)
	case len(req.Token) != TokenSize:
		return admission{}, fmt.Errorf("%w: token of %d bytes", ErrInvalid, len(req.Token))
	case !req.Role.valid():
		return admission{}, fmt.Errorf("%w: role %q", ErrInvalid, req.Role)
	}
	if err := checkName(req.Name); err != nil {
		return admission{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if s.state.IsRevoked(joiner) {
		return admission{}, ErrRevoked
	}
	return s.state.admit(joiner, req.Token, req.Name, req.Role, req.Admin, s.now())
}

func (s *Service) refuse(str network.Stream, err error) {
	if werr := writeMsg(str, joinResponse{Reason: reasonOf(err), Message: err.Error()}); werr != nil {
		str.Reset()
	}
}

// droppedHint explains a join that fails on a connection cut short: that
// is how members treat a revoked device, and a bare "connection reset"
// would not say so.
const droppedHint = "(the inviter dropped the connection; is this device revoked?)"

// JoinOptions says how a device joins. Name is required.
type JoinOptions struct {
	// Name is this device's name in the roster. Required.
	Name string
	// Role is RoleDevice or RoleServer. Default RoleDevice.
	Role Role
	// Admin asks for the cloud key; the invite must allow it.
	Admin bool
	// Now is the clock used to check the invite's expiry. Default time.Now.
	Now func() time.Time
	// Timeout bounds the exchange once connected. Default DefaultTimeout.
	Timeout time.Duration
}

// Join redeems an invite code: it dials the inviter at the code's
// addresses with h, sends the token and the device's name on the join
// protocol, checks the roster it gets back (signed by the cloud the code
// names, listing h's peer ID under the name), and stores the cloud in dir
// (which must not hold one already). It blocks until done or ctx ends.
//
// A refusal by the inviter wraps the matching sentinel: ErrInviteUnknown,
// ErrInviteUsed, ErrInviteExpired, ErrAdminNotAllowed, ErrRevoked,
// ErrNameTaken, ErrExists (already a member), ErrNotAdmin, else
// ErrRefused; a code that does not decode wraps ErrInvalid or
// ErrInviteExpired and nothing is dialled.
func Join(ctx context.Context, h host.Host, dir, code string, opts JoinOptions) (*State, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Role == "" {
		opts.Role = RoleDevice
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := checkName(opts.Name); err != nil {
		return nil, fmt.Errorf("cloud: join: %w: %v", ErrInvalid, err)
	}
	if !opts.Role.valid() {
		return nil, fmt.Errorf("cloud: join: %w: role %q", ErrInvalid, opts.Role)
	}
	inv, err := DecodeInvite(code, opts.Now())
	if err != nil {
		return nil, err
	}
	if opts.Admin && !inv.Admin {
		return nil, fmt.Errorf("cloud: join %s: %w", inv.Cloud, ErrAdminNotAllowed)
	}
	if inv.Inviter.ID == h.ID() {
		return nil, fmt.Errorf("cloud: join %s: %w: the invite was made by this device", inv.Cloud, ErrInvalid)
	}
	// A connection held from before may lead to an earlier instance of the
	// inviter that was killed: QUIC notices a dead peer only at its idle
	// timeout, and libp2p opens new streams on the connection with the
	// most streams, so the request would go nowhere. If the exchange fails
	// on such a connection, it is closed and the join tried once more on a
	// fresh one.
	before := h.Network().ConnsToPeer(inv.Inviter.ID)
	req := joinRequest{V: 1, Token: inv.Token[:], Name: opts.Name, Role: opts.Role, Admin: opts.Admin}
	var resp joinResponse
	for attempt := 0; ; attempt++ {
		if err := h.Connect(ctx, inv.Inviter); err != nil {
			return nil, fmt.Errorf("cloud: join %s: cannot reach the inviter %s: %w", inv.Cloud, inv.Inviter.ID, err)
		}
		var conn network.Conn
		resp, conn, err = joinExchange(ctx, h, inv, req, opts.Timeout)
		if err == nil {
			break
		}
		if attempt > 0 || conn == nil || !slices.Contains(before, conn) || ctx.Err() != nil {
			return nil, err
		}
		conn.Close()
	}
	if !resp.OK {
		sentinel := errOfReason(resp.Reason)
		if sentinel == ErrRefused || sentinel == ErrInvalid {
			return nil, fmt.Errorf("cloud: join %s: refused by the inviter: %w: %s", inv.Cloud, sentinel, resp.Message)
		}
		return nil, fmt.Errorf("cloud: join %s: refused by the inviter: %w", inv.Cloud, sentinel)
	}
	r, key, err := checkJoinReply(inv, h.ID(), opts, resp)
	if err != nil {
		return nil, fmt.Errorf("cloud: join %s: bad reply from the inviter: %w", inv.Cloud, err)
	}
	return saveJoined(dir, r, resp.Secret, key)
}

// checkJoinReply verifies what the inviter sent: a roster of the invite's
// cloud, properly signed, naming self as asked; a secret of the right
// size; the cloud key if and only if admin was asked for.
func checkJoinReply(inv Invite, self peer.ID, opts JoinOptions, resp joinResponse) (*Roster, crypto.PrivKey, error) {
	r, err := DecodeRoster(resp.Roster)
	if err != nil {
		return nil, nil, err
	}
	pub, err := inv.Cloud.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	if err := r.Verify(pub); err != nil {
		return nil, nil, err
	}
	m, ok := r.Lookup(self.String())
	if !ok || m.Name != opts.Name || m.Role != opts.Role || m.Admin != opts.Admin {
		return nil, nil, fmt.Errorf("%w: roster v%d does not list this device as asked", ErrInvalid, r.Version)
	}
	if len(resp.Secret) != SecretSize {
		return nil, nil, fmt.Errorf("%w: secret of %d bytes", ErrInvalid, len(resp.Secret))
	}
	if !opts.Admin {
		return r, nil, nil
	}
	if len(resp.Key) == 0 {
		return nil, nil, fmt.Errorf("%w: no cloud key for an admin join", ErrInvalid)
	}
	key, err := checkKey(inv.Cloud, resp.Key)
	if err != nil {
		return nil, nil, err
	}
	return r, key, nil
}

// joinExchange sends the join request on a new stream to the inviter and
// reads its reply. It returns the connection the stream ran on, if one
// was opened, also on failure.
func joinExchange(ctx context.Context, h host.Host, inv Invite, req joinRequest, timeout time.Duration) (joinResponse, network.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	str, err := h.NewStream(ctx, inv.Inviter.ID, JoinProtocol)
	if err != nil {
		return joinResponse{}, nil, fmt.Errorf("cloud: join %s: open join stream to %s %s: %w", inv.Cloud, inv.Inviter.ID, droppedHint, err)
	}
	defer str.Close()
	str.SetDeadline(time.Now().Add(timeout))
	if err := writeMsg(str, req); err != nil {
		str.Reset()
		return joinResponse{}, str.Conn(), fmt.Errorf("cloud: join %s: send request %s: %w", inv.Cloud, droppedHint, err)
	}
	str.CloseWrite()
	var resp joinResponse
	if err := readMsg(bufio.NewReader(str), MaxResponseSize, &resp); err != nil {
		str.Reset()
		return joinResponse{}, str.Conn(), fmt.Errorf("cloud: join %s: read reply %s: %w", inv.Cloud, droppedHint, err)
	}
	return resp, str.Conn(), nil
}
