package folder

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ShortID names a device in version vectors and conflict names: the first
// 8 bytes of SHA-256 of its peer ID. (The peer ID's own first bytes are the
// same for every Ed25519 key, so they cannot be used.) Collisions among
// one person's handful of devices are negligible.
type ShortID uint64

// ShortIDOf returns the short ID of p.
func ShortIDOf(p peer.ID) ShortID {
	h := sha256.Sum256([]byte(p))
	return ShortID(binary.BigEndian.Uint64(h[:8]))
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// String is the first 7 characters of the base32 form, as conflict names use.
func (s ShortID) String() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	return b32.EncodeToString(b[:])[:7]
}

// Counter is one device's component of a version vector.
type Counter struct {
	ID    ShortID
	Value uint64
}

// Vector is a version vector: counters sorted by ID, no zero values.
// A Vector is never modified in place; methods return new ones.
type Vector []Counter

// Ordering is the result of comparing two vectors.
type Ordering int

// Orderings.
const (
	Equal Ordering = iota
	Greater
	Lesser
	Concurrent
)

func (o Ordering) String() string {
	return [...]string{"equal", "greater", "lesser", "concurrent"}[o]
}

// Get returns id's counter (0 if absent).
func (v Vector) Get(id ShortID) uint64 {
	i, ok := slices.BinarySearchFunc(v, id, func(c Counter, id ShortID) int { return cmp64(uint64(c.ID), uint64(id)) })
	if !ok {
		return 0
	}
	return v[i].Value
}

// Update returns v with id's counter incremented: the version a change
// made by id on top of v gets.
func (v Vector) Update(id ShortID) Vector {
	out := make(Vector, 0, len(v)+1)
	done := false
	for _, c := range v {
		if !done && c.ID >= id {
			if c.ID == id {
				out = append(out, Counter{id, c.Value + 1})
				done = true
				continue
			}
			out = append(out, Counter{id, 1})
			done = true
		}
		out = append(out, c)
	}
	if !done {
		out = append(out, Counter{id, 1})
	}
	return out
}

// Merge returns the element-wise maximum of v and w.
func (v Vector) Merge(w Vector) Vector {
	out := make(Vector, 0, max(len(v), len(w)))
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j >= len(w) || (i < len(v) && v[i].ID < w[j].ID):
			out = append(out, v[i])
			i++
		case i >= len(v) || w[j].ID < v[i].ID:
			out = append(out, w[j])
			j++
		default:
			out = append(out, Counter{v[i].ID, max(v[i].Value, w[j].Value)})
			i++
			j++
		}
	}
	return out
}

// Compare orders v against w.
func (v Vector) Compare(w Vector) Ordering {
	greater, lesser := false, false
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j >= len(w) || (i < len(v) && v[i].ID < w[j].ID):
			if v[i].Value > 0 {
				greater = true
			}
			i++
		case i >= len(v) || w[j].ID < v[i].ID:
			if w[j].Value > 0 {
				lesser = true
			}
			j++
		default:
			if v[i].Value > w[j].Value {
				greater = true
			} else if v[i].Value < w[j].Value {
				lesser = true
			}
			i++
			j++
		}
	}
	switch {
	case greater && lesser:
		return Concurrent
	case greater:
		return Greater
	case lesser:
		return Lesser
	}
	return Equal
}

func cmp64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
