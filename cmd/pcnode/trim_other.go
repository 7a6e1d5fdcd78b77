//go:build !linux || !cgo

package main

// trimCHeap has nothing to do without cgo (pebble then allocates in Go's
// heap) or off Linux.
func trimCHeap() (released, supported bool) { return false, false }
