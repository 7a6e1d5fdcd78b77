package share

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
)

// StatusProtocol is the libp2p protocol on which a sharer tells a friend
// whether it still serves a share. The friend opens a stream and writes a
// StatusRequest; the sharer answers with one Status and, if that is
// StateActive, keeps the stream open and writes a second Status the
// moment the share stops being served (revoked or expired), then closes.
// This is what lets pcnode get stop at once when a share is revoked
// mid-transfer, where bitswap would only answer "don't have" forever.
//
// It reveals nothing a stranger could not learn already: the answer for
// a revoked share is the answer for a root never shared ("not served"),
// and an expiry is in the link.
const StatusProtocol = "/pcnode/share-status/1.0.0"

// maxStatusCID bounds the CID in a request: the longest multihash pcnode
// accepts (SHA2-512) with its prefix fits easily.
const maxStatusCID = 128

// ErrStatus is wrapped by the decoders' errors for a malformed message.
var ErrStatus = errors.New("malformed share status message")

// Status is a sharer's answer: State is StateActive, StateExpired (with
// Expired the expiry) or "" for not served (revoked, or never shared by
// this peer).
type Status struct {
	State   State
	Expired time.Time
}

// Status message kinds, one byte each.
const (
	statusActive    = 'A'
	statusExpired   = 'E'
	statusNotServed = 'X'
)

// WriteStatusRequest writes a request for root: the CID's bytes, preceded
// by their length as an unsigned varint.
func WriteStatusRequest(w io.Writer, root cid.Cid) error {
	b := root.Bytes()
	if !root.Defined() || len(b) > maxStatusCID {
		return fmt.Errorf("share: status request: %w: CID of %d bytes", ErrStatus, len(b))
	}
	buf := binary.AppendUvarint(nil, uint64(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// ReadStatusRequest reads what WriteStatusRequest wrote. It reads at most
// 130 bytes whatever the input.
func ReadStatusRequest(r io.Reader) (cid.Cid, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxStatusCID+2), 16)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return cid.Undef, fmt.Errorf("share: status request: %w: %w", ErrStatus, err)
	}
	if n == 0 || n > maxStatusCID {
		return cid.Undef, fmt.Errorf("share: status request: %w: CID of %d bytes", ErrStatus, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return cid.Undef, fmt.Errorf("share: status request: %w: %w", ErrStatus, err)
	}
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("share: status request: %w: %w", ErrStatus, err)
	}
	return c, nil
}

// WriteStatus writes one status: a kind byte, and for StateExpired the
// expiry as 8 bytes of big-endian Unix seconds.
func WriteStatus(w io.Writer, s Status) error {
	var b []byte
	switch s.State {
	case StateActive:
		b = []byte{statusActive}
	case StateExpired:
		b = binary.BigEndian.AppendUint64([]byte{statusExpired}, uint64(s.Expired.Unix()))
	case "", StateRevoked:
		b = []byte{statusNotServed}
	default:
		return fmt.Errorf("share: status: %w: state %q", ErrStatus, s.State)
	}
	_, err := w.Write(b)
	return err
}

// ReadStatus reads one status written by WriteStatus. io.EOF before the
// first byte is returned as is (the sharer closed the stream).
func ReadStatus(r io.Reader) (Status, error) {
	var k [1]byte
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return Status{}, err
	}
	switch k[0] {
	case statusActive:
		return Status{State: StateActive}, nil
	case statusNotServed:
		return Status{}, nil
	case statusExpired:
		var t [8]byte
		if _, err := io.ReadFull(r, t[:]); err != nil {
			return Status{}, fmt.Errorf("share: status: %w: %w", ErrStatus, err)
		}
		sec := binary.BigEndian.Uint64(t[:])
		// Up to year 9999, as in links.
		if sec == 0 || sec > 253402300799 {
			return Status{}, fmt.Errorf("share: status: %w: expiry %d", ErrStatus, sec)
		}
		return Status{State: StateExpired, Expired: time.Unix(int64(sec), 0).UTC()}, nil
	}
	return Status{}, fmt.Errorf("share: status: %w: kind 0x%02x", ErrStatus, k[0])
}
