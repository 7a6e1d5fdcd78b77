package main

import (
	"strings"
	"testing"
)

func TestStatusBytes(t *testing.T) {
	status := "Name:\tpcnode\nVmRSS:\t  150076 kB\nRssAnon:\t  105564 kB\nRssFile:\t   44512 kB\nRssShmem:\t       0 kB\n"
	for _, tc := range []struct {
		status, key string
		want        int64
		wantErr     bool
	}{
		{status, "RssAnon", 105564 * 1024, false},
		{status, "RssFile", 44512 * 1024, false},
		{status, "RssShmem", 0, false},
		{status, "RssSwap", 0, true}, // missing
		{"RssAnon:\t12 MB\n", "RssAnon", 0, true},
		{"RssAnon:\t-3 kB\n", "RssAnon", 0, true},
		{"RssAnonymous:\t3 kB\n", "RssAnon", 0, true}, // a longer key is not the key
	} {
		got, err := statusBytes(tc.status, tc.key)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("statusBytes(%q, %q) = %d, %v; want %d, error %v", tc.status, tc.key, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPromValue(t *testing.T) {
	text := `# HELP go_memstats_sys_bytes Number of bytes obtained from system.
# TYPE go_memstats_sys_bytes gauge
go_memstats_sys_bytes 1.89598008e+08
go_memstats_heap_released_bytes 1.18226944e+08
go_gc_duration_seconds{quantile="0.5"} 0.001
go_memstats_sys_bytes_total 7
`
	for _, tc := range []struct {
		name   string
		want   float64
		wantOK bool
	}{
		{"go_memstats_sys_bytes", 189598008, true},
		{"go_memstats_heap_released_bytes", 118226944, true},
		{"go_gc_duration_seconds", 0, false}, // labelled only
		{"go_memstats_heap_inuse_bytes", 0, false},
	} {
		got, ok := promValue(text, tc.name)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("promValue(%q) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func FuzzStatusBytes(f *testing.F) {
	f.Add("RssAnon:\t  105564 kB\n", "RssAnon")
	f.Add("RssAnon: 99999999999999999999 kB\n", "RssAnon")
	f.Add("", "RssFile")
	f.Fuzz(func(t *testing.T, status, key string) {
		n, err := statusBytes(status, key)
		if err == nil && (n < 0 || n > 1<<50) {
			t.Errorf("statusBytes = %d", n)
		}
		if err != nil && n != 0 {
			t.Errorf("statusBytes = %d with error %v", n, err)
		}
	})
}

func FuzzPromValue(f *testing.F) {
	f.Add("go_memstats_sys_bytes 1.5e+08\n", "go_memstats_sys_bytes")
	f.Add("x NaN\nx 1\n", "x")
	f.Fuzz(func(t *testing.T, text, name string) {
		v, ok := promValue(text, name)
		if !ok && v != 0 {
			t.Errorf("promValue = %v, not ok", v)
		}
		if ok && !strings.Contains(text, name+" ") {
			t.Errorf("promValue found %q in a text without it", name)
		}
	})
}
