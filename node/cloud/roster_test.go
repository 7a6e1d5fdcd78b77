package cloud

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func cloudID(t testing.TB, k crypto.PrivKey) ID {
	t.Helper()
	id, err := IDFromPublicKey(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSign(t testing.TB, r *Roster, k crypto.PrivKey) *Roster {
	t.Helper()
	if err := r.Sign(k); err != nil {
		t.Fatal(err)
	}
	return r
}

// fixture is a cloud with a signed v1 (a), v2 (a, b) and v3 (a, b, c
// revoked).
type fixture struct {
	key        crypto.PrivKey
	id         ID
	a, b, c    peer.ID
	v1, v2, v3 *Roster
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	f := fixture{key: newKey(t), a: newPeer(t), b: newPeer(t), c: newPeer(t)}
	f.id = cloudID(t, f.key)
	var err error
	if f.v1, err = NewRoster(f.id, Member{Peer: f.a, Name: "laptop", Role: RoleDevice, Admin: true, Added: t0}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, f.v1, f.key)
	if f.v2, err = f.v1.AddMember(Member{Peer: f.b, Name: "server", Role: RoleServer, Added: t0}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, f.v2, f.key)
	v, err := f.v2.AddMember(Member{Peer: f.c, Name: "phone", Role: RoleDevice, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	if f.v3, err = v.Revoke("phone", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.v3.Version = 3 // add and revoke in one step
	mustSign(t, f.v3, f.key)
	return f
}

func TestIDText(t *testing.T) {
	k := newKey(t)
	id := cloudID(t, k)
	s := id.String()
	if s[0] != 'k' {
		t.Errorf("cloud id %q: want base36 CID starting with k", s)
	}
	for _, in := range []string{s, id.PeerID().String()} {
		got, err := ParseID(in)
		if err != nil || got != id {
			t.Errorf("ParseID(%q) = %v, %v; want %v", in, got, err, id)
		}
	}
	var back ID
	if err := back.UnmarshalText([]byte(id.PeerID().String())); err == nil {
		t.Errorf("UnmarshalText accepted the peer-ID form; want only the canonical form")
	}
	if _, err := ParseID("not-an-id"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseID(junk) = %v, want ErrInvalid", err)
	}
	pub, err := id.PublicKey()
	if err != nil || !pub.Equals(k.GetPublic()) {
		t.Errorf("PublicKey() = %v, %v; want the cloud key", pub, err)
	}
}

func TestRosterEncodeRoundTrip(t *testing.T) {
	f := newFixture(t)
	b, err := f.v3.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRoster(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.v3, got, cmp.Comparer(func(a, b ID) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := got.Verify(f.key.GetPublic()); err != nil {
		t.Errorf("Verify after round trip: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata golden files")

// seededKey returns a fixed Ed25519 key, so golden files are reproducible
// (Ed25519 signatures are deterministic).
func seededKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seededPeer(t testing.TB, seed byte) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(seededKey(t, seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// goldenRoster is the roster in testdata/roster.golden.json: v3 of a cloud
// with a laptop (admin), a server and a revoked phone.
func goldenRoster(t testing.TB) *Roster {
	t.Helper()
	key := seededKey(t, 1)
	r, err := NewRoster(cloudID(t, key), Member{Peer: seededPeer(t, 2), Name: "laptop", Role: RoleDevice, Admin: true, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = r.AddMember(Member{Peer: seededPeer(t, 3), Name: "home server", Role: RoleServer, Added: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if r, err = r.AddMember(Member{Peer: seededPeer(t, 4), Name: "phone", Role: RoleDevice, Added: t0.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if r, err = r.Revoke("phone", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return mustSign(t, r, key)
}

// TestRosterGolden pins the wire form: field names and order, member
// order, time format, signature.
func TestRosterGolden(t *testing.T) {
	golden := filepath.Join("testdata", "roster.golden.json")
	got, err := goldenRoster(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("encoding changed (run with -update if intended):\n got %s\nwant %s", got, want)
	}
	r, err := DecodeRoster(want)
	if err != nil {
		t.Fatalf("golden roster: %v", err)
	}
	if err := r.Verify(mustPub(t, r.Cloud)); err != nil {
		t.Errorf("golden roster does not verify: %v", err)
	}
}

func mustPub(t testing.TB, id ID) crypto.PubKey {
	t.Helper()
	p, err := id.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodeRosterRefuses(t *testing.T) {
	f := newFixture(t)
	good, _ := f.v2.Encode()
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"not json", "roster"},
		{"trailing", string(good) + "{}"},
		{"trailing bracket", string(good) + "]"},
		{"unknown field", `{"cloud":"` + f.id.String() + `","version":1,"members":[],"sig":"","extra":1}`},
		{"version 0", `{"cloud":"` + f.id.String() + `","version":0,"members":[],"sig":""}`},
		{"no cloud", `{"version":1,"members":[],"sig":""}`},
		{"peer-id form of cloud", `{"cloud":"` + f.id.PeerID().String() + `","version":1,"members":[],"sig":""}`},
		{"bad role", `{"cloud":"` + f.id.String() + `","version":1,"members":[{"peer":"` + f.a.String() + `","name":"x","role":"king","added":1}],"sig":""}`},
		{"empty name", `{"cloud":"` + f.id.String() + `","version":1,"members":[{"peer":"` + f.a.String() + `","name":"","role":"device","added":1}],"sig":""}`},
		{"no added", `{"cloud":"` + f.id.String() + `","version":1,"members":[{"peer":"` + f.a.String() + `","name":"x","role":"device"}],"sig":""}`},
		{"duplicate peer", `{"cloud":"` + f.id.String() + `","version":1,"members":[{"peer":"` + f.a.String() + `","name":"x","role":"device","added":1},{"peer":"` + f.a.String() + `","name":"y","role":"device","added":1}],"sig":""}`},
		{"too big", string(make([]byte, MaxRosterSize+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := DecodeRoster([]byte(tt.in)); !errors.Is(err, ErrInvalid) {
				t.Errorf("DecodeRoster = %v, %v; want ErrInvalid", r, err)
			}
		})
	}
}

func TestAccept(t *testing.T) {
	f := newFixture(t)
	other := newKey(t)

	tampered := *f.v2
	tampered.Members = append([]Member(nil), f.v2.Members...)
	tampered.Members[0].Name = "evil"

	forged := *f.v2 // signed by another key but naming this cloud
	forged.Sig = nil
	{
		msg, _ := forged.SigningBytes()
		forged.Sig, _ = other.Sign(msg)
	}

	otherCloud, err := NewRoster(cloudID(t, other), Member{Peer: f.a, Name: "laptop", Role: RoleDevice, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	otherCloud.Version = 9
	mustSign(t, otherCloud, other)

	equivocating, err := f.v1.AddMember(Member{Peer: f.c, Name: "phone", Role: RoleDevice, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	mustSign(t, equivocating, f.key) // a second v2

	// v4 lists the revoked c as a member again.
	resurrect := &Roster{Cloud: f.id, Version: 4, Members: append([]Member(nil), f.v3.Members...)}
	for i := range resurrect.Members {
		resurrect.Members[i].Revoked = time.Time{}
	}
	mustSign(t, resurrect, f.key)
	// v4 drops c's tombstone; v5 could then add it back unnoticed.
	dropped, err := NewRoster(f.id, Member{Peer: f.a, Name: "laptop", Role: RoleDevice, Admin: true, Added: t0})
	if err != nil {
		t.Fatal(err)
	}
	dropped.Version = 4
	mustSign(t, dropped, f.key)
	// v4 that only renames, keeping the tombstone.
	renamed, err := f.v3.Rename("server", "nas")
	if err != nil {
		t.Fatal(err)
	}
	mustSign(t, renamed, f.key)

	tests := []struct {
		name     string
		current  *Roster
		incoming *Roster
		want     *Roster
		changed  bool
		err      error
	}{
		{"newer wins", f.v1, f.v2, f.v2, true, nil},
		{"skip versions", f.v1, f.v3, f.v3, true, nil},
		{"same", f.v2, f.v2, f.v2, false, nil},
		{"rollback ignored", f.v3, f.v2, f.v3, false, nil},
		{"tampered signature", f.v1, &tampered, f.v1, false, ErrBadSignature},
		{"unsigned", f.v1, &Roster{Cloud: f.id, Version: 2, Members: f.v2.Members}, f.v1, false, ErrBadSignature},
		{"forged by other key", f.v1, &forged, f.v1, false, ErrBadSignature},
		{"other cloud", f.v1, otherCloud, f.v1, false, ErrWrongCloud},
		{"equivocation", f.v2, equivocating, f.v2, false, ErrEquivocation},
		{"resurrection", f.v3, resurrect, f.v3, false, ErrResurrection},
		{"tombstone dropped", f.v3, dropped, f.v3, false, ErrResurrection},
		{"rename keeps tombstone", f.v3, renamed, renamed, true, nil},
		{"nil incoming", f.v1, nil, f.v1, false, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := Accept(tt.current, tt.incoming)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Accept err = %v, want %v", err, tt.err)
			}
			if got != tt.want || changed != tt.changed {
				t.Errorf("Accept = v%d, %v; want v%d, %v", got.Version, changed, tt.want.Version, tt.changed)
			}
		})
	}
}

func TestRosterOps(t *testing.T) {
	f := newFixture(t)
	r := f.v3
	if !r.IsMember(f.a) || !r.IsMember(f.b) || r.IsMember(f.c) || !r.IsRevoked(f.c) || r.IsRevoked(f.a) {
		t.Fatalf("membership of v3 wrong: a=%v b=%v c=%v", r.IsMember(f.a), r.IsMember(f.b), r.IsMember(f.c))
	}
	if got := len(r.Live()); got != 2 {
		t.Errorf("Live() has %d members, want 2", got)
	}
	tests := []struct {
		name string
		op   func() (*Roster, error)
		err  error
	}{
		{"add revoked", func() (*Roster, error) { return r.AddMember(Member{Peer: f.c, Name: "phone2", Role: RoleDevice}) }, ErrRevoked},
		{"add existing", func() (*Roster, error) { return r.AddMember(Member{Peer: f.b, Name: "other", Role: RoleDevice}) }, ErrExists},
		{"add taken name", func() (*Roster, error) {
			return r.AddMember(Member{Peer: newPeer(t), Name: "laptop", Role: RoleDevice})
		}, ErrNameTaken},
		{"add revoked name is free", func() (*Roster, error) {
			return r.AddMember(Member{Peer: newPeer(t), Name: "phone", Role: RoleDevice})
		}, nil},
		{"add bad name", func() (*Roster, error) { return r.AddMember(Member{Peer: newPeer(t), Name: " x", Role: RoleDevice}) }, ErrInvalid},
		{"add peer-id name", func() (*Roster, error) {
			return r.AddMember(Member{Peer: newPeer(t), Name: newPeer(t).String(), Role: RoleDevice})
		}, ErrInvalid},
		{"add bad role", func() (*Roster, error) { return r.AddMember(Member{Peer: newPeer(t), Name: "x", Role: "admin"}) }, ErrInvalid},
		{"revoke by name", func() (*Roster, error) { return r.Revoke("server", t0) }, nil},
		{"revoke by peer", func() (*Roster, error) { return r.Revoke(f.b.String(), t0) }, nil},
		{"revoke revoked", func() (*Roster, error) { return r.Revoke("phone", t0) }, ErrNotFound},
		{"revoke unknown", func() (*Roster, error) { return r.Revoke("fridge", t0) }, ErrNotFound},
		{"rename", func() (*Roster, error) { return r.Rename("server", "nas") }, nil},
		{"rename to taken", func() (*Roster, error) { return r.Rename("server", "laptop") }, ErrNameTaken},
		{"rename unknown", func() (*Roster, error) { return r.Rename("fridge", "x") }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.op()
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if n.Version != r.Version+1 {
				t.Errorf("version %d, want %d", n.Version, r.Version+1)
			}
			if n.Sig != nil {
				t.Errorf("operation returned a signed roster")
			}
			mustSign(t, n, f.key)
			if _, changed, err := Accept(r, n); err != nil || !changed {
				t.Errorf("Accept(result) = %v, %v", changed, err)
			}
		})
	}
	// The roster an op started from is unchanged.
	if m, _ := r.Lookup("server"); m.Name != "server" || m.IsRevoked() {
		t.Errorf("operations modified their input: %+v", m)
	}
	// Signing with another cloud's key is refused.
	if err := (&Roster{Cloud: f.id, Version: 1}).Sign(newKey(t)); !errors.Is(err, ErrWrongCloud) {
		t.Errorf("Sign with a foreign key = %v, want ErrWrongCloud", err)
	}
}

func FuzzDecodeRoster(f *testing.F) {
	fx := newFixture(f)
	for _, r := range []*Roster{fx.v1, fx.v2, fx.v3} {
		b, _ := r.Encode()
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "roster.golden.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"cloud":"","version":1,"members":null,"sig":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRoster(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// A decoded roster re-encodes to a form that decodes to the same
		// signing bytes: the signature means one thing.
		enc, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeRoster(enc)
		if err != nil {
			t.Fatalf("re-encoded roster does not decode: %v\n%s", err, enc)
		}
		a, _ := r.SigningBytes()
		c, _ := r2.SigningBytes()
		if string(a) != string(c) {
			t.Fatalf("signing bytes changed across a round trip:\n%s\n%s", a, c)
		}
		_ = r.Verify(mustPub(t, r.Cloud)) // must not panic
		if _, _, err := Accept(fx.v1, r); err == nil && r.Cloud != fx.id {
			t.Fatalf("accepted a roster of another cloud")
		}
	})
}
