package blobstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// usage samples what the process used so far: CPU time (all threads) and
// bytes it caused to be written to disk. Both are independent of how busy
// the shared machine is, unlike wall time.
type usage struct {
	cpu   time.Duration
	wrote int64
}

func sampleUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if f, err := os.Open("/proc/self/io"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
				u.wrote, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		f.Close()
	}
	return u
}

// meter accumulates usage over the timed parts of a benchmark.
type meter struct {
	start usage
	total usage
}

func (m *meter) on() { m.start = sampleUsage() }
func (m *meter) off() {
	u := sampleUsage()
	m.total.cpu += u.cpu - m.start.cpu
	m.total.wrote += u.wrote - m.start.wrote
}

// report adds cpu-ms/MiB and disk-MiB/MiB (write amplification) for a
// benchmark that imported mib MiB per op.
func (m *meter) report(b *testing.B, mib float64) {
	n := float64(b.N)
	b.ReportMetric(float64(m.total.cpu.Milliseconds())/n/mib, "cpu-ms/MiB")
	b.ReportMetric(float64(m.total.wrote)/n/mib/(1<<20), "disk-MiB/MiB")
}

// Benchmarks behind docs/STORAGE.md. Sizes are small by default so that
// `go test -bench .` stays quick; set PCNODE_BENCH_MB=1024 for the 1 GiB
// figure. Every import is durable (synced) unless the name says nosync.
//
//	go test -run '^$' -bench 'Import' -benchtime 1x ./blobstore
//	PCNODE_BENCH_MB=1024 go test -run '^$' -bench 'ImportFile/pebble/1MiB' -benchtime 3x ./blobstore

func benchMB() int {
	if v, err := strconv.Atoi(os.Getenv("PCNODE_BENCH_MB")); err == nil && v > 0 {
		return v
	}
	return 64
}

// writeRandomFile writes mb MiB of random bytes to a file in dir.
func writeRandomFile(b *testing.B, dir string, mb int) string {
	b.Helper()
	p := filepath.Join(dir, "random")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for i := range mb {
		if _, err := f.Write(randBytes(uint64(i), 1<<20)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkImportFile(b *testing.B) {
	mb := benchMB()
	src := writeRandomFile(b, b.TempDir(), mb)
	type run struct {
		backend Backend
		chunk   int
		hash    uint64
	}
	var runs []run
	for _, backend := range []Backend{BackendTiered, BackendPebble, BackendFlatfs} {
		for _, chunk := range []int{256 << 10, 512 << 10, 1 << 20} {
			runs = append(runs, run{backend, chunk, mh.SHA2_256})
		}
	}
	runs = append(runs, run{BackendTiered, 1 << 20, mh.BLAKE3})
	for _, r := range runs {
		backend, chunk := r.backend, r.chunk
		{
			b.Run(fmt.Sprintf("%s/%dKiB/%s", backend, chunk>>10, mh.Codes[r.hash]), func(b *testing.B) {
				b.SetBytes(int64(mb) << 20)
				var m meter
				for b.Loop() {
					b.StopTimer()
					s := mustOpen(b, Config{Dir: b.TempDir(), Backend: backend})
					m.on()
					b.StartTimer()
					if _, err := s.Import(context.Background(), src, ImportOptions{ChunkSize: chunk, Hash: r.hash}); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					m.off()
					s.Close()
					b.StartTimer()
				}
				m.report(b, float64(mb))
			})
		}
	}
}

// BenchmarkHashOnly is the ceiling: the same import into memory, no disk.
func BenchmarkImportMemory(b *testing.B) {
	mb := benchMB()
	src := writeRandomFile(b, b.TempDir(), mb)
	b.SetBytes(int64(mb) << 20)
	var m meter
	for b.Loop() {
		s := mustOpen(b, Config{})
		m.on()
		if _, err := s.Import(context.Background(), src, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		m.off()
		s.Close()
	}
	m.report(b, float64(mb))
}

func BenchmarkImportTree(b *testing.B) {
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	src := filepath.Join(b.TempDir(), "tree")
	for i := range n {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i%100))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), randBytes(uint64(i), 4096), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, backend := range []Backend{BackendTiered, BackendPebble, BackendFlatfs} {
		b.Run(string(backend), func(b *testing.B) {
			var m meter
			for b.Loop() {
				b.StopTimer()
				s := mustOpen(b, Config{Dir: b.TempDir(), Backend: backend})
				m.on()
				b.StartTimer()
				if _, err := s.Import(context.Background(), src, ImportOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				m.off()
				s.Close()
				b.StartTimer()
			}
			m.report(b, float64(n*4096)/(1<<20))
		})
	}
}

// BenchmarkRefRead reads a file's leaves referenced in place (a synced
// folder's file, as the DAG stream's sender reads them) 16 at a time, with
// HashOnRead as the node runs. The file is in the page cache: this is the
// CPU of reading and verifying, not of the disk. PCNODE_BENCH_MB sizes it.
//
//	PCNODE_BENCH_MB=256 go test -run '^$' -bench 'RefRead' -benchtime 3x ./blobstore
func BenchmarkRefRead(b *testing.B) {
	mb := benchMB()
	dir := b.TempDir()
	src := writeRandomFile(b, dir, mb)
	s := mustOpen(b, Config{Dir: filepath.Join(dir, "store"), HashOnRead: true, NoSync: true})
	ctx := context.Background()
	var refs []Ref
	var cs []cid.Cid
	for i := range mb {
		c := mustSum(cid.Raw, randBytes(uint64(i), 1<<20))
		refs = append(refs, Ref{Cid: c, Path: src, Offset: int64(i) << 20, Size: 1 << 20})
		cs = append(cs, c)
	}
	if err := s.PutRefs(ctx, refs); err != nil {
		b.Fatal(err)
	}
	read := map[string]func(batch []cid.Cid) error{
		"ViewMany": func(batch []cid.Cid) error {
			return s.ViewMany(ctx, batch, func(i int, data []byte) error {
				if len(data) != 1<<20 {
					return fmt.Errorf("block %d: %d bytes", i, len(data))
				}
				return nil
			})
		},
		"GetMany": func(batch []cid.Cid) error {
			bs, err := s.GetMany(ctx, batch)
			for i, blk := range bs {
				if err == nil && blk == nil {
					err = fmt.Errorf("block %d missing", i)
				}
			}
			return err
		},
	}
	for _, name := range []string{"ViewMany", "GetMany"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(mb) << 20)
			var m meter
			for b.Loop() {
				m.on()
				for i := 0; i < len(cs); i += 16 {
					if err := read[name](cs[i:min(i+16, len(cs))]); err != nil {
						b.Fatal(err)
					}
				}
				m.off()
			}
			m.report(b, float64(mb))
		})
	}
}
