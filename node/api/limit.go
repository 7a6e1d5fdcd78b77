package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// DefaultMaxConcurrent bounds the authenticated requests served at once
// when HandlerConfig leaves it zero. The CLI makes one request at a time
// and the dashboard a handful; 64 leaves room for scripts while keeping a
// flood of clients from piling up goroutines, file descriptors and work
// in the node.
const DefaultMaxConcurrent = 64

// busyRetryAfter is the Retry-After, in seconds, of a 503 from the limit:
// a request refused there did nothing, so retrying it is always safe.
const busyRetryAfter = 1

// DefaultMaxPerClient bounds the authenticated requests one client has in
// progress at once when HandlerConfig leaves it zero: a quarter of
// DefaultMaxConcurrent, so that one busy script or a runaway page cannot
// take every slot and the CLI, the dashboard and other clients still get
// in. The CLI makes one request at a time.
const DefaultMaxPerClient = 16

var (
	errBusy          = errors.New("too many API requests at once: retry shortly")
	errClientTooBusy = errors.New("too many API requests at once from this client: retry shortly")
)

// limiter is a counting semaphore that never waits: a request either gets
// a slot at once or is refused, so a flood costs the node nothing but the
// refusals.
type limiter chan struct{}

func newLimiter(n int) limiter { return make(limiter, n) }

func (l limiter) tryAcquire() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l limiter) release() { <-l }

// refuseBusy answers a request that found no free slot.
func refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
	writeError(w, http.StatusServiceUnavailable, errBusy)
}

// clientLimiter bounds the requests in progress per client, never
// waiting: a request over its client's bound is refused at once. It keeps
// an entry only for a client with a request in progress, so its size is
// bounded by the requests in progress.
type clientLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newClientLimiter(max int) *clientLimiter {
	return &clientLimiter{max: max, n: map[string]int{}}
}

func (l *clientLimiter) tryAcquire(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[client] >= l.max {
		return false
	}
	l.n[client]++
	return true
}

func (l *clientLimiter) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[client] <= 1 {
		delete(l.n, client)
		return
	}
	l.n[client]--
}

// clientOf names the client of an authenticated request: its dashboard
// session when it came with the session cookie (one browser tab or
// several, one person), else its remote IP address. Behind a reverse
// proxy every client is the proxy's address; the API is meant to be
// reached directly (on loopback by default).
func clientOf(r *http.Request) string {
	if r.Header.Get("Authorization") == "" {
		if id := sessionID(r); id != "" {
			return "session:" + id
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// refuseClientBusy answers a request whose client has too many in
// progress: 429, with the same Retry-After and the same safety (the
// request did nothing) as the global limit's 503.
func refuseClientBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
	writeError(w, http.StatusTooManyRequests, errClientTooBusy)
}
