//go:build amd64 && gc && !purego

package blobstore

import (
	"encoding/binary"
	"slices"
	_ "unsafe" // go:linkname

	_ "github.com/minio/sha256-simd" // holds blockAvx512
	"golang.org/x/sys/cpu"
)

// blockAvx512 is minio/sha256-simd's 16-lane SHA-256 compression
// (AVX-512): it runs the 64-byte blocks of the 16 inputs through the
// transposed states in digests, lane i taking the rounds whose mask has
// bit i set, and returns the 16 states as digests. The package exposes it
// only through Avx512Server, whose goroutine polls a 1 µs timer forever
// and which hashes lanes one by one when they do not fill up at once; so
// it is called here directly. The function is pinned by go.mod (v1.0.1);
// a version without it fails to link, and TestSumSHA256 compares every
// result with crypto/sha256.
//
//go:linkname blockAvx512 github.com/minio/sha256-simd.blockAvx512
func blockAvx512(digests *[512]byte, input [16][]byte, mask []uint64) [16][32]byte

// haveSum16 is the CPU test of minio/sha256-simd for its AVX-512 code.
var haveSum16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

var sha256IV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// sum16 returns the SHA-256 of each of the 16 inputs (any lengths,
// including 0). Two calls of the kernel: the whole 64-byte blocks of every
// input, then each input's padded tail (one or two blocks).
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

// laneMask has one entry per 64-byte round: the lanes (bits) that still
// have a block in that round. Inputs are multiples of 64 bytes.
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
