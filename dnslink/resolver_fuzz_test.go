package dnslink

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzResolverAnswer hands one arbitrary DNS message to the resolver as
// the answer to every question it asks, with and without a trust anchor.
// Whatever the message, resolution must end (bounded questions) without
// panicking, and a result may only be Validated when a trust anchor was
// configured and the message is signed.
func FuzzResolverAnswer(f *testing.F) {
	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: key})
	if err != nil {
		f.Fatal(err)
	}
	z.SetRecords(testRecords(f))
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_dnslink.example.org.", dns.TypeTXT},
		{"_dnsaddr.example.org.", dns.TypeTXT},
		{"example.org.", dns.TypeDNSKEY},
		{"nothing.example.org.", dns.TypeTXT},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.Response = true
		z.current().answer(m, q.name, q.qtype, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	anchor := z.DS().String()
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			return
		}
		for _, ta := range []string{"", anchor} {
			r, err := NewResolver(ResolverConfig{TrustAnchor: ta})
			if err != nil {
				t.Fatal(err)
			}
			asked := 0
			r.exchangeFn = func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
				if asked++; asked > 1000 {
					t.Fatalf("more than 1000 questions")
				}
				c := m.Copy()
				c.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
				return c, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := r.ResolveDNSLink(ctx, "example.org")
			if err == nil && res.Validated && ta == "" {
				t.Fatal("validated without a trust anchor")
			}
			a, err := r.ResolveDNSAddr(ctx, "example.org", "")
			if err == nil && a.Validated && ta == "" {
				t.Fatal("validated without a trust anchor")
			}
			if err == nil && len(a.Addrs) > 64 {
				t.Fatalf("%d addresses past the bound", len(a.Addrs))
			}
			r.ResolvePCNode(ctx, "example.org")
			cancel()
		}
	})
}
