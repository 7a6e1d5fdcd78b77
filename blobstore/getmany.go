package blobstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	mh "github.com/multiformats/go-multihash"
)

// GetMany returns the blocks for cs, in order; a block the store lacks is
// a nil entry. It is Get for many blocks at once, for a sender that walks
// a DAG: with Config.HashOnRead the blocks that need re-hashing are hashed
// together (16 at a time with AVX-512, see SumSHA256), and a rotten one is
// quarantined and returned as missing, as Get reports it.
func (s *Store) GetMany(ctx context.Context, cs []cid.Cid) ([]blocks.Block, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	out := make([]blocks.Block, len(cs))
	datas := make([][]byte, len(cs))
	var check []int // indexes of SHA-256 blocks to hash together
	for i, c := range cs {
		if !c.Defined() {
			continue
		}
		data, err := s.blocks.Get(ctx, blockKey(c))
		if errors.Is(err, ds.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: get %s: %w", c, err)
		}
		datas[i] = data
		if !s.cfg.HashOnRead || s.trust.trusted(blockKey(c).String()) {
			continue
		}
		if h := c.Hash(); len(h) == 2+sha256.Size && h[0] == mh.SHA2_256 && h[1] == sha256.Size {
			check = append(check, i)
			continue
		}
		if !hashMatches(blockKey(c).String(), data) {
			_ = s.rotOnRead(ctx, c, data)
			datas[i] = nil
		}
	}
	if len(check) > 0 {
		bufs := make([][]byte, len(check))
		for j, i := range check {
			bufs[j] = datas[i]
		}
		for j, sum := range sumSHA256(bufs) {
			i := check[j]
			if string(cs[i].Hash()[2:]) != string(sum[:]) {
				_ = s.rotOnRead(ctx, cs[i], datas[i])
				datas[i] = nil
			}
		}
	}
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
