package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/dnslink"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line and the sizes it implies.
type options struct {
	out     string
	runs    int
	quick   bool
	dir     string
	bin     string
	rev     string
	keep    bool
	timeout time.Duration

	fileSize  int64 // the large file
	treeFiles int   // files in the tree
	treeFile  int   // bytes per tree file
	idle      time.Duration
	// dnsQueries is the length of the DNS load run.
	dnsQueries int
	shaSize    int64
	diskSize   int64
	tcpSize    int64
	// only, if set, selects the scenarios (by name) that run.
	only *regexp.Regexp
}

func flagSet(fl *flag.FlagSet, name string) bool {
	set := false
	fl.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseSize reads a byte count such as 4096, 64MiB, 1GiB or 512KiB.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", gib}, {"MiB", mib}, {"KiB", kib}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<44)/mult {
		return 0, fmt.Errorf("bad size %q: want a positive count of B, KiB, MiB or GiB up to 16 TiB", s)
	}
	return n * mult, nil
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&o.out, "out", "", "write the Markdown report to this file (default: stdout only)")
	fl.IntVar(&o.runs, "runs", 3, "runs of each measurement (median, min and max are reported); -quick makes it 1")
	fl.BoolVar(&o.quick, "quick", false, "smoke test: 64 MiB instead of 1 GiB, 1,000 files instead of 10,000, 1 run")
	fl.StringVar(&o.dir, "dir", os.TempDir(), "where the temporary homes and data go (the disk limit is measured there)")
	fl.StringVar(&o.bin, "bin", "", "use this pcnode binary instead of building ./cmd/pcnode")
	fl.StringVar(&o.rev, "rev", "", "build pcnode from this git revision (e.g. HEAD) instead of the working tree")
	fl.BoolVar(&o.keep, "keep", false, "keep the temporary directory (daemon logs) for inspection")
	fl.DurationVar(&o.timeout, "timeout", 0, "give up after this long (default 45m, 10m with -quick)")
	size := fl.String("size", "", "size of the large file, e.g. 256MiB (default 1GiB, 64MiB with -quick); the limits are measured over the same size")
	fl.IntVar(&o.treeFiles, "files", 0, "files in the tree (default 10000, 1000 with -quick)")
	fl.DurationVar(&o.idle, "idle", 5*time.Second, "how long a new daemon idles before its RSS is read")
	only := fl.String("only", "", "run only the scenarios whose name matches this regular expression (e.g. 'member|share'); the limits are always measured")
	fl.IntVar(&o.dnsQueries, "dns-queries", -1, "queries in the authoritative DNS load run (default 200000, 20000 with -quick; 0 skips it)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./integration/bench [-out docs/BENCHMARKS.md] [-runs 3] [-quick]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	runsSet := flagSet(fl, "runs")
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return nil, fmt.Errorf("-only: %w", err)
		}
		o.only = re
	}

	o.fileSize, o.treeFile = gib, 4*kib
	if o.dnsQueries < 0 {
		o.dnsQueries = 200000
		if o.quick {
			o.dnsQueries = 20000
		}
	}
	if o.treeFiles == 0 {
		o.treeFiles = 10000
	}
	if o.quick {
		o.fileSize = 64 * mib
		if !flagSet(fl, "files") {
			o.treeFiles = 1000
		}
		if !runsSet {
			o.runs = 1
		}
	}
	if *size != "" {
		n, err := parseSize(*size)
		if err != nil {
			return nil, fmt.Errorf("-size: %w", err)
		}
		o.fileSize = n
	}
	// The limits are measured over the data size of the scenario they
	// bound, within reason: the disk over at most 256 MiB (enough to pass
	// any write cache), SHA-256 and TCP over the file size itself.
	o.shaSize, o.diskSize, o.tcpSize = o.fileSize, min(o.fileSize, 256*mib), o.fileSize
	if o.timeout == 0 {
		o.timeout = 45 * time.Minute
		if o.quick {
			o.timeout = 10 * time.Minute
		}
	}
	if o.treeFiles < 1 || o.treeFiles > 1000000 {
		return nil, fmt.Errorf("-files %d: want 1 to 1000000", o.treeFiles)
	}
	if o.idle < 0 {
		return nil, fmt.Errorf("-idle %v: want a positive duration", o.idle)
	}
	if o.runs < 1 || o.runs > 20 {
		return nil, fmt.Errorf("-runs %d: want 1 to 20", o.runs)
	}
	return o, nil
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	b := &bench{o: o, logw: stderr, pc: &pcnode{}}
	defer b.pc.stopAll()
	rep, err := b.run(ctx)
	if rep != nil {
		if rerr := render(stdout, rep); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == nil && o.out != "" {
		err = writeAtomic(o.out, rep)
		if err == nil {
			b.logf("wrote %s", o.out)
		}
	} else if err != nil && o.out != "" {
		b.logf("not writing %s: the run had errors", o.out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench is one run of the command.
type bench struct {
	o    *options
	logw io.Writer
	pc   *pcnode
	tmp  string
	// src is the source tree pcnode was built from; "" with -bin (then
	// the discovery scenarios, which run p2p's Go benchmark, are left out).
	src string
	// keepAll: the runs' homes and outputs stay until the end, where the
	// disk has room for them (see discard).
	keepAll bool
}

// discard removes path, the homes or output of a run, now or at the end
// of the bench. On ext4 without a journal (as on these machines) the
// kernel avoids reusing an inode freed in the last minute (five while
// its inode table block is dirty) and checks every such inode on each
// file it creates: a tree of 10,000 files written right after another
// was deleted took 7 s instead of 1.5 s, a figure of the file system's
// state, not of pcnode. So nothing is deleted while anything is timed,
// where the disk allows.
func (b *bench) discard(path string) {
	if b.o.keep || b.keepAll {
		return
	}
	os.RemoveAll(path)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.logw, "bench: "+format+"\n", args...)
}

// run measures everything and returns the report. An error in a scenario
// is recorded in it and also returned; the report is returned whenever
// there is something to show.
func (b *bench) run(ctx context.Context) (*report, error) {
	o := b.o
	tmp, err := os.MkdirTemp(o.dir, "pcnode-bench-")
	if err != nil {
		return nil, err
	}
	b.tmp = tmp
	if o.keep {
		b.logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	// Source, four stores (the friend's twice: plain and encrypted) and
	// one output of the large file, A's encrypted copy, the tree, slack.
	need := 8*o.fileSize + 16*int64(o.treeFiles)*int64(o.treeFile) + 256*mib
	if free, err := freeBytes(tmp); err == nil && free < need {
		return nil, fmt.Errorf("%s has %d MiB free; the run needs about %d MiB (use -dir or -quick)", tmp, free/mib, need/mib)
	}
	// Every run kept until the end: the above, the folder and server
	// runs' copies of the large file, and a margin for the store's
	// free-space reserve and the rest of the machine.
	keepNeed := int64(o.runs)*(need+4*o.fileSize) + 8*gib
	if free, err := freeBytes(tmp); err == nil && free >= keepNeed {
		b.keepAll = true
	} else {
		b.logf("%d MiB free, less than the %d MiB that keeping every run needs: each run's files are deleted after it (later file creation may be slower, see discard)", free/mib, keepNeed/mib)
	}

	rep := &report{
		Date:  time.Now(),
		CPU:   cpuModel(readTrim("/proc/cpuinfo")),
		Cores: runtime.NumCPU(),
		Load:  loadavg(),
		FS:    machineFS(tmp),
		Runs:  o.runs,
		Quick: o.quick || o.fileSize != gib || o.treeFiles != 10000,
		Sizes: fmt.Sprintf("a %s random file; a tree of %d random files of %s in %d directories",
			sizeString(o.fileSize), o.treeFiles, sizeString(int64(o.treeFile)), (o.treeFiles+99)/100),
	}
	if err := b.build(ctx, rep); err != nil {
		return nil, err
	}

	sha := &limit{Name: "one core SHA-256", Unit: "MiB/s",
		How: fmt.Sprintf("crypto/sha256 over %s on one goroutine", sizeString(o.shaSize))}
	shaLanes := &limit{Name: "one core SHA-256 as pcnode hashes", Unit: "MiB/s",
		How: fmt.Sprintf("blobstore.SumSHA256 over %s in 1 MiB buffers, %d per call (16: AVX-512 multi-buffer; 1: crypto/sha256), on one goroutine", sizeString(o.shaSize), blobstore.SHA256Lanes())}
	disk := &limit{Name: "synced disk write", Unit: "MiB/s",
		How: fmt.Sprintf("%s in 1 MiB writes to one file beside the homes, one fdatasync at the end", sizeString(o.diskSize))}
	disk8 := &limit{Name: "synced disk write, sync every 8 MiB", Unit: "MiB/s",
		How: "as above, with an fdatasync after every 8 MiB (a store that makes each batch durable)"}
	tcp := &limit{Name: "loopback TCP", Unit: "MiB/s",
		How: fmt.Sprintf("%s from a Go client to a Go server on 127.0.0.1 in 256 KiB writes", sizeString(o.tcpSize))}
	create := &limit{Name: "create small files", Unit: "s",
		How: fmt.Sprintf("%d files of %s in %d directories, written by one goroutine, no sync (kept until the end: see the note below)", o.treeFiles, sizeString(int64(o.treeFile)), (o.treeFiles+99)/100)}
	rep.Limits = []*limit{sha, shaLanes, disk, disk8, tcp, create}

	size := sizeString(o.fileSize)
	also := []*limit{shaLanes}
	add := &scenario{Name: "add a " + size + " file", Unit: "MiB/s", Limit: disk, Also: also,
		Target: target{"≥ 350 MiB/s or ≥ 85% of synced disk write", func(m, r float64) bool { return m >= 350 || r >= 0.85 }},
		Scaled: &scaledTarget{Min: 350, Sha: shaLanes}}
	fetch := &scenario{Name: "fetch the " + size + " file from a daemon of another cloud (DAG stream through its block filter, bitswap for the rest)", Unit: "MiB/s", Limit: tcp, Also: also,
		Target: target{"≥ 300 MiB/s", func(m, _ float64) bool { return m >= 300 }},
		Scaled: &scaledTarget{Min: 300, Sha: shaLanes}}
	memberFetch := &scenario{Name: "fetch the " + size + " file from a member daemon (DAG stream)", Unit: "MiB/s", Limit: tcp, Also: also,
		Target: target{"≥ 300 MiB/s", func(m, _ float64) bool { return m >= 300 }},
		Scaled: &scaledTarget{Min: 300, Sha: shaLanes}}
	shareFetch := &scenario{Name: "a friend's pcnode gets the " + size + " file by share link", Unit: "MiB/s", Limit: tcp, Also: also,
		Target: target{"≥ 300 MiB/s", func(m, _ float64) bool { return m >= 300 }},
		Scaled: &scaledTarget{Min: 300, Sha: shaLanes}}
	shareEncFetch := &scenario{Name: "a friend's pcnode gets the " + size + " file by encrypted share link", Unit: "MiB/s", Limit: tcp, Also: also,
		Target: target{"≥ 70% of the plain share link", func(m, _ float64) bool {
			p, ok := summarize(shareFetch.Samples)
			return ok && m >= 0.7*p.Median
		}}}
	shareTreeFetch := &scenario{Name: "a friend's pcnode gets the tree by share link", Unit: "s",
		Target: target{"< 5 s", func(m, _ float64) bool { return m < 5 }}}
	treeAdd := &scenario{Name: fmt.Sprintf("add a tree of %d × %s files", o.treeFiles, sizeString(int64(o.treeFile))), Unit: "s",
		Target: target{"< 1.5 s", func(m, _ float64) bool { return m < 1.5 }}}
	treeFetch := &scenario{Name: "fetch the tree from a daemon of another cloud (DAG stream through its block filter, bitswap for the rest)", Unit: "s",
		Target: target{"< 5 s", func(m, _ float64) bool { return m < 5 }}}
	memberTreeFetch := &scenario{Name: "fetch the tree from a member daemon (DAG stream)", Unit: "s",
		Target: target{"< 5 s", func(m, _ float64) bool { return m < 5 }}}
	idle := &scenario{Name: fmt.Sprintf("idle daemon RSS (%v after start)", o.idle), Unit: "MiB",
		Target: target{"< 60 MiB", func(m, _ float64) bool { return m < 60 }}}
	dnsQPS := &scenario{Name: fmt.Sprintf("authoritative DNS, signed answers (%d queries, %d in flight)", o.dnsQueries, dnsInFlight), Unit: "q/s",
		Target: target{"≥ 20,000 q/s", func(m, _ float64) bool { return m >= 20000 }}}
	dnsP99 := &scenario{Name: "authoritative DNS, p99 latency", Unit: "ms",
		Target: target{"< 5 ms", func(m, _ float64) bool { return m < 5 }}}
	sc := &scenarios{add: add, fetch: fetch, treeAdd: treeAdd, treeFetch: treeFetch, idle: idle,
		memberFetch: memberFetch, memberTreeFetch: memberTreeFetch, dnsQPS: dnsQPS, dnsP99: dnsP99,
		shareFetch: shareFetch, shareEncFetch: shareEncFetch, shareTreeFetch: shareTreeFetch}
	rep.Scenarios = []*scenario{add, fetch, memberFetch, shareFetch, shareEncFetch, treeAdd, treeFetch, memberTreeFetch, shareTreeFetch, idle}
	if o.dnsQueries > 0 {
		rep.Scenarios = append(rep.Scenarios, dnsQPS, dnsP99)
	}
	var disc []*discoveryScenario
	if b.src != "" {
		for _, d := range []struct {
			sub, name string
			max       float64
		}{
			{"dht-50", "a new device connects to its 3 siblings through DHT rendezvous (50-node private DHT)", 5000},
			{"dns", "a new device connects to its 3 siblings through _dnsaddr records", 1000},
			{"remembered", "a restarted device reconnects to its 3 siblings from remembered addresses", 1000},
		} {
			max := d.max
			sc := &scenario{Name: d.name, Unit: "ms",
				Target: target{fmt.Sprintf("< %g s", max/1000), func(m, _ float64) bool { return m < max }}}
			disc = append(disc, &discoveryScenario{sub: d.sub, sc: sc})
			rep.Scenarios = append(rep.Scenarios, sc)
		}
	}

	srv := newServerScenarios(o) // server.go
	rep.Scenarios = append(rep.Scenarios, srv.list()...)
	defer b.folderScenarios(ctx, rep)() // folder.go: adds its scenarios now, runs them last
	defer b.netnsScenarios(ctx, rep)()  // netns.go: as root, issue 8's network-namespace scenarios

	if o.only != nil {
		rep.Scenarios = slices.DeleteFunc(rep.Scenarios, func(s *scenario) bool { return !o.only.MatchString(s.Name) })
		disc = slices.DeleteFunc(disc, func(d *discoveryScenario) bool { return !o.only.MatchString(d.sc.Name) })
		if len(rep.Scenarios) == 0 {
			return nil, fmt.Errorf("-only %q matches no scenario", o.only)
		}
	}
	sc.want = func(s *scenario) bool { return slices.Contains(rep.Scenarios, s) }

	b.logf("measuring the machine's limits (%d runs)", o.runs)
	for i := range o.runs {
		b.limitRun(ctx, i, sha, func() (float64, error) { return measureSHA256(o.shaSize) })
		b.limitRun(ctx, i, shaLanes, func() (float64, error) { return measureSHA256Lanes(o.shaSize) })
		b.limitRun(ctx, i, disk, func() (float64, error) { return measureDiskWrite(ctx, tmp, o.diskSize, 0) })
		b.limitRun(ctx, i, disk8, func() (float64, error) { return measureDiskWrite(ctx, tmp, o.diskSize, 8*mib) })
		b.limitRun(ctx, i, tcp, func() (float64, error) { return measureLoopback(ctx, o.tcpSize) })
		b.limitRun(ctx, i, create, func() (float64, error) {
			return measureCreate(filepath.Join(tmp, "limits", fmt.Sprintf("create-%d", i)), o.treeFiles, o.treeFile)
		})
	}
	for _, l := range rep.Limits {
		if l.Err != nil {
			return rep, fmt.Errorf("limit %s: %w", l.Name, l.Err)
		}
	}

	data := &dataset{file: filepath.Join(tmp, "data", "file.bin"), tree: filepath.Join(tmp, "data", "tree")}
	b.logf("writing the data (%s file, %d-file tree)", size, o.treeFiles)
	if err := data.make(o); err != nil {
		return rep, fmt.Errorf("make data: %w", err)
	}

	defer func() { rep.LoadEnd = loadavg() }()
	for i := range o.runs {
		if err := b.scenarioRun(ctx, i, data, sc); err != nil {
			return rep, err
		}
	}
	for i := range o.runs {
		if len(disc) == 0 {
			break
		}
		if err := b.discoveryRun(ctx, i, disc); err != nil {
			return rep, err
		}
	}
	for i := range o.runs {
		if !sc.any(srv.list()...) {
			break
		}
		if err := b.serverRun(ctx, i, srv); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// discoveryScenario is one sub-benchmark of p2p's BenchmarkDiscovery.
type discoveryScenario struct {
	sub string
	sc  *scenario
}

// discoveryRun runs p2p's BenchmarkDiscovery once (in-process hosts on
// loopback, a private DHT prefix, -race off) and records the mean time a
// freshly started device took to connect to all its siblings.
func (b *bench) discoveryRun(ctx context.Context, i int, disc []*discoveryScenario) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkDiscovery$", "-benchtime", "3x", "./p2p/")
	cmd.Dir = b.src
	out, err := cmd.CombinedOutput()
	if err != nil {
		for _, d := range disc {
			d.sc.Err = err
		}
		return fmt.Errorf("run %d: discovery benchmark: %w: %s", i+1, err, lastLines(string(out), 10))
	}
	for _, d := range disc {
		v, err := benchMetric(string(out), "BenchmarkDiscovery/"+d.sub, "ms/connect-all")
		if err != nil {
			d.sc.Err = err
			return fmt.Errorf("run %d: %s: %w", i+1, d.sc.Name, err)
		}
		d.sc.Samples = append(d.sc.Samples, v)
		b.logf("run %d/%d: discovery %s: %.0f ms", i+1, b.o.runs, d.sub, v)
	}
	return nil
}

// benchMetric finds, in go test -bench output, the value of unit on the
// line of the named benchmark (its name is followed by -GOMAXPROCS).
func benchMetric(out, name, unit string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for j := 1; j+1 < len(f); j++ {
			if f[j+1] == unit {
				return strconv.ParseFloat(f[j], 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s figure for %s in the benchmark output", unit, name)
}

func (b *bench) limitRun(ctx context.Context, i int, l *limit, f func() (float64, error)) {
	if l.Err != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		l.Err = err
		return
	}
	v, err := f()
	if err != nil {
		l.Err = err
		return
	}
	l.Samples = append(l.Samples, v)
	b.logf("  %s run %d: %s %s", l.Name, i+1, num(v, l.Unit), l.Unit)
}

// build compiles ./cmd/pcnode into the temporary directory (unless -bin)
// from the working tree or, with -rev, from a git revision exported with
// git archive, and records what it built.
func (b *bench) build(ctx context.Context, rep *report) error {
	gover, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("go env GOVERSION: %w", err)
	}
	rep.GoVersion = strings.TrimSpace(string(gover)) + " " + runtime.GOOS + "/" + runtime.GOARCH
	if b.o.bin != "" {
		abs, err := filepath.Abs(b.o.bin)
		if err != nil {
			return err
		}
		b.pc.bin = abs
		rep.Built = "the binary given with -bin"
		return nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return fmt.Errorf("go env GOMOD: not inside the pcnode module (%v)", err)
	}
	src := filepath.Dir(strings.TrimSpace(string(gomod)))
	rep.Built = "the working tree"
	if desc, err := gitOut(ctx, src, "describe", "--always", "--dirty", "--abbrev=12"); err == nil {
		rep.Built = "the working tree at " + desc
	}
	if b.o.rev != "" {
		commit, err := gitOut(ctx, src, "rev-parse", "--verify", b.o.rev+"^{commit}")
		if err != nil {
			return fmt.Errorf("-rev %s: %w", b.o.rev, err)
		}
		dst := filepath.Join(b.tmp, "src")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		// git archive writes a tar of the commit; tar unpacks it. Nothing
		// in the repository changes.
		cmd := exec.CommandContext(ctx, "sh", "-c", `git archive --format=tar "$1" | tar -x -C "$2"`, "sh", commit, dst)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("export %s: %w: %s", commit, err, lastLines(string(out), 5))
		}
		src = dst
		rep.Built = "commit " + commit[:min(12, len(commit))]
	}
	b.src = src
	b.pc.bin = filepath.Join(b.tmp, "bin", "pcnode")
	b.logf("building %s from %s", b.pc.bin, rep.Built)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.pc.bin, "./cmd/pcnode")
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/pcnode: %w: %s", err, lastLines(string(out), 10))
	}
	return nil
}

// gitOut runs git in dir and returns its trimmed output.
func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// dataset is the data every run adds and fetches, with digests to check
// what comes back.
type dataset struct {
	file, tree           string
	fileSum, treeSum     string
	fileBytes, treeBytes int64
}

func (d *dataset) make(o *options) error {
	if err := os.MkdirAll(d.tree, 0o755); err != nil {
		return err
	}
	if err := writeRandomFile(d.file, o.fileSize, 42); err != nil {
		return err
	}
	d.fileBytes = o.fileSize
	n, err := writeRandomTree(d.tree, o.treeFiles, o.treeFile, 43)
	if err != nil {
		return err
	}
	d.treeBytes = n
	// Written back now, so that no writeback of the source competes with
	// the timed runs.
	syncAll()
	if d.fileSum, err = fileDigest(d.file); err != nil {
		return err
	}
	d.treeSum, err = treeDigest(d.tree)
	return err
}

// scenarios are the measured scenarios, filled in by each scenarioRun.
type scenarios struct {
	add, fetch, treeAdd, treeFetch, idle *scenario
	memberFetch, memberTreeFetch         *scenario
	dnsQPS, dnsP99                       *scenario
	shareFetch, shareEncFetch            *scenario
	shareTreeFetch                       *scenario
	// want reports whether a scenario is selected (-only).
	want func(*scenario) bool
}

// any reports whether one of ss is selected.
func (sc *scenarios) any(ss ...*scenario) bool {
	return slices.ContainsFunc(ss, sc.want)
}

// dnsInFlight is how many queries the DNS load keeps outstanding, as
// dnsperf's -c/-q would; more only measures the scheduler of a 2-core box.
const dnsInFlight = 8

// benchZone is the zone daemon A serves during a run.
const benchZone = "bench.test."

// freeLoopbackPort returns a loopback UDP port that was free a moment ago
// (the daemon binds both UDP and TCP on it).
func freeLoopbackPort() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// scenarioRun is one run of every selected scenario with fresh homes:
// daemon A adds the file and the tree; a fresh daemon B (of its own cloud)
// idles, is measured, connects to A and fetches both by bitswap; then B
// stops and a fresh daemon C that joined A's cloud fetches both over the
// members' DAG stream; then C stops and a fresh friend F (of its own
// cloud) gets A's share links: the file plain and encrypted, and the tree.
// Steps whose scenarios -only leaves out are skipped. It returns the first
// error after recording it on the scenario it belongs to.
func (b *bench) scenarioRun(ctx context.Context, i int, data *dataset, sc *scenarios) (err error) {
	add, fetch, treeAdd, treeFetch, idle := sc.add, sc.fetch, sc.treeAdd, sc.treeFetch, sc.idle
	dir := filepath.Join(b.tmp, fmt.Sprintf("run%d", i+1))
	homeA, homeB, homeC, homeF := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c"), filepath.Join(dir, "f")
	for _, h := range []string{homeA, homeB, homeC, homeF} {
		if err := os.MkdirAll(h, 0o700); err != nil {
			return err
		}
	}
	defer func() {
		b.pc.stopAll()
		b.discard(dir)
	}()
	fail := func(s *scenario, err error) error {
		s.Err = err
		return fmt.Errorf("run %d: %s: %w", i+1, s.Name, err)
	}
	n := fmt.Sprintf("run %d/%d", i+1, b.o.runs)
	pc := b.pc

	if err := pc.initHome(ctx, homeA); err != nil {
		return fail(add, err)
	}
	// A also serves its zone, for the DNS scenarios at the end of the run
	// (no rate limit: the load comes from one loopback address).
	dnsAddr, err := freeLoopbackPort()
	if err != nil {
		return fail(sc.dnsQPS, err)
	}
	for _, kv := range [][2]string{{"dns.zone", benchZone}, {"dns.listen", dnsAddr}, {"dns.rate_limit", "off"}} {
		if _, err := pc.run(ctx, homeA, "config", "set", kv[0], kv[1]); err != nil {
			return fail(sc.dnsQPS, err)
		}
	}
	da, err := pc.startDaemon(ctx, homeA)
	if err != nil {
		return fail(add, err)
	}
	var fileCID, treeCID string
	if sc.any(add, fetch, sc.memberFetch, sc.shareFetch, sc.shareEncFetch) {
		m, err := measure([]*daemon{da}, func() (cpu time.Duration, err error) {
			fileCID, cpu, err = pc.add(ctx, homeA, data.file)
			return cpu, err
		})
		if err != nil {
			return fail(add, err)
		}
		pc.shareAdded(ctx, homeA, fileCID)
		add.record(mibps(data.fileBytes, m.wall), m)
		b.logf("%s: add file: %.2f s, %s MiB/s, %.2f CPU s (%s)", n, m.wall.Seconds(), num(mibps(data.fileBytes, m.wall), "MiB/s"), m.cpu.Seconds(), fileCID)
	}

	if sc.any(treeAdd, treeFetch, sc.memberTreeFetch, sc.shareTreeFetch) {
		m, err := measure([]*daemon{da}, func() (cpu time.Duration, err error) {
			treeCID, cpu, err = pc.add(ctx, homeA, data.tree)
			return cpu, err
		})
		if err != nil {
			return fail(treeAdd, err)
		}
		pc.shareAdded(ctx, homeA, treeCID)
		treeAdd.record(m.wall.Seconds(), m)
		b.logf("%s: add tree: %.3f s, %.2f CPU s (%s)", n, m.wall.Seconds(), m.cpu.Seconds(), treeCID)
	}

	st, err := pc.status(ctx, homeA)
	if err != nil {
		return fail(fetch, err)
	}
	addr, err := loopbackAddr(st.Addrs)
	if err != nil {
		return fail(fetch, err)
	}
	out := filepath.Join(dir, "out-file")
	// getFile and getTree time one `pcnode get` of what (a CID or a link)
	// on home against the daemons ds, check the result and record it.
	getFile := func(s *scenario, label, home, what string, ds []*daemon) error {
		m, err := measure(ds, func() (time.Duration, error) { return pc.get(ctx, home, what, out) })
		if err != nil {
			return fail(s, err)
		}
		if sum, err := fileDigest(out); err != nil || sum != data.fileSum {
			return fail(s, fmt.Errorf("fetched file differs from the source (digest %s, want %s, %v)", sum, data.fileSum, err))
		}
		os.Remove(out)
		s.record(mibps(data.fileBytes, m.wall), m)
		b.logf("%s: %s: %.2f s, %s MiB/s, %.2f CPU s", n, label, m.wall.Seconds(), num(mibps(data.fileBytes, m.wall), "MiB/s"), m.cpu.Seconds())
		return nil
	}
	getTree := func(s *scenario, label, home, what string, ds []*daemon) error {
		outTree := filepath.Join(dir, "out-"+strings.ReplaceAll(label, " ", "-")) // kept: see discard
		m, err := measure(ds, func() (time.Duration, error) { return pc.get(ctx, home, what, outTree) })
		if err != nil {
			return fail(s, err)
		}
		if sum, err := treeDigest(outTree); err != nil || sum != data.treeSum {
			return fail(s, fmt.Errorf("fetched tree differs from the source (digest %s, want %s, %v)", sum, data.treeSum, err))
		}
		b.discard(outTree)
		s.record(m.wall.Seconds(), m)
		b.logf("%s: %s: %.3f s, %.2f CPU s", n, label, m.wall.Seconds(), m.cpu.Seconds())
		return nil
	}

	if sc.any(idle, fetch, treeFetch) {
		if err := pc.initHome(ctx, homeB); err != nil {
			return fail(idle, err)
		}
		db, err := pc.startDaemon(ctx, homeB)
		if err != nil {
			return fail(idle, err)
		}
		if sc.want(idle) {
			select {
			case <-ctx.Done():
				return fail(idle, ctx.Err())
			case <-time.After(b.o.idle): // the idle period is what is measured
			}
			r, err := rss(db.pid())
			if err != nil {
				return fail(idle, err)
			}
			idle.Samples = append(idle.Samples, float64(r)/mib)
			b.logf("%s: idle daemon RSS: %.1f MiB", n, float64(r)/mib)
		}
		if err := pc.connect(ctx, homeB, addr); err != nil {
			return fail(fetch, err)
		}
		both := []*daemon{da, db}
		if sc.want(fetch) {
			if err := getFile(fetch, "fetch file", homeB, fileCID, both); err != nil {
				return err
			}
		}
		if sc.want(treeFetch) {
			if err := getTree(treeFetch, "fetch tree", homeB, treeCID, both); err != nil {
				return err
			}
		}
		// B stops, so that it takes no CPU.
		pc.stop(db)
	}

	// A member: C joins A's cloud with an invite, starts, connects to A
	// and fetches over the DAG stream.
	if sc.any(sc.memberFetch, sc.memberTreeFetch) {
		dc, err := b.joinMember(ctx, homeA, homeC, addr)
		if err != nil {
			return fail(sc.memberFetch, err)
		}
		both := []*daemon{da, dc}
		if sc.want(sc.memberFetch) {
			if err := getFile(sc.memberFetch, "member fetch file", homeC, fileCID, both); err != nil {
				return err
			}
		}
		if sc.want(sc.memberTreeFetch) {
			if err := getTree(sc.memberTreeFetch, "member fetch tree", homeC, treeCID, both); err != nil {
				return err
			}
		}
		pc.stop(dc)
	}

	// A friend: A makes the links (outside the timing: the encrypted one
	// imports the file again, encrypted), fresh F connects to A and gets
	// each link.
	if sc.any(sc.shareFetch, sc.shareEncFetch, sc.shareTreeFetch) {
		links := map[*scenario]string{}
		for _, l := range []struct {
			s       *scenario
			arg     string
			encrypt bool
		}{{sc.shareFetch, fileCID, false}, {sc.shareEncFetch, data.file, true}, {sc.shareTreeFetch, treeCID, false}} {
			if !sc.want(l.s) {
				continue
			}
			link, err := pc.share(ctx, homeA, l.arg, l.encrypt)
			if err != nil {
				return fail(l.s, err)
			}
			links[l.s] = link
		}
		if err := pc.initHome(ctx, homeF); err != nil {
			return fail(sc.shareFetch, err)
		}
		df, err := pc.startDaemon(ctx, homeF)
		if err != nil {
			return fail(sc.shareFetch, err)
		}
		if err := pc.connect(ctx, homeF, addr); err != nil {
			return fail(sc.shareFetch, err)
		}
		both := []*daemon{da, df}
		if sc.want(sc.shareFetch) {
			if err := getFile(sc.shareFetch, "friend gets file link", homeF, links[sc.shareFetch], both); err != nil {
				return err
			}
		}
		if sc.want(sc.shareEncFetch) {
			if err := getFile(sc.shareEncFetch, "friend gets encrypted file link", homeF, links[sc.shareEncFetch], both); err != nil {
				return err
			}
		}
		if sc.want(sc.shareTreeFetch) {
			if err := getTree(sc.shareTreeFetch, "friend gets tree link", homeF, links[sc.shareTreeFetch], both); err != nil {
				return err
			}
		}
		pc.stop(df)
	}

	// DNS: A's authoritative server answers signed queries for its zone
	// (_pcnode, _dnsaddr, SOA, NXDOMAIN names) from this process.
	if b.o.dnsQueries == 0 || !sc.any(sc.dnsQPS, sc.dnsP99) {
		return nil
	}
	var lr dnslink.LoadResult
	m, err := measure([]*daemon{da}, func() (time.Duration, error) {
		var err error
		lr, err = dnslink.LoadTest(ctx, dnsAddr, benchZone, b.o.dnsQueries, dnsInFlight)
		if err == nil && lr.Errors > lr.Queries/100 {
			err = fmt.Errorf("%d of %d queries failed", lr.Errors, lr.Queries+lr.Errors)
		}
		return 0, err
	})
	if err != nil {
		return fail(sc.dnsQPS, err)
	}
	sc.dnsQPS.record(lr.QPS, m)
	sc.dnsP99.Samples = append(sc.dnsP99.Samples, float64(lr.P99)/float64(time.Millisecond))
	b.logf("%s: dns: %s", n, lr)
	return nil
}

// joinMember makes homeC a member of homeA's cloud (A's daemon running),
// starts its daemon and connects it to A at addr.
func (b *bench) joinMember(ctx context.Context, homeA, homeC, addr string) (*daemon, error) {
	pc := b.pc
	if err := pc.initMemberHome(ctx, homeC); err != nil {
		return nil, err
	}
	code, err := pc.invite(ctx, homeA)
	if err != nil {
		return nil, err
	}
	if err := pc.join(ctx, homeC, code); err != nil {
		return nil, err
	}
	dc, err := pc.startDaemon(ctx, homeC)
	if err != nil {
		return nil, err
	}
	if err := pc.connect(ctx, homeC, addr); err != nil {
		return nil, err
	}
	return dc, nil
}

// measurement is the wall time of one timed command and the CPU time it
// cost: the command's own plus what the daemons used meanwhile.
type measurement struct {
	wall, cpu time.Duration
	cpuOK     bool // false where /proc could not be read
}

// measure runs f, which returns the CPU time of the command it ran, and
// adds the CPU time the daemons ds used meanwhile.
func measure(ds []*daemon, f func() (time.Duration, error)) (measurement, error) {
	before, ok1 := daemonsCPU(ds)
	start := time.Now()
	cli, err := f()
	wall := time.Since(start)
	after, ok2 := daemonsCPU(ds)
	return measurement{wall: wall, cpu: after - before + cli, cpuOK: ok1 && ok2}, err
}

func daemonsCPU(ds []*daemon) (time.Duration, bool) {
	var sum time.Duration
	for _, d := range ds {
		c, err := procCPU(d.pid())
		if err != nil {
			return 0, false
		}
		sum += c
	}
	return sum, true
}

// fileDigest is the hex SHA-256 of a file's content.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// treeDigest hashes the relative path, kind and content of every entry
// under root in lexical order, so two trees with the same names and bytes
// have the same digest.
func treeDigest(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case d.Type().IsRegular():
			sum, err := fileDigest(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %s\n", rel, sum)
		default:
			fmt.Fprintf(h, "? %q %v\n", rel, d.Type())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeAtomic renders rep into path through a temporary file and a rename.
func writeAtomic(path string, rep *report) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".bench-*.md")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := render(f, rep); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// sizeString writes a size in the largest binary unit that divides it.
func sizeString(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}

// loadavg is the 1, 5 and 15 minute load averages: on a shared machine
// they say how much else ran during the measurements.
func loadavg() string {
	return strings.Join(firstN(strings.Fields(readTrim("/proc/loadavg")), 3), " ")
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
