package cloud

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func TestCreateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cloud")
	dev := newKey(t)
	s, err := Create(dir, "laptop", dev)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(dev)
	if !s.IsAdmin() || !s.IsMember(self) || len(s.Secret()) != SecretSize {
		t.Fatalf("new cloud: admin=%v member=%v secret=%d", s.IsAdmin(), s.IsMember(self), len(s.Secret()))
	}
	if m, ok := s.Roster().Lookup("laptop"); !ok || !m.Admin || m.Role != RoleDevice || m.Peer != self {
		t.Errorf("first member = %+v, %v", m, ok)
	}
	for _, name := range []string{KeyFile, SecretFile, RosterFile, InvitesFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if _, err := Create(dir, "laptop", dev); !errors.Is(err, ErrExists) {
		t.Errorf("second Create = %v, want ErrExists", err)
	}
	if _, err := s.Rename("laptop", "desk"); err != nil {
		t.Fatal(err)
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != s.ID() || !bytes.Equal(l.Secret(), s.Secret()) || !l.IsAdmin() || l.Roster().Version != 2 {
		t.Errorf("Load differs from what was saved: id %v/%v version %d admin %v", l.ID(), s.ID(), l.Roster().Version, l.IsAdmin())
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoCloud) {
		t.Errorf("Load(empty) = %v, want ErrNoCloud", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	other := t.TempDir()
	if _, err := Create(other, "x", newKey(t)); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := os.ReadFile(filepath.Join(other, KeyFile))
	otherRoster, _ := os.ReadFile(filepath.Join(other, RosterFile))
	tests := []struct {
		name, file string
		data       []byte
		blame      string // the file the error must name; default file
	}{
		{"roster garbage", RosterFile, []byte("{"), ""},
		{"roster signature", RosterFile, nil, ""}, // filled below: one byte of sig flipped
		{"secret short", SecretFile, []byte("short"), ""},
		{"key garbage", KeyFile, []byte("junk"), ""},
		{"key of other cloud", KeyFile, otherKey, ""},
		{"invites garbage", InvitesFile, []byte("["), ""},
		{"invites bad hash", InvitesFile, []byte(`{"invites":[{"hash":"00","expires":1}]}`), ""},
		{"roster of other cloud with this key", RosterFile, otherRoster, KeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Create(dir, "laptop", newKey(t)); err != nil {
				t.Fatal(err)
			}
			data := tt.data
			if data == nil {
				b, _ := os.ReadFile(filepath.Join(dir, RosterFile))
				r, err := DecodeRoster(b)
				if err != nil {
					t.Fatal(err)
				}
				r.Sig[0] ^= 1
				data, _ = r.Encode()
			}
			if err := os.WriteFile(filepath.Join(dir, tt.file), data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load accepted a corrupt file")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) {
				t.Errorf("Load = %v, want ErrInvalid or ErrBadSignature", err)
			}
			blame := tt.blame
			if blame == "" {
				blame = tt.file
			}
			if !bytes.Contains([]byte(err.Error()), []byte(blame)) {
				t.Errorf("error %q does not name the file %s", err, blame)
			}
		})
	}
}

func TestStateNotAdmin(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, "laptop", newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, KeyFile))
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.IsAdmin() {
		t.Fatal("loaded without cloud.key but IsAdmin")
	}
	addr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/1/p2p/" + s.Roster().Members[0].Peer.String())
	if _, _, err := l.NewInvite([]multiaddr.Multiaddr{addr}, 0, false, t0); !errors.Is(err, ErrNotAdmin) {
		t.Errorf("NewInvite = %v, want ErrNotAdmin", err)
	}
	if _, err := l.Revoke("laptop", t0); !errors.Is(err, ErrNotAdmin) {
		t.Errorf("Revoke = %v, want ErrNotAdmin", err)
	}
	// A non-admin still accepts rosters signed by an admin.
	n, err := s.AddMember(Member{Peer: newPeer(t), Name: "phone", Role: RoleDevice, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := l.Accept(n); err != nil || !changed {
		t.Errorf("Accept = %v, %v", changed, err)
	}
	if l2, err := Load(dir); err != nil || l2.Roster().Version != n.Version {
		t.Errorf("accepted roster not persisted: %v", err)
	}
}

func TestPendingInvites(t *testing.T) {
	dir := t.TempDir()
	dev := newKey(t)
	s, err := Create(dir, "laptop", dev)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(dev)
	addrs := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + self.String())}
	inv, code, err := s.NewInvite(addrs, 0, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Expires.Equal(t0.Add(DefaultInviteTTL)) {
		t.Errorf("expiry %v, want now+%v", inv.Expires, DefaultInviteTTL)
	}
	if dec, err := DecodeInvite(code, t0); err != nil || dec.Token != inv.Token {
		t.Fatalf("DecodeInvite(own code) = %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, InvitesFile))
	if bytes.Contains(b, []byte(string(inv.Token[:]))) {
		t.Error("invites file holds the raw token")
	}
	// A restart keeps the invite valid.
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := l.PendingInvites(t0); n != 1 {
		t.Fatalf("after reload %d pending invites, want 1", n)
	}
	joiner := newPeer(t)
	tests := []struct {
		name      string
		token     []byte
		peer      peer.ID
		nameWant  string
		admin     bool
		now       time.Time
		err       error
		spendsInv bool
	}{
		{"wrong token", make([]byte, TokenSize), joiner, "phone", false, t0, ErrInviteUnknown, false},
		{"admin not allowed", inv.Token[:], joiner, "phone", true, t0, ErrAdminNotAllowed, false},
		{"name taken", inv.Token[:], joiner, "laptop", false, t0, ErrNameTaken, false},
		{"expired", inv.Token[:], joiner, "phone", false, inv.Expires.Add(time.Second), ErrInviteExpired, false},
		{"ok", inv.Token[:], joiner, "phone", false, t0.Add(time.Minute), nil, true},
		{"used", inv.Token[:], newPeer(t), "tablet", false, t0.Add(2 * time.Minute), ErrInviteUsed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.Roster().Version
			a, err := l.admit(tt.peer, tt.token, tt.nameWant, RoleDevice, tt.admin, tt.now)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("admit = %v, want %v", err, tt.err)
			}
			if err != nil {
				if l.Roster().Version != before {
					t.Error("a refused join changed the roster")
				}
				return
			}
			if !a.roster.IsMember(tt.peer) || a.key != nil || !bytes.Equal(a.secret, s.Secret()) {
				t.Errorf("admission: member=%v key=%v", a.roster.IsMember(tt.peer), a.key != nil)
			}
		})
	}
	// Used stays used across a restart.
	l2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.admit(newPeer(t), inv.Token[:], "tablet", RoleDevice, false, t0.Add(3*time.Minute)); !errors.Is(err, ErrInviteUsed) {
		t.Errorf("after reload admit = %v, want ErrInviteUsed", err)
	}
	// After expiry the used invite is pruned from the file.
	if _, _, err := l2.NewInvite(addrs, time.Minute, false, inv.Expires.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(l2.pending); n != 1 {
		t.Errorf("%d pending entries after expiry, want 1 (the new one)", n)
	}
}

func TestAdmitRevoked(t *testing.T) {
	dev := newKey(t)
	s, err := Create(t.TempDir(), "laptop", dev)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(dev)
	addrs := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + self.String())}
	c := newPeer(t)
	if _, err := s.AddMember(Member{Peer: c, Name: "phone", Role: RoleDevice}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke("phone", t0); err != nil {
		t.Fatal(err)
	}
	inv, _, err := s.NewInvite(addrs, 0, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.admit(c, inv.Token[:], "phone2", RoleDevice, false, t0); !errors.Is(err, ErrRevoked) {
		t.Errorf("admit(revoked) = %v, want ErrRevoked", err)
	}
	if s.PendingInvites(t0) != 1 {
		t.Error("refusing a revoked joiner spent the invite")
	}
}

// TestAdmitAgainAfterLostReply: the inviter stores the roster naming the
// joiner, then the reply is lost (the inviter crashed or the connection
// broke). The joiner redoes the join with the same invite or a fresh one
// and gets the roster and the secret, with no new roster version; another
// device cannot reuse the spent invite, and the member cannot come back
// under another name.
func TestAdmitAgainAfterLostReply(t *testing.T) {
	dev := newKey(t)
	dir := t.TempDir()
	s, err := Create(dir, "laptop", dev)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(dev)
	addrs := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + self.String())}
	inv, _, err := s.NewInvite(addrs, 0, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	joiner := newPeer(t)
	first, err := s.admit(joiner, inv.Token[:], "phone", RoleDevice, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The inviter restarts: what it stored is all it knows.
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := l.NewInvite(addrs, 0, false, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		peer  peer.ID
		token []byte
		as    string
		role  Role
		err   error
	}{
		{"same invite", joiner, inv.Token[:], "phone", RoleDevice, nil},
		{"same invite, another device", newPeer(t), inv.Token[:], "tablet", RoleDevice, ErrInviteUsed},
		{"same invite, another name", joiner, inv.Token[:], "phone2", RoleDevice, ErrExists},
		{"same invite, another role", joiner, inv.Token[:], "phone", RoleServer, ErrExists},
		{"fresh invite", joiner, fresh.Token[:], "phone", RoleDevice, nil},
		{"fresh invite again", joiner, fresh.Token[:], "phone", RoleDevice, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := l.admit(tt.peer, tt.token, tt.as, tt.role, false, t0.Add(time.Minute))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("admit = %v, want %v", err, tt.err)
			}
			if l.Roster().Version != first.roster.Version {
				t.Errorf("roster version %d, want %d unchanged", l.Roster().Version, first.roster.Version)
			}
			if err != nil {
				return
			}
			if !a.roster.IsMember(joiner) || !bytes.Equal(a.secret, s.Secret()) || a.key != nil {
				t.Errorf("admission: member=%v secret=%v key=%v", a.roster.IsMember(joiner), bytes.Equal(a.secret, s.Secret()), a.key != nil)
			}
		})
	}
	if n := l.PendingInvites(t0); n != 0 {
		t.Errorf("%d invites pending, want 0: the fresh one was spent", n)
	}
}
