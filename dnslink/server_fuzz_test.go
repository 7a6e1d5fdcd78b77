package dnslink

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServerQuery feeds arbitrary datagrams to the UDP path without
// sockets. It must never panic, a reply must always be a well-formed DNS
// message answering the query's ID, and the fast wire parser must agree
// with the full unpacker on the cache key, so a fast-path answer is always
// the one the slow path would have given.
func FuzzServerQuery(f *testing.F) {
	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: key})
	if err != nil {
		f.Fatal(err)
	}
	if err := z.SetRecords(testRecords(f)); err != nil {
		f.Fatal(err)
	}
	s := NewServer(ServerConfig{RateLimit: -1}, z)
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"_dnslink.example.org.", dns.TypeTXT, true},
		{"_DNSADDR.Example.Org.", dns.TypeTXT, false},
		{"nothing.example.org.", dns.TypeA, true},
		{"example.com.", dns.TypeA, true},
		{"example.org.", dns.TypeANY, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if q.edns {
			m.SetEdns0(4096, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, _, ok := s.parseFast(b); ok {
			var m dns.Msg
			if err := m.Unpack(b); err == nil {
				size := dns.MinMsgSize
				if opt := m.IsEdns0(); opt != nil {
					size = max(dns.MinMsgSize, min(int(opt.UDPSize()), s.cfg.MaxMessage))
				}
				k2, ok2 := s.cacheKey(&m, size)
				if !ok2 || k2 != k {
					t.Fatalf("fast key %+v, slow key %+v (%v)", k, k2, ok2)
				}
			}
		}
		// Twice: the second answer may come from the cache.
		for i := 0; i < 2; i++ {
			out := s.handleUDP(b, testAddr)
			if out == nil {
				continue
			}
			var r dns.Msg
			if err := r.Unpack(out); err != nil {
				t.Fatalf("reply does not unpack: %v", err)
			}
			if !r.Response || len(b) < 2 || r.Id != uint16(b[0])<<8|uint16(b[1]) {
				t.Fatalf("reply is not a response to the query: %v", r.MsgHdr)
			}
			if len(out) > dns.MinMsgSize && (len(b) < 12 || b[11] == 0) {
				t.Fatalf("%d-byte UDP reply to a query without EDNS", len(out))
			}
		}
	})
}

var testAddr = netip.MustParseAddr("127.0.0.1")
