package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultLogRecords is the capacity of a LogRing made with size 0: enough
// for the last hours of an idle node at Info, small enough (at most
// maxLogRecordBytes each, about 1 MiB in all) to keep in memory always.
const DefaultLogRecords = 500

// maxLogRecordBytes bounds one record's message and attributes, so a log
// line carrying a huge value cannot make the ring large.
const maxLogRecordBytes = 2048

// LogSource is a Backend's recent log records, for the dashboard. It is
// optional: a Backend without it answers GET /api/v1/logs with 404.
type LogSource interface {
	// Logs returns up to n of the newest records, oldest first; n <= 0
	// means all that are kept.
	Logs(ctx context.Context, n int) ([]LogRecord, error)
}

// LogRecord is one line of GET /api/v1/logs.
type LogRecord struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"` // "DEBUG", "INFO", "WARN", "ERROR"
	Message string    `json:"msg"`
	// Attrs are the record's attributes as key=value text, groups
	// dotted, the way slog's text handler writes them.
	Attrs string `json:"attrs,omitempty"`
}

// LogRing keeps the newest log records in memory: a fixed number, the
// oldest dropped first. Its Handler tees records into it. Safe for
// concurrent use.
type LogRing struct {
	min slog.Level

	mu   sync.Mutex
	buf  []LogRecord
	next int  // index the next record goes to
	full bool // buf has wrapped
}

// NewLogRing returns a ring of size records (0: DefaultLogRecords) that
// keeps records at level min and above.
func NewLogRing(size int, min slog.Level) *LogRing {
	if size <= 0 {
		size = DefaultLogRecords
	}
	return &LogRing{min: min, buf: make([]LogRecord, size)}
}

func (r *LogRing) add(rec LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = rec
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Records returns up to n of the newest records, oldest first; n <= 0
// means all.
func (r *LogRing) Records(n int) []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogRecord
	if r.full {
		out = append(out, r.buf[r.next:]...)
	}
	out = append(out, r.buf[:r.next]...)
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Logs implements LogSource.
func (r *LogRing) Logs(_ context.Context, n int) ([]LogRecord, error) { return r.Records(n), nil }

// Handler returns a slog.Handler that keeps records at the ring's level
// and above, and passes every record next accepts on to next (nil: none).
func (r *LogRing) Handler(next slog.Handler) slog.Handler {
	return &ringHandler{ring: r, next: next}
}

type ringHandler struct {
	ring   *LogRing
	next   slog.Handler
	prefix string // attributes from WithAttrs, already formatted
	group  string // open groups, dotted, with a trailing dot
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.ring.min || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.ring.min {
		var b strings.Builder
		b.WriteString(h.prefix)
		rec.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.group, a)
			return b.Len() < maxLogRecordBytes
		})
		h.ring.add(LogRecord{
			Time:    rec.Time,
			Level:   rec.Level.String(),
			Message: truncate(rec.Message, maxLogRecordBytes),
			Attrs:   truncate(b.String(), maxLogRecordBytes),
		})
	}
	if h.next != nil && h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	h2.prefix = truncate(b.String(), maxLogRecordBytes)
	if h.next != nil {
		h2.next = h.next.WithAttrs(as)
	}
	return &h2
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	if h.next != nil {
		h2.next = h.next.WithGroup(name)
	}
	return &h2
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \"=\n") || v == "" {
		v = strconv.Quote(v)
	}
	b.WriteString(group + a.Key + "=" + v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	ls, ok := h.b.(LogSource)
	if !ok {
		h.fail(w, r, Errorf(ErrNotFound, "this node keeps no log records"))
		return
	}
	n := 0
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			h.fail(w, r, Errorf(ErrInvalid, `invalid "n" %q: want a count of records`, s))
			return
		}
		n = v
	}
	recs, err := ls.Logs(r.Context(), n)
	if recs == nil {
		recs = []LogRecord{}
	}
	h.reply(w, r, recs, err)
}

// Logs calls GET /api/v1/logs.
func (c *Client) Logs(ctx context.Context, n int) ([]LogRecord, error) {
	var out []LogRecord
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	p := "/api/v1/logs"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

var (
	_ LogSource = (*LogRing)(nil)
	_ LogSource = (*Client)(nil)
)
