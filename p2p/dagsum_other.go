//go:build !amd64 || !gc || purego

package p2p

const haveSum16 = false

func sum16(in *[16][]byte) [16][32]byte { panic("p2p: sum16 without AVX-512") }
