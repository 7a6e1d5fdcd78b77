package netns

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeEnd is a frameConn in memory: the test feeds its reads and collects
// its writes with their times.
type fakeEnd struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	// failReads is returned by the next reads, before any frame.
	failReads chan error

	mu     sync.Mutex
	out    [][]byte
	outAt  []time.Time
	wrote  chan struct{} // receives after each write
	failW  error
	closeN int
}

func newFakeEnd() *fakeEnd {
	return &fakeEnd{in: make(chan []byte, 4096), closed: make(chan struct{}), failReads: make(chan error, 4), wrote: make(chan struct{}, 4096)}
}

func (f *fakeEnd) Read(p []byte) (int, error) {
	select {
	case err := <-f.failReads:
		return 0, err
	default:
	}
	select {
	case err := <-f.failReads:
		return 0, err
	case b := <-f.in:
		return copy(p, b), nil
	case <-f.closed:
		return 0, os.ErrClosed
	}
}

func (f *fakeEnd) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return 0, os.ErrClosed
	default:
	}
	if f.failW != nil {
		return 0, f.failW
	}
	f.out = append(f.out, append([]byte(nil), p...))
	f.outAt = append(f.outAt, time.Now())
	f.wrote <- struct{}{}
	return len(p), nil
}

func (f *fakeEnd) Close() error {
	f.mu.Lock()
	f.closeN++
	f.mu.Unlock()
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeEnd) written() ([][]byte, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.out...), append([]time.Time(nil), f.outAt...)
}

// waitWrites waits until n frames were written to f, for at most 10 s.
func waitWrites(t *testing.T, f *fakeEnd, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-f.wrote:
		case <-deadline:
			got, _ := f.written()
			t.Fatalf("%d frames written within 10 s, want %d", len(got), n)
		}
	}
}

func TestPumpDelaysInOrder(t *testing.T) {
	cases := []struct {
		name  string
		delay time.Duration
		n     int
	}{
		{"no delay", 0, 200},
		{"50ms", 50 * time.Millisecond, 200},
		{"200ms", 200 * time.Millisecond, 50},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host, lan := newFakeEnd(), newFakeEnd()
			p := newPump(host, lan, c.delay, 0, 1, nil)
			defer p.Close()
			sent := make([]time.Time, c.n)
			for i := range c.n {
				sent[i] = time.Now()
				host.in <- []byte(fmt.Sprintf("up-%04d", i))
				lan.in <- []byte(fmt.Sprintf("down-%04d", i))
			}
			waitWrites(t, lan, c.n)
			waitWrites(t, host, c.n)
			for _, end := range []struct {
				f      *fakeEnd
				prefix string
			}{{lan, "up"}, {host, "down"}} {
				frames, at := end.f.written()
				for i, fr := range frames {
					if want := fmt.Sprintf("%s-%04d", end.prefix, i); string(fr) != want {
						t.Fatalf("frame %d is %q, want %q: reordered", i, fr, want)
					}
					if d := at[i].Sub(sent[i]); d < c.delay {
						t.Errorf("%s frame %d left after %v, want at least %v", end.prefix, i, d, c.delay)
					}
				}
			}
			if s := p.stats(); s.ToLAN.Delivered != uint64(c.n) || s.ToHost.Delivered != uint64(c.n) {
				t.Errorf("stats %+v, want %d delivered each way", s, c.n)
			}
		})
	}
}

// TestPumpLoss: the loss fraction is applied to each direction on its
// own, within what chance allows for 4000 frames (3 standard deviations
// of a binomial at p = 0.1 is ±57 frames).
func TestPumpLoss(t *testing.T) {
	cases := []struct {
		loss   float64
		lo, hi uint64
	}{
		{0, 0, 0},
		{0.1, 400 - 60, 400 + 60},
		{1, 4000, 4000},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.loss), func(t *testing.T) {
			host, lan := newFakeEnd(), newFakeEnd()
			p := newPump(host, lan, 0, c.loss, 7, nil)
			defer p.Close()
			const n = 4000
			go func() {
				for i := range n {
					host.in <- []byte{byte(i)}
					lan.in <- []byte{byte(i)}
				}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for {
				s := p.stats()
				if s.ToLAN.Delivered+s.ToLAN.Lost == n && s.ToHost.Delivered+s.ToHost.Lost == n {
					for _, d := range []DirStats{s.ToLAN, s.ToHost} {
						if d.Lost < c.lo || d.Lost > c.hi {
							t.Errorf("lost %d of %d at loss %v, want %d to %d", d.Lost, n, c.loss, c.lo, c.hi)
						}
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("stats %+v after 10 s, want %d frames handled each way", s, n)
				}
				time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
			}
		})
	}
}

// TestPumpErrors: a transient read error (the link went down) leaves the
// line running; a write error is counted and the line goes on; any other
// read error stops that direction and is reported; Close closes both ends
// once and waits, also with frames still queued.
func TestPumpErrors(t *testing.T) {
	host, lan := newFakeEnd(), newFakeEnd()
	transient := func(err error) bool { return errors.Is(err, syscall.ENETDOWN) }
	p := newPump(host, lan, 0, 0, 1, transient)
	host.failReads <- syscall.ENETDOWN
	host.in <- []byte("after the link came back")
	waitWrites(t, lan, 1)

	lan.mu.Lock()
	lan.failW = syscall.ENETDOWN
	lan.mu.Unlock()
	host.in <- []byte("into a cut link")
	deadline := time.Now().Add(10 * time.Second)
	for p.stats().ToLAN.Failed != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the failed write was not counted", p.stats())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}

	boom := errors.New("boom")
	lan.failReads <- boom
	for p.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a fatal read error was not reported")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}
	if !errors.Is(p.Err(), boom) {
		t.Errorf("Err() = %v, want %v", p.Err(), boom)
	}

	// Frames queued behind a long delay do not hold Close up.
	q := newPump(newFakeEnd(), newFakeEnd(), time.Hour, 0, 1, nil)
	q.a.(*fakeEnd).in <- []byte("held for an hour")
	done := make(chan struct{})
	go func() {
		p.Close()
		p.Close()
		q.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s")
	}
	if host.closeN != 1 || lan.closeN != 1 {
		t.Errorf("ends closed %d and %d times, want once each", host.closeN, lan.closeN)
	}
	if p.Err() != boom {
		t.Errorf("Err() after Close = %v, want %v", p.Err(), boom)
	}
}
