//go:build !amd64 || !gc || purego

package blobstore

const haveSum16 = false

func sum16(in *[16][]byte) [16][32]byte { panic("blobstore: sum16 without AVX-512") }
