package blobstore

import (
	"context"
	"fmt"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
)

// rotOnRead handles a block that Get found corrupt under HashOnRead: it is
// moved to the quarantine (so Has and GetSize stop reporting it and a
// fetch can store a good copy) and reported missing and mismatched at once.
// A failed quarantine is logged, not returned: the read fails either way.
func (s *Store) rotOnRead(ctx context.Context, c cid.Cid, data []byte) error {
	s.log.Warn("blobstore: corrupt block found on read; quarantined", "cid", c)
	if err := s.quarantine(ctx, blockKey(c).String(), data); err != nil {
		s.log.Warn("blobstore: quarantine of a corrupt block failed", "cid", c, "err", err)
	} else if err := s.sync(ctx); err != nil {
		s.log.Warn("blobstore: sync after quarantine failed", "cid", c, "err", err)
	}
	return fmt.Errorf("blobstore: get %s: %w (%w)", c, ErrNotFound{Cid: c}, blockstore.ErrHashMismatch)
}
