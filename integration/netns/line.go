package netns

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The user-space delay line stands in for netem where the kernel has none
// (docs/TESTBED.md, "Links"). Its frame pump is here, apart from the
// AF_PACKET sockets that feed it (line_linux.go), so that its timing, order
// and loss can be tested without root.

// lineQueue bounds the frames held in one direction: 8192 frames of at most
// 1514 bytes (12 MiB) carry 41,000 frames/s (about 60 MB/s) through a 200 ms
// delay, far more than the scenarios push through an impaired link; a
// frame that finds the queue full is dropped, as a router's full buffer
// would.
const lineQueue = 8192

// maxFrame is the read buffer of a delay line: an Ethernet frame is at most
// 1514 bytes here, since the line turns off the offloads that would make
// bigger ones, but a frame that slipped through as one 64 KiB GSO packet
// must still be read whole (its write then fails and is counted).
const maxFrame = 64 << 10

// DirStats counts what one direction of a user-space delay line did.
type DirStats struct {
	// Delivered frames were written out after the delay.
	Delivered uint64
	// Lost frames were dropped by the loss probability.
	Lost uint64
	// Overflow frames were dropped because lineQueue frames were waiting.
	Overflow uint64
	// Failed frames could not be written (the link was cut, say).
	Failed uint64
}

// LineStats is what a user-space delay line did, per direction.
type LineStats struct {
	ToLAN  DirStats // from the host's interface towards the LAN's bridge
	ToHost DirStats // from the bridge towards the host
	// Err is why a direction stopped early (its socket failed), if one did.
	Err error
}

// frameConn is one end of a delay line. Read returns one whole frame per
// call; Write sends one. Close makes a blocked Read return os.ErrClosed.
type frameConn interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// dirCounters are a direction's DirStats, updated while the line runs.
type dirCounters struct {
	delivered, lost, overflow, failed atomic.Uint64
}

func (c *dirCounters) snapshot() DirStats {
	return DirStats{Delivered: c.delivered.Load(), Lost: c.lost.Load(), Overflow: c.overflow.Load(), Failed: c.failed.Load()}
}

// queued is one frame waiting for its time.
type queued struct {
	due   time.Time
	frame []byte
}

// pump carries frames between two frameConns, each direction through a
// FIFO queue that holds every frame for delay and drops a loss fraction
// of them on arrival. A constant delay keeps the departure times in
// arrival order, so one FIFO per direction never reorders frames.
type pump struct {
	a, b  frameConn // a: the host's side, b: the LAN's side
	delay time.Duration
	loss  float64
	// transient reports a read error after which the end still works
	// (the link went down and will come back); others stop the direction.
	transient func(error) bool

	toLAN, toHost dirCounters
	done          chan struct{}
	wg            sync.WaitGroup
	stop          sync.Once

	errMu sync.Mutex
	err   error // the first error that stopped a direction
}

// newPump starts the four goroutines of a line between a and b; seed
// makes its losses repeatable. Close stops them.
func newPump(a, b frameConn, delay time.Duration, loss float64, seed uint64, transient func(error) bool) *pump {
	p := &pump{a: a, b: b, delay: delay, loss: loss, transient: transient, done: make(chan struct{})}
	if p.transient == nil {
		p.transient = func(error) bool { return false }
	}
	dirs := []struct {
		from, to frameConn
		c        *dirCounters
		seed     uint64
	}{{a, b, &p.toLAN, seed}, {b, a, &p.toHost, seed ^ 0x9e3779b97f4a7c15}}
	for _, d := range dirs {
		q := make(chan queued, lineQueue)
		rng := rand.New(rand.NewPCG(d.seed, d.seed+1))
		p.wg.Add(2)
		go p.read(d.from, q, d.c, rng)
		go p.write(d.to, q, d.c)
	}
	return p
}

// read queues each frame read from from, or drops it.
func (p *pump) read(from frameConn, q chan<- queued, c *dirCounters, rng *rand.Rand) {
	defer p.wg.Done()
	defer close(q)
	buf := make([]byte, maxFrame)
	for {
		n, err := from.Read(buf)
		if err != nil {
			if p.transient(err) {
				continue
			}
			p.fail(err)
			return
		}
		now := time.Now()
		if p.loss > 0 && rng.Float64() < p.loss {
			c.lost.Add(1)
			continue
		}
		select {
		case q <- queued{due: now.Add(p.delay), frame: append([]byte(nil), buf[:n]...)}:
		default:
			c.overflow.Add(1)
		}
	}
}

// write sends each queued frame at its time, in order.
func (p *pump) write(to frameConn, q <-chan queued, c *dirCounters) {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for f := range q {
		if wait := time.Until(f.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.done:
				return
			}
		}
		if _, err := to.Write(f.frame); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			c.failed.Add(1)
			continue
		}
		c.delivered.Add(1)
	}
}

func (p *pump) fail(err error) {
	select {
	case <-p.done:
		return // closing: the error is ours
	default:
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil && !errors.Is(err, os.ErrClosed) {
		p.err = err
	}
}

// Err returns the error that stopped a direction early, if any.
func (p *pump) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *pump) stats() LineStats {
	return LineStats{ToLAN: p.toLAN.snapshot(), ToHost: p.toHost.snapshot()}
}

// Close stops the line, closes both ends and waits for its goroutines;
// frames still queued are dropped. It is idempotent.
func (p *pump) Close() {
	p.stop.Do(func() {
		close(p.done)
		p.a.Close()
		p.b.Close()
	})
	p.wg.Wait()
}
