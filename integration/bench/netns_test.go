package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseNetnsFigures(t *testing.T) {
	in := `{"test":"TestHomeCloud","seconds":{"roam_direct":1.5,"lan_first_direct":0.8},"mbps":{"direct_sync":4.194304},"notes":["phone→laptop: relayed via server first"]}

{"test":"TestLossyLink","seconds":{"lossy_converge":20},"mbps":{"lossy_sync":0.1},"ratio":{"received_over_payload":1.07}}
`
	figs, err := parseNetnsFigures([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		row  netnsRow
		want float64
		ok   bool
	}{
		{netnsRow{test: "TestHomeCloud", kind: "seconds", key: "roam_direct", unit: "s"}, 1.5, true},
		{netnsRow{test: "TestHomeCloud", kind: "mbps", key: "direct_sync", unit: "MiB/s"}, 4, true},
		{netnsRow{test: "TestHomeCloud", kind: "seconds", key: "heal_roam_converge", unit: "s"}, 0, false},
		{netnsRow{test: "TestLossyLink", kind: "ratio", key: "received_over_payload", unit: "×"}, 1.07, true},
	}
	for _, tt := range tests {
		f := figs[tt.row.test]
		if f == nil {
			t.Fatalf("no figures for %s", tt.row.test)
		}
		got, ok := f.value(tt.row)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s %s = %v, %v; want %v, %v", tt.row.test, tt.row.key, got, ok, tt.want, tt.ok)
		}
	}
	if figs["TestSymmetricNATs"] != nil {
		t.Error("figures for a scenario that wrote none")
	}
	for _, bad := range []string{`{"test":`, `{"seconds":{}}`} {
		if _, err := parseNetnsFigures([]byte(bad)); err == nil {
			t.Errorf("parseNetnsFigures(%q): no error", bad)
		}
	}
}

// TestNetnsRows: every row is selected by -only 'netns' and names a
// figure the scenarios write (scenario_test.go's keys).
func TestNetnsRows(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "netns", "scenario_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range netnsRows {
		if !strings.Contains(string(src), `"`+r.key+`"`) {
			t.Errorf("row %q: the scenarios write no figure %q", r.name, r.key)
		}
		if !strings.HasPrefix(r.name, "netns") {
			t.Errorf("row %q does not start with netns", r.name)
		}
		if seen[r.name] {
			t.Errorf("row %q twice", r.name)
		}
		seen[r.name] = true
		switch r.kind {
		case "seconds", "mbps", "ratio":
		default:
			t.Errorf("row %q: kind %q", r.name, r.kind)
		}
	}
	sec := netnsSection([]string{"run 1, TestLossyLink: delay and loss by the user-space delay line (no netem)"})
	if !strings.HasPrefix(sec, "## Network namespaces") || !strings.Contains(sec, "- run 1, TestLossyLink: delay") {
		t.Errorf("section:\n%s", sec)
	}
}
