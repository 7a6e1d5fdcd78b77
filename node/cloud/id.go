package cloud

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multibase"
)

// ID names a cloud. It is the peer ID of the cloud's public key (an
// identity multihash of the Ed25519 key, so the key can be read back from
// it), written as a CIDv1 with the libp2p-key codec in base36 – the same
// form IPNS names use ("k51qzi5uqu5d…"). The different text form keeps a
// cloud ID from being mistaken for a device's peer ID ("12D3KooW…").
//
// The zero ID is invalid.
type ID struct{ pid peer.ID }

// IDFromPublicKey returns the ID of the cloud whose key is pub. Only
// Ed25519 keys are accepted: their peer IDs embed the key.
func IDFromPublicKey(pub crypto.PubKey) (ID, error) {
	if pub == nil || pub.Type() != crypto.Ed25519 {
		return ID{}, fmt.Errorf("cloud: id: %w: key is not Ed25519", ErrInvalid)
	}
	pid, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return ID{}, fmt.Errorf("cloud: id: %w", err)
	}
	return ID{pid}, nil
}

// ParseID parses the text form of a cloud ID. The peer-ID form
// ("12D3KooW…") is accepted too.
func ParseID(s string) (ID, error) {
	pid, err := peer.Decode(s)
	if err != nil {
		return ID{}, fmt.Errorf("cloud: parse id %q: %w: %v", s, ErrInvalid, err)
	}
	return idFromPeer(pid)
}

// idFromPeer checks that pid embeds an Ed25519 key.
func idFromPeer(pid peer.ID) (ID, error) {
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return ID{}, fmt.Errorf("cloud: id: %w: %v", ErrInvalid, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return ID{}, fmt.Errorf("cloud: id: %w: key is not Ed25519", ErrInvalid)
	}
	return ID{pid}, nil
}

// String returns the base36 CIDv1 form, or "" for the zero ID.
func (id ID) String() string {
	if id.pid == "" {
		return ""
	}
	s, err := peer.ToCid(id.pid).StringOfBase(multibase.Base36)
	if err != nil { // cannot happen for a valid peer ID and base36
		return id.pid.String()
	}
	return s
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id.pid == "" }

// PeerID returns the cloud key's peer ID.
func (id ID) PeerID() peer.ID { return id.pid }

// PublicKey returns the cloud's public key, read from the ID itself.
func (id ID) PublicKey() (crypto.PubKey, error) {
	if id.pid == "" {
		return nil, fmt.Errorf("cloud: public key: %w: zero cloud id", ErrInvalid)
	}
	return id.pid.ExtractPublicKey()
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It accepts only the
// base36 CID form, so one ID has one text form in signed documents.
func (id *ID) UnmarshalText(b []byte) error {
	c, err := cid.Decode(string(b))
	if err != nil || c.Prefix().Codec != cid.Libp2pKey {
		return fmt.Errorf("cloud: parse id %q: %w", b, ErrInvalid)
	}
	pid, err := peer.FromCid(c)
	if err != nil {
		return fmt.Errorf("cloud: parse id %q: %w: %v", b, ErrInvalid, err)
	}
	v, err := idFromPeer(pid)
	if err != nil {
		return err
	}
	if v.String() != string(b) {
		return fmt.Errorf("cloud: parse id %q: %w: not in canonical base36 form", b, ErrInvalid)
	}
	*id = v
	return nil
}
