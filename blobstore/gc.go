package blobstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/ipfs/boxo/datastore/dshelp"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	mh "github.com/multiformats/go-multihash"
)

func mustBlock(data []byte, c cid.Cid) blocks.Block {
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil { // only with u.Debug hashing on; fall back to an unchecked block
		return blocks.NewBlock(data)
	}
	return b
}

// GCResult reports what a GC removed.
type GCResult struct {
	Removed int   // blocks deleted
	Freed   int64 // bytes of block data deleted
	// Missing counts blocks under recursive pins that were not local; the
	// blocks below them could not be marked and were kept only if reachable
	// otherwise. Non-zero means some pinned DAG is incomplete.
	Missing int
}

// GC deletes every block not reachable from a pin or from one of roots
// (each marked like a recursive pin, for callers whose references live
// elsewhere, such as synced folders' indexes) by mark and sweep. It waits
// for running imports and pins, and holds new ones off until it returns;
// blocks written by Put/PutMany while it runs are never deleted by it. A
// block of a codec GC cannot decode, under a recursive pin, aborts the GC
// before anything is deleted.
func (s *Store) GC(ctx context.Context, roots ...cid.Cid) (GCResult, error) {
	if err := s.begin(); err != nil {
		return GCResult{}, err
	}
	defer s.ops.Done()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	s.gcState.Lock()
	s.gcState.active, s.gcState.fresh = true, map[string]struct{}{}
	s.gcGen.Add(1)
	s.gcState.Unlock()
	defer func() {
		s.gcState.Lock()
		s.gcState.active, s.gcState.fresh = false, nil
		s.gcState.Unlock()
	}()

	var res GCResult
	live := map[string]struct{}{}
	pins, err := s.pins(ctx)
	if err != nil {
		return res, fmt.Errorf("blobstore: gc: %w", err)
	}
	for _, p := range pins {
		if !p.Recursive {
			live[keyOf(p.Cid)] = struct{}{}
			continue
		}
		if err := s.mark(ctx, p.Cid, live, &res); err != nil {
			return res, fmt.Errorf("blobstore: gc: mark %s: %w", p.Cid, err)
		}
	}
	for _, c := range roots {
		if err := s.mark(ctx, c, live, &res); err != nil {
			return res, fmt.Errorf("blobstore: gc: mark root %s: %w", c, err)
		}
	}

	q, err := s.blocks.Query(ctx, dsq.Query{KeysOnly: true, ReturnsSizes: true})
	if err != nil {
		return res, fmt.Errorf("blobstore: gc: %w", err)
	}
	type cand struct {
		key  string
		size int
	}
	var dead []cand
	for {
		r, ok := q.NextSync()
		if !ok {
			break
		}
		if r.Error == nil {
			r.Error = ctx.Err()
		}
		if r.Error != nil {
			q.Close()
			return res, fmt.Errorf("blobstore: gc: %w", r.Error)
		}
		if _, ok := live[r.Key]; !ok {
			dead = append(dead, cand{r.Key, r.Size})
		}
	}
	q.Close()

	const chunk = 512
	for i := 0; i < len(dead); i += chunk {
		part := dead[i:min(i+chunk, len(dead))]
		if err := s.sweep(ctx, func(fresh map[string]struct{}, b ds.Batch) error {
			for _, d := range part {
				if _, ok := fresh[d.key]; ok {
					continue
				}
				if err := b.Delete(ctx, ds.RawKey(d.key)); err != nil {
					return err
				}
				res.Removed++
				res.Freed += int64(d.size)
			}
			return nil
		}); err != nil {
			return res, fmt.Errorf("blobstore: gc: sweep: %w", err)
		}
	}
	if err := s.sync(ctx); err != nil {
		return res, fmt.Errorf("blobstore: gc: %w", err)
	}
	s.log.Info("blobstore gc", "removed", res.Removed, "freed", res.Freed, "missing", res.Missing)
	return res, nil
}

// sweep runs fill and commits its deletes while holding gcState, so that a
// concurrent put either is seen in fresh or lands after the delete.
func (s *Store) sweep(ctx context.Context, fill func(map[string]struct{}, ds.Batch) error) error {
	s.gcState.Lock()
	defer s.gcState.Unlock()
	b, err := s.blocks.Batch(ctx)
	if err != nil {
		return err
	}
	if err := fill(s.gcState.fresh, b); err != nil {
		return err
	}
	return b.Commit(ctx)
}

// mark adds every local block under root to live. Missing blocks are
// counted, not fatal.
func (s *Store) mark(ctx context.Context, root cid.Cid, live map[string]struct{}, res *GCResult) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().MhType == mh.IDENTITY {
			continue
		}
		k := keyOf(c)
		if _, ok := live[k]; ok {
			continue
		}
		live[k] = struct{}{}
		data, err := s.blocks.Get(ctx, ds.RawKey(k))
		if errors.Is(err, ds.ErrNotFound) {
			res.Missing++
			continue
		}
		if err != nil {
			return err
		}
		ls, err := links(c, data)
		if err != nil {
			return err
		}
		stack = append(stack, ls...)
	}
	return nil
}

// VerifyResult reports a Verify run.
type VerifyResult struct {
	Checked     int       // blocks re-hashed
	Corrupt     []cid.Cid // blocks whose data did not match their hash (CIDv1, raw codec)
	Quarantined int       // corrupt blocks moved to the quarantine
}

// Verify re-hashes every block. A block whose data does not match its
// multihash is moved to the quarantine: kept under Dir for inspection, no
// longer served by Get/Has, so that a fetch can replace it. progress, if not
// nil, is called with blocks done and the total number of blocks.
func (s *Store) Verify(ctx context.Context, progress func(done, total int64)) (VerifyResult, error) {
	if err := s.begin(); err != nil {
		return VerifyResult{}, err
	}
	defer s.ops.Done()
	var res VerifyResult
	var total int64
	if progress != nil {
		q, err := s.blocks.Query(ctx, dsq.Query{KeysOnly: true})
		if err != nil {
			return res, fmt.Errorf("blobstore: verify: %w", err)
		}
		ents, err := q.Rest()
		if err != nil {
			return res, fmt.Errorf("blobstore: verify: %w", err)
		}
		total = int64(len(ents))
	}
	q, err := s.blocks.Query(ctx, dsq.Query{})
	if err != nil {
		return res, fmt.Errorf("blobstore: verify: %w", err)
	}
	defer q.Close()

	type job struct {
		key  string
		data []byte
	}
	jobs := make(chan job, 16)
	bad := make(chan job, 16)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range jobs {
				if !hashMatches(j.key, j.data) {
					bad <- j
				}
			}
		})
	}
	var feedErr error
	go func() {
		defer close(jobs)
		for {
			r, ok := q.NextSync()
			if !ok {
				return
			}
			if r.Error == nil {
				r.Error = ctx.Err()
			}
			if r.Error != nil {
				feedErr = r.Error
				return
			}
			jobs <- job{r.Key, r.Value}
			res.Checked++
			if progress != nil {
				progress(int64(res.Checked), max(total, int64(res.Checked)))
			}
		}
	}()
	go func() { wg.Wait(); close(bad) }()
	var badOnes []job
	for j := range bad {
		badOnes = append(badOnes, j)
	}
	if feedErr != nil {
		return res, fmt.Errorf("blobstore: verify: %w", feedErr)
	}
	for _, j := range badOnes {
		c, err := dshelp.DsKeyToCidV1(ds.RawKey(j.key), cid.Raw)
		if err != nil {
			continue
		}
		res.Corrupt = append(res.Corrupt, c)
		if err := s.quarantine(ctx, j.key, j.data); err != nil {
			return res, fmt.Errorf("blobstore: verify: quarantine %s: %w", c, err)
		}
		res.Quarantined++
		s.log.Warn("blobstore: corrupt block quarantined", "cid", c)
	}
	if len(badOnes) > 0 {
		if err := s.sync(ctx); err != nil {
			return res, fmt.Errorf("blobstore: verify: %w", err)
		}
		if err := s.syncMetaNow(ctx); err != nil {
			return res, fmt.Errorf("blobstore: verify: %w", err)
		}
	}
	return res, nil
}

// hashMatches reports whether data hashes to the multihash in key.
func hashMatches(key string, data []byte) bool {
	h, err := dshelp.DsKeyToMultihash(ds.RawKey(key))
	if err != nil {
		return false
	}
	dh, err := mh.Decode(h)
	if err != nil {
		return false
	}
	if dh.Code == mh.IDENTITY {
		return string(dh.Digest) == string(data)
	}
	got, err := mh.Sum(data, dh.Code, dh.Length)
	if err != nil {
		return false
	}
	return string(got) == string(h)
}

// quarantine moves a corrupt block out of the block space. A good copy
// written meanwhile (a refetch) is left in place.
func (s *Store) quarantine(ctx context.Context, key string, data []byte) error {
	if err := s.meta.Put(ctx, quarantinePrefix.Child(ds.RawKey(key)), data); err != nil {
		return err
	}
	cur, err := s.blocks.Get(ctx, ds.RawKey(key))
	if errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if hashMatches(key, cur) {
		return nil
	}
	return s.blocks.Delete(ctx, ds.RawKey(key))
}

// Quarantined lists the blocks in the quarantine (CIDv1, raw codec).
func (s *Store) Quarantined(ctx context.Context) ([]cid.Cid, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	q, err := s.meta.Query(ctx, dsq.Query{Prefix: quarantinePrefix.String(), KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("blobstore: quarantined: %w", err)
	}
	ents, err := q.Rest()
	if err != nil {
		return nil, fmt.Errorf("blobstore: quarantined: %w", err)
	}
	var out []cid.Cid
	for _, e := range ents {
		k := ds.RawKey(e.Key)
		c, err := dshelp.DsKeyToCidV1(ds.NewKey(k.BaseNamespace()), cid.Raw)
		if err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}
