package cloud

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Files in a cloud directory. All are written atomically (temporary file,
// fsync, rename) with mode 0600; the directory is created 0700.
const (
	KeyFile     = "cloud.key"    // cloud private key (crypto.MarshalPrivateKey); admin devices only
	SecretFile  = "cloud.secret" // the cloud secret, SecretSize raw bytes
	RosterFile  = "roster.json"  // the current signed roster (Roster.Encode)
	InvitesFile = "invites.json" // pending invites: token hashes and expiries; admin devices only
)

// SecretSize is the length of the cloud secret.
const SecretSize = 32

// State is one device's view of its cloud, kept in a directory: the signed
// roster, the cloud secret, on admin devices the cloud key and the pending
// invites. Every method is safe for concurrent use, and every change is on
// disk before the method returns.
type State struct {
	dir string

	mu      sync.Mutex
	key     crypto.PrivKey // nil unless admin
	secret  []byte
	roster  *Roster
	pending []pendingInvite
}

// Create makes a new cloud in dir (created if missing): a new cloud key
// and secret, and roster version 1 naming this device, deviceName, as its
// only member, an admin of role "device". It refuses, with ErrExists, a
// directory that already holds a roster.
func Create(dir, deviceName string, deviceKey crypto.PrivKey) (*State, error) {
	return CreateAs(dir, deviceName, RoleDevice, deviceKey)
}

// CreateAs is Create for a first device of the given role, so a home
// server that starts a cloud is listed as one (and siblings pick it as
// their relay).
func CreateAs(dir, deviceName string, role Role, deviceKey crypto.PrivKey) (*State, error) {
	if !role.valid() {
		return nil, fmt.Errorf("cloud: create %s: %w: role %q (want %q or %q)", dir, ErrInvalid, role, RoleDevice, RoleServer)
	}
	if deviceKey == nil {
		return nil, fmt.Errorf("cloud: create %s: %w: no device key", dir, ErrInvalid)
	}
	self, err := peer.IDFromPrivateKey(deviceKey)
	if err != nil {
		return nil, fmt.Errorf("cloud: create %s: device key: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RosterFile)); err == nil {
		return nil, fmt.Errorf("cloud: create %s: %w", dir, ErrExists)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cloud: create %s: %w", dir, err)
	}
	id, err := IDFromPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	r, err := NewRoster(id, Member{Peer: self, Name: deviceName, Role: role, Admin: true, Added: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("cloud: create %s: %w", dir, err)
	}
	if err := r.Sign(key); err != nil {
		return nil, err
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("cloud: create %s: %w", dir, err)
	}
	s := &State{dir: dir, key: key, secret: secret, roster: r}
	if err := s.saveAll(); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads the cloud kept in dir. It returns an error wrapping ErrNoCloud
// when dir holds no roster, and one wrapping ErrInvalid, naming the file,
// when a file is corrupt: a roster that does not verify against its own
// cloud ID, a secret of the wrong size, a key that is not the cloud's.
func Load(dir string) (*State, error) {
	rb, err := os.ReadFile(filepath.Join(dir, RosterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cloud: load %s: %w", dir, ErrNoCloud)
	}
	if err != nil {
		return nil, fmt.Errorf("cloud: load %s: %w", dir, err)
	}
	r, err := DecodeRoster(rb)
	if err != nil {
		return nil, fmt.Errorf("cloud: load %s: %w", filepath.Join(dir, RosterFile), err)
	}
	pub, err := r.Cloud.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("cloud: load %s: %w", filepath.Join(dir, RosterFile), err)
	}
	if err := r.Verify(pub); err != nil {
		return nil, fmt.Errorf("cloud: load %s: %w", filepath.Join(dir, RosterFile), err)
	}
	s := &State{dir: dir, roster: r}

	s.secret, err = os.ReadFile(filepath.Join(dir, SecretFile))
	if err != nil {
		return nil, fmt.Errorf("cloud: load %s: %w", dir, err)
	}
	if len(s.secret) != SecretSize {
		return nil, fmt.Errorf("cloud: load %s: %w: %d bytes, want %d", filepath.Join(dir, SecretFile), ErrInvalid, len(s.secret), SecretSize)
	}

	kb, err := os.ReadFile(filepath.Join(dir, KeyFile))
	switch {
	case errors.Is(err, fs.ErrNotExist): // not an admin
	case err != nil:
		return nil, fmt.Errorf("cloud: load %s: %w", dir, err)
	default:
		if s.key, err = checkKey(r.Cloud, kb); err != nil {
			return nil, fmt.Errorf("cloud: load %s: %w", filepath.Join(dir, KeyFile), err)
		}
	}

	ib, err := os.ReadFile(filepath.Join(dir, InvitesFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("cloud: load %s: %w", dir, err)
	default:
		if s.pending, err = decodePending(ib); err != nil {
			return nil, fmt.Errorf("cloud: load %s: %w", filepath.Join(dir, InvitesFile), err)
		}
	}
	return s, nil
}

// checkKey parses a marshalled cloud key and checks it belongs to id.
func checkKey(id ID, b []byte) (crypto.PrivKey, error) {
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: cloud key: %v", ErrInvalid, err)
	}
	kid, err := IDFromPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	if kid != id {
		return nil, fmt.Errorf("%w: key of cloud %s, roster of cloud %s", ErrInvalid, kid, id)
	}
	return key, nil
}

// saveJoined persists what a join brought: used by Join for a new device.
func saveJoined(dir string, r *Roster, secret []byte, key crypto.PrivKey) (*State, error) {
	if _, err := os.Stat(filepath.Join(dir, RosterFile)); err == nil {
		return nil, fmt.Errorf("cloud: join: save %s: %w", dir, ErrExists)
	}
	s := &State{dir: dir, key: key, secret: slices.Clone(secret), roster: r}
	if err := s.saveAll(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *State) saveAll() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("cloud: save %s: %w", s.dir, err)
	}
	if s.key != nil {
		kb, err := crypto.MarshalPrivateKey(s.key)
		if err != nil {
			return fmt.Errorf("cloud: save %s: %w", KeyFile, err)
		}
		if err := writeFile(s.dir, KeyFile, kb); err != nil {
			return err
		}
	}
	if err := writeFile(s.dir, SecretFile, s.secret); err != nil {
		return err
	}
	if err := s.savePending(); err != nil {
		return err
	}
	return s.saveRoster(s.roster)
}

func (s *State) saveRoster(r *Roster) error {
	b, err := r.Encode()
	if err != nil {
		return err
	}
	return writeFile(s.dir, RosterFile, b)
}

func (s *State) savePending() error {
	if s.key == nil && len(s.pending) == 0 {
		return nil
	}
	b, err := encodePending(s.pending)
	if err != nil {
		return fmt.Errorf("cloud: save %s: %w", InvitesFile, err)
	}
	return writeFile(s.dir, InvitesFile, b)
}

// writeFile replaces dir/name atomically with data, mode 0600.
func writeFile(dir, name string, data []byte) (err error) {
	path := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("cloud: save %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("cloud: save %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Dir returns the directory the state is kept in.
func (s *State) Dir() string { return s.dir }

// ID returns the cloud's ID.
func (s *State) ID() ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roster.Cloud
}

// Roster returns the current roster. The caller must not modify it; it is
// never modified by the State either (changes replace it).
func (s *State) Roster() *Roster {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roster
}

// Secret returns a copy of the cloud secret.
func (s *State) Secret() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secret)
}

// IsAdmin reports whether this device holds the cloud key.
func (s *State) IsAdmin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key != nil
}

// IsMember reports whether p is a live member of the current roster.
func (s *State) IsMember(p peer.ID) bool { return s.Roster().IsMember(p) }

// IsRevoked reports whether p has been revoked.
func (s *State) IsRevoked(p peer.ID) bool { return s.Roster().IsRevoked(p) }

// Accept applies the rules of the package-level Accept to incoming and, if
// it wins, stores it. It reports whether the roster changed.
func (s *State) Accept(incoming *Roster) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, changed, err := Accept(s.roster, incoming)
	if err != nil || !changed {
		return false, err
	}
	if err := s.saveRoster(r); err != nil {
		return false, err
	}
	s.roster = r
	return true, nil
}

// change applies an admin operation to the roster, signs and stores it.
func (s *State) change(op string, f func(*Roster) (*Roster, error)) (*Roster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changeLocked(op, f)
}

// changeLocked is change with s.mu held. f's errors already carry the
// operation and key, so they are returned as they are.
func (s *State) changeLocked(op string, f func(*Roster) (*Roster, error)) (*Roster, error) {
	if s.key == nil {
		return nil, fmt.Errorf("cloud: %s: %w", op, ErrNotAdmin)
	}
	n, err := f(s.roster)
	if err != nil {
		return nil, err
	}
	if err := n.Sign(s.key); err != nil {
		return nil, err
	}
	if err := s.saveRoster(n); err != nil {
		return nil, err
	}
	s.roster = n
	return n, nil
}

// AddMember adds m to the roster (see Roster.AddMember), signs and stores
// the new version. It needs the cloud key (ErrNotAdmin).
func (s *State) AddMember(m Member) (*Roster, error) {
	return s.change(fmt.Sprintf("add member %q", m.Name), func(r *Roster) (*Roster, error) { return r.AddMember(m) })
}

// Revoke revokes the live member named or with peer ID nameOrPeer, signs
// and stores the new roster. It needs the cloud key (ErrNotAdmin).
func (s *State) Revoke(nameOrPeer string, now time.Time) (*Roster, error) {
	return s.change(fmt.Sprintf("revoke %q", nameOrPeer), func(r *Roster) (*Roster, error) { return r.Revoke(nameOrPeer, now) })
}

// Rename renames the live member named or with peer ID nameOrPeer, signs
// and stores the new roster. It needs the cloud key (ErrNotAdmin).
func (s *State) Rename(nameOrPeer, name string) (*Roster, error) {
	return s.change(fmt.Sprintf("rename %q", nameOrPeer), func(r *Roster) (*Roster, error) { return r.Rename(nameOrPeer, name) })
}

// NewInvite issues an invite for this cloud, valid for ttl from now
// (DefaultInviteTTL if ttl <= 0), reachable at addrs: this device's full
// addresses, each ending in /p2p/<this device's peer ID> (the first
// MaxInviteAddrs distinct ones are used). admin lets the joiner ask for
// the cloud key. The invite's token hash is stored, so the invite stays
// valid across a restart until it expires or is used. It needs the cloud
// key (ErrNotAdmin): only an admin can sign the roster that adds the
// joiner.
func (s *State) NewInvite(addrs []multiaddr.Multiaddr, ttl time.Duration, admin bool, now time.Time) (Invite, string, error) {
	if ttl <= 0 {
		ttl = DefaultInviteTTL
	}
	self, tr, err := inviterAddrs(addrs)
	if err != nil {
		return Invite{}, "", fmt.Errorf("cloud: new invite: %w", err)
	}
	inv := Invite{
		Inviter: peer.AddrInfo{ID: self, Addrs: tr},
		Expires: now.Add(ttl).UTC().Truncate(time.Second),
		Admin:   admin,
	}
	if _, err := rand.Read(inv.Token[:]); err != nil {
		return Invite{}, "", fmt.Errorf("cloud: new invite: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return Invite{}, "", fmt.Errorf("cloud: new invite: %w", ErrNotAdmin)
	}
	inv.Cloud = s.roster.Cloud
	code, err := inv.Code()
	if err != nil {
		return Invite{}, "", err
	}
	pending := prunePending(s.pending, now)
	if len(pending) >= maxPendingCount {
		return Invite{}, "", fmt.Errorf("cloud: new invite: %w: %d invites pending; wait for some to expire", ErrInvalid, len(pending))
	}
	pending = append(pending, pendingInvite{Hash: sha256.Sum256(inv.Token[:]), Expires: inv.Expires, Admin: admin})
	old := s.pending
	s.pending = pending
	if err := s.savePending(); err != nil {
		s.pending = old
		return Invite{}, "", err
	}
	return inv, code, nil
}

// PendingInvites returns how many issued invites are neither used nor
// expired at now.
func (s *State) PendingInvites(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pending {
		if !p.Used && !now.After(p.Expires) {
			n++
		}
	}
	return n
}

// admission is what an admitted joiner receives.
type admission struct {
	roster *Roster
	secret []byte
	key    crypto.PrivKey // nil unless the joiner became an admin
}

// admit redeems token for joiner and adds it to the roster, all under one
// lock: token checks first (unknown, used by another device, expired,
// admin not allowed), then the joiner (revoked, already a member as
// someone else, name taken), then the invite is marked used (by joiner)
// and stored before the roster is signed and stored, so a crash in
// between fails closed (the invite is spent, nobody added).
//
// A joiner already on the roster exactly as it asks to be (same name,
// role and admin flag) is admitted again without a roster change: the
// inviter may have stored the roster naming it and then crashed, or lost
// the connection, before the reply carried the roster and the secret. It
// may redo the join with the same invite (which records who used it) or a
// fresh one.
func (s *State) admit(joiner peer.ID, token []byte, name string, role Role, wantAdmin bool, now time.Time) (admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return admission{}, ErrNotAdmin
	}
	i, err := redeem(s.pending, token, joiner, now)
	if err != nil {
		return admission{}, err
	}
	if wantAdmin && !s.pending[i].Admin {
		return admission{}, ErrAdminNotAllowed
	}
	m := Member{Peer: joiner, Name: name, Role: role, Admin: wantAdmin, Added: now}
	old, again := s.roster.find(joiner)
	again = again && !old.IsRevoked() && old.Name == name && old.Role == role && old.Admin == wantAdmin
	if !again {
		if _, err := s.roster.AddMember(m); err != nil {
			return admission{}, err
		}
	}
	if !s.pending[i].Used {
		s.pending[i].Used, s.pending[i].Peer = true, joiner
		s.pending = prunePending(s.pending, now)
		if err := s.savePending(); err != nil {
			return admission{}, err
		}
	}
	r := s.roster
	if !again {
		if r, err = s.changeLocked("admit", func(r *Roster) (*Roster, error) { return r.AddMember(m) }); err != nil {
			return admission{}, err
		}
	}
	a := admission{roster: r, secret: slices.Clone(s.secret)}
	if wantAdmin {
		a.key = s.key
	}
	return a, nil
}
