package dnslink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// LoadResult is the outcome of LoadTest.
type LoadResult struct {
	Queries  int           // queries answered
	Errors   int           // timeouts, wrong IDs and answers other than NOERROR/NXDOMAIN
	Duration time.Duration // wall time of the run
	QPS      float64       // answered queries per second
	P50, P99 time.Duration // latency percentiles of answered queries
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%d queries in %v: %.0f qps, p50 %v, p99 %v, %d errors", r.Queries, r.Duration.Round(time.Millisecond), r.QPS, r.P50, r.P99, r.Errors)
}

// LoadTest measures an authoritative server for zone at addr over UDP the
// way dnsperf does: concurrency queries are kept in flight (spread over up
// to four sockets), cycling through the records pcnode serves (TXT at
// _dnsaddr, _pcnode, _dnslink, the SOA and a name that does not exist) with
// the DNSSEC OK bit set, until queries answers have come back or ctx ends.
// A query unanswered after a second counts as an error. It is the figure of
// `make bench` and works against any server (Knot, BIND) as well.
func LoadTest(ctx context.Context, addr, zone string, queries, concurrency int) (LoadResult, error) {
	if queries <= 0 || concurrency <= 0 {
		return LoadResult{}, errors.New("dnslink: load test: queries and concurrency must be positive")
	}
	zone = dns.CanonicalName(zone)
	qs := []struct {
		name  string
		qtype uint16
	}{
		{DNSAddrName(zone), dns.TypeTXT},
		{PCNodeName(zone), dns.TypeTXT},
		{DNSLinkName(zone), dns.TypeTXT},
		{zone, dns.TypeSOA},
		{"nonexistent-name." + zone, dns.TypeA},
	}
	var packed [][]byte
	for _, q := range qs {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.RecursionDesired = false
		m.SetEdns0(1232, true)
		b, err := m.Pack()
		if err != nil {
			return LoadResult{}, fmt.Errorf("dnslink: load test: %w", err)
		}
		packed = append(packed, b)
	}
	sockets := min(concurrency, 4, queries)
	type part struct {
		lat  []time.Duration
		errs int
		err  error
	}
	parts := make([]part, sockets)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range sockets {
		quota := queries / sockets
		if i < queries%sockets {
			quota++
		}
		window := concurrency / sockets
		if i < concurrency%sockets {
			window++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i].lat, parts[i].errs, parts[i].err = loadSocket(ctx, addr, packed, quota, window)
		}()
	}
	wg.Wait()
	res := LoadResult{Duration: time.Since(start)}
	var latencies []time.Duration
	for _, p := range parts {
		if p.err != nil {
			return res, fmt.Errorf("dnslink: load test %s: %w", addr, p.err)
		}
		latencies = append(latencies, p.lat...)
		res.Errors += p.errs
	}
	res.Queries = len(latencies)
	if len(latencies) == 0 {
		return res, fmt.Errorf("dnslink: load test %s: no answers", addr)
	}
	slices.Sort(latencies)
	res.QPS = float64(res.Queries) / res.Duration.Seconds()
	res.P50 = latencies[len(latencies)/2]
	res.P99 = latencies[len(latencies)*99/100]
	return res, ctx.Err()
}

// loadSocket sends quota queries over one socket with at most window in
// flight, and returns the latencies of the answers and the error count.
func loadSocket(ctx context.Context, addr string, packed [][]byte, quota, window int) ([]time.Duration, int, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	var (
		sentAt   [1 << 16]atomic.Int64 // by query ID; 0 = not in flight
		slots    = make(chan struct{}, window)
		finished atomic.Int64 // answered, expired or failed to send
		errs     atomic.Int64
		lat      = make([]time.Duration, 0, quota)
		done     = make(chan struct{})
	)
	release := func() {
		finished.Add(1)
		<-slots
	}
	go func() { // receiver
		defer close(done)
		buf := make([]byte, 4096)
		for finished.Load() < int64(quota) && ctx.Err() == nil {
			conn.SetReadDeadline(time.Now().Add(time.Second))
			n, err := conn.Read(buf)
			now := time.Now().UnixNano()
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return
				}
				for i := range sentAt { // expire queries older than a second
					if t := sentAt[i].Load(); t != 0 && now-t > int64(time.Second) && sentAt[i].CompareAndSwap(t, 0) {
						errs.Add(1)
						release()
					}
				}
				continue
			}
			if n < 12 {
				continue
			}
			t0 := sentAt[binary.BigEndian.Uint16(buf)].Swap(0)
			if t0 == 0 {
				continue // a late answer to an expired query
			}
			rcode := buf[3] & 0x0f
			if rcode != dns.RcodeSuccess && rcode != dns.RcodeNameError || buf[2]&0x02 != 0 { // TC set
				errs.Add(1)
			} else {
				lat = append(lat, time.Duration(now-t0))
			}
			release()
		}
	}()
	q := make([]byte, 0, 512)
	for i := 0; i < quota; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			conn.Close()
			<-done
			return lat, int(errs.Load()), nil
		case <-done:
			return lat, int(errs.Load()), nil
		}
		q = append(q[:0], packed[i%len(packed)]...)
		id := uint16(i)
		binary.BigEndian.PutUint16(q, id)
		sentAt[id].Store(time.Now().UnixNano())
		if _, err := conn.Write(q); err != nil {
			if t := sentAt[id].Load(); t != 0 && sentAt[id].CompareAndSwap(t, 0) {
				errs.Add(1)
				release()
			}
		}
	}
	<-done
	return lat, int(errs.Load()), nil
}
