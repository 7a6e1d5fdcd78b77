package dnslink

import (
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TestServerOnQuery: the hook sees every query once, with its transport,
// cached answers and rate-limited ones included.
func TestServerOnQuery(t *testing.T) {
	z, err := NewZone(ZoneConfig{Zone: "example.org", Key: mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	z.SetRecords(testRecords(t))
	var mu sync.Mutex
	got := map[string]int{}
	srv := NewServer(ServerConfig{Listen: "127.0.0.1:0", RateLimit: -1, OnQuery: func(tr string) {
		mu.Lock()
		got[tr]++
		mu.Unlock()
	}}, z)
	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i := 0; i < 3; i++ { // built, then cached twice
		query(t, srv.Addr(), "udp", "_dnslink.example.org.", dns.TypeTXT, false, 1232)
	}
	query(t, srv.Addr(), "tcp", "_dnslink.example.org.", dns.TypeTXT, false, 1232)
	mu.Lock()
	defer mu.Unlock()
	if got["udp"] != 3 || got["tcp"] != 1 {
		t.Fatalf("OnQuery counts %v, want udp 3, tcp 1", got)
	}
}
