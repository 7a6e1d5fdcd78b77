//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

func fdatasync(f *os.File) error { return f.Sync() }

func daemonAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

func freeBytes(dir string) (int64, error) {
	return 0, errors.New("free space: not measured on this system")
}

func syncAll() {}
