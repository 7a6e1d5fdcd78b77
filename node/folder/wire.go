package folder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the prefix of the index exchange protocol. Each folder is
// served on ProtocolID + "/" + folder ID, so libp2p's protocol negotiation
// routes a stream to the right folder and a device without the folder
// answers "protocol not supported".
const ProtocolID protocol.ID = "/pcnode/folder/1.0.0"

func protocolFor(id string) protocol.ID { return ProtocolID + "/" + protocol.ID(id) }

// Message types.
const (
	msgRequest byte = 1 // subscriber → publisher: epoch, after
	msgBatch   byte = 2 // publisher → subscriber: epoch, reset, entries
)

// Size limits of one message. A batch holds at most maxBatchEntries
// entries and is cut before it passes batchBytes; maxMessage leaves room
// for one entry of maximal size on top.
const (
	maxBatchEntries = 2000
	batchBytes      = 512 << 10
	maxMessage      = batchBytes + 64<<10
)

var errTooLarge = errors.New("message too large")

// request asks a publisher for its log after seq After of epoch Epoch.
type request struct {
	Epoch uint64
	After uint64
}

// batch is a slice of a publisher's log. Reset says the subscriber's
// epoch was stale: it must forget what it holds from this publisher first.
type batch struct {
	Epoch   uint64
	Reset   bool
	Entries []Entry
}

func encodeRequest(r request) []byte {
	b := []byte{msgRequest}
	b = binary.AppendUvarint(b, r.Epoch)
	return binary.AppendUvarint(b, r.After)
}

func encodeBatch(m *batch) []byte {
	b := []byte{msgBatch}
	b = binary.AppendUvarint(b, m.Epoch)
	if m.Reset {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		b = appendEntry(b, &m.Entries[i])
	}
	return b
}

// decodeMessage decodes one message body; exactly one of the results is set.
func decodeMessage(b []byte) (*request, *batch, error) {
	r := &reader{b: b}
	switch t := r.byte1("type"); t {
	case msgRequest:
		q := &request{Epoch: r.uvarint("epoch"), After: r.uvarint("after")}
		if r.err == nil && len(r.b) != 0 {
			r.fail("trailing bytes")
		}
		if r.err != nil {
			return nil, nil, r.err
		}
		return q, nil, nil
	case msgBatch:
		m := &batch{Epoch: r.uvarint("epoch")}
		switch r.byte1("reset") {
		case 0:
		case 1:
			m.Reset = true
		default:
			r.fail("reset")
		}
		n := r.uvarint("count")
		if r.err == nil && (n > maxBatchEntries || n > uint64(len(r.b))) {
			r.fail("count")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			e := r.entry()
			if r.err == nil && len(m.Entries) > 0 && e.Seq <= m.Entries[len(m.Entries)-1].Seq {
				r.fail("seq order")
			}
			m.Entries = append(m.Entries, e)
		}
		if r.err == nil && len(r.b) != 0 {
			r.fail("trailing bytes")
		}
		if r.err != nil {
			return nil, nil, r.err
		}
		return nil, m, nil
	default:
		if r.err == nil {
			r.fail(fmt.Sprintf("type %d", t))
		}
		return nil, nil, r.err
	}
}

// writeFrame writes a length-prefixed message.
func writeFrame(w io.Writer, msg []byte) error {
	if len(msg) > maxMessage {
		return errTooLarge
	}
	b := binary.AppendUvarint(make([]byte, 0, len(msg)+4), uint64(len(msg)))
	b = append(b, msg...)
	_, err := w.Write(b)
	return err
}

// readFrame reads one length-prefixed message of at most maxMessage bytes.
func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxMessage {
		return nil, errTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
