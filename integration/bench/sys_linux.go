package main

import (
	"os"
	"syscall"
)

// fdatasync makes f's data durable without forcing a metadata write the
// data does not need, as a store's write-ahead log does.
func fdatasync(f *os.File) error {
	return syscall.Fdatasync(int(f.Fd()))
}

// daemonAttr puts a daemon in its own process group, so that killing the
// group also ends any child it started, and has the kernel kill it if the
// bench dies without cleaning up.
func daemonAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// freeBytes is the space available to an unprivileged user under dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// syncAll writes every dirty page of the machine back to disk.
func syncAll() { syscall.Sync() }
