package blobstore

import (
	"os"
	"syscall"
	"time"
)

// FileState is what tells that a file has not changed since: its device
// and inode, its size, and its modification and inode change times in
// nanoseconds. A write, a truncate, a rename over it, a chmod or a touch
// all change the change time, which no program can set.
type FileState struct {
	Dev, Ino     uint64
	Size         int64
	MTime, CTime int64
}

// racyFor is how long after its last change a file's state is not
// trusted: a change within the same tick of the file system's clock
// would leave the change time as it is. Linux stamps files from a clock
// that advances every few milliseconds; a file whose times are whole
// seconds (FAT, some network file systems) gets racyCoarse.
const (
	racyFor    = 100 * time.Millisecond
	racyCoarse = 2 * time.Second
)

// StateOf returns the state of the file fi describes, for Ref.State: fi
// must come from a stat taken before the caller read the bytes it hashed,
// and StateOf called right after that stat. It returns nil where the
// state cannot vouch for the file: a FileInfo without a stat behind it,
// and a file changed too recently (racyFor) before the stat.
func StateOf(fi os.FileInfo) *FileState {
	st, ok := fileState(fi)
	if !ok {
		return nil
	}
	racy := racyFor
	if st.MTime%int64(time.Second) == 0 && st.CTime%int64(time.Second) == 0 {
		racy = racyCoarse
	}
	if time.Now().UnixNano()-st.CTime < int64(racy) {
		return nil
	}
	return &st
}

// currentState is the state of the open file fd now.
func currentState(fd *os.File) (FileState, bool) {
	fi, err := fd.Stat()
	if err != nil {
		return FileState{}, false
	}
	return fileState(fi)
}

func fileState(fi os.FileInfo) (FileState, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileState{}, false
	}
	return FileState{Dev: st.Dev, Ino: st.Ino, Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano()}, true
}
