package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Issue 8's figures: the network-namespace scenarios of integration/netns
// (docs/TESTBED.md) run the real daemon in a home topology with NAT
// routers and write their measurements with PCNODE_NETNS_FIGURES; this
// file runs them once per bench run and turns those measurements into
// rows. They need root, ip and nft, and the source tree (not -bin);
// elsewhere they are left out of the report. Registered by one line in
// main.go.

// netnsTimeout bounds one run of the three scenarios (about 1.5 min on 2
// loaded cores, the first run also building pcnode and the test binary).
const netnsTimeout = 15 * time.Minute

// netnsTests are the scenarios run, as a go test -run pattern.
const netnsTests = "^(TestHomeCloud|TestSymmetricNATs|TestLossyLink)$"

// netnsRow is one figure of one scenario: its key in the scenario's
// "seconds", "mbps" or "ratio" map, and the row it makes.
type netnsRow struct {
	test string // TestHomeCloud, ...
	kind string // "seconds", "mbps" or "ratio"
	key  string
	name string
	unit string
}

const (
	netnsEI   = "netns, endpoint-independent NATs: "
	netnsSym  = "netns, symmetric NATs: "
	netnsLoss = "netns, phone's link 200 ms delay and 10% loss each way: "
)

// netnsRows are the rows, in the report's order. Times "from start" run
// from the launch of the three device daemons.
var netnsRows = []netnsRow{
	{"TestHomeCloud", "seconds", "lan_first_direct", netnsEI + "LAN devices connected directly (mDNS), from start", "s"},
	{"TestHomeCloud", "seconds", "roam_first_connection", netnsEI + "phone's first connection to the laptop, from start", "s"},
	{"TestHomeCloud", "seconds", "roam_direct", netnsEI + "phone ↔ laptop direct (hole punch), from start", "s"},
	{"TestHomeCloud", "mbps", "direct_sync", netnsEI + "big file laptop → phone over the direct path, write to identical copy", "MiB/s"},
	{"TestHomeCloud", "seconds", "cut_lan_converge", netnsEI + "uplink cut: LAN devices converge", "s"},
	{"TestHomeCloud", "seconds", "heal_roam_converge", netnsEI + "uplink healed: phone converges", "s"},
	{"TestSymmetricNATs", "seconds", "roam_first_connection", netnsSym + "phone's first connection to the laptop (relayed via the server), from start", "s"},
	{"TestSymmetricNATs", "mbps", "relayed_sync", netnsSym + "big file laptop → phone over the relay, write to identical copy", "MiB/s"},
	{"TestSymmetricNATs", "seconds", "punch_failed_known", netnsSym + "laptop knows why not direct (hole punch failed), from start", "s"},
	{"TestLossyLink", "seconds", "lossy_converge", netnsLoss + "files laptop → phone, write to identical copies", "s"},
	{"TestLossyLink", "mbps", "lossy_sync", netnsLoss + "files laptop → phone, throughput", "MiB/s"},
	{"TestLossyLink", "ratio", "received_over_payload", netnsLoss + "bytes the phone received over the files' bytes", "×"},
}

// netnsFigures is one line of PCNODE_NETNS_FIGURES (scenario_test.go's
// figures).
type netnsFigures struct {
	Test    string             `json:"test"`
	Seconds map[string]float64 `json:"seconds"`
	MBps    map[string]float64 `json:"mbps"`
	Ratio   map[string]float64 `json:"ratio"`
	Notes   []string           `json:"notes"`
}

// value returns the figure of r in f, in r's unit.
func (f *netnsFigures) value(r netnsRow) (float64, bool) {
	var m map[string]float64
	switch r.kind {
	case "seconds":
		m = f.Seconds
	case "mbps":
		m = f.MBps
	case "ratio":
		m = f.Ratio
	}
	v, ok := m[r.key]
	if ok && r.unit == "MiB/s" {
		v = v * 1e6 / mib
	}
	return v, ok
}

// parseNetnsFigures reads the JSON lines of a figures file, by test name.
func parseNetnsFigures(b []byte) (map[string]*netnsFigures, error) {
	out := map[string]*netnsFigures{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := &netnsFigures{}
		if err := json.Unmarshal([]byte(line), f); err != nil {
			return nil, fmt.Errorf("figures line %q: %w", line, err)
		}
		if f.Test == "" {
			return nil, fmt.Errorf("figures line %q names no test", line)
		}
		out[f.Test] = f
	}
	return out, sc.Err()
}

// netnsAvailable reports why the scenarios cannot run here, or nil.
func (b *bench) netnsAvailable() error {
	if b.src == "" {
		return errors.New("they run from the source tree (not with -bin)")
	}
	if os.Geteuid() != 0 {
		return errors.New("they need root")
	}
	for _, tool := range []string{"ip", "nft", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("they need %s (scripts/install-netns-tools.sh)", tool)
		}
	}
	return nil
}

// netnsScenarios adds the netns rows to rep now (so that -only filters
// them with the others) and returns the function that runs the scenarios
// o.runs times, which main.go defers to the end of the bench. Where they
// cannot run, it adds nothing and says why. Errors are recorded in the
// rows.
func (b *bench) netnsScenarios(ctx context.Context, rep *report) func() {
	if err := b.netnsAvailable(); err != nil {
		b.logf("network-namespace scenarios left out: %v", err)
		return func() {}
	}
	rows := map[*scenario]netnsRow{}
	var list []*scenario
	for _, r := range netnsRows {
		s := &scenario{Name: r.name, Unit: r.unit, Target: target{Text: "none set (issue 8 asks for the figure)"}}
		rows[s] = r
		list = append(list, s)
	}
	rep.Scenarios = append(rep.Scenarios, list...)
	return func() {
		for _, l := range rep.Limits {
			if l.Err != nil {
				return
			}
		}
		var notes []string
		for i := range b.o.runs {
			if ctx.Err() != nil || !slices.ContainsFunc(list, func(s *scenario) bool { return slices.Contains(rep.Scenarios, s) }) {
				return
			}
			figs, err := b.netnsRun(ctx, i)
			for _, s := range list {
				r := rows[s]
				f := figs[r.test]
				if f == nil {
					if s.Err == nil {
						s.Err = fmt.Errorf("run %d: %s wrote no figures: %v", i+1, r.test, err)
					}
					continue
				}
				if v, ok := f.value(r); ok {
					s.Samples = append(s.Samples, v)
				}
			}
			if err != nil {
				b.logf("netns run %d: %v", i+1, err)
			}
			for _, t := range []string{"TestHomeCloud", "TestSymmetricNATs", "TestLossyLink"} {
				if f := figs[t]; f != nil {
					for _, n := range f.Notes {
						notes = append(notes, fmt.Sprintf("run %d, %s: %s", i+1, t, n))
					}
				}
			}
		}
		rep.Sections = append(rep.Sections, netnsSection(notes))
	}
}

// netnsRun runs the three scenarios once and returns their figures; err
// says why a scenario wrote none (it failed, or go test could not run).
func (b *bench) netnsRun(ctx context.Context, i int) (map[string]*netnsFigures, error) {
	file := filepath.Join(b.tmp, fmt.Sprintf("netns-figures-%d.jsonl", i))
	ctx, cancel := context.WithTimeout(ctx, netnsTimeout)
	defer cancel()
	b.logf("run %d/%d: network-namespace scenarios (go test -run '%s' ./integration/netns/)", i+1, b.o.runs, netnsTests)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "test", "-count", "1", "-timeout", netnsTimeout.String(), "-run", netnsTests, "./integration/netns/")
	cmd.Dir = b.src
	cmd.Env = append(os.Environ(), "PCNODE_NETNS_FIGURES="+file)
	cmd.WaitDelay = 10 * time.Second
	out, runErr := cmd.CombinedOutput()
	b.logf("run %d/%d: network-namespace scenarios took %v", i+1, b.o.runs, time.Since(start).Round(time.Second))
	raw, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	figs, err := parseNetnsFigures(raw)
	if err != nil {
		return nil, err
	}
	if runErr != nil {
		return figs, fmt.Errorf("go test ./integration/netns/: %w: %s", runErr, lastLines(string(out), 15))
	}
	return figs, nil
}

// netnsSection explains the netns rows and lists what the scenarios noted.
func netnsSection(notes []string) string {
	var b strings.Builder
	b.WriteString("## Network namespaces (issue 8)\n\n")
	b.WriteString("The `netns` rows come from `go test -run '" + netnsTests + "' ./integration/netns/` with `PCNODE_NETNS_FIGURES` set, one run of the three scenarios per bench run, as root: ")
	b.WriteString("a home LAN (laptop, desktop) behind NAT A, the phone behind NAT B, the home server on the \"public\" LAN, a `pcnode daemon` in each network namespace (docs/TESTBED.md). ")
	b.WriteString("\"From start\" is from the launch of the three device daemons (the server's runs already). Sync figures run from writing the file on the laptop to an identical copy on the phone, so they include the folder's change detection and index exchange; the big file is 8 MiB, the lossy link's files 8 × 32 KiB (the scenarios' default sizes). ")
	b.WriteString("The lossy link is the phone's: 200 ms and 10 % loss each way, by netem where the kernel has it, else by the harness's user-space delay line. ")
	b.WriteString("On the lossy link, the received bytes are the phone's `pcnode_p2p_received_bytes_total` while the files came, over the files' size; the scenario fails above 1.05 × the files plus one file, or when the other devices' bitswap sent the phone more than the files and half a file (a whole file twice). ")
	b.WriteString("The CPU column and the paragraph above the scenarios' table do not apply to these rows.\n")
	if len(notes) > 0 {
		b.WriteString("\nWhat the scenarios noted:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}
