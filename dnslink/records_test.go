package dnslink

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/multiformats/go-multiaddr"
)

type tsvCase struct {
	line     int
	in, want string
}

// readTSV reads testdata/<name>: one case a line, input TAB expected.
func readTSV(t testing.TB, name string) []tsvCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []tsvCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		i := strings.LastIndexByte(l, '\t')
		if i < 0 {
			t.Fatalf("%s:%d: no tab", name, n)
		}
		cases = append(cases, tsvCase{n, l[:i], l[i+1:]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", name)
	}
	return cases
}

func checkOutcome(t *testing.T, c tsvCase, got string, err error) {
	t.Helper()
	switch c.want {
	case "NOTRECORD":
		if !errors.Is(err, ErrNotRecord) {
			t.Errorf("line %d: %q: got (%q, %v), want ErrNotRecord", c.line, c.in, got, err)
		}
	case "ERR":
		if err == nil || errors.Is(err, ErrNotRecord) {
			t.Errorf("line %d: %q: got (%q, %v), want a parse error", c.line, c.in, got, err)
		}
	default:
		if err != nil || got != c.want {
			t.Errorf("line %d: %q: got (%q, %v), want %q", c.line, c.in, got, err, c.want)
		}
	}
}

func TestParseDNSLink(t *testing.T) {
	for _, c := range readTSV(t, "dnslink.tsv") {
		l, err := ParseDNSLink(c.in)
		got := ""
		if err == nil {
			got = l.String()
			if l.TXT() != "dnslink="+got {
				t.Errorf("line %d: TXT() = %q", c.line, l.TXT())
			}
		}
		checkOutcome(t, c, got, err)
	}
}

func TestParseDNSAddr(t *testing.T) {
	for _, c := range readTSV(t, "dnsaddr.tsv") {
		ma, err := ParseDNSAddr(c.in)
		got := ""
		if err == nil {
			got = ma.String()
		}
		checkOutcome(t, c, got, err)
	}
}

func TestParsePCNode(t *testing.T) {
	for _, c := range readTSV(t, "pcnode.tsv") {
		p, err := ParsePCNode(c.in)
		got := ""
		if err == nil {
			got = p.TXT()
		}
		checkOutcome(t, c, got, err)
	}
}

func TestChooseDNSLink(t *testing.T) {
	const (
		a = "dnslink=/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
		b = "dnslink=/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
		n = "dnslink=/ipns/example.org"
	)
	tests := []struct {
		name string
		txts []string
		want string // "" = ErrNotFound
	}{
		{"one", []string{b}, b},
		{"sorted regardless of order", []string{n, b, a}, a},
		{"sorted regardless of order 2", []string{a, n, b}, a},
		{"non-dnslink ignored", []string{"v=spf1 -all", "google-site-verification=x", n}, n},
		{"invalid ignored", []string{"dnslink=/ipfs/notacid", n}, n},
		{"none", []string{"v=spf1 -all"}, ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ChooseDNSLink(tt.txts)
			if tt.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got (%v, %v), want ErrNotFound", l, err)
				}
				return
			}
			if err != nil || l.TXT() != tt.want {
				t.Fatalf("got (%v, %v), want %s", l.TXT(), err, tt.want)
			}
		})
	}
}

func TestLinkCID(t *testing.T) {
	l, err := ParseDNSLink("dnslink=/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/a")
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.CID()
	if err != nil {
		t.Fatal(err)
	}
	if got := NewIPFSLink(c, "/a"); got != l {
		t.Fatalf("NewIPFSLink = %v, want %v", got, l)
	}
	if _, err := (Link{Namespace: "ipns", ID: "x"}).CID(); err == nil {
		t.Fatal("CID of an ipns link succeeded")
	}
}

func TestNamesAndTXT(t *testing.T) {
	if got := DNSLinkName("Example.ORG"); got != "_dnslink.example.org." {
		t.Errorf("DNSLinkName = %q", got)
	}
	if got := DNSAddrName("example.org."); got != "_dnsaddr.example.org." {
		t.Errorf("DNSAddrName = %q", got)
	}
	if got := PCNodeName("a.example.org"); got != "_pcnode.a.example.org." {
		t.Errorf("PCNodeName = %q", got)
	}
	long := strings.Repeat("x", 600)
	parts := SplitTXT(long)
	if diff := cmp.Diff([]int{255, 255, 90}, []int{len(parts[0]), len(parts[1]), len(parts[2])}); diff != "" {
		t.Errorf("SplitTXT lengths: %s", diff)
	}
	if got := TXTValue(&dns.TXT{Txt: parts}); got != long {
		t.Errorf("TXTValue(SplitTXT(v)) != v")
	}
	// A value split over strings survives the wire format unchanged.
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: SplitTXT("dnslink=/ipns/" + long)}
	m := new(dns.Msg)
	m.Answer = []dns.RR{rr}
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var m2 dns.Msg
	if err := m2.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	l, err := ParseDNSLink(TXTValue(m2.Answer[0].(*dns.TXT)))
	if err != nil || l.ID != long {
		t.Fatalf("long link after wire round trip: %v %v", l, err)
	}
}

func seedTSV(f *testing.F, name string) {
	for _, c := range readTSV(f, name) {
		f.Add(c.in)
	}
}

// FuzzParseDNSLink checks that parsing never panics and that a parsed link
// formats to a value that parses back to the same link.
func FuzzParseDNSLink(f *testing.F) {
	seedTSV(f, "dnslink.tsv")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseDNSLink(s)
		if err != nil {
			return
		}
		if l.Namespace == "" || l.ID == "" || (l.Path != "" && l.Path[0] != '/') {
			t.Fatalf("parsed link breaks its invariants: %#v", l)
		}
		l2, err := ParseDNSLink(l.TXT())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", l.TXT(), err)
		}
		if l2 != l {
			t.Fatalf("round trip: %#v != %#v", l2, l)
		}
	})
}

// FuzzParseDNSAddr checks the dnsaddr round trip: the canonical form parses
// back to the same bytes.
func FuzzParseDNSAddr(f *testing.F) {
	seedTSV(f, "dnsaddr.tsv")
	f.Fuzz(func(t *testing.T, s string) {
		ma, err := ParseDNSAddr(s)
		if err != nil {
			return
		}
		ma2, err := ParseDNSAddr(FormatDNSAddr(ma))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", FormatDNSAddr(ma), err)
		}
		if !ma.Equal(ma2) {
			t.Fatalf("round trip: %s != %s", ma2, ma)
		}
		if _, err := multiaddr.NewMultiaddrBytes(ma.Bytes()); err != nil {
			t.Fatalf("binary form of %s does not parse: %v", ma, err)
		}
	})
}

// FuzzParsePCNode checks that a parsed record formats to a value that parses
// back to the same record, and that the format is canonical.
func FuzzParsePCNode(f *testing.F) {
	seedTSV(f, "pcnode.tsv")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePCNode(s)
		if err != nil {
			return
		}
		v := p.TXT()
		p2, err := ParsePCNode(v)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", v, err)
		}
		if diff := cmp.Diff(p, p2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if p2.TXT() != v {
			t.Fatalf("format not canonical: %q then %q", v, p2.TXT())
		}
	})
}
