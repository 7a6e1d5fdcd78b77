package cloud

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Message size limits. A request carries a token and a name; a response
// carries a roster, so its bound follows MaxRosterSize.
const (
	// MaxRequestSize bounds a join request.
	MaxRequestSize = 64 << 10
	// MaxResponseSize bounds a join response and a roster message: a full
	// roster plus the secret, a key and base64 overhead.
	MaxResponseSize = MaxRosterSize*4/3 + 64<<10
)

// Messages are a uvarint length followed by that many bytes of JSON, one
// object per message (see docs/CLOUD.md).

// writeMsg writes v as one length-prefixed JSON message.
func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen64), uint64(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readMsg reads one length-prefixed JSON message of at most max bytes into
// v. The length is checked before anything is allocated. Unknown fields,
// trailing data and oversize messages wrap ErrInvalid.
func readMsg(r *bufio.Reader, max int, v any) error {
	// The length is read byte by byte so that a failing stream is told
	// apart from a malformed varint (only the latter is ErrInvalid).
	var lb []byte
	for {
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		lb = append(lb, c)
		if c < 0x80 {
			break
		}
		if len(lb) == binary.MaxVarintLen64 {
			return fmt.Errorf("%w: message length: varint too long", ErrInvalid)
		}
	}
	n, k := binary.Uvarint(lb)
	if k <= 0 {
		return fmt.Errorf("%w: message length: bad varint", ErrInvalid)
	}
	if n == 0 || n > uint64(max) {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrInvalid, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if err := strictUnmarshal(b, v); err != nil {
		return fmt.Errorf("%w: message: %v", ErrInvalid, err)
	}
	return nil
}

// joinRequest is the joiner's one message. The joiner's identity is not
// in it: the inviter takes it from the authenticated connection.
type joinRequest struct {
	V     int    `json:"v"` // protocol message version, 1
	Token []byte `json:"token"`
	Name  string `json:"name"`
	Role  Role   `json:"role"`
	Admin bool   `json:"admin,omitempty"`
}

// joinResponse is the inviter's one message: a refusal with a reason code
// and a sentence, or the roster naming the joiner, the cloud secret and,
// for an admin join, the cloud key.
type joinResponse struct {
	OK      bool            `json:"ok"`
	Reason  string          `json:"reason,omitempty"`  // machine-readable refusal code
	Message string          `json:"message,omitempty"` // a sentence for the joiner's user
	Roster  json.RawMessage `json:"roster,omitempty"`
	Secret  []byte          `json:"secret,omitempty"`
	Key     []byte          `json:"key,omitempty"` // crypto.MarshalPrivateKey
}

// rosterMsg is sent each way on the roster protocol: the sender's roster
// version, and the signed roster when the sender may be ahead (the
// initiator always sends it; the responder only when it is newer than the
// initiator's).
type rosterMsg struct {
	Version uint64          `json:"version"`
	Roster  json.RawMessage `json:"roster,omitempty"`
}

// refusal reasons on the wire, and the sentinel each stands for.
var reasons = []struct {
	code string
	err  error
}{
	{"unknown-invite", ErrInviteUnknown},
	{"used-invite", ErrInviteUsed},
	{"expired-invite", ErrInviteExpired},
	{"admin-not-allowed", ErrAdminNotAllowed},
	{"revoked", ErrRevoked},
	{"name-taken", ErrNameTaken},
	{"already-member", ErrExists},
	{"not-admin", ErrNotAdmin},
	{"bad-request", ErrInvalid},
}

// reasonOf returns the wire code for err ("internal" if none fits).
func reasonOf(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "internal"
}

// errOfReason returns the sentinel for a wire code, ErrRefused if unknown.
func errOfReason(code string) error {
	for _, r := range reasons {
		if r.code == code {
			return r.err
		}
	}
	return ErrRefused
}
