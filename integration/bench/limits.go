package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pcnode/pcnode/blobstore"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// mibps is size bytes over d, in MiB/s.
func mibps(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / mib / d.Seconds()
}

// randomBytes returns n bytes of a seeded ChaCha8 stream: incompressible
// and not deduplicable, and the same on every run.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	newRand(seed).Read(b)
	return b
}

// newRand is a ChaCha8 stream seeded with seed.
func newRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// measureSHA256 hashes size bytes on one goroutine and returns MiB/s: the
// rate at which one core can compute CIDs, an upper bound for an add that
// hashes each block once on one core.
func measureSHA256(size int64) (float64, error) {
	if size <= 0 {
		return 0, errors.New("sha256: size must be positive")
	}
	buf := randomBytes(int(min(size, 16*mib)), 1)
	h := sha256.New()
	start := time.Now()
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		h.Write(buf[:n])
		done += n
	}
	h.Sum(nil)
	return mibps(size, time.Since(start)), nil
}

// measureSHA256Lanes hashes size bytes as pcnode hashes file leaves:
// 1 MiB buffers, blobstore.SHA256Lanes() of them per call (16 in the
// AVX-512 lanes of one core where the CPU has them), on one goroutine.
func measureSHA256Lanes(size int64) (float64, error) {
	if size <= 0 {
		return 0, errors.New("sha256: size must be positive")
	}
	buf := randomBytes(16*mib, 2)
	bufs := make([][]byte, blobstore.SHA256Lanes())
	for i := range bufs {
		bufs[i] = buf[i*mib : (i+1)*mib]
	}
	per := int64(len(bufs)) * mib
	start := time.Now()
	var done int64
	for done < size {
		blobstore.SumSHA256(bufs)
		done += per
	}
	return mibps(done, time.Since(start)), nil
}

// measureDiskWrite writes size bytes in 1 MiB chunks to a new file in dir
// and returns MiB/s including the fdatasync that makes them durable. With
// syncEvery > 0 it also syncs after every syncEvery bytes, which is closer
// to a store that makes each batch durable before acknowledging it. The
// file is removed afterwards.
func measureDiskWrite(ctx context.Context, dir string, size, syncEvery int64) (float64, error) {
	if size <= 0 {
		return 0, errors.New("disk: size must be positive")
	}
	f, err := os.CreateTemp(dir, "disk-*.bin")
	if err != nil {
		return 0, fmt.Errorf("disk: create: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	defer f.Close()
	chunk := randomBytes(mib, 2)
	start := time.Now()
	sinceSync := int64(0)
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := min(int64(len(chunk)), size-done)
		if _, err := f.Write(chunk[:n]); err != nil {
			return 0, fmt.Errorf("disk: write %s: %w", name, err)
		}
		done += n
		sinceSync += n
		if syncEvery > 0 && sinceSync >= syncEvery && done < size {
			if err := fdatasync(f); err != nil {
				return 0, fmt.Errorf("disk: sync %s: %w", name, err)
			}
			sinceSync = 0
		}
	}
	if err := fdatasync(f); err != nil {
		return 0, fmt.Errorf("disk: sync %s: %w", name, err)
	}
	d := time.Since(start)
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("disk: close %s: %w", name, err)
	}
	return mibps(size, d), nil
}

// measureLoopback sends size bytes from a Go client to a Go server over TCP
// on 127.0.0.1 and returns MiB/s, from the first byte written to the
// server's acknowledgement that it read them all.
func measureLoopback(ctx context.Context, size int64) (float64, error) {
	if size <= 0 {
		return 0, errors.New("loopback: size must be positive")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loopback: listen: %w", err)
	}
	defer ln.Close()

	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != size {
			err = fmt.Errorf("server read %d bytes, want %d", n, size)
		}
		if err == nil {
			_, err = c.Write([]byte{1})
		}
		srvErr <- err
	}()

	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("loopback: dial: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	buf := randomBytes(256*kib, 3)
	start := time.Now()
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		if _, err := c.Write(buf[:n]); err != nil {
			return 0, fmt.Errorf("loopback: write: %w", err)
		}
		done += n
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, fmt.Errorf("loopback: close write: %w", err)
	}
	ack := make([]byte, 1)
	if _, err := io.ReadFull(c, ack); err != nil {
		if serr := <-srvErr; serr != nil {
			return 0, fmt.Errorf("loopback: server: %w", serr)
		}
		return 0, fmt.Errorf("loopback: read ack: %w", err)
	}
	d2 := time.Since(start)
	if err := <-srvErr; err != nil {
		return 0, fmt.Errorf("loopback: server: %w", err)
	}
	return mibps(size, d2), nil
}

// writeRandomFile creates path holding size bytes of seeded random data.
func writeRandomFile(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := newRand(seed)
	buf := make([]byte, mib)
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		done += n
	}
	return f.Close()
}

// writeRandomTree creates files files of fileSize random bytes under dir,
// 100 to a sub-directory, and returns their total size.
func writeRandomTree(dir string, files, fileSize int, seed uint64) (int64, error) {
	rng := newRand(seed)
	buf := make([]byte, fileSize)
	var total int64
	for i := range files {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return 0, err
			}
		}
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d.bin", i)), buf, 0o644); err != nil {
			return 0, err
		}
		total += int64(fileSize)
	}
	return total, nil
}

// measureCreate writes n files of size bytes each into dir, 100 to a
// subdirectory, and returns the seconds it took (no sync): the floor for
// writing out a tree of that shape, at the file system's state of the
// moment (see discard). The files stay.
func measureCreate(dir string, n, size int) (float64, error) {
	if n <= 0 || size < 0 {
		return 0, errors.New("create: n must be positive")
	}
	data := randomBytes(size, 4)
	start := time.Now()
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return 0, fmt.Errorf("create: %w", err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
			return 0, fmt.Errorf("create: %w", err)
		}
	}
	return time.Since(start).Seconds(), nil
}
