package dnslink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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
	// OnQuery, if set, is called once for every query received, with its
	// transport ("udp" or "tcp"), before rate limiting: for a metric. It
	// must be fast and safe for concurrent use. Default nil: not called.
	OnQuery func(transport string)
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
	conn    *net.UDPConn
	session bool // wildcard address: reply from the query's destination

	forceSession bool // test hook: serve a loopback address as if it were a wildcard
	tcp          *dns.Server
	addr         string
	wg           sync.WaitGroup
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
	s.conn = pc.(*net.UDPConn)
	if host, _, _ := net.SplitHostPort(s.addr); host != "" {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || s.forceSession {
			// On a wildcard address the reply must leave from the address
			// the query came to: ask the kernel for it.
			s.session = true
			e6 := ipv6.NewPacketConn(s.conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
			e4 := ipv4.NewPacketConn(s.conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
			if e4 != nil && e6 != nil {
				pc.Close()
				ln.Close()
				return fmt.Errorf("dnslink: listen %s: %w", s.cfg.Listen, e4)
			}
		}
	}
	ready := make(chan struct{}, 1)
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP), NotifyStartedFunc: func() { ready <- struct{}{} },
		ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.tcp.ActivateAndServe(); err != nil {
			s.log.Error("dns server stopped", "addr", s.addr, "err", err)
		}
	}()
	// UDP is served by a few goroutines reading the one socket and
	// answering in place: no goroutine and no message unpacking per query
	// when the answer is cached.
	for i := 0; i < max(2, runtime.GOMAXPROCS(0)); i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveUDP()
		}()
	}
	select {
	case <-ready:
	case <-ctx.Done():
		s.shutdownLocked()
		return fmt.Errorf("dnslink: start server %s: %w", s.addr, ctx.Err())
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
	if s.tcp != nil {
		s.tcp.Shutdown() // error only if it never started
	}
	if s.conn != nil {
		s.conn.Close() // ends the UDP readers
	}
	s.wg.Wait()
}

func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	if s.cfg.OnQuery != nil {
		s.cfg.OnQuery("tcp")
	}
	if s.limiter != nil {
		if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil && !s.limiter.allow(ap.Addr()) {
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeRefused)
			w.WriteMsg(m)
			return
		}
	}
	if b := s.answerMsg(req, dns.MaxMsgSize); b != nil {
		if _, err := w.Write(b); err != nil {
			s.log.Debug("dns write failed", "client", w.RemoteAddr(), "err", err)
		}
	}
}

// batchConn reads and writes several datagrams per system call (recvmmsg,
// sendmmsg on Linux): under load the server answers a batch of queries per
// pair of calls instead of one.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

const udpBatch = 32

func (s *Server) serveUDP() {
	if s.session {
		s.serveUDPSession()
		return
	}
	var bc batchConn = ipv4.NewPacketConn(s.conn)
	if ap, err := netip.ParseAddrPort(s.addr); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
		bc = ipv6.NewPacketConn(s.conn)
	}
	in := make([]ipv4.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	out := make([]ipv4.Message, 0, udpBatch)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns read failed", "err", err)
			continue
		}
		out = out[:0]
		for i := 0; i < n; i++ {
			from, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			resp := s.handleUDP(in[i].Buffers[0][:in[i].N], from.AddrPort().Addr().Unmap())
			if resp != nil {
				out = append(out, ipv4.Message{Buffers: [][]byte{resp}, Addr: from})
			}
		}
		for len(out) > 0 {
			k, err := bc.WriteBatch(out, 0)
			if err != nil {
				s.log.Debug("dns write failed", "err", err)
				break
			}
			out = out[k:]
		}
	}
}

// serveUDPSession serves a wildcard address, one datagram at a time, with
// the destination address of each query kept for its reply.
func (s *Server) serveUDPSession() {
	buf := make([]byte, 4096)
	for {
		n, session, err := dns.ReadFromSessionUDP(s.conn, buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns read failed", "err", err)
			continue
		}
		from := session.RemoteAddr().(*net.UDPAddr).AddrPort()
		out := s.handleUDP(buf[:n], from.Addr().Unmap())
		if out == nil {
			continue
		}
		if _, err := dns.WriteToSessionUDP(s.conn, out, session); err != nil {
			s.log.Debug("dns write failed", "client", from, "err", err)
		}
	}
}

// handleUDP returns the reply to one datagram, or nil to send none.
func (s *Server) handleUDP(b []byte, from netip.Addr) []byte {
	if s.cfg.OnQuery != nil {
		s.cfg.OnQuery("udp")
	}
	if s.limiter != nil && !s.limiter.allow(from) {
		if !s.limiter.slip() || len(b) < 12 {
			return nil
		}
		// An empty truncated reply: a real resolver retries over TCP.
		out := slices.Clone(b[:12])
		out[2] = out[2]&0x79 | 0x80 | 0x02 // QR, TC; keep opcode and RD
		out[3] = 0
		clear(out[4:12])
		return out
	}
	if k, qend, ok := s.parseFast(b); ok {
		snap := s.zone.current()
		if v, ok := snap.cache.Load(k); ok {
			return reply(v.([]byte), b, qend)
		}
	}
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil || req.Response {
		return nil // not a query we can answer; silence beats a reflector
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), s.cfg.MaxMessage))
	}
	return s.answerMsg(req, size)
}

// answerMsg builds, packs, caches and returns the reply to req for a
// transport that carries size bytes.
func (s *Server) answerMsg(req *dns.Msg, size int) []byte {
	snap := s.zone.current()
	k, cacheable := s.cacheKey(req, size)
	if cacheable {
		if v, ok := snap.cache.Load(k); ok {
			b := slices.Clone(v.([]byte))
			binary.BigEndian.PutUint16(b, req.Id)
			b[2] = b[2]&^0x01 | boolBit(req.RecursionDesired, 0x01)
			b[3] = b[3]&^0x10 | boolBit(req.CheckingDisabled, 0x10)
			qn := make([]byte, 256)
			if n, err := dns.PackDomainName(dns.Fqdn(req.Question[0].Name), qn, 0, nil, false); err == nil && 12+n <= len(b) {
				copy(b[12:12+n], qn[:n]) // the client's letter case
			}
			return b
		}
	}
	m := s.respond(snap, req)
	m.Truncate(size)
	b, err := m.Pack()
	if err != nil {
		s.log.Warn("dns pack failed", "question", req.Question, "err", err)
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		b, _ = m.Pack()
		return b
	}
	if cacheable && snap.cached.Load() < maxCached {
		if _, loaded := snap.cache.LoadOrStore(k, slices.Clone(b)); !loaded {
			snap.cached.Add(1)
		}
	}
	return b
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

// cacheKey is the key of req's answer; false when req must not be answered
// from the cache.
func (s *Server) cacheKey(req *dns.Msg, size int) (cacheKey, bool) {
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Response || len(req.Ns) > 0 || len(req.Answer) > 0 ||
		req.Question[0].Qclass != dns.ClassINET || s.corrupt.Load() {
		return cacheKey{}, false
	}
	wire := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(req.Question[0].Name), wire, 0, nil, false)
	if err != nil {
		return cacheKey{}, false
	}
	k := cacheKey{name: string(asciiLower(wire[:n])), qtype: req.Question[0].Qtype, size: size}
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

// parseFast reads the cache key straight from a UDP query in wire form
// (one question, at most an OPT record, no compression), returning also
// the offset where the question name ends. Anything else goes the slow way.
func (s *Server) parseFast(b []byte) (cacheKey, int, bool) {
	if len(b) < 17 || b[2]&0xf8 != 0 || s.corrupt.Load() { // QR=0, opcode QUERY
		return cacheKey{}, 0, false
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint32(b[6:]) != 0 {
		return cacheKey{}, 0, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	off := 12
	for {
		if off >= len(b) || off-12 > 255 {
			return cacheKey{}, 0, false
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return cacheKey{}, 0, false // compression pointer or reserved
		}
		off += 1 + l
	}
	qend := off
	if off+4 > len(b) || binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return cacheKey{}, 0, false
	}
	var name [256]byte
	nl := copy(name[:], b[12:qend])
	k := cacheKey{name: string(asciiLower(name[:nl])), qtype: binary.BigEndian.Uint16(b[off:]), size: dns.MinMsgSize}
	off += 4
	switch ar {
	case 0:
	case 1: // OPT: root name, type 41, class = UDP size, TTL = ext-rcode, version, flags
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT || b[off+6] != 0 {
			return cacheKey{}, 0, false
		}
		k.size = max(dns.MinMsgSize, min(int(binary.BigEndian.Uint16(b[off+3:])), s.cfg.MaxMessage))
		k.do = b[off+7]&0x80 != 0
		if off+11+int(binary.BigEndian.Uint16(b[off+9:])) != len(b) {
			return cacheKey{}, 0, false
		}
	default:
		return cacheKey{}, 0, false
	}
	return k, qend, true
}

// reply copies a cached answer and makes it the reply to query: its ID, RD
// and CD bits, and its question name with the client's letter case
// (resolvers using 0x20 randomization check it).
func reply(cached, query []byte, qend int) []byte {
	b := slices.Clone(cached)
	copy(b[0:2], query[0:2])
	b[2] = b[2]&^0x01 | query[2]&0x01
	b[3] = b[3]&^0x10 | query[3]&0x10
	copy(b[12:qend], query[12:qend])
	return b
}

// asciiLower lower-cases b in place as DNS does: A-Z only, other bytes
// (which need not be UTF-8) unchanged.
func asciiLower(b []byte) []byte {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
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
