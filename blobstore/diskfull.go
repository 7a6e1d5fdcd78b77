package blobstore

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// ErrDiskFull marks an operation that failed because the filesystem
// holding the store is full. Nothing already stored is damaged by it: a
// write either commits whole or not at all, and the same operation
// succeeds once space is freed, without reopening the store.
var ErrDiskFull = errors.New("disk full")

// diskFullError is ErrDiskFull with the directory to free space in.
type diskFullError struct {
	dir string
	err error
}

func (e *diskFullError) Error() string {
	return fmt.Sprintf("disk full: free space in %s: %v", e.dir, e.err)
}

func (e *diskFullError) Unwrap() []error { return []error{ErrDiskFull, e.err} }

// isNoSpace reports whether err is ENOSPC, also where a library flattened
// it into text.
func isNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device"))
}

// noteWrite records a failed write for DiskFull: libraries between a
// caller and the store (boxo's blockservice under bitswap) log a failed
// put and report only a missing block.
func (s *Store) noteWrite(err error) {
	if isNoSpace(err) {
		s.lastFull.Store(time.Now().UnixNano())
	}
}

// DiskFull returns err as a disk-full error ("disk full: free space in
// <dir>: ...", satisfying errors.Is(err, ErrDiskFull)) when it was caused
// by a full filesystem: err is ENOSPC, or a write into the store failed
// with ENOSPC at or after since (the operation's start). Otherwise, and
// for a nil err, it returns err unchanged.
func (s *Store) DiskFull(err error, since time.Time) error {
	if err == nil || errors.Is(err, ErrDiskFull) {
		return err
	}
	if isNoSpace(err) || s.lastFull.Load() >= since.UnixNano() {
		dir := s.cfg.Dir
		if dir == "" {
			dir = "memory"
		}
		return &diskFullError{dir: dir, err: err}
	}
	return err
}
