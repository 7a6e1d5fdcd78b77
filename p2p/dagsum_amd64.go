//go:build amd64 && gc && !purego

package p2p

import (
	"encoding/binary"
	"slices"
	_ "unsafe" // go:linkname

	_ "github.com/minio/sha256-simd" // holds blockAvx512
	"golang.org/x/sys/cpu"
)

// This file is the same multi-buffer SHA-256 as blobstore/multisum_amd64.go
// (p2p and blobstore import none of each other's code; DESIGN.md). The
// DAG stream's receiver verifies 16 blocks in one call of minio/sha256-simd's
// AVX-512 kernel, about 7x the rate of crypto/sha256 per core on a CPU
// without SHA instructions.

// blockAvx512 is minio/sha256-simd's 16-lane SHA-256 compression; see
// blobstore/multisum_amd64.go for why it is called directly. Pinned by
// go.mod (v1.0.1); TestDAGSum compares every result with crypto/sha256.
//
//go:linkname blockAvx512 github.com/minio/sha256-simd.blockAvx512
func blockAvx512(digests *[512]byte, input [16][]byte, mask []uint64) [16][32]byte

// haveSum16 is minio/sha256-simd's own CPU test for its AVX-512 code.
var haveSum16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

var sha256IV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// sum16 returns the SHA-256 of each of the 16 inputs (any lengths).
func sum16(in *[16][]byte) [16][32]byte {
	var st [512]byte
	for i := range 16 {
		for j, w := range sha256IV {
			binary.LittleEndian.PutUint32(st[(i+j*16)*4:], w)
		}
	}
	var whole, tail [16][]byte
	var pad [16][128]byte
	for i, b := range in {
		n := len(b) &^ 63
		whole[i] = b[:n]
		t := append(pad[i][:0], b[n:]...)
		t = append(t, 0x80)
		for len(t)%64 != 56 {
			t = append(t, 0)
		}
		tail[i] = binary.BigEndian.AppendUint64(t, uint64(len(b))<<3)
	}
	if m := laneMask(&whole); len(m) > 0 {
		blockAvx512(&st, whole, m)
	}
	return blockAvx512(&st, tail, laneMask(&tail))
}

// laneMask has one entry per 64-byte round: the lanes still in it.
func laneMask(in *[16][]byte) []uint64 {
	type lane struct{ blocks, pos int }
	var ls [16]lane
	for i, b := range in {
		ls[i] = lane{len(b) >> 6, i}
	}
	slices.SortFunc(ls[:], func(a, b lane) int { return a.blocks - b.blocks })
	var out []uint64
	m, round := uint64(0xffff), 0
	for _, l := range ls {
		for ; round < l.blocks; round++ {
			out = append(out, m)
		}
		m &^= 1 << uint(l.pos)
	}
	return out
}
