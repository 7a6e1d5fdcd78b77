package blobstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	mh "github.com/multiformats/go-multihash"
)

// GetMany returns the blocks for cs, in order; a block the store lacks is
// a nil entry. It is Get for many blocks at once, for a sender that walks
// a DAG: with Config.HashOnRead the blocks that need re-hashing are hashed
// together (16 at a time with AVX-512, see SumSHA256), and a rotten one is
// quarantined and returned as missing, as Get reports it. Blocks referenced
// in place (PutRefs) are read without a check each and verified together
// in the same way, HashOnRead or not; one whose file no longer matches
// goes through Get's path (every place tried, stale ones dropped and
// reported to WatchStaleRefs) and is missing if none matches.
func (s *Store) GetMany(ctx context.Context, cs []cid.Cid) ([]blocks.Block, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	out := make([]blocks.Block, len(cs))
	datas := make([][]byte, len(cs))
	r, stored := s.refsAndStored()
	var lacking []int
	for i, c := range cs {
		if !c.Defined() {
			continue
		}
		data, err := stored.Get(ctx, blockKey(c))
		if errors.Is(err, ds.ErrNotFound) {
			lacking = append(lacking, i)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: get %s: %w", c, err)
		}
		datas[i] = data
	}
	fromRef, err := r.readMany(ctx, cs, lacking, datas, func(n int) []byte { return make([]byte, n) })
	if err != nil {
		return nil, err
	}
	s.checkMany(ctx, cs, datas, fromRef, false)
	for i, data := range datas {
		if data == nil {
			continue
		}
		b, err := blocks.NewBlockWithCid(data, cs[i])
		if err != nil {
			return nil, fmt.Errorf("blobstore: get %s: %w", cs[i], err)
		}
		out[i] = b
	}
	return out, nil
}

// checkMany applies Config.HashOnRead to datas, the data read for cs (nil:
// missing): blocks that need re-hashing are hashed together, and a rotten
// one is quarantined and its entry set to nil. Entries marked in verified
// (nil: none) were hashed already (read through a reference) and are
// left alone. With copyRotten the quarantine gets a copy (datas are
// borrowed buffers).
func (s *Store) checkMany(ctx context.Context, cs []cid.Cid, datas [][]byte, verified []bool, copyRotten bool) {
	if !s.cfg.HashOnRead {
		return
	}
	rot := func(i int) {
		d := datas[i]
		if copyRotten {
			d = append([]byte(nil), d...)
		}
		_ = s.rotOnRead(ctx, cs[i], d)
		datas[i] = nil
	}
	var check []int // indexes of SHA-256 blocks to hash together
	for i, c := range cs {
		if datas[i] == nil || (verified != nil && verified[i]) || s.trust.trusted(blockKey(c).String()) {
			continue
		}
		if h := c.Hash(); len(h) == 2+sha256.Size && h[0] == mh.SHA2_256 && h[1] == sha256.Size {
			check = append(check, i)
			continue
		}
		if !hashMatches(blockKey(c).String(), datas[i]) {
			rot(i)
		}
	}
	if len(check) == 0 {
		return
	}
	bufs := make([][]byte, len(check))
	for j, i := range check {
		bufs[j] = datas[i]
	}
	for j, sum := range sumSHA256(bufs) {
		i := check[j]
		if string(cs[i].Hash()[2:]) != string(sum[:]) {
			rot(i)
		}
	}
}

// viewBuf is the size of ViewMany's pooled read buffers: a 1 MiB leaf
// (DefaultChunkSize) and the byte that shows it ended. Larger blocks are
// read as Get reads them.
const viewBuf = 1<<20 + 1

var viewBufs = sync.Pool{New: func() any { b := make([]byte, viewBuf); return &b }}

// ViewMany is GetMany for a reader that only looks: fn is called for each
// of cs in order with its data, or nil if the store lacks it (or found it
// rotten under HashOnRead). The data is valid only during the call: the
// large blocks of the tiered store are read straight from their files
// into reused buffers, which spares a sender the allocation, zeroing and
// collection of a fresh buffer per block (about a quarter of a second
// per GiB here). fn's error ends the call and is returned as is.
func (s *Store) ViewMany(ctx context.Context, cs []cid.Cid, fn func(i int, data []byte) error) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	t := s.tieredBlocks()
	r, stored := s.refsAndStored()
	datas := make([][]byte, len(cs))
	var held []*[]byte
	defer func() {
		for _, b := range held {
			viewBufs.Put(b)
		}
	}()
	var lacking []int
	for i, c := range cs {
		if !c.Defined() {
			continue
		}
		if t != nil && t.files != nil {
			// Small blocks are in pebble (a Bloom filter answers for
			// the others at once); the rest in files, read here.
			data, err := t.small.Get(ctx, blockKey(c))
			if err == nil {
				datas[i] = data
				continue
			}
			b := viewBufs.Get().(*[]byte)
			if n, ok := t.files.read(blockKey(c), *b); ok {
				held = append(held, b)
				datas[i] = (*b)[:n]
				continue
			}
			viewBufs.Put(b)
		}
		data, err := stored.Get(ctx, blockKey(c))
		if errors.Is(err, ds.ErrNotFound) {
			lacking = append(lacking, i)
			continue
		}
		if err != nil {
			return fmt.Errorf("blobstore: get %s: %w", c, err)
		}
		datas[i] = data
	}
	fromRef, err := r.readMany(ctx, cs, lacking, datas, func(n int) []byte {
		if n >= viewBuf {
			return make([]byte, n)
		}
		b := viewBufs.Get().(*[]byte)
		held = append(held, b)
		return (*b)[:n]
	})
	if err != nil {
		return err
	}
	s.checkMany(ctx, cs, datas, fromRef, true)
	for i := range cs {
		if err := fn(i, datas[i]); err != nil {
			return err
		}
	}
	return nil
}

// refsAndStored returns the store's references (nil if not enabled) and
// the datastore of its stored blocks alone.
func (s *Store) refsAndStored() (*refBlocks, ds.Batching) {
	if r, ok := s.blocks.(*refBlocks); ok {
		return r, r.Batching
	}
	return nil, s.blocks
}

// tieredBlocks returns the tiered datastore under the store's blocks, or
// nil (another backend, or in memory).
func (s *Store) tieredBlocks() *tiered {
	b := s.blocks
	if r, ok := b.(*refBlocks); ok {
		b = r.Batching
	}
	t, _ := b.(*tiered)
	return t
}
