package dnslink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ServerConfig configures the authoritative Server. The zero value listens
// nowhere useful: set Listen.
type ServerConfig struct {
	// Listen is the host:port to answer on, over UDP and TCP on the same
	// port (dns.listen), e.g. "0.0.0.0:53" or "127.0.0.1:0" for a free
	// port. "" means "127.0.0.1:53".
	Listen string
	// RateLimit is the number of queries per second one client address may
	// send; 0 means 200, a negative value turns limiting off. Over the limit,
	// every second UDP query is answered with an empty truncated response
	// (so a real resolver retries over TCP) and the rest are dropped, which
	// keeps the server useless as a reflector; TCP queries get REFUSED.
	RateLimit float64
	// RateBurst is how many queries a client may send at once above the
	// rate; 0 means twice RateLimit.
	RateBurst int
	// MaxMessage is the largest UDP response in bytes; 0 means 1232 (the
	// size that avoids IP fragmentation, DNS Flag Day 2020). Larger answers
	// are truncated (TC bit) and the client retries over TCP.
	MaxMessage int
	// Logger receives lifecycle and error messages; nil discards them.
	Logger *slog.Logger
}

// Server answers authoritatively for one Zone over UDP and TCP. It never
// recurses: questions for names outside the zone get REFUSED.
type Server struct {
	cfg  ServerConfig
	zone *Zone
	log  *slog.Logger

	limiter *limiter
	corrupt atomic.Bool // test hook: send broken signatures

	mu      sync.Mutex
	started bool
	closed  bool
	udp     *dns.Server
	tcp     *dns.Server
	addr    string
	wg      sync.WaitGroup
}

// NewServer returns a server for zone; it starts nothing.
func NewServer(cfg ServerConfig, zone *Zone) *Server {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:53"
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 200
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = int(2 * cfg.RateLimit)
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = 1232
	}
	if cfg.MaxMessage < dns.MinMsgSize {
		cfg.MaxMessage = dns.MinMsgSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, zone: zone, log: log}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, float64(cfg.RateBurst))
	}
	return s
}

// Start binds the UDP and TCP sockets and returns once queries are being
// answered. The server runs until Close; ctx bounds only the start.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dnslink: start server: closed")
	}
	if s.started {
		return errors.New("dnslink: start server: already started")
	}
	var lc net.ListenConfig
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// With port 0 the TCP socket must take the port the UDP socket got;
	// another process may hold it on TCP, so try a few times.
	for try := 0; try < 8; try++ {
		if err = ctx.Err(); err != nil {
			break
		}
		pc, err = lc.ListenPacket(ctx, "udp", s.cfg.Listen)
		if err != nil {
			break
		}
		ln, err = lc.Listen(ctx, "tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
		if _, port, _ := net.SplitHostPort(s.cfg.Listen); port != "0" {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("dnslink: listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serveDNS)
	ready := make(chan struct{}, 2)
	notify := func() { ready <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: h, UDPSize: 4096, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify,
		ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("dns server stopped", "addr", s.addr, "err", err)
			}
		}()
	}
	for i := 0; i < 2; i++ {
		select {
		case <-ready:
		case <-ctx.Done():
			s.shutdownLocked()
			return fmt.Errorf("dnslink: start server %s: %w", s.addr, ctx.Err())
		}
	}
	s.started = true
	s.log.Info("dns server listening", "zone", s.zone.Origin(), "addr", s.addr)
	return nil
}

// Addr returns the address the server listens on (UDP and TCP), or "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops answering and waits for the server's goroutines. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.shutdownLocked()
	return nil
}

func (s *Server) shutdownLocked() {
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			srv.Shutdown() // closes the socket; error only if never started
		}
	}
	s.wg.Wait()
}

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if s.limiter != nil {
		if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil && !s.limiter.allow(ap.Addr()) {
			if !isUDP {
				m := new(dns.Msg)
				m.SetRcode(req, dns.RcodeRefused)
				w.WriteMsg(m)
			} else if s.limiter.slip() {
				m := new(dns.Msg)
				m.SetReply(req)
				m.Truncated = true
				w.WriteMsg(m)
			}
			return
		}
	}
	size := dns.MaxMsgSize
	if isUDP {
		size = dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(dns.MinMsgSize, min(int(opt.UDPSize()), s.cfg.MaxMessage))
		}
	}
	snap := s.zone.current()
	if b := s.cached(snap, req, size); b != nil {
		if _, err := w.Write(b); err != nil {
			s.log.Debug("dns write failed", "client", w.RemoteAddr(), "err", err)
		}
		return
	}
	m := s.respond(snap, req)
	m.Truncate(size)
	b, err := m.Pack()
	if err != nil {
		s.log.Warn("dns pack failed", "question", req.Question, "err", err)
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	s.store(snap, req, size, b)
	if _, err := w.Write(b); err != nil {
		s.log.Debug("dns write failed", "client", w.RemoteAddr(), "err", err)
	}
}

// Packed answers are cached per snapshot, so a repeated question costs a
// map lookup and a copy: no signing (done when the zone changes), no
// message building, no packing. The cache dies with the snapshot when the
// zone changes or is re-signed.
type cacheKey struct {
	name  string
	qtype uint16
	do    bool
	size  int
}

// maxCached bounds the cache: random names asked by a flood must not grow
// it without limit; answers past it are built each time.
const maxCached = 4096

func (s *Server) cacheKey(req *dns.Msg, size int) (cacheKey, bool) {
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Response || len(req.Ns) > 0 || len(req.Answer) > 0 ||
		req.Question[0].Qclass != dns.ClassINET || s.corrupt.Load() {
		return cacheKey{}, false
	}
	k := cacheKey{name: strings.ToLower(req.Question[0].Name), qtype: req.Question[0].Qtype, size: size}
	switch len(req.Extra) {
	case 0:
	case 1:
		opt, ok := req.Extra[0].(*dns.OPT)
		if !ok || opt.Version() != 0 {
			return cacheKey{}, false
		}
		k.do = opt.Do()
	default:
		return cacheKey{}, false
	}
	return k, true
}

func (s *Server) cached(snap *snapshot, req *dns.Msg, size int) []byte {
	k, ok := s.cacheKey(req, size)
	if !ok {
		return nil
	}
	v, ok := snap.cache.Load(k)
	if !ok {
		return nil
	}
	b := slices.Clone(v.([]byte))
	// The reply carries the query's ID, RD and CD bits, and its question
	// with the client's letter case (resolvers using 0x20 check it).
	binary.BigEndian.PutUint16(b, req.Id)
	b[2] = b[2]&^0x01 | boolBit(req.RecursionDesired, 0x01)
	b[3] = b[3]&^0x10 | boolBit(req.CheckingDisabled, 0x10)
	qn := make([]byte, 256)
	if n, err := dns.PackDomainName(req.Question[0].Name, qn, 0, nil, false); err == nil && 12+n <= len(b) {
		copy(b[12:12+n], qn[:n])
	}
	return b
}

func (s *Server) store(snap *snapshot, req *dns.Msg, size int, b []byte) {
	k, ok := s.cacheKey(req, size)
	if !ok {
		return
	}
	if snap.cached.Load() >= maxCached {
		return
	}
	if _, loaded := snap.cache.LoadOrStore(k, slices.Clone(b)); !loaded {
		snap.cached.Add(1)
	}
}

func boolBit(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

// respond builds the answer to req from snap.
func (s *Server) respond(snap *snapshot, req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	if len(req.Question) != 1 || req.Response {
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	var do bool
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.SetRcode(req, dns.RcodeBadVers)
			m.SetEdns0(uint16(s.cfg.MaxMessage), false)
			return m
		}
		do = opt.Do()
		m.SetEdns0(uint16(s.cfg.MaxMessage), do)
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	switch {
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
	case !dns.IsSubDomain(s.zone.Origin(), name):
		m.Rcode = dns.RcodeRefused // authoritative only; no recursion
	case q.Qtype == dns.TypeANY || q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeNotImplemented
	default:
		snap.answer(m, name, q.Qtype, do)
		if s.corrupt.Load() {
			corruptSigs(m)
		}
	}
	return m
}

// corruptSigs replaces every RRSIG in m with a copy whose signature is
// altered (for tests of validators).
func corruptSigs(m *dns.Msg) {
	for _, sec := range []*[]dns.RR{&m.Answer, &m.Ns} {
		for i, rr := range *sec {
			if sig, ok := rr.(*dns.RRSIG); ok {
				c := *sig
				b := []byte(c.Signature)
				if b[0] == 'A' {
					b[0] = 'B'
				} else {
					b[0] = 'A'
				}
				c.Signature = string(b)
				(*sec)[i] = &c
			}
		}
	}
}

// limiter is a token bucket per client address.
type limiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[netip.Addr]*bucket
	slipN       atomic.Uint64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[netip.Addr]*bucket{}}
}

// maxBuckets bounds the limiter's memory under a flood of spoofed sources.
const maxBuckets = 1 << 16

func (l *limiter) allow(a netip.Addr) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[a]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for k, v := range l.buckets { // drop buckets that have refilled
				if now.Sub(v.last).Seconds()*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= maxBuckets {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[a] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// slip reports whether this limited UDP query gets a truncated reply.
func (l *limiter) slip() bool { return l.slipN.Add(1)%2 == 0 }
