package blobstore

import (
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// FuzzDecodeNode: blocks arrive from peers (verified against their hash,
// but the bytes are still theirs to choose); decoding a dag-pb or raw
// block never panics, and a decoded node keeps its CID.
func FuzzDecodeNode(f *testing.F) {
	f.Add([]byte{}, true)
	f.Add([]byte("plain bytes"), false)
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01}, true)             // dag-pb Data: unixfs directory
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 0x00, 0x0a}, true) // truncated link
	f.Fuzz(func(t *testing.T, data []byte, pb bool) {
		codec := uint64(cid.Raw)
		if pb {
			codec = cid.DagProtobuf
		}
		h, err := mh.Sum(data, mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		c := cid.NewCidV1(codec, h)
		b, err := blocks.NewBlockWithCid(data, c)
		if err != nil {
			t.Fatal(err)
		}
		n, err := decodeNode(b)
		if err != nil {
			return
		}
		if !n.Cid().Equals(c) {
			t.Fatalf("decoded node has CID %s, want %s", n.Cid(), c)
		}
	})
}
