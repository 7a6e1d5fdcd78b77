package dnslink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
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

// LoadTest measures an authoritative server for zone at addr over UDP:
// concurrency clients each send a query and wait for its answer, cycling
// through the records pcnode serves (TXT at _dnsaddr, _pcnode, _dnslink,
// the SOA and a name that does not exist) with the DNSSEC OK bit set, until
// queries answers have come back or ctx ends. It is the figure of
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
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, queries)
		errs      int
		next      int
		firstErr  error
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= queries {
			return 0, false
		}
		next++
		return next, true
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer conn.Close()
			buf := make([]byte, 4096)
			local := make([]time.Duration, 0, queries/concurrency+1)
			localErrs := 0
			for ctx.Err() == nil {
				i, ok := take()
				if !ok {
					break
				}
				q := slices.Clone(packed[i%len(packed)])
				id := uint16(i)
				binary.BigEndian.PutUint16(q, id)
				t0 := time.Now()
				conn.SetDeadline(t0.Add(time.Second))
				if _, err := conn.Write(q); err != nil {
					localErrs++
					continue
				}
				for {
					n, err := conn.Read(buf)
					if err != nil {
						localErrs++
						break
					}
					if n < 12 || binary.BigEndian.Uint16(buf) != id {
						continue // a late answer to an earlier, timed-out query
					}
					rcode := buf[3] & 0x0f
					if rcode != dns.RcodeSuccess && rcode != dns.RcodeNameError || buf[2]&0x02 != 0 { // TC set
						localErrs++
					} else {
						local = append(local, time.Since(t0))
					}
					break
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errs += localErrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := LoadResult{Queries: len(latencies), Errors: errs, Duration: time.Since(start)}
	if firstErr != nil {
		return res, fmt.Errorf("dnslink: load test %s: %w", addr, firstErr)
	}
	if len(latencies) == 0 {
		return res, fmt.Errorf("dnslink: load test %s: no answers", addr)
	}
	slices.Sort(latencies)
	res.QPS = float64(res.Queries) / res.Duration.Seconds()
	res.P50 = latencies[len(latencies)/2]
	res.P99 = latencies[len(latencies)*99/100]
	return res, ctx.Err()
}
