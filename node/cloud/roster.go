package cloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Role is what a member device is for.
type Role string

// The roles a member may have.
const (
	RoleDevice Role = "device" // a person's laptop, phone-class box, desktop
	RoleServer Role = "server" // an always-on home server: relays, full replicas, DNS
)

func (r Role) valid() bool { return r == RoleDevice || r == RoleServer }

// Limits on a roster. They bound memory and CPU spent on a roster received
// from the network before its signature is even checked.
const (
	// MaxRosterSize is the largest encoded roster accepted, in bytes.
	// A member takes about 200 bytes, so this leaves room for MaxMembers.
	MaxRosterSize = 1 << 20
	// MaxMembers bounds the members (live and revoked) of a roster.
	MaxMembers = 4096
	// MaxNameLen bounds a member's name, in bytes.
	MaxNameLen = 64
)

// rosterDomain separates roster signatures from any other use of the
// cloud key.
const rosterDomain = "pcnode roster v1\n"

// Member is one device in a roster. A revoked member stays in every later
// roster as a tombstone, so its revocation travels with the roster.
type Member struct {
	Peer    peer.ID
	Name    string
	Role    Role
	Admin   bool      // holds the cloud key
	Added   time.Time // when the member joined (second precision, UTC)
	Revoked time.Time // zero: not revoked
}

// IsRevoked reports whether the member has been revoked.
func (m Member) IsRevoked() bool { return !m.Revoked.IsZero() }

// memberJSON is a member's wire form. Times are Unix seconds so that the
// encoding has one form for one value.
type memberJSON struct {
	Peer    peer.ID `json:"peer"`
	Name    string  `json:"name"`
	Role    Role    `json:"role"`
	Admin   bool    `json:"admin,omitempty"`
	Added   int64   `json:"added"`
	Revoked int64   `json:"revoked,omitempty"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// MarshalJSON implements json.Marshaler.
func (m Member) MarshalJSON() ([]byte, error) {
	return json.Marshal(memberJSON{m.Peer, m.Name, m.Role, m.Admin, unixOrZero(m.Added), unixOrZero(m.Revoked)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Member) UnmarshalJSON(b []byte) error {
	var j memberJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*m = Member{j.Peer, j.Name, j.Role, j.Admin, timeOrZero(j.Added), timeOrZero(j.Revoked)}
	return nil
}

// Roster is the signed, versioned list of a cloud's member devices. A
// Roster value is never changed once made: operations return a new one.
type Roster struct {
	Cloud   ID
	Version uint64   // starts at 1, grows by one with every change
	Members []Member // sorted by peer ID, unique
	Sig     []byte   // Ed25519 signature by the cloud key over SigningBytes
}

type rosterBody struct {
	Cloud   ID       `json:"cloud"`
	Version uint64   `json:"version"`
	Members []Member `json:"members"`
}

type rosterJSON struct {
	rosterBody
	Sig []byte `json:"sig"`
}

// SigningBytes returns the bytes the signature covers: a domain string and
// the canonical JSON of cloud, version and members (fields in fixed order,
// members sorted by peer ID, times as Unix seconds). Two rosters with the
// same content have the same signing bytes.
func (r *Roster) SigningBytes() ([]byte, error) {
	body := rosterBody{r.Cloud, r.Version, r.Members}
	if body.Members == nil {
		body.Members = []Member{}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("cloud: encode roster: %w", err)
	}
	return append([]byte(rosterDomain), b...), nil
}

// Encode returns the roster's wire form: the canonical JSON of its body
// with the signature added as base64 "sig".
func (r *Roster) Encode() ([]byte, error) {
	j := rosterJSON{rosterBody{r.Cloud, r.Version, r.Members}, r.Sig}
	if j.Members == nil {
		j.Members = []Member{}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("cloud: encode roster: %w", err)
	}
	return b, nil
}

// DecodeRoster parses a roster's wire form and checks its structure (see
// docs/CLOUD.md); it does not check the signature (see Verify and Accept).
// Input longer than MaxRosterSize is refused before parsing.
func DecodeRoster(b []byte) (*Roster, error) {
	if len(b) > MaxRosterSize {
		return nil, fmt.Errorf("cloud: decode roster: %w: %d bytes, limit %d", ErrInvalid, len(b), MaxRosterSize)
	}
	var j rosterJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("cloud: decode roster: %w: %v", ErrInvalid, err)
	}
	r := &Roster{Cloud: j.Cloud, Version: j.Version, Members: j.Members, Sig: j.Sig}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("cloud: decode roster: %w", err)
	}
	return r, nil
}

// strictUnmarshal refuses unknown fields and trailing data, so that a
// document has one meaning.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}

// validate checks the structural rules every roster obeys, signed or not.
func (r *Roster) validate() error {
	if r.Cloud.IsZero() {
		return fmt.Errorf("%w: no cloud id", ErrInvalid)
	}
	if r.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrInvalid)
	}
	if len(r.Members) > MaxMembers {
		return fmt.Errorf("%w: %d members, limit %d", ErrInvalid, len(r.Members), MaxMembers)
	}
	names := make(map[string]bool, len(r.Members))
	for i, m := range r.Members {
		if err := m.Peer.Validate(); err != nil {
			return fmt.Errorf("%w: member %d: peer id: %v", ErrInvalid, i, err)
		}
		if i > 0 && r.Members[i-1].Peer >= m.Peer {
			return fmt.Errorf("%w: members not sorted by peer id or not unique at %s", ErrInvalid, m.Peer)
		}
		if err := checkName(m.Name); err != nil {
			return fmt.Errorf("%w: member %s: %v", ErrInvalid, m.Peer, err)
		}
		if !m.Role.valid() {
			return fmt.Errorf("%w: member %s: role %q (want %q or %q)", ErrInvalid, m.Peer, m.Role, RoleDevice, RoleServer)
		}
		if m.Added.Unix() <= 0 || (m.IsRevoked() && m.Revoked.Unix() <= 0) {
			return fmt.Errorf("%w: member %s: bad times", ErrInvalid, m.Peer)
		}
		if !m.IsRevoked() {
			if names[m.Name] {
				return fmt.Errorf("%w: name %q used by two members", ErrInvalid, m.Name)
			}
			names[m.Name] = true
		}
	}
	return nil
}

// checkName enforces the rules for a member's name: 1 to MaxNameLen bytes
// of UTF-8, printable, no surrounding space, not a peer ID (so that a
// name-or-peer argument is never ambiguous).
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name is not UTF-8")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("name %q has surrounding space", name)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("name %q has a non-printable character", name)
		}
	}
	if _, err := peer.Decode(name); err == nil {
		return fmt.Errorf("name %q looks like a peer id", name)
	}
	return nil
}

// Sign signs the roster with the cloud key, setting Sig. The key must be
// the one Cloud names.
func (r *Roster) Sign(key crypto.PrivKey) error {
	id, err := IDFromPublicKey(key.GetPublic())
	if err != nil {
		return fmt.Errorf("cloud: sign roster: %w", err)
	}
	if id != r.Cloud {
		return fmt.Errorf("cloud: sign roster %s: %w: key is of cloud %s", r.Cloud, ErrWrongCloud, id)
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("cloud: sign roster: %w", err)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return fmt.Errorf("cloud: sign roster: %w", err)
	}
	r.Sig = sig
	return nil
}

// Verify checks that the roster is well formed and signed by pub, the
// cloud's public key, and that Cloud names that key.
func (r *Roster) Verify(pub crypto.PubKey) error {
	id, err := IDFromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("cloud: verify roster: %w", err)
	}
	if r.Cloud != id {
		return fmt.Errorf("cloud: verify roster: %w: names %s, expected %s", ErrWrongCloud, r.Cloud, id)
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("cloud: verify roster: %w", err)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(msg, r.Sig)
	if err != nil || !ok {
		return fmt.Errorf("cloud: verify roster %s v%d: %w", r.Cloud, r.Version, ErrBadSignature)
	}
	return nil
}

// Accept decides whether incoming replaces current, the roster this device
// trusts now (never nil: a device gets its first roster with Create or
// Join). It returns the roster to keep and whether it changed:
//
//   - incoming must name the same cloud and carry a valid signature by
//     the cloud key (read from the cloud ID), else ErrWrongCloud or
//     ErrBadSignature;
//   - an older version is ignored: (current, false, nil);
//   - the same version with the same content is no change; with other
//     content it is refused with ErrEquivocation;
//   - a newer version wins, unless it lists as a live member, or drops,
//     a peer that current has revoked (ErrResurrection). Because every
//     accepted roster keeps the tombstones of the one before, current's
//     tombstones are the set of every peer ever revoked.
func Accept(current, incoming *Roster) (*Roster, bool, error) {
	if current == nil || incoming == nil {
		return current, false, fmt.Errorf("cloud: accept roster: %w: nil roster", ErrInvalid)
	}
	if incoming.Cloud != current.Cloud {
		return current, false, fmt.Errorf("cloud: accept roster: %w: names %s, this cloud is %s", ErrWrongCloud, incoming.Cloud, current.Cloud)
	}
	pub, err := current.Cloud.PublicKey()
	if err != nil {
		return current, false, fmt.Errorf("cloud: accept roster: %w", err)
	}
	if err := incoming.Verify(pub); err != nil {
		return current, false, err
	}
	switch {
	case incoming.Version < current.Version:
		return current, false, nil
	case incoming.Version == current.Version:
		a, err1 := current.SigningBytes()
		b, err2 := incoming.SigningBytes()
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return current, false, fmt.Errorf("cloud: accept roster %s v%d: %w", current.Cloud, current.Version, ErrEquivocation)
		}
		return current, false, nil
	}
	for _, old := range current.Members {
		if !old.IsRevoked() {
			continue
		}
		m, ok := incoming.find(old.Peer)
		if !ok {
			return current, false, fmt.Errorf("cloud: accept roster %s v%d: %w: drops revoked peer %s", incoming.Cloud, incoming.Version, ErrResurrection, old.Peer)
		}
		if !m.IsRevoked() {
			return current, false, fmt.Errorf("cloud: accept roster %s v%d: %w: %s is listed as a member again", incoming.Cloud, incoming.Version, ErrResurrection, old.Peer)
		}
	}
	return incoming, true, nil
}

// find returns the member, live or revoked, with peer ID p.
func (r *Roster) find(p peer.ID) (Member, bool) {
	i, ok := slices.BinarySearchFunc(r.Members, p, func(m Member, p peer.ID) int { return strings.Compare(string(m.Peer), string(p)) })
	if !ok {
		return Member{}, false
	}
	return r.Members[i], true
}

// IsMember reports whether p is a live (not revoked) member.
func (r *Roster) IsMember(p peer.ID) bool {
	m, ok := r.find(p)
	return ok && !m.IsRevoked()
}

// IsRevoked reports whether p has ever been revoked from the cloud.
func (r *Roster) IsRevoked(p peer.ID) bool {
	m, ok := r.find(p)
	return ok && m.IsRevoked()
}

// Lookup returns the live member whose name or peer ID is nameOrPeer.
func (r *Roster) Lookup(nameOrPeer string) (Member, bool) {
	if p, err := peer.Decode(nameOrPeer); err == nil {
		m, ok := r.find(p)
		return m, ok && !m.IsRevoked()
	}
	for _, m := range r.Members {
		if !m.IsRevoked() && m.Name == nameOrPeer {
			return m, true
		}
	}
	return Member{}, false
}

// Live returns the members that are not revoked, in peer ID order.
func (r *Roster) Live() []Member {
	var out []Member
	for _, m := range r.Members {
		if !m.IsRevoked() {
			out = append(out, m)
		}
	}
	return out
}

// next returns an unsigned copy with the version incremented.
func (r *Roster) next() *Roster {
	return &Roster{Cloud: r.Cloud, Version: r.Version + 1, Members: slices.Clone(r.Members)}
}

// NewRoster returns version 1 of a cloud's roster, unsigned, with one
// member.
func NewRoster(cloud ID, first Member) (*Roster, error) {
	r := &Roster{Cloud: cloud}
	n, err := r.AddMember(first)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// AddMember returns the next version of the roster, unsigned, with m
// added. It refuses a revoked peer (ErrRevoked), a peer already a member
// (ErrExists) and a name a live member has (ErrNameTaken). Added is set to
// now if zero and rounded to the second; Revoked must be zero.
func (r *Roster) AddMember(m Member) (*Roster, error) {
	if old, ok := r.find(m.Peer); ok {
		if old.IsRevoked() {
			return nil, fmt.Errorf("cloud: add member %s: %w", m.Peer, ErrRevoked)
		}
		return nil, fmt.Errorf("cloud: add member %s: %w (as %q)", m.Peer, ErrExists, old.Name)
	}
	if _, ok := r.Lookup(m.Name); ok {
		return nil, fmt.Errorf("cloud: add member %q: %w", m.Name, ErrNameTaken)
	}
	if m.Added.IsZero() {
		m.Added = time.Now()
	}
	m.Added = m.Added.UTC().Truncate(time.Second)
	m.Revoked = time.Time{}
	n := r.next()
	i, _ := slices.BinarySearchFunc(n.Members, m.Peer, func(m Member, p peer.ID) int { return strings.Compare(string(m.Peer), string(p)) })
	n.Members = slices.Insert(n.Members, i, m)
	if err := n.validate(); err != nil {
		return nil, fmt.Errorf("cloud: add member %q: %w", m.Name, err)
	}
	return n, nil
}

// Revoke returns the next version of the roster, unsigned, with the live
// member whose name or peer ID is nameOrPeer marked revoked at now.
func (r *Roster) Revoke(nameOrPeer string, now time.Time) (*Roster, error) {
	m, ok := r.Lookup(nameOrPeer)
	if !ok {
		return nil, fmt.Errorf("cloud: revoke %q: %w", nameOrPeer, ErrNotFound)
	}
	now = now.UTC().Truncate(time.Second)
	if now.Unix() <= 0 {
		now = time.Unix(1, 0).UTC()
	}
	return r.replace(m.Peer, func(m *Member) { m.Revoked = now }), nil
}

// Rename returns the next version of the roster, unsigned, with the live
// member whose name or peer ID is nameOrPeer renamed to name.
func (r *Roster) Rename(nameOrPeer, name string) (*Roster, error) {
	m, ok := r.Lookup(nameOrPeer)
	if !ok {
		return nil, fmt.Errorf("cloud: rename %q: %w", nameOrPeer, ErrNotFound)
	}
	if other, ok := r.Lookup(name); ok && other.Peer != m.Peer {
		return nil, fmt.Errorf("cloud: rename %q to %q: %w", nameOrPeer, name, ErrNameTaken)
	}
	n := r.replace(m.Peer, func(m *Member) { m.Name = name })
	if err := n.validate(); err != nil {
		return nil, fmt.Errorf("cloud: rename %q: %w", nameOrPeer, err)
	}
	return n, nil
}

func (r *Roster) replace(p peer.ID, f func(*Member)) *Roster {
	n := r.next()
	for i := range n.Members {
		if n.Members[i].Peer == p {
			f(&n.Members[i])
		}
	}
	return n
}
