package share

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
)

const (
	testCID  = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	testPeer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	testKey  = "AGE-SECRET-KEY-1YFU33JD42CFZR0CY698LTT3H4A0J5PXKHC3DYJ88J9K7X08VZA6SNF422R"
)

func mustCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ma(t testing.TB, s string) multiaddr.Multiaddr {
	t.Helper()
	m, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var linkCmp = cmp.Options{
	cmp.Comparer(func(a, b cid.Cid) bool { return a.Equals(b) }),
	cmp.Comparer(func(a, b multiaddr.Multiaddr) bool { return a.Equal(b) }),
}

func TestLinkRoundTrip(t *testing.T) {
	root := mustCID(t, testCID)
	tests := []struct {
		name string
		link Link
		want string // the exact formatted link, "" to skip the check
	}{
		{"root only", Link{Root: root, Size: -1}, "pcnode://share/" + testCID + "?v=1"},
		{"name and size", Link{Root: root, Name: "photo.jpg", Size: 1234},
			"pcnode://share/" + testCID + "?v=1&n=photo.jpg&s=1234"},
		{"zero size", Link{Root: root, Size: 0}, "pcnode://share/" + testCID + "?v=1&s=0"},
		{"name needing escapes", Link{Root: root, Name: "a b+c&d=e#f%g ü.txt", Size: -1},
			"pcnode://share/" + testCID + "?v=1&n=a%20b%2Bc%26d%3De%23f%25g%20%C3%BC.txt"},
		{"providers", Link{Root: root, Size: 7, Providers: []multiaddr.Multiaddr{
			ma(t, "/ip4/127.0.0.1/tcp/4001/p2p/"+testPeer),
			ma(t, "/ip6/::1/udp/4001/quic-v1/p2p/"+testPeer),
			ma(t, "/dnsaddr/example.org"),
		}}, "pcnode://share/" + testCID + "?v=1&s=7&p=/ip4/127.0.0.1/tcp/4001/p2p/" + testPeer +
			"&p=/ip6/::1/udp/4001/quic-v1/p2p/" + testPeer + "&p=/dnsaddr/example.org"},
		{"expiry", Link{Root: root, Size: -1, Expires: time.Unix(1700000000, 0).UTC()},
			"pcnode://share/" + testCID + "?v=1&e=1700000000"},
		{"encrypted", Link{Root: root, Name: "secret.tar", Size: 99, Key: testKey, Sealed: true},
			"pcnode://share/" + testCID + "?v=1&n=secret.tar&s=99&c=age#k=" + testKey},
		// The fragment lost on the way: still known to be encrypted.
		{"encrypted without its key", Link{Root: root, Size: 99, Sealed: true},
			"pcnode://share/" + testCID + "?v=1&s=99&c=age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Format(tt.link)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && s != tt.want {
				t.Errorf("Format\n got %s\nwant %s", s, tt.want)
			}
			got, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%s): %v", s, err)
			}
			if diff := cmp.Diff(tt.link, got, linkCmp); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePlainForms(t *testing.T) {
	root := mustCID(t, testCID)
	for _, s := range []string{"ipfs://" + testCID, "IPFS://" + testCID + "/", "/ipfs/" + testCID, " ipfs://" + testCID + "\n"} {
		l, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if !l.Root.Equals(root) || l.Size != -1 || l.Encrypted() {
			t.Errorf("Parse(%q) = %+v", s, l)
		}
		if l.IPFS() != "ipfs://"+testCID {
			t.Errorf("IPFS() = %s", l.IPFS())
		}
	}
}

func TestParseErrors(t *testing.T) {
	base := "pcnode://share/" + testCID
	p := "/ip4/127.0.0.1/tcp/1/p2p/" + testPeer
	tests := []struct {
		name, link, want string
	}{
		{"empty", "", "want pcnode://share/"},
		{"no scheme", testCID, "want pcnode://share/"},
		{"other scheme", "https://share/" + testCID, `scheme "https"`},
		{"wrong host", "pcnode://shares/" + testCID, "want pcnode://share/<cid>"},
		{"userinfo", "pcnode://me@share/" + testCID, "want pcnode://share/<cid>"},
		{"no cid", "pcnode://share/", "want one CID"},
		{"bad cid", "pcnode://share/bafyxyz", "CID"},
		{"path after cid", base + "/x", "want one CID"},
		{"ipfs path", "ipfs://" + testCID + "/a/b", "want one CID"},
		{"newer version", base + "?v=2", "newer than this pcnode understands"},
		{"bad version", base + "?v=x", "version"},
		{"repeated name", base + "?n=a&n=b", "n= given 2 times"},
		{"negative size", base + "?s=-1", "size"},
		{"size not a number", base + "?s=12k", "size"},
		{"bad expiry", base + "?e=0", "expiry"},
		{"huge expiry", base + "?e=99999999999999", "expiry"},
		{"name with slash", base + "?n=a%2Fb", "path separator"},
		{"name dotdot", base + "?n=..", "name"},
		{"name control", base + "?n=a%0Ab", "control character"},
		{"bad provider", base + "?p=/ip4/1.2.3", "provider"},
		{"provider without peer", base + "?p=/ip4/127.0.0.1/tcp/1", "does not end in /p2p/"},
		{"too many providers", base + "?v=1" + strings.Repeat("&p="+p, MaxProviders+1), "provider hints"},
		{"bad fragment", base + "#key=" + testKey, "fragment must be k=<key>"},
		{"bad key", base + "#k=AGE-SECRET-KEY-1XYZ", "not an age X25519 identity"},
		{"too long", base + "?n=" + strings.Repeat("a", MaxLinkLen), "more than"},
		{"bad query escape", base + "?n=%zz", "query"},
		{"unknown cipher", base + "?c=aes", `cipher "aes"`},
		{"repeated cipher", base + "?c=age&c=age", "c= given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.link)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.link)
			}
			if !errors.Is(err, ErrLink) {
				t.Errorf("error %v does not wrap ErrLink", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestParseIgnoresUnknownParameters(t *testing.T) {
	l, err := Parse("pcnode://share/" + testCID + "?v=1&s=5&future=yes")
	if err != nil {
		t.Fatal(err)
	}
	if l.Size != 5 {
		t.Errorf("size %d", l.Size)
	}
}

func TestFormatBounds(t *testing.T) {
	root := mustCID(t, testCID)
	var many []multiaddr.Multiaddr
	for range MaxProviders + 1 {
		many = append(many, ma(t, "/ip4/127.0.0.1/tcp/1/p2p/"+testPeer))
	}
	long := ma(t, "/dns4/"+strings.Repeat("a", 60)+"."+strings.Repeat("b", 60)+"."+strings.Repeat("c", 60)+".org/tcp/1/p2p/"+testPeer)
	tests := []struct {
		name string
		link Link
	}{
		{"no root", Link{Size: -1}},
		{"too many providers", Link{Root: root, Size: -1, Providers: many}},
		{"too long", Link{Root: root, Size: -1, Providers: []multiaddr.Multiaddr{long, long, long, long, long, long, long, long}}},
		{"long name", Link{Root: root, Size: -1, Name: strings.Repeat("x", MaxNameLen+1)}},
		{"bad key", Link{Root: root, Size: -1, Key: "nope"}},
		{"size below -1", Link{Root: root, Size: -2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Format(tt.link); err == nil || !errors.Is(err, ErrLink) {
				t.Errorf("Format = %q, %v; want an ErrLink", s, err)
			}
		})
	}
}

func TestLinkExpired(t *testing.T) {
	at := time.Unix(1700000000, 0)
	l := Link{Expires: at}
	if l.Expired(at.Add(-time.Second)) || !l.Expired(at) {
		t.Error("expiry boundary wrong")
	}
	if (Link{}).Expired(at) {
		t.Error("a link without expiry expired")
	}
}

// FuzzParseLink checks that Parse never panics, that what it accepts
// formats back within the bounds, and that the formatted link parses to the
// same Link.
func FuzzParseLink(f *testing.F) {
	f.Add("pcnode://share/" + testCID + "?v=1&n=photo.jpg&s=1234&e=1700000000&p=/ip4/127.0.0.1/tcp/4001/p2p/" + testPeer + "&p=/dnsaddr/example.org#k=" + testKey)
	f.Add("ipfs://" + testCID)
	f.Add("/ipfs/" + testCID)
	f.Add("pcnode://share/" + testCID + "?n=%C3%BC&future=1")
	f.Add("pcnode://share/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG?s=0")
	f.Add("pcnode://share/" + testCID + "?v=2")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrLink) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrLink", s, err)
			}
			return
		}
		out, err := Format(l)
		if err != nil {
			// A link at the length bound can grow when re-encoded
			// (a CIDv0 becomes base32, escapes differ); nothing else may
			// fail.
			if strings.Contains(err.Error(), "bytes, more than") {
				return
			}
			t.Fatalf("Format(Parse(%q)): %v", s, err)
		}
		l2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v (formatted %q)", s, err, out)
		}
		if diff := cmp.Diff(l, l2, linkCmp); diff != "" {
			t.Fatalf("second round trip of %q differs (-first +second):\n%s", s, diff)
		}
	})
}
