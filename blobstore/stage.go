package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StagedFile is a file written in order under a hidden temporary name in
// its destination's directory and published there by Commit, with
// Export's guarantees: durable before it appears (fsynced, then renamed,
// then the directory fsynced), never replacing anything (a dst that appeared meanwhile
// fails Commit with ErrExist), and after a crash either no dst or a
// complete one (at most a hidden `.<name>.pcnode-tmp-*` directory is
// left). A fetch that receives a file's leaves in order writes them here
// as they arrive, instead of exporting the stored file afterwards.
//
// A StagedFile is not safe for concurrent use. Abort after Commit does
// nothing.
type StagedFile struct {
	dst, stage string
	f          *os.File
	wb         writeback
	n          int64
	direct     bool // f is open with O_DIRECT (see Write)

	once sync.Once
	err  error
}

// CreateStaged starts a StagedFile for dst, an absolute path whose
// directory exists. It fails with ErrExist if dst exists.
func CreateStaged(dst string) (*StagedFile, error) {
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("blobstore: stage %s: %w", dst, ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blobstore: stage %s: %w", dst, err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".pcnode-tmp-")
	if err != nil {
		return nil, fmt.Errorf("blobstore: stage %s: %w", dst, err)
	}
	f, err := os.OpenFile(filepath.Join(stage, "x"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		os.RemoveAll(stage)
		return nil, fmt.Errorf("blobstore: stage %s: %w", dst, err)
	}
	// Direct I/O where the file system has it: see Write.
	direct := setDirect(f, true) == nil
	return &StagedFile{dst: dst, stage: stage, f: f, wb: writeback{f: f}, direct: direct}, nil
}

// directAlign is the alignment O_DIRECT needs of buffers, lengths and
// offsets: 4096 covers disks of 512-byte and 4 KiB sectors.
const directAlign = 4096

// setDirect sets or clears O_DIRECT on f.
func setDirect(f *os.File, on bool) error {
	fd := int(f.Fd())
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		fl |= unix.O_DIRECT
	} else {
		fl &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
	return err
}

// Write appends p to the staged file.
//
// Aligned writes (whole 1 MiB file leaves, as Go allocates them: page
// aligned) go to the disk with O_DIRECT, without a copy into the page
// cache: on the machine of docs/STORAGE.md that copy costs about 1.2 CPU
// seconds per GiB, as much as the whole DAG stream's receipt. The first
// unaligned write (a file's last, short leaf) clears O_DIRECT and the
// rest goes through the page cache. Commit's fsync makes both durable.
func (s *StagedFile) Write(p []byte) (int, error) {
	if s.direct && !s.aligned([][]byte{p}) {
		if err := setDirect(s.f, false); err != nil {
			return 0, fmt.Errorf("blobstore: stage %s: %w", s.dst, err)
		}
		s.direct = false
	}
	var n int
	var err error
	if s.direct {
		n, err = s.f.Write(p)
		if errors.Is(err, unix.EINVAL) && n == 0 {
			// The file system refused this direct write after all:
			// write through the page cache from now on.
			if err = setDirect(s.f, false); err == nil {
				s.direct = false
				n, err = s.wb.Write(p)
			}
		}
	} else {
		n, err = s.wb.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("blobstore: stage %s: %w", s.dst, err)
	}
	return n, nil
}

// WriteBuffers appends bufs in order, as a Write of each would. Where
// they can all go direct it writes them in one system call: one large
// request keeps more of the disk busy than many 1 MiB ones (8 MiB
// requests wrote 1.5x faster than 1 MiB ones here).
func (s *StagedFile) WriteBuffers(bufs [][]byte) (int64, error) {
	if !s.direct || !s.aligned(bufs) {
		var total int64
		for _, p := range bufs {
			n, err := s.Write(p)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	var total int64
	fd := int(s.f.Fd())
	for len(bufs) > 0 {
		n, err := unix.Writev(fd, bufs)
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			total += int64(n)
			s.n += int64(n)
		}
		if err != nil {
			return total, fmt.Errorf("blobstore: stage %s: %w", s.dst, err)
		}
		// A short write (rare) leaves the rest for the next call.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
		if len(bufs) > 0 && !s.aligned(bufs) {
			m, err := s.WriteBuffers(bufs)
			return total + m, err
		}
	}
	return total, nil
}

// aligned reports whether bufs, written at the current size, meet
// O_DIRECT's alignment.
func (s *StagedFile) aligned(bufs [][]byte) bool {
	if s.n%directAlign != 0 {
		return false
	}
	for _, p := range bufs {
		if len(p)%directAlign != 0 || (len(p) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign != 0) {
			return false
		}
	}
	return true
}

// Size is the number of bytes written so far.
func (s *StagedFile) Size() int64 { return s.n }

// Commit makes the file durable and renames it to dst; on success it
// returns the file's size. Commit and Abort after the first call return
// the first result (Abort's: an error).
func (s *StagedFile) Commit() (int64, error) {
	s.once.Do(func() {
		defer os.RemoveAll(s.stage)
		// One file: its own fsync (the direct writes are on the disk
		// already, the rest is mostly written back), not Export's
		// syncfs, which would also wait for whatever else is being
		// written to the file system.
		err := s.f.Sync()
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = renameNoReplace(filepath.Join(s.stage, "x"), s.dst)
		}
		if err == nil {
			err = syncDir(filepath.Dir(s.dst))
		}
		if err != nil {
			s.err = fmt.Errorf("blobstore: stage %s: %w", s.dst, err)
		}
	})
	return s.n, s.err
}

// Abort drops the staged file; dst is not touched.
func (s *StagedFile) Abort() {
	s.once.Do(func() {
		s.f.Close()
		os.RemoveAll(s.stage)
		s.err = fmt.Errorf("blobstore: stage %s: aborted", s.dst)
	})
}
