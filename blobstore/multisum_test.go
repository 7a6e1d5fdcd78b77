package blobstore

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestSumSHA256 compares the multi-buffer SHA-256 with crypto/sha256 over
// lengths around every padding boundary and groups of every size, lanes of
// unequal length mixed.
func TestSumSHA256(t *testing.T) {
	t.Logf("16-lane AVX-512 code in use: %v", haveSum16)
	r := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 4096, 4097, 1 << 20, 1<<20 + 13}
	for _, count := range []int{0, 1, 2, 15, 16, 17, 33} {
		bufs := make([][]byte, count)
		for i := range bufs {
			n := lengths[(i*7+count)%len(lengths)]
			if i%5 == 4 {
				n = r.IntN(3000)
			}
			bufs[i] = make([]byte, n)
			for j := range bufs[i] {
				bufs[i][j] = byte(r.Uint32())
			}
		}
		got := sumSHA256(bufs)
		if len(got) != count {
			t.Fatalf("%d buffers: %d sums", count, len(got))
		}
		for i, b := range bufs {
			if want := sha256.Sum256(b); got[i] != want {
				t.Errorf("%d buffers: buffer %d (%d bytes): got %x, want %x", count, i, len(b), got[i], want)
			}
		}
	}
}

func TestSumCIDs(t *testing.T) {
	bufs := [][]byte{[]byte("a"), {}, make([]byte, 70000), []byte("leaf")}
	for _, pfx := range []cid.Prefix{
		v1.WithCodec(cid.Raw).(cid.Prefix),
		v1,
		{Version: 1, Codec: cid.Raw, MhType: mh.BLAKE3, MhLength: 32},
		{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1},
	} {
		got, err := sumCIDs(pfx, bufs)
		if err != nil {
			t.Fatalf("%v: %v", pfx, err)
		}
		for i, b := range bufs {
			want, err := pfx.Sum(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got[i].Equals(want) {
				t.Errorf("%v: buffer %d: got %s, want %s", pfx, i, got[i], want)
			}
		}
	}
}

func BenchmarkSumSHA256(b *testing.B) {
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, DefaultChunkSize)
	}
	b.Run("multi", func(b *testing.B) {
		b.SetBytes(int64(len(bufs) * DefaultChunkSize))
		for b.Loop() {
			sumSHA256(bufs)
		}
	})
	b.Run("crypto-sha256", func(b *testing.B) {
		b.SetBytes(int64(len(bufs) * DefaultChunkSize))
		for b.Loop() {
			for _, x := range bufs {
				sha256.Sum256(x)
			}
		}
	})
}
