package share

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
)

// Link format bounds. They keep a link short enough for a QR code (a
// version-40 QR holds 2,953 bytes in byte mode; 2048 leaves room for
// error correction) and give a parser a fixed budget whatever it is fed.
const (
	// LinkVersion is the version Format writes (v=1) and the newest Parse
	// accepts.
	LinkVersion = 1
	// MaxLinkLen is the longest link Format writes and Parse accepts.
	MaxLinkLen = 2048
	// MaxProviders is the most provider hints a link carries.
	MaxProviders = 8
	// MaxNameLen is the longest item name, in bytes.
	MaxNameLen = 255
	// Scheme is the link's URL scheme.
	Scheme = "pcnode"
	// CipherAge is the value of c= for a share encrypted with age, the
	// only cipher of link version 1.
	CipherAge = "age"
)

// ErrLink is wrapped by every error Parse and Format return for a
// malformed link, so callers can tell a bad link from a failed fetch.
var ErrLink = errors.New("invalid share link")

// Link is what a share link says. Only Root is required.
type Link struct {
	// Root is the UnixFS root of the item: for an encrypted share, of the
	// ciphertext.
	Root cid.Cid
	// Name is the item's file or folder name, "" when unknown. A reader
	// uses it as the default output name.
	Name string
	// Size is the item's size in bytes (of file data; for an encrypted
	// share, of the ciphertext), or -1 when unknown. A reader checks it
	// against what it fetched.
	Size int64
	// Expires is when the sharer stops serving, zero for never. A reader
	// refuses an expired link without asking anyone.
	Expires time.Time
	// Providers are addresses where the item can be fetched: full
	// multiaddrs ending in /p2p/<peer ID>, or /dnsaddr/<domain>.
	Providers []multiaddr.Multiaddr
	// Key is the age X25519 identity ("AGE-SECRET-KEY-1...") of an
	// encrypted share, "" for a plain one. It travels in the fragment.
	Key string
	// Sealed says the share is encrypted (c=age in the query), so that a
	// link whose fragment, and with it the key, was lost on the way is
	// recognised as such rather than read as a plain share of
	// ciphertext. Format writes it whenever Key is set; Parse sets it
	// when the link says c=age or carries a key.
	Sealed bool
}

// Encrypted reports whether the link is of an encrypted share, whether
// or not it carries the key.
func (l Link) Encrypted() bool { return l.Key != "" || l.Sealed }

// IPFS returns the plain ipfs://<cid> form, which any IPFS client opens.
// It names the ciphertext for an encrypted share, so callers print it for
// plain shares only.
func (l Link) IPFS() string { return "ipfs://" + l.Root.String() }

// Expired reports whether the link has expired at now.
func (l Link) Expired(now time.Time) bool {
	return !l.Expires.IsZero() && !now.Before(l.Expires)
}

// Format returns the link as
//
//	pcnode://share/<cid>?v=1&n=<name>&s=<size>&e=<unix>&c=age&p=<multiaddr>...#k=<key>
//
// with the CID in its canonical string form (base32 for CIDv1), n, s, e, c
// and p present only when set (c=age for an encrypted share), and the key
// in the fragment. It fails when the
// link breaks a bound (MaxLinkLen, MaxProviders, MaxNameLen) or a field is
// invalid; docs/SHARE.md has the grammar.
func Format(l Link) (string, error) {
	if err := l.check(); err != nil {
		return "", fmt.Errorf("share: format link: %w", err)
	}
	var b strings.Builder
	b.WriteString(Scheme + "://share/")
	b.WriteString(l.Root.String())
	b.WriteString("?v=" + strconv.Itoa(LinkVersion))
	if l.Name != "" {
		b.WriteString("&n=" + escape(l.Name))
	}
	if l.Size >= 0 {
		b.WriteString("&s=" + strconv.FormatInt(l.Size, 10))
	}
	if !l.Expires.IsZero() {
		b.WriteString("&e=" + strconv.FormatInt(l.Expires.Unix(), 10))
	}
	if l.Encrypted() {
		b.WriteString("&c=" + CipherAge)
	}
	for _, p := range l.Providers {
		b.WriteString("&p=" + escape(p.String()))
	}
	if l.Key != "" {
		b.WriteString("#k=" + l.Key)
	}
	if b.Len() > MaxLinkLen {
		return "", fmt.Errorf("share: format link: %w: %d bytes, more than %d (fewer provider hints?)", ErrLink, b.Len(), MaxLinkLen)
	}
	return b.String(), nil
}

func (l Link) check() error {
	if !l.Root.Defined() {
		return fmt.Errorf("%w: no root CID", ErrLink)
	}
	if err := checkName(l.Name); err != nil {
		return fmt.Errorf("%w: name: %w", ErrLink, err)
	}
	if l.Size < -1 {
		return fmt.Errorf("%w: size %d", ErrLink, l.Size)
	}
	if !l.Expires.IsZero() && l.Expires.Unix() <= 0 {
		return fmt.Errorf("%w: expiry %s before 1970", ErrLink, l.Expires)
	}
	if len(l.Providers) > MaxProviders {
		return fmt.Errorf("%w: %d provider hints, at most %d", ErrLink, len(l.Providers), MaxProviders)
	}
	for _, p := range l.Providers {
		if err := checkProvider(p); err != nil {
			return fmt.Errorf("%w: provider %s: %w", ErrLink, p, err)
		}
	}
	if l.Key != "" {
		if _, err := age.ParseX25519Identity(l.Key); err != nil {
			return fmt.Errorf("%w: key is not an age X25519 identity", ErrLink)
		}
	}
	return nil
}

// checkName accepts what can be one path element on every system pcnode
// writes to: no separators, no NUL or other control characters, not . or ..
func checkName(n string) error {
	switch {
	case n == "":
		return nil
	case len(n) > MaxNameLen:
		return fmt.Errorf("%d bytes, at most %d", len(n), MaxNameLen)
	case !utf8.ValidString(n):
		return errors.New("not UTF-8")
	case n == "." || n == "..":
		return fmt.Errorf("%q", n)
	case strings.ContainsAny(n, `/\`):
		return errors.New("contains a path separator")
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// checkProvider accepts a multiaddr that names a peer (/p2p/<id> last) or
// a /dnsaddr/<domain>, which resolves to such addresses.
func checkProvider(p multiaddr.Multiaddr) error {
	if len(p) == 0 {
		return errors.New("empty")
	}
	if p[0].Code() == multiaddr.P_DNSADDR && len(p) == 1 {
		return nil
	}
	if p[len(p)-1].Code() != multiaddr.P_P2P {
		return errors.New("does not end in /p2p/<peer ID> and is not /dnsaddr/<domain>")
	}
	return nil
}

// Parse reads a share link. It accepts the pcnode://share/ form (see
// Format), ipfs://<cid> and /ipfs/<cid> (a plain share with nothing but the
// root). Unknown query parameters are ignored, so later versions may add
// optional ones; a link of a newer version (v greater than LinkVersion) is
// refused, as is anything malformed, oversized or repeated. Every error
// wraps ErrLink and says what is wrong.
func Parse(s string) (Link, error) {
	if len(s) > MaxLinkLen {
		return Link{}, fmt.Errorf("share: parse link: %w: %d bytes, more than %d", ErrLink, len(s), MaxLinkLen)
	}
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "/ipfs/"); ok {
		return parsePlain(rest)
	}
	i := strings.Index(s, "://")
	if i < 0 {
		return Link{}, fmt.Errorf("share: parse link: %w: want pcnode://share/<cid>..., ipfs://<cid> or /ipfs/<cid>", ErrLink)
	}
	switch strings.ToLower(s[:i]) {
	case "ipfs":
		return parsePlain(s[i+3:])
	case Scheme:
	default:
		return Link{}, fmt.Errorf("share: parse link: %w: scheme %q, want %s or ipfs", ErrLink, s[:i], Scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Link{}, fmt.Errorf("share: parse link: %w: %w", ErrLink, err)
	}
	if u.Opaque != "" || u.User != nil || u.Host != "share" {
		return Link{}, fmt.Errorf("share: parse link: %w: want pcnode://share/<cid>", ErrLink)
	}
	root, err := parseRoot(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return Link{}, err
	}
	l := Link{Root: root, Size: -1}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Link{}, fmt.Errorf("share: parse link: %w: query: %w", ErrLink, err)
	}
	for k, vs := range q {
		if k != "p" && len(vs) > 1 {
			return Link{}, fmt.Errorf("share: parse link: %w: %s= given %d times", ErrLink, k, len(vs))
		}
	}
	if v := q.Get("v"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 1:
			return Link{}, fmt.Errorf("share: parse link: %w: version %q", ErrLink, v)
		case n > LinkVersion:
			return Link{}, fmt.Errorf("share: parse link: %w: version %d is newer than this pcnode understands (%d): upgrade pcnode", ErrLink, n, LinkVersion)
		}
	}
	l.Name = q.Get("n")
	if v, ok := q["s"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			return Link{}, fmt.Errorf("share: parse link: %w: size %q", ErrLink, v[0])
		}
		l.Size = n
	}
	if v, ok := q["e"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		// Up to year 9999, so that time.Unix stays exact and formattable.
		if err != nil || n <= 0 || n > 253402300799 {
			return Link{}, fmt.Errorf("share: parse link: %w: expiry %q", ErrLink, v[0])
		}
		l.Expires = time.Unix(n, 0).UTC()
	}
	if v, ok := q["c"]; ok {
		if v[0] != CipherAge {
			return Link{}, fmt.Errorf("share: parse link: %w: cipher %q is not one this pcnode knows (%s): upgrade pcnode", ErrLink, v[0], CipherAge)
		}
		l.Sealed = true
	}
	for _, p := range q["p"] {
		if len(l.Providers) == MaxProviders {
			return Link{}, fmt.Errorf("share: parse link: %w: more than %d provider hints", ErrLink, MaxProviders)
		}
		m, err := multiaddr.NewMultiaddr(p)
		if err != nil {
			return Link{}, fmt.Errorf("share: parse link: %w: provider %q: %w", ErrLink, p, err)
		}
		l.Providers = append(l.Providers, m)
	}
	if u.Fragment != "" {
		k, ok := strings.CutPrefix(u.Fragment, "k=")
		if !ok || k == "" {
			return Link{}, fmt.Errorf("share: parse link: %w: fragment must be k=<key>", ErrLink)
		}
		l.Key = k
		l.Sealed = true
	}
	if err := l.check(); err != nil {
		return Link{}, fmt.Errorf("share: parse link: %w", err)
	}
	return l, nil
}

func parsePlain(s string) (Link, error) {
	c, err := parseRoot(strings.TrimSuffix(s, "/"))
	if err != nil {
		return Link{}, err
	}
	return Link{Root: c, Size: -1}, nil
}

func parseRoot(s string) (cid.Cid, error) {
	if s == "" || strings.ContainsAny(s, "/?#") {
		return cid.Undef, fmt.Errorf("share: parse link: %w: want one CID after the scheme, got %q", ErrLink, s)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("share: parse link: %w: CID %q: %w", ErrLink, s, err)
	}
	return c, nil
}

// escape percent-encodes s for a query value, keeping the characters that
// RFC 3986 allows there unescaped ('/' and ':' make multiaddrs readable).
// '+', '&', '=', '#' and '%' are always escaped.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == ':', c == '@', c == ',':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
