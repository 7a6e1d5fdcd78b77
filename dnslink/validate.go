package dnslink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSSEC validation from the configured trust anchor (RFC 4033-4035), using
// miekg/dns for the cryptography: a record set validates when an RRSIG
// within its validity period verifies with a DNSKEY of the signer zone, and
// that zone's DNSKEY set validates through DS records signed by its parent,
// up to the anchor. NSEC3 and wildcard-expanded answers are not handled:
// under the anchor they are reported as bogus rather than trusted.

// underAnchor reports whether name must validate.
func (r *Resolver) underAnchor(name string) bool {
	return r.anchorZone != "" && dns.IsSubDomain(r.anchorZone, name)
}

// checkSet reports whether set validates. Under the trust anchor a set that
// does not validate is an error wrapping ErrBogus.
func (r *Resolver) checkSet(ctx context.Context, m *dns.Msg, set *sigSet) (bool, error) {
	if r.anchorZone == "" {
		return r.cfg.TrustAD && m.AuthenticatedData, nil
	}
	owner := dns.CanonicalName(set.rrs[0].Header().Name)
	if !r.underAnchor(owner) {
		return false, nil
	}
	if err := r.verifySet(ctx, set, 0); err != nil {
		return false, fmt.Errorf("%s %s: %w", owner, dns.TypeToString[set.rrs[0].Header().Rrtype], err)
	}
	return true, nil
}

// verifySet checks the signatures of set against its signer's validated
// keys.
func (r *Resolver) verifySet(ctx context.Context, set *sigSet, depth int) error {
	owner := dns.CanonicalName(set.rrs[0].Header().Name)
	if len(set.sigs) == 0 {
		return fmt.Errorf("no RRSIG: %w", ErrBogus)
	}
	var lastErr error
	for i, sig := range set.sigs {
		if i == maxSigAttempts {
			return fmt.Errorf("%d RRSIGs over one set, none of the first %d verifies: %w", len(set.sigs), maxSigAttempts, ErrBogus)
		}
		signer := dns.CanonicalName(sig.SignerName)
		if !dns.IsSubDomain(signer, owner) || !r.underAnchor(signer) {
			lastErr = fmt.Errorf("signer %s is not between the trust anchor %s and the name: %w", signer, r.anchorZone, ErrBogus)
			continue
		}
		if int(sig.Labels) < dns.CountLabel(owner) {
			lastErr = fmt.Errorf("wildcard-expanded answers are not supported: %w", ErrBogus)
			continue
		}
		keys, err := r.zoneKeys(ctx, signer, depth+1)
		if err != nil {
			return err
		}
		if err := verifyWith(sig, keys, set.rrs); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// maxSigAttempts bounds the signature checks spent on one RRset and one
// signature: a hostile zone can publish many signatures and many keys with
// the same key tag to make a validator burn CPU (KeyTrap, CVE-2023-50387).
// Real zones need one or two (a key rollover).
const maxSigAttempts = 4

func verifyWith(sig *dns.RRSIG, keys []*dns.DNSKEY, rrs []dns.RR) error {
	if !sig.ValidityPeriod(time.Now()) {
		return fmt.Errorf("RRSIG by %s (key %d) outside its validity period: %w", sig.SignerName, sig.KeyTag, ErrBogus)
	}
	tries := 0
	for _, k := range keys {
		if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
			continue
		}
		if tries++; tries > maxSigAttempts {
			break
		}
		if err := sig.Verify(k, rrs); err == nil {
			return nil
		}
	}
	return fmt.Errorf("RRSIG by %s (key %d) does not verify: %w", sig.SignerName, sig.KeyTag, ErrBogus)
}

// zoneKeys returns the validated DNSKEYs of zone.
func (r *Resolver) zoneKeys(ctx context.Context, zone string, depth int) ([]*dns.DNSKEY, error) {
	if depth > r.cfg.MaxDepth {
		return nil, fmt.Errorf("chain of trust longer than %d: %w", r.cfg.MaxDepth, ErrLimit)
	}
	now := time.Now()
	r.mu.Lock()
	e, ok := r.keys[zone]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.keys, nil
	}
	m, err := r.exchange(ctx, zone, dns.TypeDNSKEY)
	if err != nil {
		return nil, err
	}
	if countRRs(m.Answer) > r.cfg.MaxRecords {
		return nil, fmt.Errorf("DNSKEY set of %s too large: %w", zone, ErrLimit)
	}
	set := groupSets(m.Answer)[setKey{zone, dns.TypeDNSKEY}]
	if set == nil {
		return nil, fmt.Errorf("no DNSKEY for %s: %w", zone, ErrBogus)
	}
	var keys []*dns.DNSKEY
	for _, rr := range set.rrs {
		keys = append(keys, rr.(*dns.DNSKEY))
	}
	// The keys allowed to sign the DNSKEY set: those the anchor or the
	// parent's DS records name.
	var dsSet []dns.RR
	if zone == r.anchorZone {
		dsSet = r.anchor
	} else {
		parent := parentName(zone)
		if parent == "" || !r.underAnchor(parent) {
			return nil, fmt.Errorf("zone %s is outside the trust anchor %s: %w", zone, r.anchorZone, ErrBogus)
		}
		dm, err := r.exchange(ctx, zone, dns.TypeDS)
		if err != nil {
			return nil, err
		}
		ds := groupSets(dm.Answer)[setKey{zone, dns.TypeDS}]
		if ds == nil {
			return nil, fmt.Errorf("no DS for %s (insecure delegations below the trust anchor are not supported): %w", zone, ErrBogus)
		}
		if err := r.verifySet(ctx, ds, depth); err != nil {
			return nil, fmt.Errorf("DS of %s: %w", zone, err)
		}
		dsSet = ds.rrs
	}
	var entry []*dns.DNSKEY
	for _, k := range keys {
		if matchesAnchor(k, dsSet) {
			entry = append(entry, k)
		}
	}
	if len(entry) == 0 {
		return nil, fmt.Errorf("no DNSKEY of %s matches its DS or trust anchor: %w", zone, ErrBogus)
	}
	var verr error = fmt.Errorf("DNSKEY set of %s is not signed by a trusted key: %w", zone, ErrBogus)
	minTTL := set.rrs[0].Header().Ttl
	for i, sig := range set.sigs {
		if i == maxSigAttempts {
			break
		}
		if dns.CanonicalName(sig.SignerName) != zone {
			continue
		}
		if err := verifyWith(sig, entry, set.rrs); err == nil {
			verr = nil
			if exp := time.Unix(int64(sig.Expiration), 0); exp.Before(now.Add(time.Duration(minTTL) * time.Second)) {
				minTTL = uint32(max(0, exp.Sub(now).Seconds()))
			}
			break
		} else {
			verr = fmt.Errorf("DNSKEY set of %s: %w", zone, err)
		}
	}
	if verr != nil {
		return nil, verr
	}
	ttl := min(time.Duration(minTTL)*time.Second, time.Hour)
	r.mu.Lock()
	if len(r.keys) > 1024 { // bound the cache; zones are few
		clear(r.keys)
	}
	r.keys[zone] = keyEntry{keys: keys, expires: now.Add(ttl)}
	r.mu.Unlock()
	return keys, nil
}

// matchesAnchor reports whether k is named by one of the DS or DNSKEY
// records in anchors.
func matchesAnchor(k *dns.DNSKEY, anchors []dns.RR) bool {
	for _, a := range anchors {
		switch a := a.(type) {
		case *dns.DNSKEY:
			if a.Algorithm == k.Algorithm && a.Flags == k.Flags && a.PublicKey == k.PublicKey {
				return true
			}
		case *dns.DS:
			if a.KeyTag != k.KeyTag() || a.Algorithm != k.Algorithm {
				continue
			}
			if d := k.ToDS(a.DigestType); d != nil && strings.EqualFold(d.Digest, a.Digest) {
				return true
			}
		}
	}
	return false
}

// checkDenial reports whether the absence of name/qtype in m is proven by
// signed NSEC records. Under the trust anchor an unproven denial is an
// error wrapping ErrBogus.
func (r *Resolver) checkDenial(ctx context.Context, m *dns.Msg, name string, qtype uint16) (bool, error) {
	if r.anchorZone == "" {
		return r.cfg.TrustAD && m.AuthenticatedData, nil
	}
	if !r.underAnchor(name) {
		return false, nil
	}
	var nsecs []*dns.NSEC
	for k, set := range groupSets(m.Ns) {
		if k.rtype != dns.TypeNSEC {
			continue
		}
		if err := r.verifySet(ctx, set, 0); err != nil {
			return false, fmt.Errorf("denial of %s: NSEC %s: %w", name, k.name, err)
		}
		for _, rr := range set.rrs {
			nsecs = append(nsecs, rr.(*dns.NSEC))
		}
	}
	if len(nsecs) == 0 {
		return false, fmt.Errorf("denial of %s without NSEC records (NSEC3 is not supported): %w", name, ErrBogus)
	}
	if m.Rcode == dns.RcodeNameError {
		if provesNXDomain(nsecs, name) {
			return true, nil
		}
		return false, fmt.Errorf("NSEC records do not prove %s does not exist: %w", name, ErrBogus)
	}
	for _, n := range nsecs {
		owner := dns.CanonicalName(n.Hdr.Name)
		if owner == name && !hasType(n, qtype) && !hasType(n, dns.TypeCNAME) {
			return true, nil // NODATA
		}
		// Empty non-terminal: the NSEC covering name leads to a name below it.
		if covers(n, name) && dns.IsSubDomain(name, dns.CanonicalName(n.NextDomain)) {
			return true, nil
		}
	}
	return false, fmt.Errorf("NSEC records do not prove %s has no %s: %w", name, dns.TypeToString[qtype], ErrBogus)
}

func hasType(n *dns.NSEC, t uint16) bool {
	for _, b := range n.TypeBitMap {
		if b == t {
			return true
		}
	}
	return false
}

// covers reports whether n proves name absent: owner < name < next in
// canonical order, where the last NSEC of a zone wraps to the apex.
func covers(n *dns.NSEC, name string) bool {
	owner, next := dns.CanonicalName(n.Hdr.Name), dns.CanonicalName(n.NextDomain)
	if canonicalCompare(owner, name) >= 0 {
		return false
	}
	return canonicalCompare(name, next) < 0 || canonicalCompare(next, owner) <= 0
}

// provesNXDomain checks RFC 4035 5.4: one NSEC covers name, and one covers
// the wildcard at the closest encloser.
func provesNXDomain(nsecs []*dns.NSEC, name string) bool {
	var c *dns.NSEC
	for _, n := range nsecs {
		if covers(n, name) {
			c = n
			break
		}
	}
	if c == nil {
		return false
	}
	// The closest encloser is the longest ancestor of name shared with the
	// covering NSEC's owner or next name.
	ce := commonAncestor(name, dns.CanonicalName(c.Hdr.Name))
	if a := commonAncestor(name, dns.CanonicalName(c.NextDomain)); dns.CountLabel(a) > dns.CountLabel(ce) {
		ce = a
	}
	wild := "*." + ce
	for _, n := range nsecs {
		if covers(n, wild) {
			return true
		}
	}
	return false
}

func commonAncestor(a, b string) string {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	var common []string
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0 && strings.EqualFold(la[i], lb[j]); i, j = i-1, j-1 {
		common = append([]string{la[i]}, common...)
	}
	if len(common) == 0 {
		return "."
	}
	return dns.CanonicalName(strings.Join(common, "."))
}
