package folder

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// 10,000 files of 4 KiB: from the start of the scan on A to an identical
// tree on B. The target is under 4 s (on the real store, with
// syncs); the test fails only above 60 s so that a loaded machine under
// -race does not make it flaky, and logs the figure.
func TestTenThousandFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	n := 10000
	if raceEnabled {
		n = 1000 // the race detector makes it ~7x slower; the figure comes from a normal run
	}
	devs, _ := newDevs(t, 2, "tenk", func(i int, c *Config) {
		c.NoWatch = true
		if os.Getenv("FOLDER_DEBUG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	a, b := devs[0], devs[1]
	for i := range n {
		p := filepath.Join(a.dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i))
		if i < 100 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 4096)
		_, _ = rand.Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.start(t)
	connect(t, a, b)
	start := time.Now()
	a.start(t)
	// Polled every 50 ms: Status walks the whole index under the
	// folder's lock, and polling it faster slows what is measured.
	waitEvery(t, 50*time.Millisecond, 60*time.Second, "a scanned", func() bool { return a.f.Status().Files == n })
	scanned := time.Since(start)
	waitEvery(t, 50*time.Millisecond, 60*time.Second, "b has every file", func() bool { return b.f.Status().Files == n })
	synced := time.Since(start)
	waitConverged(t, 30*time.Second, nil, a, b)
	t.Logf("%d x 4 KiB: scanned on A in %v, identical on B after %v", n, scanned.Round(time.Millisecond), synced.Round(time.Millisecond))
}
