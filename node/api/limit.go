package api

import (
	"errors"
	"net/http"
	"strconv"
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

var errBusy = errors.New("too many API requests at once: retry shortly")

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
