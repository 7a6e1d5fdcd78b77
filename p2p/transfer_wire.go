package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
)

// The DAG stream protocol ("/pcnode/dag/1.0.0") in one place.
//
// Request, receiver to sender, once:
//
//	uvarint version (1)
//	uvarint n (1..maxDAGWants)
//	n × (uvarint len, CID bytes)   the roots of the subtrees wanted
//
// Response, sender to receiver: frames, each a kind byte and a body:
//
//	'B' uvarint len, CID bytes, uvarint len, data   a block
//	'M' uvarint len, CID bytes                      the sender lacks it
//	'X' uvarint len, message                        refused; stream ends
//	'E'                                             every subtree sent; stream ends
//
// Blocks come depth first in link order (a file's leaves in file order),
// each block once, a parent before its children.
const (
	dagVersion = 1

	frameBlock   = 'B'
	frameMissing = 'M'
	frameRefused = 'X'
	frameEnd     = 'E'

	// maxDAGWants bounds one request: 64 Ki CIDs (a few MiB) is more
	// subtrees than a resumed 60 GiB file has leaves missing.
	maxDAGWants = 1 << 16
	// maxCIDLen is far above any real CID (a CIDv1 sha2-256 is 36 bytes).
	maxCIDLen = 256
	// maxDAGBlock is the largest block accepted: bitswap's 2 MiB limit,
	// so that anything this protocol moves could also move by bitswap.
	maxDAGBlock = 2 << 20
	// maxRefusal bounds the text of a refusal.
	maxRefusal = 1 << 10
)

// errFrame is wrapped by every malformed-input error of the decoders.
var errFrame = errors.New("malformed dag stream")

func appendCID(b []byte, c cid.Cid) []byte {
	k := c.KeyString()
	b = binary.AppendUvarint(b, uint64(len(k)))
	return append(b, k...)
}

// encodeDAGRequest is the request for the subtrees under wants.
func encodeDAGRequest(wants []cid.Cid) []byte {
	b := binary.AppendUvarint(nil, dagVersion)
	b = binary.AppendUvarint(b, uint64(len(wants)))
	for _, c := range wants {
		b = appendCID(b, c)
	}
	return b
}

func readUvarint(r *bufio.Reader, max uint64, what string) (uint64, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, unexpected(err)
	}
	if n > max {
		return 0, fmt.Errorf("%w: %s %d exceeds %d", errFrame, what, n, max)
	}
	return n, nil
}

// unexpected turns a clean EOF inside a structure into ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readCID(r *bufio.Reader) (cid.Cid, error) {
	n, err := readUvarint(r, maxCIDLen, "CID length")
	if err != nil {
		return cid.Undef, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return cid.Undef, unexpected(err)
	}
	c, err := cid.Cast(buf)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", errFrame, err)
	}
	return c, nil
}

// decodeDAGRequest reads one request.
func decodeDAGRequest(r *bufio.Reader) ([]cid.Cid, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, unexpected(err)
	}
	if v != dagVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errFrame, v, dagVersion)
	}
	n, err := readUvarint(r, maxDAGWants, "want count")
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty request", errFrame)
	}
	wants := make([]cid.Cid, 0, min(n, 1024))
	for range n {
		c, err := readCID(r)
		if err != nil {
			return nil, err
		}
		wants = append(wants, c)
	}
	return wants, nil
}

// dagFrame is one decoded response frame.
type dagFrame struct {
	kind byte
	cid  cid.Cid // 'B' and 'M'
	data []byte  // 'B': the block; 'X': the message
}

// readDAGFrame reads one response frame. The data of a block is a fresh
// slice the caller owns.
func readDAGFrame(r *bufio.Reader) (dagFrame, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return dagFrame{}, unexpected(err)
	}
	f := dagFrame{kind: kind}
	switch kind {
	case frameEnd:
		return f, nil
	case frameRefused:
		n, err := readUvarint(r, maxRefusal, "message length")
		if err != nil {
			return f, err
		}
		f.data = make([]byte, n)
		if _, err := io.ReadFull(r, f.data); err != nil {
			return f, unexpected(err)
		}
		return f, nil
	case frameMissing, frameBlock:
		if f.cid, err = readCID(r); err != nil {
			return f, err
		}
		if kind == frameMissing {
			return f, nil
		}
		n, err := readUvarint(r, maxDAGBlock, "block size")
		if err != nil {
			return f, err
		}
		f.data = make([]byte, n)
		if _, err := io.ReadFull(r, f.data); err != nil {
			return f, unexpected(err)
		}
		return f, nil
	}
	return f, fmt.Errorf("%w: unknown frame kind 0x%02x", errFrame, kind)
}

// writeBlockFrame writes a block frame to w.
func writeBlockFrame(w *bufio.Writer, c cid.Cid, data []byte) error {
	var hdr [1 + 2*binary.MaxVarintLen64 + maxCIDLen]byte
	b := append(hdr[:0], frameBlock)
	b = appendCID(b, c)
	b = binary.AppendUvarint(b, uint64(len(data)))
	if _, err := w.Write(b); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

func writeMissingFrame(w *bufio.Writer, c cid.Cid) error {
	_, err := w.Write(appendCID([]byte{frameMissing}, c))
	return err
}

func writeRefusedFrame(w io.Writer, msg string) error {
	if len(msg) > maxRefusal {
		msg = msg[:maxRefusal]
	}
	b := binary.AppendUvarint([]byte{frameRefused}, uint64(len(msg)))
	_, err := w.Write(append(b, msg...))
	return err
}
