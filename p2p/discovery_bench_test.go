package p2p

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDiscovery measures how long a freshly started member takes to
// connect to all its running siblings through each source alone:
//
//	go test -run XXX -bench Discovery -benchtime 5x ./p2p/
//
// dht-50: a private DHT of 50 hosts (47 strangers and 3 siblings that have
// provided the rendezvous key); the fresh member bootstraps from one
// stranger. dns: a DNSAddrs function lists the siblings. remembered: the
// peer file from an earlier run lists them. The metric is ms/connect-all,
// from Start to the last connection.
func BenchmarkDiscovery(b *testing.B) {
	secret := []byte("bench cloud secret, 32 bytes....")
	b.Run("dht-50", func(b *testing.B) {
		crowd := startCrowd(b, 47)
		members := newMemberSet()
		var sibs []*Host
		for i := range 3 {
			cfg := dhtConfig(b, crowd[i*10], crowd[i*10+3])
			cfg.RendezvousSecret = secret
			cfg.Members = members
			members.add(peerOf(b, cfg))
			sibs = append(sibs, startHost(b, cfg))
		}
		key := RendezvousKey(secret, time.Now()).Hash()
		waitForIn(b, time.Minute, "siblings provided", func() bool {
			n := 0
			for _, c := range crowd {
				ps, _ := c.dht.ProviderStore().GetProviders(context.Background(), key)
				n = max(n, len(ps))
			}
			return n >= len(sibs)
		})
		benchFresh(b, sibs, members, func(i int) Config {
			cfg := dhtConfig(b, crowd[(i*7)%len(crowd)])
			cfg.RendezvousSecret = secret
			return cfg
		})
	})
	b.Run("dns", func(b *testing.B) {
		members := newMemberSet()
		var sibs []*Host
		for range 3 {
			cfg := localConfig(b)
			cfg.DHT = DHTOff
			cfg.Members = members
			members.add(peerOf(b, cfg))
			sibs = append(sibs, startHost(b, cfg))
		}
		src := &dnsSource{}
		src.set(fullAddrs(sibs...))
		benchFresh(b, sibs, members, func(int) Config {
			cfg := localConfig(b)
			cfg.DHT = DHTOff
			cfg.DNSAddrs = src.lookup
			return cfg
		})
	})
	b.Run("remembered", func(b *testing.B) {
		members := newMemberSet()
		var sibs []*Host
		var peers []rememberedPeer
		for range 3 {
			cfg := localConfig(b)
			cfg.DHT = DHTOff
			cfg.Members = members
			members.add(peerOf(b, cfg))
			h := startHost(b, cfg)
			sibs = append(sibs, h)
			rp := rememberedPeer{ID: h.ID().String(), LastSeen: time.Now()}
			for _, a := range h.Libp2p().Addrs() {
				rp.Addrs = append(rp.Addrs, a.String())
			}
			peers = append(peers, rp)
		}
		file := b.TempDir() + "/peers.json"
		data, err := encodePeerFile(peers)
		if err != nil {
			b.Fatal(err)
		}
		benchFresh(b, sibs, members, func(int) Config {
			if err := writeFileAtomic(file, data); err != nil {
				b.Fatal(err)
			}
			cfg := localConfig(b)
			cfg.DHT = DHTOff
			cfg.PeerStoreFile = file
			return cfg
		})
	})
}

// benchFresh starts b.N fresh members from mk, one at a time, and reports
// the mean time from Start to a connection with every sibling.
func benchFresh(b *testing.B, sibs []*Host, members *memberSet, mk func(i int) Config) {
	b.Helper()
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		cfg := mk(i)
		cfg.Members = members
		members.add(peerOf(b, cfg))
		h, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		if err := h.Start(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		waitForIn(b, 30*time.Second, "connected to all siblings", func() bool { return connectedTo(h, ids(sibs...)...) })
		took := time.Since(start)
		total += took
		worst = max(worst, took)
		b.StopTimer()
		members.remove(h.ID())
		if err := h.Close(); err != nil {
			b.Fatal(err)
		}
		for _, s := range sibs {
			s.Disconnect(h.ID())
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/connect-all")
	b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
	b.ReportMetric(0, "ns/op")
}
