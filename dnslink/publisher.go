package dnslink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ErrUpdateRefused: the primary server rejected a dynamic update (a TSIG
// key it does not know or whose signature fails, a key without update
// rights, a zone it does not serve).
var ErrUpdateRefused = errors.New("primary refused the update")

// TSIGKey is a TSIG key (RFC 8945) that signs dynamic updates.
type TSIGKey struct {
	Name      string // key name as the server knows it, e.g. "pcnode-key"
	Algorithm string // "hmac-sha256" (default), "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1"
	Secret    string // base64
}

// ParseTSIG parses the dns.tsig setting, "name:algorithm:base64secret"
// ("name:base64secret" means hmac-sha256).
func ParseTSIG(s string) (TSIGKey, error) {
	parts := strings.SplitN(s, ":", 3)
	var k TSIGKey
	switch len(parts) {
	case 2:
		k = TSIGKey{Name: parts[0], Algorithm: "hmac-sha256", Secret: parts[1]}
	case 3:
		k = TSIGKey{Name: parts[0], Algorithm: parts[1], Secret: parts[2]}
	default:
		return TSIGKey{}, errors.New("dnslink: parse dns.tsig: want name:algorithm:base64secret")
	}
	if err := k.check(); err != nil {
		return TSIGKey{}, fmt.Errorf("dnslink: parse dns.tsig: %w", err)
	}
	return k, nil
}

// String returns the key in dns.tsig form.
func (k TSIGKey) String() string { return k.Name + ":" + k.Algorithm + ":" + k.Secret }

var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

func (k TSIGKey) algorithm() string {
	a := strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")
	if a == "" {
		a = "hmac-sha256"
	}
	return tsigAlgorithms[a]
}

func (k TSIGKey) check() error {
	if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" {
		return fmt.Errorf("key name %q is not a domain name", k.Name)
	}
	if k.algorithm() == "" {
		return fmt.Errorf("unsupported TSIG algorithm %q", k.Algorithm)
	}
	if b, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(b) == 0 {
		return errors.New("secret is not base64")
	}
	return nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Zone is the person's domain (dns.zone).
	Zone string
	// Primary is the host:port of the zone's primary server (dns.primary);
	// a missing port means 53.
	Primary string
	// TSIG signs the updates (dns.tsig). The server's ACL must allow this
	// key to update the zone, and, for removing stale share names, to
	// transfer it (AXFR).
	TSIG TSIGKey
	// Timeout bounds one exchange with the primary; 0 means 10 s.
	Timeout time.Duration
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Publisher keeps pcnode's records in a zone served by another primary
// (Knot, BIND, PowerDNS, ...) current through RFC 2136 dynamic updates
// signed with TSIG. It owns these names and nothing else: the TXT records at
// _dnsaddr.<zone>, _pcnode.<zone> and _dnslink.[<name>.]<zone>, and the
// A/AAAA records of the host names it is given. Safe for concurrent use,
// though concurrent Publish calls race as two administrators would.
type Publisher struct {
	cfg  PublisherConfig
	zone string
	log  *slog.Logger
}

// Changes is what one Publish changed.
type Changes struct {
	Added   []dns.RR
	Removed []dns.RR
}

// NewPublisher checks cfg and returns a publisher; it sends nothing.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Zone == "" {
		return nil, errors.New("dnslink: new publisher: dns.zone is empty")
	}
	if cfg.Primary == "" {
		return nil, errors.New("dnslink: new publisher: dns.primary is empty")
	}
	if !strings.Contains(cfg.Primary, ":") || strings.HasSuffix(cfg.Primary, "]") {
		cfg.Primary += ":53"
	}
	if err := cfg.TSIG.check(); err != nil {
		return nil, fmt.Errorf("dnslink: new publisher: dns.tsig: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg, zone: dns.CanonicalName(cfg.Zone), log: log}, nil
}

// Publish makes pcnode's records in the zone equal to r: stale records are
// removed and new ones added in one atomic update. It sends nothing when
// the zone is already current.
func (p *Publisher) Publish(ctx context.Context, r Records) (Changes, error) {
	rrs, err := r.RRs(p.zone)
	if err != nil {
		return Changes{}, err
	}
	return p.PublishRRs(ctx, rrs)
}

// PublishRRs is Publish for raw records; each must be at a name the
// publisher owns (see Publisher).
func (p *Publisher) PublishRRs(ctx context.Context, desired []dns.RR) (Changes, error) {
	hosts := map[string]bool{}
	want := map[setKey][]dns.RR{}
	for _, rr := range desired {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA {
			hosts[name] = dns.IsSubDomain(p.zone, name)
		}
		if !p.owned(name, h.Rrtype, hosts) {
			return Changes{}, fmt.Errorf("dnslink: publish %s %s: not a name pcnode owns in %s", h.Name, dns.TypeToString[h.Rrtype], p.zone)
		}
		c := dns.Copy(rr)
		c.Header().Name, c.Header().Class = name, dns.ClassINET
		want[setKey{name, h.Rrtype}] = append(want[setKey{name, h.Rrtype}], c)
	}
	current, err := p.current(ctx, want, hosts)
	if err != nil {
		return Changes{}, fmt.Errorf("dnslink: publish %s: read current records from %s: %w", p.zone, p.cfg.Primary, err)
	}
	m := new(dns.Msg)
	m.SetUpdate(p.zone)
	var ch Changes
	keys := map[setKey]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range current {
		keys[k] = true
	}
	sorted := make([]setKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].name != sorted[j].name {
			return sorted[i].name < sorted[j].name
		}
		return sorted[i].rtype < sorted[j].rtype
	})
	for _, k := range sorted {
		cur, w := current[k], want[k]
		if sameSet(cur, w) {
			continue
		}
		if len(cur) > 0 {
			m.RemoveRRset([]dns.RR{cur[0]})
			ch.Removed = append(ch.Removed, cur...)
		}
		if len(w) > 0 {
			m.Insert(w)
			ch.Added = append(ch.Added, w...)
		}
	}
	if len(m.Ns) == 0 {
		p.log.Debug("zone already current", "zone", p.zone)
		return Changes{}, nil
	}
	if err := p.send(ctx, m); err != nil {
		return Changes{}, fmt.Errorf("dnslink: publish %s to %s: %w", p.zone, p.cfg.Primary, err)
	}
	p.log.Info("published DNS records", "zone", p.zone, "added", len(ch.Added), "removed", len(ch.Removed))
	return ch, nil
}

// owned reports whether pcnode manages name/type in the zone.
func (p *Publisher) owned(name string, t uint16, hosts map[string]bool) bool {
	switch t {
	case dns.TypeTXT:
		return name == DNSAddrName(p.zone) || name == PCNodeName(p.zone) ||
			strings.HasPrefix(name, DNSLinkLabel+".") && dns.IsSubDomain(p.zone, name)
	case dns.TypeA, dns.TypeAAAA:
		return hosts[name]
	}
	return false
}

func sameSet(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i], bs[i] = a[i].String(), b[i].String() // includes the TTL
	}
	sort.Strings(as)
	sort.Strings(bs)
	return strings.Join(as, "\n") == strings.Join(bs, "\n")
}

// current reads the owned records now in the zone: by zone transfer when
// the key may, otherwise by querying the names in want (stale share names
// then stay behind, and a debug message says so).
func (p *Publisher) current(ctx context.Context, want map[setKey][]dns.RR, hosts map[string]bool) (map[setKey][]dns.RR, error) {
	out := map[setKey][]dns.RR{}
	rrs, err := p.transfer(ctx)
	if err == nil {
		for _, rr := range rrs {
			h := rr.Header()
			name := dns.CanonicalName(h.Name)
			if p.owned(name, h.Rrtype, hosts) {
				k := setKey{name, h.Rrtype}
				out[k] = append(out[k], rr)
			}
		}
		return out, nil
	}
	p.log.Debug("zone transfer failed; querying known names (stale share names are not removed)", "zone", p.zone, "err", err)
	q := map[setKey]bool{
		{DNSAddrName(p.zone), dns.TypeTXT}: true,
		{PCNodeName(p.zone), dns.TypeTXT}:  true,
		{DNSLinkName(p.zone), dns.TypeTXT}: true,
	}
	for k := range want {
		q[k] = true
	}
	for k := range q {
		m := new(dns.Msg)
		m.SetQuestion(k.name, k.rtype)
		c := &dns.Client{Net: "tcp", Timeout: p.cfg.Timeout}
		r, _, err := c.ExchangeContext(ctx, m, p.cfg.Primary)
		if err != nil {
			return nil, err
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return nil, fmt.Errorf("query %s: %s", k.name, dns.RcodeToString[r.Rcode])
		}
		for _, rr := range r.Answer {
			if dns.CanonicalName(rr.Header().Name) == k.name && rr.Header().Rrtype == k.rtype {
				out[k] = append(out[k], rr)
			}
		}
	}
	return out, nil
}

func (p *Publisher) transfer(ctx context.Context) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(p.zone)
	m.SetTsig(p.keyName(), p.cfg.TSIG.algorithm(), 300, time.Now().Unix())
	d := &net.Dialer{Timeout: p.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", p.cfg.Primary)
	if err != nil {
		return nil, err
	}
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, TsigSecret: map[string]string{p.keyName(): p.cfg.TSIG.Secret},
		DialTimeout: p.cfg.Timeout, ReadTimeout: p.cfg.Timeout, WriteTimeout: p.cfg.Timeout}
	defer tr.Close()
	env, err := tr.In(m, p.cfg.Primary)
	if err != nil {
		return nil, err
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			for range env { // drain so the reader goroutine ends
			}
			return nil, e.Error
		}
		rrs = append(rrs, e.RR...)
		if len(rrs) > 100000 {
			for range env {
			}
			return nil, fmt.Errorf("zone has more than 100000 records: %w", ErrLimit)
		}
	}
	return rrs, nil
}

func (p *Publisher) keyName() string { return dns.CanonicalName(p.cfg.TSIG.Name) }

// send signs and sends the update and explains a refusal.
func (p *Publisher) send(ctx context.Context, m *dns.Msg) error {
	m.SetTsig(p.keyName(), p.cfg.TSIG.algorithm(), 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: p.cfg.Timeout, TsigSecret: map[string]string{p.keyName(): p.cfg.TSIG.Secret}}
	r, _, err := c.ExchangeContext(ctx, m, p.cfg.Primary)
	if r == nil {
		return err
	}
	if r.Rcode == dns.RcodeSuccess {
		if err != nil { // answer accepted but its TSIG did not verify
			return fmt.Errorf("update applied, but the primary's reply failed TSIG verification: %w", err)
		}
		return nil
	}
	why := dns.RcodeToString[r.Rcode]
	hint := ""
	if t := r.IsTsig(); t != nil && t.Error != 0 {
		switch t.Error {
		case dns.RcodeBadKey:
			why, hint = "TSIG key rejected (BADKEY)", ": the primary does not know key "+p.cfg.TSIG.Name+" or its ACL does not allow it to update "+p.zone+"; check dns.tsig and the primary's ACL"
		case dns.RcodeBadSig:
			why, hint = "TSIG signature rejected (BADSIG)", ": the secret or algorithm of key "+p.cfg.TSIG.Name+" differs from the primary's; check dns.tsig"
		case dns.RcodeBadTime:
			why, hint = "TSIG time rejected (BADTIME)", ": this machine's clock differs from the primary's"
		default:
			why = "TSIG error " + dns.RcodeToString[int(t.Error)]
		}
	} else {
		switch r.Rcode {
		case dns.RcodeRefused:
			hint = ": the primary's ACL does not let key " + p.cfg.TSIG.Name + " update " + p.zone
		case dns.RcodeNotAuth:
			hint = ": the primary is not authoritative for " + p.zone + " or did not accept key " + p.cfg.TSIG.Name + "; check dns.primary, dns.zone and dns.tsig"
		case dns.RcodeNotZone:
			hint = ": a record is outside " + p.zone
		}
	}
	return fmt.Errorf("%w: %s%s", ErrUpdateRefused, why, hint)
}
