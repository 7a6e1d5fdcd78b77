package dnslink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"
)

// ResolverConfig configures a Resolver. The zero value resolves through the
// system's name servers without DNSSEC validation.
type ResolverConfig struct {
	// Servers are the upstream name servers as host:port (dns.servers); nil
	// means the nameserver lines of /etc/resolv.conf.
	Servers []string
	// Timeout bounds one exchange with one server; 0 means 5 s. The whole
	// resolution is bounded by the caller's ctx.
	Timeout time.Duration
	// MaxDepth bounds CNAME chains, nested /dnsaddr lookups and the DNSSEC
	// chain of trust; 0 means 8 (the DNSLink and multiaddr-dns
	// implementations stop at a similar depth; real zones need 1 to 3).
	MaxDepth int
	// MaxRecords bounds the records in one answer and the addresses of one
	// dnsaddr resolution; 0 means 64 (a cloud of devices has far fewer).
	MaxRecords int
	// MaxTXTBytes bounds one TXT value; 0 means 4096. A longer value is an
	// error, not truncated.
	MaxTXTBytes int
	// TrustAnchor is the DS or DNSKEY records (zone-file text, one per line)
	// of the zone where DNSSEC validation starts (dns.trust_anchor), e.g.
	// the output of `pcnode dns ds`. When set, names at or below that zone
	// must validate: a missing or broken signature is an error wrapping
	// ErrBogus, and results are marked Validated. Names outside it are
	// resolved unvalidated. "" means no validation.
	TrustAnchor string
	// TrustAD marks results Validated when every answer carried the AD bit.
	// Only safe when the servers are a validating resolver reached over a
	// trusted path (e.g. unbound on loopback); ignored when TrustAnchor is
	// set.
	TrustAD bool
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Resolver looks up DNSLink, dnsaddr and _pcnode records with bounds on
// everything a hostile server controls. It is safe for concurrent use.
type Resolver struct {
	cfg        ResolverConfig
	log        *slog.Logger
	anchorZone string   // "" = no validation
	anchor     []dns.RR // DS and DNSKEY records of anchorZone

	mu   sync.Mutex
	keys map[string]keyEntry // validated DNSKEYs by zone

	// exchangeFn replaces the network in fuzz tests; nil means exchange.
	exchangeFn func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

type keyEntry struct {
	keys    []*dns.DNSKEY
	expires time.Time
}

// Result is a resolved DNSLink.
type Result struct {
	Link Link
	// Name is the owner name the record was found at, after CNAMEs.
	Name string
	// Validated is true when the answer (and every CNAME before it) was
	// proven by DNSSEC from the trust anchor, or carried the AD bit with
	// TrustAD.
	Validated bool
}

// AddrResult is a resolved dnsaddr.
type AddrResult struct {
	Addrs []multiaddr.Multiaddr
	// Validated is true when every lookup of the resolution validated.
	Validated bool
}

// PCNodeResult is a resolved _pcnode record.
type PCNodeResult struct {
	Record    PCNode
	Validated bool
}

// NewResolver returns a resolver; it fails only on a malformed TrustAnchor.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxDepth == 0 {
		cfg.MaxDepth = 8
	}
	if cfg.MaxRecords == 0 {
		cfg.MaxRecords = 64
	}
	if cfg.MaxTXTBytes == 0 {
		cfg.MaxTXTBytes = 4096
	}
	r := &Resolver{cfg: cfg, log: cfg.Logger, keys: map[string]keyEntry{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(cfg.TrustAnchor) != "" {
		rrs, err := ParseTrustAnchor(cfg.TrustAnchor)
		if err != nil {
			return nil, err
		}
		r.anchor = rrs
		r.anchorZone = rrs[0].Header().Name
	}
	return r, nil
}

// ParseTrustAnchor parses DS and DNSKEY records in zone-file syntax, all of
// one owner name.
func ParseTrustAnchor(s string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(s), ".", "trust_anchor")
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
		default:
			return nil, fmt.Errorf("dnslink: parse trust anchor: %s record; want DS or DNSKEY", dns.TypeToString[rr.Header().Rrtype])
		}
		rr.Header().Name = dns.CanonicalName(rr.Header().Name)
		if len(out) > 0 && rr.Header().Name != out[0].Header().Name {
			return nil, fmt.Errorf("dnslink: parse trust anchor: records for %s and %s; want one zone", out[0].Header().Name, rr.Header().Name)
		}
		out = append(out, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("dnslink: parse trust anchor: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("dnslink: parse trust anchor: no DS or DNSKEY record")
	}
	return out, nil
}

// ResolveDNSLink returns the DNSLink of domain, read from the TXT records at
// _dnslink.<domain> (following CNAMEs), chosen as ChooseDNSLink does. With
// no DNSLink the error wraps ErrNotFound, and the returned Result's
// Validated tells whether the absence was proven.
func (r *Resolver) ResolveDNSLink(ctx context.Context, domain string) (Result, error) {
	name := DNSLinkName(domain)
	txts, owner, validated, err := r.lookupTXT(ctx, name)
	if err != nil {
		return Result{Validated: validated}, fmt.Errorf("dnslink: resolve %s: %w", name, err)
	}
	l, err := ChooseDNSLink(txts)
	if err != nil {
		return Result{Validated: validated}, fmt.Errorf("dnslink: resolve %s: %w", name, ErrNotFound)
	}
	return Result{Link: l, Name: owner, Validated: validated}, nil
}

// ResolvePCNode returns the _pcnode record of domain. Two different valid
// records are an error: the domain must name one cloud.
func (r *Resolver) ResolvePCNode(ctx context.Context, domain string) (PCNodeResult, error) {
	name := PCNodeName(domain)
	txts, _, validated, err := r.lookupTXT(ctx, name)
	if err != nil {
		return PCNodeResult{Validated: validated}, fmt.Errorf("dnslink: resolve %s: %w", name, err)
	}
	var found []PCNode
	for _, t := range txts {
		if p, err := ParsePCNode(t); err == nil {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return PCNodeResult{Validated: validated}, fmt.Errorf("dnslink: resolve %s: %w", name, ErrNotFound)
	case len(found) > 1:
		for _, p := range found[1:] {
			if p.Cloud != found[0].Cloud {
				return PCNodeResult{}, fmt.Errorf("dnslink: resolve %s: records name two clouds (%s, %s)", name, found[0].Cloud, p.Cloud)
			}
		}
	}
	return PCNodeResult{Record: found[0], Validated: validated}, nil
}

// ResolveDNSAddr returns the multiaddrs published at _dnsaddr.<domain>,
// resolving nested /dnsaddr/<name> addresses recursively (at most MaxDepth
// deep, MaxRecords addresses in all). If want is not empty only addresses
// ending in /p2p/<want> are returned; a nested /dnsaddr/<name>/p2p/<id>
// likewise keeps only what ends in /p2p/<id>, so a record pointing at
// another peer is dropped, as go-multiaddr-dns does.
func (r *Resolver) ResolveDNSAddr(ctx context.Context, domain string, want peer.ID) (AddrResult, error) {
	var suffixes []multiaddr.Multiaddr
	if want != "" {
		c, err := multiaddr.NewComponent("p2p", want.String())
		if err != nil {
			return AddrResult{}, fmt.Errorf("dnslink: resolve dnsaddr %s: %w", domain, err)
		}
		suffixes = append(suffixes, multiaddr.Multiaddr{*c})
	}
	res := AddrResult{Validated: true}
	err := r.resolveDNSAddr(ctx, dns.CanonicalName(domain), suffixes, 0, map[string]bool{}, &res)
	if err == nil && len(res.Addrs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return AddrResult{Validated: res.Validated && errors.Is(err, ErrNotFound)}, fmt.Errorf("dnslink: resolve dnsaddr %s: %w", domain, err)
	}
	return res, nil
}

// resolveDNSAddr appends to res the addresses of domain that end in every
// one of suffixes (the /p2p/<id> parts of the /dnsaddr addresses that led
// here, and the caller's wanted peer).
func (r *Resolver) resolveDNSAddr(ctx context.Context, domain string, suffixes []multiaddr.Multiaddr, depth int, path map[string]bool, res *AddrResult) error {
	if depth > r.cfg.MaxDepth {
		return fmt.Errorf("/dnsaddr nested deeper than %d: %w", r.cfg.MaxDepth, ErrLimit)
	}
	if path[domain] {
		return fmt.Errorf("/dnsaddr loop at %s: %w", domain, ErrLimit)
	}
	path[domain] = true
	defer delete(path, domain)
	txts, _, validated, err := r.lookupTXT(ctx, DNSAddrName(domain))
	res.Validated = res.Validated && validated
	if err != nil {
		return err
	}
	for _, t := range txts {
		ma, err := ParseDNSAddr(t)
		if err != nil {
			continue // not a dnsaddr record, or malformed: skip as other clients do
		}
		first, rest := multiaddr.SplitFirst(ma)
		if first != nil && first.Protocol().Code == multiaddr.P_DNSADDR {
			sfx := suffixes
			if len(rest) > 0 {
				sfx = append(suffixes[:len(suffixes):len(suffixes)], rest)
			}
			sub := r.resolveDNSAddr(ctx, dns.CanonicalName(first.Value()), sfx, depth+1, path, res)
			if sub != nil && !errors.Is(sub, ErrNotFound) {
				return sub
			}
			continue
		}
		if !hasSuffixes(ma, suffixes) {
			r.log.Debug("dnsaddr record for another peer dropped", "name", domain, "addr", ma)
			continue
		}
		if len(res.Addrs) >= r.cfg.MaxRecords {
			return fmt.Errorf("more than %d addresses: %w", r.cfg.MaxRecords, ErrLimit)
		}
		res.Addrs = append(res.Addrs, ma)
	}
	return nil
}

func hasSuffixes(ma multiaddr.Multiaddr, suffixes []multiaddr.Multiaddr) bool {
	for _, s := range suffixes {
		if len(ma) < len(s) || !ma[len(ma)-len(s):].Equal(s) {
			return false
		}
	}
	return true
}

// lookupTXT returns the TXT values at name (after CNAMEs), the owner they
// were found at and whether the whole answer validated. No TXT record is an
// error wrapping ErrNotFound.
func (r *Resolver) lookupTXT(ctx context.Context, name string) ([]string, string, bool, error) {
	rrs, owner, validated, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, "", validated, err
	}
	var out []string
	for _, rr := range rrs {
		v := TXTValue(rr.(*dns.TXT))
		if len(v) > r.cfg.MaxTXTBytes {
			return nil, "", false, fmt.Errorf("TXT record of %d bytes at %s, more than %d: %w", len(v), owner, r.cfg.MaxTXTBytes, ErrLimit)
		}
		out = append(out, v)
	}
	return out, owner, validated, nil
}

// lookup resolves name/qtype, following CNAMEs within and across answers.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, string, bool, error) {
	name = dns.CanonicalName(name)
	seen := map[string]bool{}
	validated := true
	for {
		if len(seen) > r.cfg.MaxDepth {
			return nil, "", false, fmt.Errorf("CNAME chain longer than %d: %w", r.cfg.MaxDepth, ErrLimit)
		}
		seen[name] = true
		m, err := r.exchange(ctx, name, qtype)
		if err != nil {
			return nil, "", false, err
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			return nil, "", false, fmt.Errorf("server answered %s for %s", dns.RcodeToString[m.Rcode], name)
		}
		if n := countRRs(m.Answer); n > r.cfg.MaxRecords {
			return nil, "", false, fmt.Errorf("answer for %s has %d records, more than %d: %w", name, n, r.cfg.MaxRecords, ErrLimit)
		}
		if n := len(m.Answer) + len(m.Ns); n > 4*r.cfg.MaxRecords {
			return nil, "", false, fmt.Errorf("answer for %s has %d records with signatures and authority, more than %d: %w", name, n, 4*r.cfg.MaxRecords, ErrLimit)
		}
		sets := groupSets(m.Answer)
		cur := name
		for {
			if set := sets[setKey{cur, qtype}]; set != nil {
				ok, err := r.checkSet(ctx, m, set)
				if err != nil {
					return nil, "", false, err
				}
				return set.rrs, cur, validated && ok, nil
			}
			set := sets[setKey{cur, dns.TypeCNAME}]
			if set == nil {
				break
			}
			ok, err := r.checkSet(ctx, m, set)
			if err != nil {
				return nil, "", false, err
			}
			validated = validated && ok
			next := dns.CanonicalName(set.rrs[0].(*dns.CNAME).Target)
			if seen[next] {
				return nil, "", false, fmt.Errorf("CNAME loop at %s: %w", next, ErrLimit)
			}
			if len(seen) > r.cfg.MaxDepth {
				return nil, "", false, fmt.Errorf("CNAME chain longer than %d: %w", r.cfg.MaxDepth, ErrLimit)
			}
			seen[next] = true
			cur = next
		}
		if cur != name { // the chain left this answer: ask for its end
			name = cur
			continue
		}
		// No data: NXDOMAIN or NODATA.
		ok, err := r.checkDenial(ctx, m, name, qtype)
		if err != nil {
			return nil, "", false, err
		}
		return nil, "", validated && ok, fmt.Errorf("%s %s: %w", name, dns.TypeToString[qtype], ErrNotFound)
	}
}

func countRRs(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeRRSIG {
			n++
		}
	}
	return n
}

type setKey struct {
	name  string
	rtype uint16
}

type sigSet struct {
	rrs  []dns.RR
	sigs []*dns.RRSIG
}

// groupSets groups records into RRsets with the signatures covering them.
func groupSets(rrs []dns.RR) map[setKey]*sigSet {
	sets := map[setKey]*sigSet{}
	get := func(k setKey) *sigSet {
		if sets[k] == nil {
			sets[k] = &sigSet{}
		}
		return sets[k]
	}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class != dns.ClassINET {
			continue
		}
		name := dns.CanonicalName(h.Name)
		if sig, ok := rr.(*dns.RRSIG); ok {
			get(setKey{name, sig.TypeCovered}).sigs = append(get(setKey{name, sig.TypeCovered}).sigs, sig)
			continue
		}
		s := get(setKey{name, h.Rrtype})
		s.rrs = append(s.rrs, rr)
	}
	for k, s := range sets {
		if len(s.rrs) == 0 {
			delete(sets, k)
		}
	}
	return sets
}

// exchange sends one query, over UDP then TCP when truncated, to each
// server in turn until one answers.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if r.exchangeFn != nil {
		return r.exchangeFn(ctx, name, qtype)
	}
	servers := r.cfg.Servers
	if len(servers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("no dns.servers configured and %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("no dns.servers configured and none in /etc/resolv.conf")
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(1232, r.anchorZone != "")
	if r.cfg.TrustAD {
		q.AuthenticatedData = true // RFC 6840 5.7: ask for the AD bit
	}
	var lastErr error
	for _, srv := range servers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := r.exchangeOne(ctx, q, srv)
		if err != nil {
			lastErr = err
			r.log.Debug("dns exchange failed", "server", srv, "name", name, "err", err)
			continue
		}
		return m, nil
	}
	return nil, fmt.Errorf("query %s %s: %w", name, dns.TypeToString[qtype], lastErr)
}

func (r *Resolver) exchangeOne(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.cfg.Timeout, UDPSize: 1232}
	m, _, err := c.ExchangeContext(ctx, q, srv)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.ExchangeContext(ctx, q, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.Question[0].Name) || m.Question[0].Qtype != q.Question[0].Qtype {
		return nil, fmt.Errorf("%s answered another question", srv)
	}
	if m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused {
		return nil, fmt.Errorf("%s answered %s", srv, dns.RcodeToString[m.Rcode])
	}
	return m, nil
}
