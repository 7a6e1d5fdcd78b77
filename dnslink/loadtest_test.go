package dnslink

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadTest(t *testing.T) {
	_, srv := startZone(t, "example.org", mustKey(t))
	res, err := LoadTest(testCtx(t), srv.Addr(), "example.org", 2000, 8)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Queries != 2000 || res.P99 <= 0 || res.P99 > time.Second {
		t.Fatalf("load test: %v", res)
	}
	t.Log(res)
}

// BenchmarkServer reports the authoritative server's throughput and p99
// latency on loopback with signed answers (run without -race for figures):
//
//	go test -run=NONE -bench=Server -benchtime=1x ./dnslink
func BenchmarkServer(b *testing.B) {
	_, srv := startZone(b, "example.org", mustKey(b))
	for i := 0; i < b.N; i++ {
		res, err := LoadTest(testCtx(b), srv.Addr(), "example.org", 200000, 8)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.QPS, "qps")
		b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		b.ReportMetric(float64(res.Errors), "errors")
		b.Log(res)
	}
}

// TestDNSPerf measures the server with Debian's dnsperf when PCNODE_BENCH=1
// (make bench); it logs dnsperf's summary.
func TestDNSPerf(t *testing.T) {
	if os.Getenv("PCNODE_BENCH") != "1" {
		t.Skip("set PCNODE_BENCH=1 to run dnsperf")
	}
	dnsperf := needTool(t, "dnsperf")
	_, srv := startZone(t, "example.org", mustKey(t))
	dir := t.TempDir()
	qf := filepath.Join(dir, "queries")
	os.WriteFile(qf, []byte("_dnsaddr.example.org TXT\n_pcnode.example.org TXT\n_dnslink.example.org TXT\nexample.org SOA\nnonexistent.example.org A\n"), 0o644)
	h, p, _ := net.SplitHostPort(srv.Addr())
	// -v prints each answer's latency, from which the percentiles come.
	out, err := exec.Command(dnsperf, "-s", h, "-p", p, "-d", qf, "-D", "-l", "10", "-c", "4", "-T", "1", "-q", "32", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out)
	}
	var lat []float64
	var summary []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "> ") {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, v)
			}
			continue
		}
		if strings.Contains(l, "Queries") || strings.Contains(l, "Latency") || strings.Contains(l, "Response codes") {
			summary = append(summary, strings.TrimSpace(l))
		}
	}
	if len(lat) == 0 {
		t.Fatalf("no answers in dnsperf output:\n%s", out)
	}
	sort.Float64s(lat)
	t.Logf("dnsperf:\n%s\np50 %.3f ms, p99 %.3f ms", strings.Join(summary, "\n"), lat[len(lat)/2]*1000, lat[len(lat)*99/100]*1000)
	// A loaded machine drops the odd UDP datagram; more than 1% is a fault.
	m := regexp.MustCompile(`Queries lost:\s+\d+ \(([0-9.]+)%\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatal("no loss figure in dnsperf output")
	}
	if lost, _ := strconv.ParseFloat(m[1], 64); lost > 1 {
		t.Errorf("dnsperf lost %.2f%% of queries", lost)
	}
}
