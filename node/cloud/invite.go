package cloud

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mdp/qrterminal/v3"
	"github.com/multiformats/go-multiaddr"
	"rsc.io/qr"
)

// Invite code parameters.
const (
	// CodePrefix starts every invite code; its digit is the text format's
	// version.
	CodePrefix = "pcnode1"
	// TokenSize is the length of an invite's random token: 128 bits, far
	// beyond guessing within an invite's lifetime.
	TokenSize = 16
	// DefaultInviteTTL is how long an invite stays valid when no TTL is
	// given: long enough to walk to the other device, short enough that a
	// code seen over someone's shoulder is soon useless.
	DefaultInviteTTL = 15 * time.Minute
	// MaxInviteAddrs bounds the inviter addresses carried in a code.
	MaxInviteAddrs = 8
	// MaxCodeLen bounds the text of a code, checked before any decoding. A
	// code with MaxInviteAddrs long addresses stays well below it.
	MaxCodeLen = 2048

	inviteVersion   = 1
	flagAdmin       = 1 << 0
	maxAddrBytes    = 128
	maxPeerIDBytes  = 64
	checksumSize    = 4
	maxPendingCount = 256
)

var (
	codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// Invite is what an invite code carries: the cloud to join, the inviter
// and how to reach it, a single-use token and its expiry.
type Invite struct {
	Cloud   ID
	Inviter peer.AddrInfo // the inviter's peer ID and addresses (without /p2p)
	Token   [TokenSize]byte
	Expires time.Time // second precision
	Admin   bool      // the joiner may ask to become an admin (receive the cloud key)
}

// Code returns the invite's text form: CodePrefix followed by the
// lowercase, unpadded base32 of its binary form (see docs/CLOUD.md for the
// byte layout). The code is case-insensitive.
func (inv Invite) Code() (string, error) {
	b, err := inv.marshalBinary()
	if err != nil {
		return "", err
	}
	return CodePrefix + strings.ToLower(codeEncoding.EncodeToString(b)), nil
}

func (inv Invite) marshalBinary() ([]byte, error) {
	if inv.Cloud.IsZero() {
		return nil, fmt.Errorf("cloud: encode invite: %w: no cloud id", ErrInvalid)
	}
	if err := inv.Inviter.ID.Validate(); err != nil {
		return nil, fmt.Errorf("cloud: encode invite: %w: inviter: %v", ErrInvalid, err)
	}
	if n := len(inv.Inviter.Addrs); n == 0 || n > MaxInviteAddrs {
		return nil, fmt.Errorf("cloud: encode invite: %w: %d addresses (want 1 to %d)", ErrInvalid, n, MaxInviteAddrs)
	}
	if inv.Expires.Unix() <= 0 {
		return nil, fmt.Errorf("cloud: encode invite: %w: no expiry", ErrInvalid)
	}
	b := []byte{inviteVersion, 0}
	if inv.Admin {
		b[1] |= flagAdmin
	}
	b = append(b, inv.Token[:]...)
	b = binary.AppendUvarint(b, uint64(inv.Expires.Unix()))
	b = appendBytes(b, []byte(inv.Cloud.PeerID()))
	b = appendBytes(b, []byte(inv.Inviter.ID))
	b = append(b, byte(len(inv.Inviter.Addrs)))
	for _, a := range inv.Inviter.Addrs {
		ab := a.Bytes()
		if len(ab) == 0 || len(ab) > maxAddrBytes {
			return nil, fmt.Errorf("cloud: encode invite: %w: address %s longer than %d bytes", ErrInvalid, a, maxAddrBytes)
		}
		b = appendBytes(b, ab)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable)), nil
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// DecodeInvite parses an invite code and checks its expiry against now.
// Surrounding and inner white space and dashes are ignored, and case does
// not matter, so a code copied across a line break still works. It
// refuses, wrapping ErrInvalid, a code that is too long, has another
// prefix or version, a bad checksum (a typo), is cut short or carries
// trailing bytes; and with ErrInviteExpired one past its expiry.
func DecodeInvite(code string, now time.Time) (Invite, error) {
	if len(code) > MaxCodeLen {
		return Invite{}, fmt.Errorf("cloud: decode invite: %w: code longer than %d characters", ErrInvalid, MaxCodeLen)
	}
	code = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '-':
			return -1
		}
		return r
	}, code)
	if len(code) < len(CodePrefix) || !strings.EqualFold(code[:len(CodePrefix)], CodePrefix) {
		return Invite{}, fmt.Errorf("cloud: decode invite: %w: not a pcnode invite code (it starts with %q)", ErrInvalid, CodePrefix)
	}
	b, err := codeEncoding.DecodeString(strings.ToUpper(code[len(CodePrefix):]))
	if err != nil {
		return Invite{}, fmt.Errorf("cloud: decode invite: %w: damaged code (bad base32: %v)", ErrInvalid, err)
	}
	inv, err := unmarshalInvite(b)
	if err != nil {
		return Invite{}, fmt.Errorf("cloud: decode invite: %w", err)
	}
	if now.After(inv.Expires) {
		return Invite{}, fmt.Errorf("cloud: decode invite: %w (at %s)", ErrInviteExpired, inv.Expires.Format(time.RFC3339))
	}
	return inv, nil
}

// unmarshalInvite parses the binary form, checksum first.
func unmarshalInvite(b []byte) (Invite, error) {
	if len(b) < 2+TokenSize+checksumSize {
		return Invite{}, fmt.Errorf("%w: code too short (cut off?)", ErrInvalid)
	}
	body, sum := b[:len(b)-checksumSize], b[len(b)-checksumSize:]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(sum) {
		return Invite{}, fmt.Errorf("%w: checksum mismatch (typo or cut off?)", ErrInvalid)
	}
	if body[0] != inviteVersion {
		return Invite{}, fmt.Errorf("%w: invite version %d, this pcnode reads version %d", ErrInvalid, body[0], inviteVersion)
	}
	if body[1]&^flagAdmin != 0 {
		return Invite{}, fmt.Errorf("%w: unknown flags %#x", ErrInvalid, body[1])
	}
	var inv Invite
	inv.Admin = body[1]&flagAdmin != 0
	copy(inv.Token[:], body[2:2+TokenSize])
	r := reader{b: body[2+TokenSize:]}
	exp := r.uvarint()
	if exp == 0 || exp > 1<<40 {
		return Invite{}, fmt.Errorf("%w: bad expiry", ErrInvalid)
	}
	inv.Expires = time.Unix(int64(exp), 0).UTC()
	cloudPID, err := peer.IDFromBytes(r.bytes(maxPeerIDBytes))
	if r.err != nil || err != nil {
		return Invite{}, fmt.Errorf("%w: bad cloud id", ErrInvalid)
	}
	if inv.Cloud, err = idFromPeer(cloudPID); err != nil {
		return Invite{}, err
	}
	if inv.Inviter.ID, err = peer.IDFromBytes(r.bytes(maxPeerIDBytes)); r.err != nil || err != nil {
		return Invite{}, fmt.Errorf("%w: bad inviter peer id", ErrInvalid)
	}
	n := r.byte()
	if r.err != nil || n == 0 || n > MaxInviteAddrs {
		return Invite{}, fmt.Errorf("%w: bad address count", ErrInvalid)
	}
	for range n {
		a, err := multiaddr.NewMultiaddrBytes(r.bytes(maxAddrBytes))
		if r.err != nil || err != nil {
			return Invite{}, fmt.Errorf("%w: bad inviter address", ErrInvalid)
		}
		inv.Inviter.Addrs = append(inv.Inviter.Addrs, a)
	}
	if len(r.b) != 0 {
		return Invite{}, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(r.b))
	}
	return inv, nil
}

// reader reads the invite's fields, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrInvalid
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = ErrInvalid
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(max) || n > uint64(len(r.b)) {
		r.err = ErrInvalid
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// WriteQR writes code to w as a QR code drawn with Unicode half blocks,
// for a terminal. The code is upper-cased first so the QR uses the
// compact alphanumeric mode; DecodeInvite ignores case.
func WriteQR(w io.Writer, code string) error {
	text := strings.ToUpper(code)
	if _, err := qr.Encode(text, qr.L); err != nil { // qrterminal ignores this error
		return fmt.Errorf("cloud: qr: %w", err)
	}
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qr.L,
		Writer:         w,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      2,
	})
	return nil
}

// inviterAddrs splits the inviter's full addresses into its peer ID and
// transport parts: each must end in /p2p/<the same peer ID>; duplicates
// are dropped and at most MaxInviteAddrs kept, in the order given.
func inviterAddrs(addrs []multiaddr.Multiaddr) (peer.ID, []multiaddr.Multiaddr, error) {
	var self peer.ID
	var out []multiaddr.Multiaddr
	seen := map[string]bool{}
	for _, a := range addrs {
		tr, id := peer.SplitAddr(a)
		if len(tr) == 0 || id == "" {
			return "", nil, fmt.Errorf("%w: address %s is not a full address (transport and /p2p/<peer id>)", ErrInvalid, a)
		}
		if self == "" {
			self = id
		}
		if id != self {
			return "", nil, fmt.Errorf("%w: addresses of two peers (%s, %s)", ErrInvalid, self, id)
		}
		if seen[string(tr.Bytes())] || len(out) == MaxInviteAddrs {
			continue
		}
		seen[string(tr.Bytes())] = true
		out = append(out, tr)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("%w: no address to put in the invite", ErrInvalid)
	}
	return self, out, nil
}

// pendingInvite is an issued invite as the inviter remembers it: only the
// token's hash is kept, so the file does not hold usable tokens.
type pendingInvite struct {
	Hash    [sha256.Size]byte
	Expires time.Time
	Admin   bool
	Used    bool    // kept until expiry so a second use gets "already used"
	Peer    peer.ID // who used it: that device may redeem it again (see State.admit)
}

type pendingJSON struct {
	Hash    string `json:"hash"`
	Expires int64  `json:"expires"`
	Admin   bool   `json:"admin,omitempty"`
	Used    bool   `json:"used,omitempty"`
	Peer    string `json:"peer,omitempty"` // the device that used it
}

func encodePending(list []pendingInvite) ([]byte, error) {
	out := make([]pendingJSON, 0, len(list))
	for _, p := range list {
		j := pendingJSON{Hash: hex.EncodeToString(p.Hash[:]), Expires: p.Expires.Unix(), Admin: p.Admin, Used: p.Used}
		if p.Peer != "" {
			j.Peer = p.Peer.String()
		}
		out = append(out, j)
	}
	return json.MarshalIndent(struct {
		Invites []pendingJSON `json:"invites"`
	}{out}, "", "  ")
}

func decodePending(b []byte) ([]pendingInvite, error) {
	var doc struct {
		Invites []pendingJSON `json:"invites"`
	}
	if err := strictUnmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var out []pendingInvite
	for _, j := range doc.Invites {
		h, err := hex.DecodeString(j.Hash)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: bad token hash %q", ErrInvalid, j.Hash)
		}
		p := pendingInvite{Expires: time.Unix(j.Expires, 0).UTC(), Admin: j.Admin, Used: j.Used}
		copy(p.Hash[:], h)
		if j.Peer != "" {
			if p.Peer, err = peer.Decode(j.Peer); err != nil {
				return nil, fmt.Errorf("%w: bad peer ID %q", ErrInvalid, j.Peer)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// redeem finds the pending invite for token in constant time per entry and
// checks it: unknown, used or expired tokens are refused with the matching
// sentinel. An invite used by joiner itself is not refused: its reply may
// have been lost (the inviter crashed, the connection broke), and the
// joiner may ask again. It does not mark the invite used.
func redeem(list []pendingInvite, token []byte, joiner peer.ID, now time.Time) (int, error) {
	h := sha256.Sum256(token)
	found := -1
	for i := range list {
		if subtle.ConstantTimeCompare(list[i].Hash[:], h[:]) == 1 {
			found = i
		}
	}
	switch {
	case found < 0:
		return -1, ErrInviteUnknown
	case list[found].Used && (list[found].Peer == "" || list[found].Peer != joiner):
		return -1, ErrInviteUsed
	case now.After(list[found].Expires):
		return -1, ErrInviteExpired
	}
	return found, nil
}

// prunePending drops invites past their expiry; they can no longer be
// redeemed, used or not.
func prunePending(list []pendingInvite, now time.Time) []pendingInvite {
	out := list[:0:0]
	for _, p := range list {
		if !now.After(p.Expires) {
			out = append(out, p)
		}
	}
	return out
}
