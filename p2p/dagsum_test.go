package p2p

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// TestDAGSum checks the multi-buffer SHA-256 against crypto/sha256 over
// lengths around the padding boundaries and groups of every size.
func TestDAGSum(t *testing.T) {
	if !haveSum16 {
		t.Skip("no AVX-512: the 16-lane code is not used on this CPU")
	}
	r := rand.New(rand.NewPCG(5, 6))
	lengths := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4096, 1 << 20, 2<<20 - 1}
	for round := range 8 {
		var in [16][]byte
		for i := range in {
			n := lengths[(i+round*3)%len(lengths)]
			if (i+round)%4 == 0 {
				n = r.IntN(5000)
			}
			in[i] = make([]byte, n)
			for j := range in[i] {
				in[i][j] = byte(r.Uint32())
			}
		}
		got := sum16(&in)
		for i, b := range in {
			if want := sha256.Sum256(b); got[i] != want {
				t.Errorf("round %d lane %d (%d bytes): got %x, want %x", round, i, len(b), got[i], want)
			}
		}
	}
}

// TestVerifyBlocks: good blocks of several hash functions pass, and a
// block whose data was changed fails with ErrDAGCorrupt, in groups larger
// and smaller than 16.
func TestVerifyBlocks(t *testing.T) {
	pfxs := []cid.Prefix{
		{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1},
		{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1},
		{Version: 1, Codec: cid.Raw, MhType: mh.BLAKE3, MhLength: 32},
		{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_512, MhLength: -1},
	}
	for _, count := range []int{1, 3, 16, 17, 40} {
		cids := make([]cid.Cid, count)
		data := make([][]byte, count)
		for i := range cids {
			data[i] = make([]byte, i*97)
			rand.NewChaCha8([32]byte{byte(i)}).Read(data[i])
			c, err := pfxs[i%len(pfxs)].Sum(data[i])
			if err != nil {
				t.Fatal(err)
			}
			cids[i] = c
		}
		for i, err := range verifyBlocks(cids, data) {
			if err != nil {
				t.Errorf("%d blocks: good block %d: %v", count, i, err)
			}
		}
		bad := count / 2
		data[bad] = append([]byte{1}, data[bad]...)
		for i, err := range verifyBlocks(cids, data) {
			switch {
			case i == bad && !errors.Is(err, ErrDAGCorrupt):
				t.Errorf("%d blocks: changed block %d: got %v, want ErrDAGCorrupt", count, i, err)
			case i != bad && err != nil:
				t.Errorf("%d blocks: good block %d: %v", count, i, err)
			}
		}
	}
}

func TestIsDirectTCP(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"/ip4/127.0.0.1/tcp/4001", true},
		{"/ip6/::1/tcp/4001/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWsAJuFHyVRaeA3QGpFkzWV", true},
		{"/ip4/127.0.0.1/udp/4001/quic-v1", false},
		{"/ip4/127.0.0.1/tcp/4001/ws", false},
		{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWsAJuFHyVRaeA3QGpFkzWV/p2p-circuit", false},
	} {
		a, err := multiaddr.NewMultiaddr(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isDirectTCP(a); got != tc.want {
			t.Errorf("isDirectTCP(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
