package dnslink

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"
)

// Records is the typed set of records pcnode keeps in the person's zone. The
// authoritative Zone serves it (Zone.SetRecords) and the Publisher pushes it
// to another primary server (Publisher.Publish); both turn it into resource
// records with RRs.
type Records struct {
	// PCNode, if set, is published at _pcnode.<zone>.
	PCNode *PCNode
	// DNSAddrs are published at _dnsaddr.<zone>, one TXT record each; they
	// should end in /p2p/<peer ID>.
	DNSAddrs []multiaddr.Multiaddr
	// Links maps a name relative to the zone ("" is the zone itself,
	// "share1" is share1.<zone>) to the DNSLink published at
	// _dnslink.<name>.<zone>.
	Links map[string]Link
	// Hosts maps a device name relative to the zone ("laptop") to the
	// addresses published as its A and AAAA records.
	Hosts map[string][]netip.Addr
	// TTL of every record; 0 means 300 s, short enough for addresses that
	// change when a device moves.
	TTL uint32
}

// DefaultTTL is the TTL used when Records.TTL or ZoneConfig.TTL is 0.
const DefaultTTL = 300

// RRs returns the resource records of r in zone, sorted by owner name,
// type and value. It fails when a relative name is not a valid domain name.
func (r Records) RRs(zone string) ([]dns.RR, error) {
	zone = dns.CanonicalName(zone)
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	var out []dns.RR
	txt := func(owner, v string) {
		out = append(out, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: SplitTXT(v)})
	}
	if r.PCNode != nil {
		txt(PCNodeName(zone), r.PCNode.TXT())
	}
	for _, ma := range r.DNSAddrs {
		txt(DNSAddrName(zone), FormatDNSAddr(ma))
	}
	for rel, l := range r.Links {
		name, err := joinName(rel, zone)
		if err != nil {
			return nil, fmt.Errorf("dnslink: records: link %q: %w", rel, err)
		}
		txt(DNSLinkName(name), l.TXT())
	}
	for rel, addrs := range r.Hosts {
		name, err := joinName(rel, zone)
		if err != nil {
			return nil, fmt.Errorf("dnslink: records: host %q: %w", rel, err)
		}
		for _, a := range addrs {
			a = a.Unmap()
			if a.Is4() {
				out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.AsSlice()})
			} else {
				out = append(out, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()})
			}
		}
	}
	sortRRs(out)
	return dedupRRs(out), nil
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// joinName returns rel.zone, checking rel is a relative name.
func joinName(rel, zone string) (string, error) {
	if rel == "" || rel == "@" {
		return zone, nil
	}
	if strings.HasSuffix(rel, ".") || strings.Contains(rel, "*") {
		return "", fmt.Errorf("want a name relative to the zone, without wildcard")
	}
	name := dns.CanonicalName(rel + "." + zone)
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("not a domain name")
	}
	return name, nil
}

func sortRRs(rrs []dns.RR) {
	sort.SliceStable(rrs, func(i, j int) bool {
		hi, hj := rrs[i].Header(), rrs[j].Header()
		if c := canonicalCompare(hi.Name, hj.Name); c != 0 {
			return c < 0
		}
		if hi.Rrtype != hj.Rrtype {
			return hi.Rrtype < hj.Rrtype
		}
		return rrs[i].String() < rrs[j].String()
	})
}

func dedupRRs(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for i, rr := range rrs {
		if i > 0 && dns.IsDuplicate(rr, rrs[i-1]) {
			continue
		}
		out = append(out, rr)
	}
	return out
}

// wireLabels returns the labels of name in wire form, lower-cased, from the
// root down (right to left), for canonical ordering (RFC 4034 6.1).
func wireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		// Not a valid name: order it by its text, which is still a total
		// order; such a name never exists in a zone.
		return [][]byte{[]byte(strings.ToLower(name))}
	}
	var labels [][]byte
	for off := 0; off < n && buf[off] != 0; {
		l := int(buf[off])
		labels = append(labels, asciiLower(buf[off+1:off+1+l]))
		off += 1 + l
	}
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return labels
}

// canonicalCompare orders names as DNSSEC does (RFC 4034 6.1).
func canonicalCompare(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i := 0; i < len(la) && i < len(lb); i++ {
		if c := bytes.Compare(la[i], lb[i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// ZoneConfig configures a Zone. Only Zone is required.
type ZoneConfig struct {
	// Zone is the apex, the person's domain (dns.zone), e.g. "example.org".
	Zone string
	// NS are the names of the zone's name servers; nil means "ns1.<zone>".
	// A name inside the zone needs an address in Records.Hosts to be
	// reachable by resolvers that do not know the server's address already.
	NS []string
	// Key signs the zone with DNSSEC; nil serves the zone unsigned.
	Key *Key
	// TTL of SOA, NS and DNSKEY records and of negative answers; 0 means
	// DefaultTTL.
	TTL uint32
	// Admin is the SOA mailbox; "" means "hostmaster.<zone>".
	Admin string
	// SignatureValidity is how long an RRSIG is valid; 0 means 14 days.
	// Signatures are renewed when half of it has passed.
	SignatureValidity time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Zone holds the record sets of the person's zone and their DNSSEC
// signatures. It is safe for concurrent use: readers see an immutable
// snapshot while SetRecords builds the next one, so answers never wait for
// signing.
type Zone struct {
	cfg    ZoneConfig
	origin string

	mu     sync.Mutex // serializes rebuilds
	serial uint32
	rrs    []dns.RR // content other than SOA, NS, DNSKEY, NSEC, RRSIG

	snap atomic.Pointer[snapshot]
}

// NewZone returns a zone holding only SOA, NS (and DNSKEY when signed).
func NewZone(cfg ZoneConfig) (*Zone, error) {
	if cfg.Zone == "" {
		return nil, fmt.Errorf("dnslink: new zone: dns.zone is empty")
	}
	origin := dns.CanonicalName(cfg.Zone)
	if _, ok := dns.IsDomainName(origin); !ok || origin == "." {
		return nil, fmt.Errorf("dnslink: new zone %q: not a domain name", cfg.Zone)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if len(cfg.NS) == 0 {
		cfg.NS = []string{"ns1." + origin}
	}
	if cfg.Admin == "" {
		cfg.Admin = "hostmaster." + origin
	}
	if cfg.SignatureValidity == 0 {
		cfg.SignatureValidity = 14 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	z := &Zone{cfg: cfg, origin: origin}
	z.mu.Lock()
	defer z.mu.Unlock()
	if err := z.rebuildLocked(nil); err != nil {
		return nil, err
	}
	return z, nil
}

// Origin returns the zone's apex, fully qualified and lower case.
func (z *Zone) Origin() string { return z.origin }

// Serial returns the SOA serial of the records being served.
func (z *Zone) Serial() uint32 { return z.snap.Load().serial }

// DNSKEY returns the zone's DNSKEY record, or nil when it is unsigned.
func (z *Zone) DNSKEY() *dns.DNSKEY {
	if z.cfg.Key == nil {
		return nil
	}
	return z.cfg.Key.DNSKEY(z.origin, z.cfg.TTL)
}

// DS returns the DS record to give the parent zone, or nil when the zone is
// unsigned.
func (z *Zone) DS() *dns.DS {
	if z.cfg.Key == nil {
		return nil
	}
	return z.cfg.Key.DS(z.origin)
}

// SetRecords replaces the zone's content with r, bumps the SOA serial and
// re-signs. It returns when the new content is being served.
func (z *Zone) SetRecords(r Records) error {
	rrs, err := r.RRs(z.origin)
	if err != nil {
		return err
	}
	return z.SetRRs(rrs)
}

// SetRRs is SetRecords for raw records. SOA, NS at the apex, DNSKEY, RRSIG,
// NSEC, NSEC3 and DS records are managed by the zone and refused here, as
// are names outside the zone, wildcards and CNAMEs beside other data.
func (z *Zone) SetRRs(rrs []dns.RR) error {
	cp := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		switch {
		case !dns.IsSubDomain(z.origin, name):
			return fmt.Errorf("dnslink: set records %s: outside zone %s", h.Name, z.origin)
		case strings.HasPrefix(name, "*."):
			return fmt.Errorf("dnslink: set records %s: wildcards are not served", h.Name)
		}
		switch h.Rrtype {
		case dns.TypeSOA, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM, dns.TypeDS, dns.TypeOPT, dns.TypeTSIG:
			return fmt.Errorf("dnslink: set records %s: type %s is managed by the zone", h.Name, dns.TypeToString[h.Rrtype])
		case dns.TypeNS:
			if name == z.origin {
				return fmt.Errorf("dnslink: set records %s: apex NS comes from the zone config", h.Name)
			}
			return fmt.Errorf("dnslink: set records %s: delegations are not served", h.Name)
		}
		c := dns.Copy(rr)
		c.Header().Name = name
		c.Header().Class = dns.ClassINET
		cp = append(cp, c)
	}
	sortRRs(cp)
	cp = dedupRRs(cp)
	// A CNAME owner has no other data (RFC 1034 3.6.2).
	for i, rr := range cp {
		if rr.Header().Rrtype != dns.TypeCNAME {
			continue
		}
		for j, o := range cp {
			if i != j && o.Header().Name == rr.Header().Name && !(o.Header().Rrtype == dns.TypeCNAME && dns.IsDuplicate(o, rr)) {
				return fmt.Errorf("dnslink: set records %s: CNAME beside other data", rr.Header().Name)
			}
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.rebuildLocked(cp)
}

// rebuildLocked builds and publishes a snapshot with content rrs (nil keeps
// the current content) and a new serial.
func (z *Zone) rebuildLocked(rrs []dns.RR) error {
	if rrs != nil {
		z.rrs = rrs
	}
	now := z.cfg.Now()
	serial := uint32(now.Unix())
	if int32(serial-z.serial) <= 0 { // RFC 1982: keep increasing
		serial = z.serial + 1
	}
	s, err := buildSnapshot(z.cfg, z.origin, serial, z.rrs, now)
	if err != nil {
		return fmt.Errorf("dnslink: sign zone %s: %w", z.origin, err)
	}
	z.serial = serial
	z.snap.Store(s)
	return nil
}

// current returns the snapshot to answer from, re-signing first when its
// signatures are halfway to expiry.
func (z *Zone) current() *snapshot {
	s := z.snap.Load()
	if s.refreshAt.IsZero() || z.cfg.Now().Before(s.refreshAt) {
		return s
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if s2 := z.snap.Load(); s2 != s {
		return s2
	}
	if err := z.rebuildLocked(nil); err != nil {
		return s // keep serving the old signatures; they are still valid
	}
	return z.snap.Load()
}

type rrset struct {
	rrs  []dns.RR
	sigs []dns.RR
}

type zoneNode struct {
	sets map[uint16]*rrset
	nsec *rrset
}

type snapshot struct {
	origin    string
	serial    uint32
	signed    bool
	negTTL    uint32
	nodes     map[string]*zoneNode
	sorted    []string // node names in canonical order; sorted[0] is the apex
	ents      map[string]bool
	soa       *rrset
	refreshAt time.Time // zero when unsigned

	cache  sync.Map // cacheKey -> packed answer (see Server.cached)
	cached atomic.Int64
}

func buildSnapshot(cfg ZoneConfig, origin string, serial uint32, content []dns.RR, now time.Time) (*snapshot, error) {
	s := &snapshot{
		origin: origin,
		serial: serial,
		signed: cfg.Key != nil,
		negTTL: cfg.TTL,
		nodes:  map[string]*zoneNode{},
		ents:   map[string]bool{},
	}
	add := func(rr dns.RR) {
		h := rr.Header()
		n := s.nodes[h.Name]
		if n == nil {
			n = &zoneNode{sets: map[uint16]*rrset{}}
			s.nodes[h.Name] = n
		}
		set := n.sets[h.Rrtype]
		if set == nil {
			set = &rrset{}
			n.sets[h.Rrtype] = set
		}
		set.rrs = append(set.rrs, rr)
	}
	add(&dns.SOA{
		Hdr: hdr(origin, dns.TypeSOA, cfg.TTL), Ns: dns.Fqdn(cfg.NS[0]), Mbox: dns.Fqdn(cfg.Admin),
		Serial: serial, Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: cfg.TTL,
	})
	for _, ns := range cfg.NS {
		add(&dns.NS{Hdr: hdr(origin, dns.TypeNS, cfg.TTL), Ns: dns.CanonicalName(ns)})
	}
	if cfg.Key != nil {
		add(cfg.Key.DNSKEY(origin, cfg.TTL))
	}
	for _, rr := range content {
		add(rr)
	}
	for name := range s.nodes {
		s.sorted = append(s.sorted, name)
		for p := parentName(name); p != "" && p != origin && dns.IsSubDomain(origin, p); p = parentName(p) {
			if s.nodes[p] == nil {
				s.ents[p] = true
			}
		}
	}
	sort.Slice(s.sorted, func(i, j int) bool { return canonicalCompare(s.sorted[i], s.sorted[j]) < 0 })
	s.soa = s.nodes[origin].sets[dns.TypeSOA]
	if cfg.Key == nil {
		return s, nil
	}
	// NSEC chain over every name that owns data, in canonical order, closing
	// back at the apex (RFC 4034 4). Precomputed and signed here, so
	// answering needs no signing at all.
	for i, name := range s.sorted {
		n := s.nodes[name]
		types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		for t := range n.sets {
			types = append(types, t)
		}
		sort.Slice(types, func(a, b int) bool { return types[a] < types[b] })
		n.nsec = &rrset{rrs: []dns.RR{&dns.NSEC{
			Hdr:        hdr(name, dns.TypeNSEC, cfg.TTL),
			NextDomain: s.sorted[(i+1)%len(s.sorted)],
			TypeBitMap: types,
		}}}
	}
	inception := now.Add(-time.Hour) // tolerate validators with slow clocks
	expiration := now.Add(cfg.SignatureValidity)
	s.refreshAt = now.Add(cfg.SignatureValidity / 2)
	dnskey := cfg.Key.DNSKEY(origin, cfg.TTL)
	sign := func(set *rrset) error {
		sig := &dns.RRSIG{
			Hdr:        hdr(set.rrs[0].Header().Name, dns.TypeRRSIG, set.rrs[0].Header().Ttl),
			Algorithm:  dns.ECDSAP256SHA256,
			Expiration: uint32(expiration.Unix()),
			Inception:  uint32(inception.Unix()),
			KeyTag:     dnskey.KeyTag(),
			SignerName: origin,
		}
		if err := sig.Sign(cfg.Key.priv, set.rrs); err != nil {
			return fmt.Errorf("%s %s: %w", set.rrs[0].Header().Name, dns.TypeToString[set.rrs[0].Header().Rrtype], err)
		}
		set.sigs = []dns.RR{sig}
		return nil
	}
	for _, n := range s.nodes {
		for _, set := range n.sets {
			if err := sign(set); err != nil {
				return nil, err
			}
		}
		if err := sign(n.nsec); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parentName returns name minus its first label, or "" for the root.
func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return ""
	}
	return name[off:]
}

// covering returns the NSEC set of the last name that sorts before name.
func (s *snapshot) covering(name string) *rrset {
	i := sort.Search(len(s.sorted), func(i int) bool { return canonicalCompare(s.sorted[i], name) >= 0 })
	if i == 0 {
		i = len(s.sorted)
	}
	return s.nodes[s.sorted[i-1]].nsec
}

func (s *snapshot) exists(name string) bool { return s.nodes[name] != nil || s.ents[name] }

// answer fills m (whose question is set) from the snapshot. do asks for
// DNSSEC records.
func (s *snapshot) answer(m *dns.Msg, qname string, qtype uint16, do bool) {
	put := func(sec *[]dns.RR, set *rrset) {
		if set == nil {
			return
		}
		*sec = append(*sec, set.rrs...)
		if do {
			*sec = append(*sec, set.sigs...)
		}
	}
	m.Authoritative = true
	negative := func() {
		soa := *s.soa
		soa.rrs = []dns.RR{soaWithTTL(s.soa.rrs[0], s.negTTL)}
		put(&m.Ns, &soa)
	}
	if n := s.nodes[qname]; n != nil {
		if qtype == dns.TypeNSEC && n.nsec != nil {
			put(&m.Answer, n.nsec)
			return
		}
		if set := n.sets[qtype]; set != nil {
			put(&m.Answer, set)
			return
		}
		if set := n.sets[dns.TypeCNAME]; set != nil {
			put(&m.Answer, set)
			return
		}
		negative() // NODATA: the name's own NSEC shows the type is absent
		if do && n.nsec != nil {
			put(&m.Ns, n.nsec)
		}
		return
	}
	if s.ents[qname] {
		negative() // NODATA at an empty non-terminal: the covering NSEC's next name is below it
		if do && s.signed {
			put(&m.Ns, s.covering(qname))
		}
		return
	}
	m.Rcode = dns.RcodeNameError
	negative()
	if !do || !s.signed {
		return
	}
	// NXDOMAIN proof (RFC 4035 3.1.3.2): an NSEC covering the name, and one
	// covering the wildcard at its closest encloser.
	ce := qname
	for ce != s.origin && !s.exists(ce) {
		ce = parentName(ce)
	}
	c1 := s.covering(qname)
	put(&m.Ns, c1)
	if c2 := s.covering("*." + ce); c2 != c1 {
		put(&m.Ns, c2)
	}
}

func soaWithTTL(rr dns.RR, ttl uint32) dns.RR {
	soa := *rr.(*dns.SOA)
	if soa.Hdr.Ttl > ttl {
		soa.Hdr.Ttl = ttl
	}
	return &soa
}
