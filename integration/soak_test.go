package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// Soak (issue 9, item 8): three devices sync a folder while random edits
// land on the running ones and one of b and c at a time is cut off (its
// daemon stopped, then started again). After the last heal the three
// folders converge. Device a runs throughout; its goroutines, open file
// descriptors and RSS are sampled and must be flat after warm-up.
//
// PCNODE_SOAK sets the duration (a Go duration, e.g. 30m, the issue's
// figure); CI runs soakDefault.
const soakDefault = 30 * time.Second

func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("PCNODE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PCNODE_SOAK=%q: %v", s, err)
		}
		return d
	}
	return soakDefault
}

// sample is one reading of a daemon's resources.
type sample struct {
	at         time.Duration
	goroutines int64
	fds        int64
	rss        int64
}

// sampleProc reads p's goroutines (from /metrics), fds and RSS.
func sampleProc(t *testing.T, p *proc, at time.Duration) sample {
	t.Helper()
	pid := p.cmd.Process.Pid
	s := sample{at: at, rss: rssOf(pid)}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = int64(len(ents))
	}
	tok, err := os.ReadFile(filepath.Join(p.home, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, apiURL(t, p.home)+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			s.goroutines = int64(f)
		}
	}
	return s
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons for a while; skipped with -short")
	}
	dur := soakDuration(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak for %v, PCNODE_SOAK_SEED=%d", dur, seed)
	if s := os.Getenv("PCNODE_SOAK_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	r := rand.New(rand.NewPCG(seed, 9))

	a := newProc(t, "a")
	b := newDevice(t, "b")
	c := newDevice(t, "c")
	a.start()
	b.start()
	c.start()
	for _, p := range []*proc{b, c} {
		var inv api.InviteResult
		a.mustJSON(&inv, "invite", "--ttl", "5m")
		p.must("join", inv.Code)
	}
	a.waitDevices("b and c online", func(m map[string]api.Device) bool { return connected("b")(m) && connected("c")(m) })
	roots := map[*proc]string{a: filepath.Join(t.TempDir(), "a"), b: filepath.Join(t.TempDir(), "b"), c: filepath.Join(t.TempDir(), "c")}
	t0 := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	for i := range 40 {
		writeAt(t, roots[a], fmt.Sprintf("d%d/f%03d.txt", i%4, i), fmt.Sprint("initial ", i), t0)
	}
	var fi api.FolderInfo
	a.mustJSON(&fi, "folder", "add", roots[a])
	b.must("folder", "join", fi.ID, roots[b])
	c.must("folder", "join", fi.ID, roots[c])
	waitSame(t, nil, roots[a], roots[b], roots[c])

	start := time.Now()
	var samples []sample
	nextSample := time.Duration(0)
	var down *proc // the device cut off, if any
	downUntil := time.Time{}
	edits, cuts := 0, 0
	for time.Since(start) < dur {
		el := time.Since(start)
		if el >= nextSample {
			samples = append(samples, sampleProc(t, a, el))
			nextSample += max(dur/40, time.Second)
		}
		// Partitions: every few seconds one of b and c goes down for a
		// few seconds and comes back.
		switch {
		case down != nil && time.Now().After(downUntil):
			down.start()
			down = nil
		case down == nil && r.IntN(40) == 0:
			down = []*proc{b, c}[r.IntN(2)]
			down.stop()
			downUntil = time.Now().Add(time.Duration(1+r.IntN(4)) * time.Second)
			cuts++
		}
		// A random edit on a running device.
		running := []*proc{a}
		for _, p := range []*proc{b, c} {
			if p != down {
				running = append(running, p)
			}
		}
		p := running[r.IntN(len(running))]
		name := fmt.Sprintf("d%d/f%03d.txt", r.IntN(4), r.IntN(60))
		path := filepath.Join(roots[p], filepath.FromSlash(name))
		switch op := r.IntN(10); {
		case op < 7:
			writeAt(t, roots[p], name, fmt.Sprintf("edit %d on %s: %x", edits, p.name, r.Uint64()), t0.Add(time.Duration(edits)*time.Second))
		case op < 9:
			_ = os.Remove(path) // a miss (no such file) is an edit that did nothing
		default:
			_ = os.Rename(path, path+".moved")
		}
		edits++
		time.Sleep(time.Duration(50+r.IntN(150)) * time.Millisecond) // the pace of the edits, not a wait for a condition
	}
	if down != nil {
		down.start()
	}
	// The last heal: every device up; the folders converge.
	healStart := time.Now()
	final := waitSame(t, nil, roots[a], roots[b], roots[c])
	t.Logf("%d edits and %d cuts in %v; converged %v after the last heal on %d entries",
		edits, cuts, dur, time.Since(healStart).Round(time.Millisecond), len(final))
	samples = append(samples, sampleProc(t, a, time.Since(start)))

	// Flat after warm-up: the last third against the middle third.
	third := len(samples) / 3
	mid, last := samples[third:2*third], samples[2*third:]
	avg := func(ss []sample, f func(sample) int64) float64 {
		var sum int64
		for _, s := range ss {
			sum += f(s)
		}
		return float64(sum) / float64(max(len(ss), 1))
	}
	for _, m := range []struct {
		name  string
		f     func(sample) int64
		slack float64 // allowed growth, absolute, on top of 25%
	}{
		{"goroutines", func(s sample) int64 { return s.goroutines }, 50},
		{"fds", func(s sample) int64 { return s.fds }, 20},
		{"RSS", func(s sample) int64 { return s.rss }, 32 << 20},
	} {
		mv, lv := avg(mid, m.f), avg(last, m.f)
		t.Logf("%s: first %d, middle third %.0f, last third %.0f, end %d", m.name, m.f(samples[0]), mv, lv, m.f(samples[len(samples)-1]))
		if lv > mv*1.25+m.slack {
			t.Errorf("%s grew after warm-up: %.0f in the middle third, %.0f in the last", m.name, mv, lv)
		}
	}
}
