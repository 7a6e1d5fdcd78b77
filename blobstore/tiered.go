package blobstore

import (
	"context"
	"errors"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// bigBlock is the size from which a block is kept in a file of its own
// rather than in pebble. File leaves of an import (256 KiB to 1 MiB) land
// above it; inner nodes, directories, HAMT shards and small files below.
// docs/STORAGE.md has the measurements: pebble writes a large value twice
// (WAL, then sstable) and copies it through its memtable; a file is
// written once. For 4 KiB blocks pebble is ~5x cheaper than a file each.
const bigBlock = 128 << 10

// tiered is a ds.Batching that routes each value by size: small ones to
// small (pebble), large ones to big (flatfs). A key lives in exactly one
// tier, since a block's size never changes.
type tiered struct {
	small, big ds.Batching
}

var _ ds.Batching = (*tiered)(nil)

func (t *tiered) tier(v []byte) ds.Batching {
	if len(v) >= bigBlock {
		return t.big
	}
	return t.small
}

func (t *tiered) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	v, err := t.small.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return t.big.Get(ctx, k)
	}
	return v, err
}

func (t *tiered) Has(ctx context.Context, k ds.Key) (bool, error) {
	ok, err := t.small.Has(ctx, k)
	if err != nil || ok {
		return ok, err
	}
	return t.big.Has(ctx, k)
}

func (t *tiered) GetSize(ctx context.Context, k ds.Key) (int, error) {
	n, err := t.small.GetSize(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return t.big.GetSize(ctx, k)
	}
	return n, err
}

func (t *tiered) Put(ctx context.Context, k ds.Key, v []byte) error {
	return t.tier(v).Put(ctx, k, v)
}

func (t *tiered) Delete(ctx context.Context, k ds.Key) error {
	err1 := t.small.Delete(ctx, k)
	err2 := t.big.Delete(ctx, k)
	if err1 != nil && !errors.Is(err1, ds.ErrNotFound) {
		return err1
	}
	if err2 != nil && !errors.Is(err2, ds.ErrNotFound) {
		return err2
	}
	return nil
}

func (t *tiered) Sync(ctx context.Context, prefix ds.Key) error {
	if err := t.big.Sync(ctx, prefix); err != nil {
		return err
	}
	return t.small.Sync(ctx, prefix)
}

// Query lists the small tier, then the big one. Orders, offsets and limits
// are not supported (the store never asks for them).
func (t *tiered) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if len(q.Orders) > 0 || q.Offset > 0 || q.Limit > 0 {
		return nil, errors.New("tiered: ordered or limited queries are not supported")
	}
	first, err := t.small.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	var second dsq.Results
	cur := first
	return dsq.ResultsFromIterator(q, dsq.Iterator{
		Next: func() (dsq.Result, bool) {
			for {
				r, ok := cur.NextSync()
				if ok {
					return r, true
				}
				if second != nil {
					return dsq.Result{}, false
				}
				second, err = t.big.Query(ctx, q)
				if err != nil {
					return dsq.Result{Error: err}, true
				}
				cur = second
			}
		},
		Close: func() error {
			err := first.Close()
			if second != nil {
				err = errors.Join(err, second.Close())
			}
			return err
		},
	}), nil
}

func (t *tiered) Close() error { return nil } // the Store closes the tiers

func (t *tiered) Batch(ctx context.Context) (ds.Batch, error) {
	sb, err := t.small.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &tieredBatch{t: t, small: sb}, nil
}

// tieredBatch opens the big tier's batch only when needed: a flatfs batch
// costs a temporary directory and directory syncs even when empty.
type tieredBatch struct {
	t          *tiered
	small, big ds.Batch
}

func (b *tieredBatch) bigBatch(ctx context.Context) (ds.Batch, error) {
	if b.big == nil {
		bb, err := b.t.big.Batch(ctx)
		if err != nil {
			return nil, err
		}
		b.big = bb
	}
	return b.big, nil
}

func (b *tieredBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	if len(v) >= bigBlock {
		bb, err := b.bigBatch(ctx)
		if err != nil {
			return err
		}
		return bb.Put(ctx, k, v)
	}
	return b.small.Put(ctx, k, v)
}

func (b *tieredBatch) Delete(ctx context.Context, k ds.Key) error {
	if err := b.small.Delete(ctx, k); err != nil {
		return err
	}
	bb, err := b.bigBatch(ctx)
	if err != nil {
		return err
	}
	return bb.Delete(ctx, k)
}

// Commit writes the big tier first: a crash between the two leaves whole
// blocks in files and nothing that refers to missing ones.
func (b *tieredBatch) Commit(ctx context.Context) error {
	if b.big != nil {
		if err := b.big.Commit(ctx); err != nil {
			return err
		}
	}
	return b.small.Commit(ctx)
}
