package share

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUnsealFile decrypts a 256 MiB file share to disk, durable, as
// pcnode get does while it fetches; it reports CPU per MiB (the whole
// process) besides wall time, which depends on the shared machine's load.
//
//	go test -run '^$' -bench UnsealFile -benchtime 3x ./node/share
func BenchmarkUnsealFile(b *testing.B) {
	const mib = 256
	dir := b.TempDir()
	src := filepath.Join(dir, "in")
	if err := os.WriteFile(src, randBytes(mib<<20, 1), 0o644); err != nil {
		b.Fatal(err)
	}
	k, _ := NewKey()
	var ct bytes.Buffer
	if _, _, err := Seal(&ct, src, k); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(mib << 20)
	var cpu time.Duration
	dst := filepath.Join(dir, "out")
	for b.Loop() {
		c0 := cpuNow()
		if _, err := Unseal(bytes.NewReader(ct.Bytes()), k, dst); err != nil {
			b.Fatal(err)
		}
		cpu += cpuNow() - c0
		b.StopTimer()
		if err := os.Remove(dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N)/mib, "cpu-ms/MiB")
}
