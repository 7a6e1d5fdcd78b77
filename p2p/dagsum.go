package p2p

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// dagSumLanes is how many blocks the receiver verifies in one call: 16
// where the AVX-512 multi-buffer code runs, else 1 (and one worker per
// CPU hashes blocks one at a time).
var dagSumLanes = func() int {
	if haveSum16 {
		return 16
	}
	return 1
}()

// isSHA256 reports whether c's multihash is a 32-byte SHA-256, the hash of
// nearly every block (0x12 0x20 and the digest).
func isSHA256(c cid.Cid) bool {
	h := c.Hash()
	return len(h) == 2+sha256.Size && h[0] == mh.SHA2_256 && h[1] == sha256.Size
}

// verifyBlocks checks each data[i] against cids[i] and returns one error
// per block (nil for a good one). SHA-256 blocks are hashed 16 at a time
// where the CPU allows it, the rest one by one.
func verifyBlocks(cids []cid.Cid, data [][]byte) []error {
	errs := make([]error, len(cids))
	var idx []int
	var bufs [][]byte
	for i, c := range cids {
		if haveSum16 && isSHA256(c) {
			idx = append(idx, i)
			bufs = append(bufs, data[i])
			continue
		}
		errs[i] = verifyOne(c, data[i])
	}
	for i := 0; i < len(bufs); i += 16 {
		var in [16][]byte
		n := copy(in[:], bufs[i:])
		sums := sum16(&in)
		for j := range n {
			k := idx[i+j]
			if !bytes.Equal(cids[k].Hash()[2:], sums[j][:]) {
				errs[k] = fmt.Errorf("%w: block %s: data does not match its hash", ErrDAGCorrupt, cids[k])
			}
		}
	}
	return errs
}

// verifyOne checks one block with the hash function its CID names.
func verifyOne(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("%w: block %s: %w", ErrDAGCorrupt, c, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: block %s: data hashes to %s", ErrDAGCorrupt, c, got)
	}
	return nil
}
