package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDiskFull(t *testing.T) {
	s, err := Open(context.Background(), Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	enospc := fmt.Errorf("write x: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	other := errors.New("ipld: could not find bafk...")

	if got := s.DiskFull(nil, start); got != nil {
		t.Errorf("DiskFull(nil) = %v", got)
	}
	if got := s.DiskFull(other, start); got != other {
		t.Errorf("an unrelated error became %v", got)
	}
	got := s.DiskFull(enospc, start)
	if !errors.Is(got, ErrDiskFull) || !errors.Is(got, syscall.ENOSPC) || !strings.HasPrefix(got.Error(), "disk full: free space in "+s.cfg.Dir+": ") {
		t.Errorf("DiskFull(ENOSPC) = %v", got)
	}
	if again := s.DiskFull(got, start); again != got {
		t.Errorf("wrapped twice: %v", again)
	}
	// A write that failed for want of space explains a later "not found"
	// in the same operation, not in one that started after it.
	s.noteWrite(enospc)
	if got := s.DiskFull(other, start); !errors.Is(got, ErrDiskFull) {
		t.Errorf("after a full write: %v", got)
	}
	if got := s.DiskFull(other, time.Now().Add(time.Second)); got != other {
		t.Errorf("an operation started later: %v", got)
	}
}
