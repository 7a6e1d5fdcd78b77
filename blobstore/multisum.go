package blobstore

import (
	"crypto/sha256"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Many leaves are hashed at once. SHA-256 is the cost of every byte
// imported (and of every byte received), and on CPUs without SHA
// instructions one core hashes a single stream at about 250 MiB/s.
// With AVX-512, sum16 hashes 16 independent buffers in the vector lanes
// of one core, about 7x faster per core (docs/STORAGE.md, "Hashing").
// sumLanes is how many buffers a caller should group for one call of
// sumSHA256: 16 where the multi-buffer code runs, 1 elsewhere (then the
// caller's own parallelism is all there is).
var sumLanes = func() int {
	if haveSum16 {
		return 16
	}
	return 1
}()

// SumSHA256 returns the SHA-256 of each buffer, as crypto/sha256 would. It
// hashes 16 buffers at once in the AVX-512 lanes of one core where the CPU
// has them (about 7x crypto/sha256 without SHA instructions), one after
// the other elsewhere. It runs on the calling goroutine. The benchmark
// harness measures the machine's SHA-256 limit with it.
func SumSHA256(bufs [][]byte) [][sha256.Size]byte { return sumSHA256(bufs) }

// SHA256Lanes is how many buffers SumSHA256 hashes at once on this CPU
// (16 with AVX-512, else 1).
func SHA256Lanes() int { return sumLanes }

func sumSHA256(bufs [][]byte) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, len(bufs))
	if !haveSum16 {
		for i, b := range bufs {
			out[i] = sha256.Sum256(b)
		}
		return out
	}
	for i := 0; i < len(bufs); i += 16 {
		var in [16][]byte
		n := copy(in[:], bufs[i:])
		if n == 1 {
			// One lane of sixteen is slower than the scalar code.
			out[i] = sha256.Sum256(in[0])
			continue
		}
		sums := sum16(&in)
		copy(out[i:i+n], sums[:n])
	}
	return out
}

// sumCIDs computes the CID with prefix pfx of each buffer. SHA-256 goes
// through sumSHA256; other hash functions one buffer at a time.
func sumCIDs(pfx cid.Prefix, bufs [][]byte) ([]cid.Cid, error) {
	out := make([]cid.Cid, len(bufs))
	if pfx.MhType != mh.SHA2_256 || (pfx.MhLength != -1 && pfx.MhLength != sha256.Size) {
		for i, b := range bufs {
			c, err := pfx.Sum(b)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	for i, sum := range sumSHA256(bufs) {
		m, err := mh.Encode(sum[:], mh.SHA2_256)
		if err != nil {
			return nil, err
		}
		switch pfx.Version {
		case 0:
			out[i] = cid.NewCidV0(m)
		default:
			out[i] = cid.NewCidV1(pfx.Codec, m)
		}
	}
	return out, nil
}
