package dnslink

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"
)

// Prefixes of the owner names and TXT values this package reads and writes.
const (
	DNSLinkLabel = "_dnslink" // DNSLink records live at _dnslink.<domain>
	DNSAddrLabel = "_dnsaddr" // dnsaddr records live at _dnsaddr.<domain>
	PCNodeLabel  = "_pcnode"  // the pcnode record lives at _pcnode.<domain>

	dnslinkPrefix = "dnslink="
	dnsaddrPrefix = "dnsaddr="
	pcnodePrefix  = "pcnode="

	// PCNodeVersion is the only version of the _pcnode record this package
	// writes and accepts.
	PCNodeVersion = "v1"
)

// Errors callers branch on. Each is wrapped with the operation and the name.
var (
	// ErrNotRecord marks a TXT value that is not a DNSLink, dnsaddr or
	// pcnode record at all (wrong prefix); resolvers skip such values.
	ErrNotRecord = errors.New("not a record of this kind")
	// ErrNotFound: the name has no record of the kind asked for.
	ErrNotFound = errors.New("no record found")
	// ErrLimit: an answer exceeded a configured bound (size, count, depth)
	// or looped.
	ErrLimit = errors.New("limit exceeded")
	// ErrBogus: DNSSEC validation was required and failed.
	ErrBogus = errors.New("DNSSEC validation failed")
)

// DNSLinkName returns the owner name of the DNSLink records of domain:
// "_dnslink.<domain>." (fully qualified, lower case).
func DNSLinkName(domain string) string { return prefixName(DNSLinkLabel, domain) }

// DNSAddrName returns "_dnsaddr.<domain>.".
func DNSAddrName(domain string) string { return prefixName(DNSAddrLabel, domain) }

// PCNodeName returns "_pcnode.<domain>.".
func PCNodeName(domain string) string { return prefixName(PCNodeLabel, domain) }

func prefixName(label, domain string) string {
	d := dns.CanonicalName(domain)
	if d == "." {
		return label + "."
	}
	return label + "." + d
}

// TXTValue joins the character-strings of one TXT record into its value, as
// DNSLink and dnsaddr readers do (a value longer than 255 bytes is split over
// several strings of one record).
func TXTValue(t *dns.TXT) string { return strings.Join(t.Txt, "") }

// SplitTXT splits a value into the 255-byte character-strings of one TXT
// record; TXTValue reverses it.
func SplitTXT(v string) []string {
	if v == "" {
		return []string{""}
	}
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// Link is one DNSLink value: /<Namespace>/<ID><Path>.
//
// Namespace and ID are never empty in a parsed Link. Path is "" or starts
// with "/". Namespaces other than ipfs and ipns are kept as they are, as the
// specification asks.
type Link struct {
	Namespace string // "ipfs", "ipns", or any other namespace
	ID        string // a CID for ipfs; a key, CID or domain for ipns
	Path      string // "" or "/..."
}

// String returns the content path, "/ipfs/<cid>/path".
func (l Link) String() string { return "/" + l.Namespace + "/" + l.ID + l.Path }

// TXT returns the TXT value, "dnslink=/ipfs/<cid>/path".
func (l Link) TXT() string { return dnslinkPrefix + l.String() }

// CID returns the CID of an /ipfs/ link. It fails for other namespaces.
func (l Link) CID() (cid.Cid, error) {
	if l.Namespace != "ipfs" {
		return cid.Undef, fmt.Errorf("dnslink: cid of %s: namespace is not ipfs", l)
	}
	return cid.Decode(l.ID)
}

// NewIPFSLink returns the link /ipfs/<c><path>; path is "" or starts with "/".
func NewIPFSLink(c cid.Cid, path string) Link {
	return Link{Namespace: "ipfs", ID: c.String(), Path: path}
}

// ParseDNSLink parses one TXT value. A value that does not start with
// "dnslink=" returns an error wrapping ErrNotRecord; a malformed DNSLink
// (no leading "/", no namespace, no identifier, characters outside printable
// ASCII, an /ipfs/ identifier that is not a CID) returns another error.
// Surrounding white space of the path is ignored, as in the reference
// implementation.
func ParseDNSLink(txt string) (Link, error) {
	rest, ok := strings.CutPrefix(txt, dnslinkPrefix)
	if !ok {
		return Link{}, fmt.Errorf("dnslink: parse %q: %w", clip(txt), ErrNotRecord)
	}
	v := strings.TrimSpace(rest)
	bad := func(why string) (Link, error) {
		return Link{}, fmt.Errorf("dnslink: parse %q: %s", clip(txt), why)
	}
	if !strings.HasPrefix(v, "/") {
		return bad("value must start with /")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return bad("value may contain only printable ASCII")
		}
	}
	ns, after, _ := strings.Cut(v[1:], "/")
	if ns == "" {
		return bad("namespace missing (want /namespace/identifier)")
	}
	id, path, hasPath := strings.Cut(after, "/")
	if id == "" {
		return bad("identifier missing (want /namespace/identifier)")
	}
	if strings.TrimSpace(id) != id || strings.TrimSpace(ns) != ns {
		return bad("white space around namespace or identifier")
	}
	l := Link{Namespace: ns, ID: id}
	if hasPath {
		l.Path = "/" + path
	}
	if ns == "ipfs" {
		if _, err := cid.Decode(id); err != nil {
			return bad("identifier is not a CID: " + err.Error())
		}
	}
	return l, nil
}

// ChooseDNSLink picks the DNSLink among the TXT values of one name the way
// the specification asks: values that are not DNSLink records are ignored,
// malformed DNSLink records are ignored, and of the valid ones the
// lexicographically smallest value wins, so every resolver picks the same
// one however the server orders them. It returns an error wrapping
// ErrNotFound when none is valid.
func ChooseDNSLink(txts []string) (Link, error) {
	var valid []Link
	for _, t := range txts {
		if l, err := ParseDNSLink(t); err == nil {
			valid = append(valid, l)
		}
	}
	if len(valid) == 0 {
		return Link{}, fmt.Errorf("dnslink: choose: %w", ErrNotFound)
	}
	sort.Slice(valid, func(i, j int) bool { return valid[i].String() < valid[j].String() })
	return valid[0], nil
}

// ParseDNSAddr parses a dnsaddr TXT value, "dnsaddr=<multiaddr>". A value
// without the prefix returns an error wrapping ErrNotRecord.
func ParseDNSAddr(txt string) (multiaddr.Multiaddr, error) {
	rest, ok := strings.CutPrefix(txt, dnsaddrPrefix)
	if !ok {
		return nil, fmt.Errorf("dnslink: parse dnsaddr %q: %w", clip(txt), ErrNotRecord)
	}
	ma, err := multiaddr.NewMultiaddr(rest)
	if err != nil {
		return nil, fmt.Errorf("dnslink: parse dnsaddr %q: %w", clip(txt), err)
	}
	if len(ma) == 0 {
		return nil, fmt.Errorf("dnslink: parse dnsaddr %q: empty multiaddr", clip(txt))
	}
	return ma, nil
}

// FormatDNSAddr returns the TXT value "dnsaddr=<multiaddr>".
func FormatDNSAddr(ma multiaddr.Multiaddr) string { return dnsaddrPrefix + ma.String() }

// PCNode is pcnode's own record at _pcnode.<domain>: it ties the domain to
// one cloud. Its TXT value is
//
//	pcnode=v1 cloud=<cloud ID>[ <key>=<value>]...
//
// tokens separated by single spaces; keys are lower-case letters, digits and
// '-', each at most once; values are non-empty printable ASCII without
// spaces. Unknown keys are kept in order (Extra) so newer writers can add
// fields that older readers carry along.
type PCNode struct {
	Cloud string      // the cloud ID (the public form of the cloud key); never empty
	Extra [][2]string // further key=value pairs, in order; nil when none
}

// TXT returns the TXT value of the record.
func (p PCNode) TXT() string {
	var b strings.Builder
	b.WriteString(pcnodePrefix + PCNodeVersion + " cloud=" + p.Cloud)
	for _, kv := range p.Extra {
		b.WriteString(" " + kv[0] + "=" + kv[1])
	}
	return b.String()
}

// ParsePCNode parses a _pcnode TXT value. A value without the "pcnode="
// prefix returns an error wrapping ErrNotRecord; an unknown version, a
// missing cloud, a duplicate key or a malformed token returns another error.
func ParsePCNode(txt string) (PCNode, error) {
	if !strings.HasPrefix(txt, pcnodePrefix) {
		return PCNode{}, fmt.Errorf("dnslink: parse pcnode %q: %w", clip(txt), ErrNotRecord)
	}
	bad := func(why string) (PCNode, error) {
		return PCNode{}, fmt.Errorf("dnslink: parse pcnode %q: %s", clip(txt), why)
	}
	toks := strings.Split(txt, " ")
	if toks[0] != pcnodePrefix+PCNodeVersion {
		return bad("unsupported version (want " + pcnodePrefix + PCNodeVersion + ")")
	}
	var p PCNode
	seen := map[string]bool{}
	for _, t := range toks[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || !validKey(k) || !validValue(v) {
			return bad("malformed token " + quoted(t))
		}
		if seen[k] {
			return bad("duplicate key " + k)
		}
		seen[k] = true
		if k == "cloud" {
			p.Cloud = v
			continue
		}
		p.Extra = append(p.Extra, [2]string{k, v})
	}
	if p.Cloud == "" {
		return bad("cloud missing")
	}
	return p, nil
}

func validKey(k string) bool {
	if k == "" || k == "pcnode" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

func quoted(s string) string { return fmt.Sprintf("%q", clip(s)) }

// clip shortens values quoted in errors: a hostile 64 KiB TXT must not end
// up whole in a log line.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
