package blobstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/boxo/datastore/dshelp"
	dag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	cbor "github.com/ipfs/go-ipld-cbor"
	mh "github.com/multiformats/go-multihash"
)

// Pin keeps a block (direct) or a whole DAG (recursive) from GC.
type Pin struct {
	Cid       cid.Cid
	Recursive bool
}

// Pin records are stored as /pins/<cid> → {pinRecordVersion, flags}.
const (
	pinRecordVersion = 1
	pinFlagRecursive = 1 << 0
)

func pinKey(c cid.Cid) ds.Key { return pinsPrefix.ChildString(c.String()) }

func encodePin(p Pin) []byte {
	var flags byte
	if p.Recursive {
		flags |= pinFlagRecursive
	}
	return []byte{pinRecordVersion, flags}
}

// decodePin parses a pin record; key is the datastore key (/pins/<cid>).
func decodePin(key string, val []byte) (Pin, error) {
	name, ok := strings.CutPrefix(key, pinsPrefix.String()+"/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return Pin{}, fmt.Errorf("bad pin key %q", key)
	}
	c, err := cid.Decode(name)
	if err != nil {
		return Pin{}, fmt.Errorf("bad pin key %q: %w", key, err)
	}
	if len(val) != 2 || val[0] != pinRecordVersion || val[1]&^pinFlagRecursive != 0 {
		return Pin{}, fmt.Errorf("bad pin record %x for %s", val, c)
	}
	return Pin{Cid: c, Recursive: val[1]&pinFlagRecursive != 0}, nil
}

// Pin pins c. A recursive pin requires the whole DAG under c to be local
// (Fetch it first); a direct pin requires the block c. Otherwise Pin fails
// with an error satisfying ipld.IsNotFound and records nothing, so a pin
// always means "all of this is here and stays here". Pinning again replaces
// the kind of pin. Pin waits for a running GC. The pin is durable on return.
func (s *Store) Pin(ctx context.Context, c cid.Cid, recursive bool) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if recursive {
		if err := s.walk(ctx, c, func(cid.Cid) {}); err != nil {
			return fmt.Errorf("blobstore: pin %s: %w", c, err)
		}
	} else if ok, err := s.blocks.Has(ctx, blockKey(c)); err != nil {
		return fmt.Errorf("blobstore: pin %s: %w", c, err)
	} else if !ok {
		return fmt.Errorf("blobstore: pin %s: %w", c, ErrNotFound{Cid: c})
	}
	if err := s.meta.Put(ctx, pinKey(c), encodePin(Pin{Cid: c, Recursive: recursive})); err != nil {
		return fmt.Errorf("blobstore: pin %s: %w", c, err)
	}
	if err := s.syncMetaNow(ctx); err != nil {
		return fmt.Errorf("blobstore: pin %s: %w", c, err)
	}
	return nil
}

// Unpin removes the pin on c, or returns an error wrapping ErrNotPinned.
func (s *Store) Unpin(ctx context.Context, c cid.Cid) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	ok, err := s.meta.Has(ctx, pinKey(c))
	if err != nil {
		return fmt.Errorf("blobstore: unpin %s: %w", c, err)
	}
	if !ok {
		return fmt.Errorf("blobstore: unpin %s: %w", c, ErrNotPinned)
	}
	if err := s.meta.Delete(ctx, pinKey(c)); err != nil {
		return fmt.Errorf("blobstore: unpin %s: %w", c, err)
	}
	if err := s.syncMetaNow(ctx); err != nil {
		return fmt.Errorf("blobstore: unpin %s: %w", c, err)
	}
	return nil
}

// Pins lists all pins, ordered by CID string.
func (s *Store) Pins(ctx context.Context) ([]Pin, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	ps, err := s.pins(ctx)
	if err != nil {
		return nil, fmt.Errorf("blobstore: pins: %w", err)
	}
	return ps, nil
}

func (s *Store) pins(ctx context.Context) ([]Pin, error) {
	res, err := s.meta.Query(ctx, dsq.Query{Prefix: pinsPrefix.String()})
	if err != nil {
		return nil, err
	}
	ents, err := res.Rest()
	if err != nil {
		return nil, err
	}
	ps := make([]Pin, 0, len(ents))
	for _, e := range ents {
		p, err := decodePin(e.Key, e.Value)
		if err != nil {
			s.log.Error("blobstore: skipping unreadable pin record", "key", e.Key, "err", err)
			continue
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b Pin) int { return strings.Compare(a.Cid.String(), b.Cid.String()) })
	return ps, nil
}

// links returns the CIDs a block links to. Raw blocks have none; dag-pb and
// dag-cbor are decoded; other codecs are an error, so that GC never frees
// what it cannot see into.
func links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	switch c.Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		n, err := dag.DecodeProtobuf(data)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", c, err)
		}
		out := make([]cid.Cid, len(n.Links()))
		for i, l := range n.Links() {
			out[i] = l.Cid
		}
		return out, nil
	case cid.DagCBOR:
		n, err := cbor.DecodeBlock(mustBlock(data, c))
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", c, err)
		}
		var out []cid.Cid
		for _, l := range n.Links() {
			out = append(out, l.Cid)
		}
		return out, nil
	}
	return nil, fmt.Errorf("decode %s: unsupported codec 0x%x", c, c.Type())
}

// walk visits every block of the DAG under root in the local store, calling
// fn with each CID once. A missing block stops the walk with an error
// satisfying ipld.IsNotFound. Raw blocks have no links, so only their
// presence is checked: a recursive pin of a large file reads its inner
// nodes, not its data.
func (s *Store) walk(ctx context.Context, root cid.Cid, fn func(cid.Cid)) error {
	seen := map[string]struct{}{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().MhType == mh.IDENTITY {
			continue // the data is in the CID; nothing is stored
		}
		k := string(c.Hash())
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		if c.Type() == cid.Raw {
			ok, err := s.blocks.Has(ctx, blockKey(c))
			if err != nil {
				return err
			}
			if !ok {
				return ErrNotFound{Cid: c}
			}
			fn(c)
			continue
		}
		data, err := s.blocks.Get(ctx, blockKey(c))
		if errors.Is(err, ds.ErrNotFound) {
			return ErrNotFound{Cid: c}
		}
		if err != nil {
			return err
		}
		fn(c)
		ls, err := links(c, data)
		if err != nil {
			return err
		}
		stack = append(stack, ls...)
	}
	return nil
}

// keyOf is the block key string of a CID, as stored.
func keyOf(c cid.Cid) string { return dshelp.MultihashToDsKey(c.Hash()).String() }
