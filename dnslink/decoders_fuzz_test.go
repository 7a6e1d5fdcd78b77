package dnslink

import (
	"testing"
)

// FuzzParseTSIG: the dns.tsig setting is user text; what parses prints back
// to a string that parses to the same key.
func FuzzParseTSIG(f *testing.F) {
	for _, s := range []string{"key:hmac-sha256:c2VjcmV0", "key:c2VjcmV0", "key:md5:c2VjcmV0", "", ":::", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseTSIG(s)
		if err != nil {
			return
		}
		k2, err := ParseTSIG(k.String())
		if err != nil || k2 != k {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, k2, err, k)
		}
	})
}

// FuzzParseTrustAnchor: a configured trust anchor is zone-file text; only
// DS and DNSKEY records of one owner are accepted.
func FuzzParseTrustAnchor(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.DS("example.org").String())
	f.Add(k.DNSKEY("example.org", 300).String())
	f.Add("example.org. 300 IN A 192.0.2.1")
	f.Add("$INCLUDE /etc/passwd")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		rrs, err := ParseTrustAnchor(s)
		if err != nil {
			return
		}
		for _, rr := range rrs {
			if rr.Header().Name != rrs[0].Header().Name {
				t.Fatalf("owners %q and %q in one anchor", rrs[0].Header().Name, rr.Header().Name)
			}
		}
	})
}

// FuzzParseKey: the zone signing key file in the home may be damaged;
// what parses marshals back to a key that parses.
func FuzzParseKey(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			return
		}
		b, err := k.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKey(b); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
