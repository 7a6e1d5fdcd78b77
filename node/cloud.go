package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
	"github.com/pcnode/pcnode/p2p"
)

// membership answers p2p's questions about the cloud (Members, Revoked)
// from the cloud state. The host is made before the cloud service, and a
// running daemon can join a cloud later, so the state is set after the
// fact; until then nobody is a member and nobody is revoked. Safe for
// concurrent use.
type membership struct{ st atomic.Pointer[cloud.State] }

var _ p2p.Members = (*membership)(nil)

func (m *membership) set(s *cloud.State)  { m.st.Store(s) }
func (m *membership) state() *cloud.State { return m.st.Load() }

// IsMember reports whether p is a live member of the cloud.
func (m *membership) IsMember(p peer.ID) bool {
	s := m.st.Load()
	return s != nil && s.IsMember(p)
}

// Revoked reports whether p was revoked from the cloud.
func (m *membership) Revoked(p peer.ID) bool {
	s := m.st.Load()
	return s != nil && s.IsRevoked(p)
}

// servers returns the live members of role server other than self, with
// the addresses h knows for them: the relays a device behind NAT may
// reserve a slot with.
func (m *membership) servers(h *p2p.Host, self peer.ID) []peer.AddrInfo {
	s := m.st.Load()
	if s == nil || h == nil {
		return nil
	}
	lh := h.Libp2p()
	if lh == nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, mb := range s.Roster().Live() {
		if mb.Role != cloud.RoleServer || mb.Peer == self {
			continue
		}
		if addrs := lh.Peerstore().Addrs(mb.Peer); len(addrs) > 0 {
			out = append(out, peer.AddrInfo{ID: mb.Peer, Addrs: addrs})
		}
	}
	return out
}

// loadCloud reads the home's cloud; a home without one gives nil, nil.
func loadCloud(home string) (*cloud.State, error) {
	st, err := cloud.Load(filepath.Join(home, CloudDir))
	if errors.Is(err, cloud.ErrNoCloud) {
		return nil, nil
	}
	return st, err
}

// noCloudErr is the answer of every cloud operation on a home without one.
func noCloudErr(op string) error {
	return api.Errorf(api.ErrNotFound, "node: %s: this device belongs to no cloud: join one with pcnode join CODE", op)
}

// cloudErr marks an error from node/cloud with the API kind a caller
// branches on, keeping its message.
func cloudErr(op string, err error) error {
	var kind error
	switch {
	case errors.Is(err, cloud.ErrNotAdmin):
		return api.Errorf(api.ErrForbidden, "node: %s: this device is not an admin of its cloud (it has no cloud key); run it on an admin device: %w", op, err)
	case errors.Is(err, cloud.ErrNotFound):
		kind = api.ErrNotFound
	case errors.Is(err, cloud.ErrNameTaken), errors.Is(err, cloud.ErrExists):
		kind = api.ErrConflict
	case errors.Is(err, cloud.ErrInviteExpired), errors.Is(err, cloud.ErrInviteUsed),
		errors.Is(err, cloud.ErrInviteUnknown), errors.Is(err, cloud.ErrAdminNotAllowed),
		errors.Is(err, cloud.ErrRevoked), errors.Is(err, cloud.ErrRefused):
		kind = api.ErrForbidden
	case errors.Is(err, cloud.ErrInvalid):
		kind = api.ErrInvalid
	default:
		return fmt.Errorf("node: %s: %w", op, err)
	}
	return api.Errorf(kind, "node: %s: %w", op, err)
}

// cloudParts returns the cloud state and, when online, the host and the
// cloud service (nil offline).
func (n *Node) cloudParts(op string) (*cloud.State, *p2p.Host, *cloud.Service, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.closed {
		return nil, nil, nil, fmt.Errorf("node: %s: node is not running", op)
	}
	st := n.members.state()
	if st == nil {
		return nil, n.host, nil, noCloudErr(op)
	}
	return st, n.host, n.csvc, nil
}

// Cloud describes the device's cloud from its roster; offline it reads the
// roster on disk.
func (n *Node) Cloud(ctx context.Context) (api.CloudInfo, error) {
	st, h, _, err := n.cloudParts("cloud")
	if err != nil {
		return api.CloudInfo{}, err
	}
	return n.cloudInfo(st, h != nil), nil
}

func (n *Node) cloudInfo(st *cloud.State, online bool) api.CloudInfo {
	r := st.Roster()
	ci := api.CloudInfo{
		ID:             r.Cloud.String(),
		PeerID:         n.id.String(),
		Admin:          st.IsAdmin(),
		Version:        r.Version,
		Members:        len(r.Live()),
		RevokedCount:   len(r.Members) - len(r.Live()),
		PendingInvites: st.PendingInvites(time.Now()),
		Online:         online,
		Revoked:        r.IsRevoked(n.id),
	}
	for _, m := range r.Members {
		if m.Peer == n.id {
			ci.Device, ci.Role = m.Name, string(m.Role)
		}
	}
	return ci
}

// Devices lists every member of the roster, live and revoked: this device
// first, then live devices by name, then revoked ones. A running daemon
// adds what it knows of each connection.
func (n *Node) Devices(ctx context.Context) ([]api.Device, error) {
	st, h, _, err := n.cloudParts("devices")
	if err != nil {
		return nil, err
	}
	r := st.Roster()
	sibs := map[peer.ID]p2p.Sibling{}
	var net network.Network
	if h != nil {
		for _, s := range h.Siblings() {
			sibs[s.ID] = s
		}
		if lh := h.Libp2p(); lh != nil {
			net = lh.Network()
		}
	}
	out := make([]api.Device, 0, len(r.Members))
	for _, m := range r.Members {
		d := deviceOf(m, n.id)
		if d.Self {
			d.Connected = h != nil
		} else if net != nil {
			c := net.Connectedness(m.Peer)
			d.Connected = c == network.Connected || c == network.Limited
		}
		if s, ok := sibs[m.Peer]; ok && !d.Self {
			d.Sources = s.Sources
			if d.Connected {
				d.Path, d.Relay = s.Path, relayString(s.Relay)
			}
			d.WhyNotDirect = s.WhyNotDirect
			d.LatencyMS = float64(s.Latency.Microseconds()) / 1000
			d.LastSeen = s.LastSeen.UTC()
			for _, a := range s.Addrs {
				d.Addrs = append(d.Addrs, a.String())
			}
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b api.Device) int {
		rank := func(d api.Device) int {
			switch {
			case d.Self:
				return 0
			case !d.Revoked:
				return 1
			}
			return 2
		}
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func relayString(p peer.ID) string {
	if p == "" {
		return ""
	}
	return p.String()
}

func deviceOf(m cloud.Member, self peer.ID) api.Device {
	d := api.Device{
		Name:    m.Name,
		ID:      m.Peer.String(),
		Role:    string(m.Role),
		Admin:   m.Admin,
		Revoked: m.IsRevoked(),
		Added:   m.Added.UTC(),
		Self:    m.Peer == self,
	}
	if d.Revoked {
		d.RevokedAt = m.Revoked.UTC()
	}
	return d
}

// Invite issues a single-use invite code for the running daemon's cloud,
// reachable at the host's current addresses. It needs the cloud key
// (ErrForbidden) and a running daemon (ErrOffline).
func (n *Node) Invite(ctx context.Context, req api.InviteRequest) (api.InviteResult, error) {
	ttl, err := api.ParseInviteTTL(req.TTL)
	if err != nil {
		return api.InviteResult{}, err
	}
	st, h, svc, err := n.cloudParts("invite")
	if err != nil {
		return api.InviteResult{}, err
	}
	if h == nil || svc == nil {
		return api.InviteResult{}, api.Errorf(api.ErrOffline, "node: invite: node is offline: the joining device dials this one, so start pcnode daemon and invite through it")
	}
	if !st.IsAdmin() {
		return api.InviteResult{}, cloudErr("invite", cloud.ErrNotAdmin)
	}
	inv, code, err := svc.NewInvite(ttl, req.Admin)
	if err != nil {
		return api.InviteResult{}, cloudErr("invite", err)
	}
	res := api.InviteResult{Code: code, Expires: inv.Expires.UTC(), Cloud: inv.Cloud.String(), Admin: inv.Admin, Addrs: []string{}}
	p2pc, err := multiaddr.NewComponent("p2p", inv.Inviter.ID.String())
	if err != nil {
		return api.InviteResult{}, fmt.Errorf("node: invite: %w", err)
	}
	for _, a := range inv.Inviter.Addrs {
		res.Addrs = append(res.Addrs, slices.Clip(a).AppendComponent(p2pc).String())
	}
	n.log.Info("invite issued", "expires", res.Expires, "admin", res.Admin)
	return res, nil
}

// findMember returns the member, live or revoked, whose name or peer ID
// is nameOrPeer; a live one is preferred when a name was reused.
func findMember(r *cloud.Roster, nameOrPeer string) (cloud.Member, bool) {
	if m, ok := r.Lookup(nameOrPeer); ok {
		return m, true
	}
	for _, m := range r.Members {
		if m.Name == nameOrPeer || m.Peer.String() == nameOrPeer {
			return m, true
		}
	}
	return cloud.Member{}, false
}

// Revoke revokes a device. Online the device is disconnected at once and
// the new roster pushed to the connected members; offline the roster is
// signed and stored and travels when the daemon next runs.
func (n *Node) Revoke(ctx context.Context, device string) (api.Device, error) {
	op := fmt.Sprintf("revoke %q", device)
	st, _, svc, err := n.cloudParts(op)
	if err != nil {
		return api.Device{}, err
	}
	m, ok := findMember(st.Roster(), device)
	switch {
	case !ok:
		return api.Device{}, api.Errorf(api.ErrNotFound, "node: %s: no such device in the cloud (pcnode devices ls lists them)", op)
	case m.IsRevoked():
		return api.Device{}, api.Errorf(api.ErrConflict, "node: %s: device %s was already revoked on %s", op, m.Peer, m.Revoked.UTC().Format(time.RFC3339))
	case m.Peer == n.id:
		return api.Device{}, api.Errorf(api.ErrInvalid, "node: %s: that is this device; revoke it from another admin device", op)
	}
	var r *cloud.Roster
	if svc != nil {
		r, err = svc.Revoke(m.Peer.String())
	} else {
		r, err = st.Revoke(m.Peer.String(), time.Now())
	}
	if err != nil {
		return api.Device{}, cloudErr(op, err)
	}
	n.log.Info("device revoked", "name", m.Name, "peer", m.Peer, "version", r.Version)
	n.rosterChanged()
	m, _ = findMember(r, m.Peer.String())
	return deviceOf(m, n.id), nil
}

// Rename gives a device a new name in the roster.
func (n *Node) Rename(ctx context.Context, device, name string) (api.Device, error) {
	op := fmt.Sprintf("rename %q", device)
	st, _, svc, err := n.cloudParts(op)
	if err != nil {
		return api.Device{}, err
	}
	if err := checkDeviceName(name); err != nil {
		return api.Device{}, api.Errorf(api.ErrInvalid, "node: %s: %v", op, err)
	}
	m, ok := st.Roster().Lookup(device)
	if !ok {
		if old, ok := findMember(st.Roster(), device); ok && old.IsRevoked() {
			return api.Device{}, api.Errorf(api.ErrConflict, "node: %s: device %s is revoked", op, old.Peer)
		}
		return api.Device{}, api.Errorf(api.ErrNotFound, "node: %s: no such device in the cloud (pcnode devices ls lists them)", op)
	}
	var r *cloud.Roster
	if svc != nil {
		r, err = svc.Rename(m.Peer.String(), name)
	} else {
		r, err = st.Rename(m.Peer.String(), name)
	}
	if err != nil {
		return api.Device{}, cloudErr(op, err)
	}
	m, _ = r.Lookup(m.Peer.String())
	return deviceOf(m, n.id), nil
}

// JoinOptions says how Join joins a cloud. The zero value joins with the
// home's name and role settings, not as an admin.
type JoinOptions struct {
	// Name is this device's name in the roster. Default: the name setting,
	// else the host name.
	Name string
	// Role is "device" or "server". Default: the role setting.
	Role string
	// Admin asks for the cloud key; the invite must allow it.
	Admin bool
	// Logger receives the temporary node's logs. Default nil: discard.
	Logger *slog.Logger
}

// Join makes the initialised home, which must not belong to a cloud yet
// (ErrHasCloud otherwise), join the cloud of an invite code, with no
// daemon running on it (ErrHomeLocked otherwise: join through the
// daemon's API instead). It opens the home, starts a short-lived libp2p
// host with the home's key and profile (no DHT, mDNS or bootstrap; the
// local profile stays on loopback), redeems the code with the inviter,
// stores the cloud in <home>/cloud, remembers the name and role in
// config.toml, and closes. A home made with InitOptions.NoCloud is ready
// for it.
func Join(ctx context.Context, home, code string, opts JoinOptions) (api.CloudInfo, error) {
	n, err := New(Config{Home: home, Offline: true, Logger: opts.Logger})
	if err != nil {
		return api.CloudInfo{}, err
	}
	if err := n.Start(ctx); err != nil {
		return api.CloudInfo{}, err
	}
	ci, err := n.Join(ctx, api.JoinRequest{Code: code, Name: opts.Name, Role: opts.Role, Admin: opts.Admin})
	if cerr := n.Close(); err == nil && cerr != nil {
		return api.CloudInfo{}, cerr
	}
	return ci, err
}

// Join redeems an invite code for this node's home, which must belong to
// no cloud (ErrConflict wrapping ErrHasCloud). A running daemon joins with
// its own host and starts serving the cloud at once, DHT rendezvous
// included; an offline node starts
// a short-lived host for the exchange.
func (n *Node) Join(ctx context.Context, req api.JoinRequest) (api.CloudInfo, error) {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	n.mu.Lock()
	running := n.started && !n.closed
	h := n.host
	n.mu.Unlock()
	if !running {
		return api.CloudInfo{}, errors.New("node: join: node is not running")
	}
	if st := n.members.state(); st != nil {
		return api.CloudInfo{}, api.Errorf(api.ErrConflict, "node: join: %w: cloud %s; a device belongs to one cloud (start over with pcnode init --force)", ErrHasCloud, st.ID())
	}
	name, role := req.Name, req.Role
	if name == "" {
		name = n.settings.Load().Name
	}
	if name == "" {
		name = defaultDeviceName()
	}
	if role == "" {
		role = n.settings.Load().Role
	}
	opts := cloud.JoinOptions{Name: name, Role: cloud.Role(role), Admin: req.Admin}
	dir := filepath.Join(n.home, CloudDir)

	var st *cloud.State
	var err error
	if h != nil {
		st, err = cloud.Join(ctx, h.Libp2p(), dir, req.Code, opts)
	} else {
		st, err = n.joinWithTempHost(ctx, dir, req.Code, opts)
	}
	if err != nil {
		return api.CloudInfo{}, cloudErr("join", err)
	}
	if h == nil {
		// The first daemon of this home then finds the inviter among its
		// remembered siblings, with no DHT, DNS or mDNS needed (a running
		// daemon remembers the connection by itself).
		if inv, err := cloud.DecodeInvite(req.Code, time.Now()); err == nil {
			if err := p2p.Remember(filepath.Join(n.home, PeersFile), time.Now(), inv.Inviter); err != nil {
				n.log.Warn("joined, but could not remember the inviter's addresses", "err", err)
			}
		}
	}
	n.members.set(st)
	if err := n.rememberIdentity(name, role); err != nil {
		n.log.Warn("joined, but could not save name and role in config", "err", err)
	}
	n.log.Info("joined cloud", "cloud", st.ID(), "name", name, "role", role, "admin", st.IsAdmin())
	if h != nil {
		if err := n.startCloudService(ctx, st); err != nil {
			return api.CloudInfo{}, err
		}
		// The host was built without a secret; rendezvous for the new
		// cloud starts now rather than at the next daemon start.
		if err := h.SetRendezvousSecret(st.Secret()); err != nil {
			n.log.Warn("joined, but DHT rendezvous did not start", "err", err)
		}
		n.rosterChanged()
	}
	return n.cloudInfo(st, h != nil), nil
}

// joinWithTempHost joins through a host that lives for the exchange only.
func (n *Node) joinWithTempHost(ctx context.Context, dir, code string, opts cloud.JoinOptions) (*cloud.State, error) {
	st, _, _, err := n.parts()
	if err != nil {
		return nil, err
	}
	cfg := p2p.Config{
		Key:        n.key,
		Profile:    p2p.Profile(n.settings.Load().Profile),
		Bootstrap:  []peer.AddrInfo{},
		Blockstore: st,
		DHT:        p2p.DHTOff,
		MDNS:       p2p.ToggleOff,
		Logger:     n.log.With("component", "p2p"),
	}
	if cfg.Profile != p2p.ProfileLocal {
		// Any free port: a daemon started later takes the configured one.
		for _, a := range []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/udp/0/quic-v1"} {
			cfg.ListenAddrs = append(cfg.ListenAddrs, multiaddr.StringCast(a))
		}
	}
	h, err := p2p.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("node: join: %w", err)
	}
	defer h.Close()
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("node: join: %w", err)
	}
	return cloud.Join(ctx, h.Libp2p(), dir, code, opts)
}

// rememberIdentity writes name and role to config.toml (the file's own
// values, not the environment's), so later starts use them.
func (n *Node) rememberIdentity(name, role string) error {
	s, err := LoadSettings(n.home)
	if err != nil {
		return err
	}
	if err := s.Set("name", name); err != nil {
		return err
	}
	if err := s.Set("role", role); err != nil {
		return err
	}
	return s.Save(n.home)
}

// startCloudService runs the cloud protocols for st on the running host.
// A node closed meanwhile gets no service.
func (n *Node) startCloudService(ctx context.Context, st *cloud.State) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.host == nil {
		return errors.New("node: join: node is closing")
	}
	return n.startCloudLocked(ctx, st)
}

// startCloudLocked starts the cloud service; n.mu is held.
func (n *Node) startCloudLocked(ctx context.Context, st *cloud.State) error {
	svc, err := cloud.New(cloud.Config{Host: n.host.Libp2p(), State: st, Logger: n.log.With("component", "cloud")})
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		svc.Close()
		return fmt.Errorf("node: start: %w", err)
	}
	n.csvc = svc
	return nil
}

// rosterChanged lets the parts that publish the roster know.
func (n *Node) rosterChanged() {
	n.mu.Lock()
	d := n.dns
	n.mu.Unlock()
	if d != nil {
		d.kick()
	}
}
