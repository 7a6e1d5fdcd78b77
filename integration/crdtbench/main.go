// Command crdtbench measures go-ds-crdt (v0.6.8) against the targets of
// pcnode's folder index: a new device's initial sync of a 100,000-entry
// index under 30 s with the daemon under 300 MiB, and history that does not
// grow without bound. docs/FOLDERS.md ("Index and its exchange") quotes its
// figures; pcnode itself uses per-device logs instead.
//
// Run it from the module root (it takes several minutes and two cores):
//
//	go run ./integration/crdtbench
//
// Two devices run on loopback only (TCP on 127.0.0.1, no bootstrap peers,
// no mDNS, no port mapping, no relay, no DHT; B dials A directly). Each has
// a libp2p host, a go-ds-pebble datastore in a temporary directory, a boxo
// blockstore on that datastore, bitswap (bsnet) on the host, a blockservice
// and merkledag DAGService over them, a GossipSub router with
// crdt.NewPubSubBroadcaster on one topic, and crdt.New with a 1 s
// RebroadcastInterval (other options at crdt.DefaultOptions). A is this
// process; each B is a child process (the same binary with -role b) so that
// its CPU time and peak RSS (VmHWM) are its own.
//
// Keys look like folder index paths (/f/Photos/0042/07/IMG_004207.jpg) and
// values are 101 bytes shaped like a folder index entry (CIDv1, size,
// mtime, mode, flags, a version vector of three devices, last writer).
//
// Scenarios:
//
//  1. scan batches: A writes -keys entries in crdt batches of -batch (one
//     delta per commit, as pcnode's scan commits 2,000 entries at a time);
//     then a new, empty B connects and syncs.
//  2. history: A rewrites the same keys -rounds more times in the same
//     batches; after each round the program reports A's DAG (blocks and
//     bytes in the blockstore), the crdt set's element records and the
//     pebble directory size, against a key count that stays the same.
//  3. sync after history: a new, empty B syncs from A after those rounds.
//  4. edits: a fresh A writes -edits entries, each Put its own delta (as a
//     watched folder's small changes produce); a new, empty B syncs.
//
// For each sync the clock runs from B's crdt.New. "B keys" is when a
// KeysOnly query on B's crdt store counts every key and a sample of 200
// keys has A's latest values (checked every 200 ms once B's PutHook has
// fired for as many keys); "B DAG" is when B has also processed (merged)
// every DAG block A has. Each sync waits at most -timeout and then reports
// how far it got. B's CPU is its process's user+system time from crdt.New
// to the end of the sync; A's is this process's over the same run (A
// serving bitswap and gossip). The program stops by itself and prints a
// table.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	crdt "github.com/ipfs/go-ds-crdt"
	pebbleds "github.com/ipfs/go-ds-pebble"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// crdtNS is the crdt's namespace in each device's datastore; the crdt keeps
// its set under crdtNS/s (elements /s/s, tombstones /s/t, values /s/k),
// its heads under crdtNS/h and processed-block marks under crdtNS/b.
const crdtNS = "/crdt"

type config struct {
	role     string
	keys     int
	batch    int
	edits    int
	rounds   int
	timeout  time.Duration
	connect  string
	topic    string
	round    int
	blocks   int
	dir      string
	poll     time.Duration
	samples  int
	keepTemp bool
}

func main() {
	var c config
	flag.StringVar(&c.role, "role", "a", "a: run the scenarios (device A); b: one syncing device (started by a)")
	flag.IntVar(&c.keys, "keys", 100000, "entries in scenarios 1-3")
	flag.IntVar(&c.batch, "batch", 2000, "entries per crdt batch (delta) in scenarios 1-3")
	flag.IntVar(&c.edits, "edits", 10000, "entries in scenario 4, one delta each")
	flag.IntVar(&c.rounds, "rounds", 5, "rewrites of every key after scenario 1")
	flag.DurationVar(&c.timeout, "timeout", 300*time.Second, "longest wait for one sync")
	flag.StringVar(&c.connect, "connect", "", "b: A's multiaddr with /p2p/<id>")
	flag.StringVar(&c.topic, "topic", "", "b: pubsub topic")
	flag.IntVar(&c.round, "round", 0, "b: the write round whose values are the latest")
	flag.IntVar(&c.blocks, "blocks", 0, "b: DAG blocks A has")
	flag.StringVar(&c.dir, "dir", "", "b: datastore directory")
	flag.DurationVar(&c.poll, "poll", 200*time.Millisecond, "b: how often to check progress")
	flag.IntVar(&c.samples, "samples", 200, "b: keys whose values are checked")
	flag.BoolVar(&c.keepTemp, "keep", false, "a: keep the temporary directories")
	flag.Parse()

	var err error
	switch c.role {
	case "a":
		err = runA(c)
	case "b":
		err = runB(c)
	default:
		err = fmt.Errorf("unknown role %q", c.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdtbench:", err)
		os.Exit(1)
	}
}

// key is the i-th path of the folder: 100 entries per directory.
func key(i int) ds.Key {
	return ds.NewKey(fmt.Sprintf("/f/Photos/%04d/%02d/IMG_%06d.jpg", i/100, i%100/10, i))
}

// value is the i-th entry as written in the given round: 101 bytes.
func value(i, round int) []byte {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", i, round)))
	b := make([]byte, 0, 101)
	b = append(b, 0x01, 0x55, 0x12, 0x20) // CIDv1, raw, sha2-256, 32 bytes
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(1<<20+i*37))                        // size
	b = binary.BigEndian.AppendUint64(b, uint64(1_760_000_000_000_000_000+i+round)) // mtime ns
	b = binary.BigEndian.AppendUint32(b, 0o644)                                     // mode
	b = append(b, 0)                                                                // flags: file, not deleted
	for d := range 3 {                                                              // version vector
		b = binary.BigEndian.AppendUint64(b, uint64(0x1111_1111_1111_1111*(d+1)))
		b = binary.BigEndian.AppendUint32(b, uint32(round+d))
	}
	return binary.BigEndian.AppendUint64(b, 0x1111_1111_1111_1111) // last writer
}

// device is one replica: host, datastore, bitswap, DAG, gossip and crdt.
type device struct {
	dir    string
	pds    *pebbleds.Datastore
	bstore blockstore.Blockstore
	host   host.Host
	bs     *bitswap.Bitswap
	dag    ipld.DAGService
	ps     *pubsub.PubSub
	cancel context.CancelFunc // the broadcaster's and pubsub's context
	store  *crdt.Datastore
}

func newDevice(dir string) (*device, error) {
	d := &device{dir: dir}
	var err error
	if d.pds, err = pebbleds.NewDatastore(filepath.Join(dir, "pebble")); err != nil {
		return nil, err
	}
	d.bstore = blockstore.NewBlockstore(d.pds)
	d.host, err = libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
	)
	if err != nil {
		d.pds.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.bs = bitswap.New(ctx, bsnet.NewFromIpfsHost(d.host), nil, d.bstore)
	d.dag = merkledag.NewDAGService(blockservice.New(d.bstore, d.bs))
	if d.ps, err = pubsub.NewGossipSub(ctx, d.host); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// start runs the crdt on topic; hook (may be nil) sees every put.
func (d *device) start(topic string, hook func(ds.Key, []byte)) error {
	ctx, cancel := context.WithCancel(context.Background())
	bc, err := crdt.NewPubSubBroadcaster(ctx, d.ps, topic)
	if err != nil {
		cancel()
		return err
	}
	prev := d.cancel
	d.cancel = func() { cancel(); prev() }
	opts := crdt.DefaultOptions()
	opts.RebroadcastInterval = time.Second
	opts.PutHook = hook
	d.store, err = crdt.New(d.pds, ds.NewKey(crdtNS), d.dag, bc, opts)
	return err
}

func (d *device) addr() string {
	return fmt.Sprintf("%s/p2p/%s", d.host.Addrs()[0], d.host.ID())
}

// close stops everything, the broadcaster first as crdt asks.
func (d *device) close() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.bs != nil {
		d.bs.Close()
	}
	if d.host != nil {
		d.host.Close()
	}
	if d.pds != nil {
		d.pds.Close()
	}
}

// countPrefix counts the keys under prefix in q (KeysOnly).
func countPrefix(ctx context.Context, q ds.Read, prefix string) (int, error) {
	res, err := q.Query(ctx, query.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		return 0, err
	}
	defer res.Close()
	n := 0
	for r := range res.Next() {
		if r.Error != nil {
			return n, r.Error
		}
		n++
	}
	return n, nil
}

// dagStats is what A's store holds after a write round.
type dagStats struct {
	Keys        int   // keys the crdt answers
	Blocks      int   // DAG blocks in the blockstore
	BlockBytes  int64 // their total size
	Elems       int   // crdt set element records (one per key per delta)
	PebbleBytes int64 // size of the pebble directory after a flush
}

func (d *device) stats(ctx context.Context) (dagStats, error) {
	var s dagStats
	var err error
	if s.Keys, err = countPrefix(ctx, d.store, "/"); err != nil {
		return s, err
	}
	ch, err := d.bstore.AllKeysChan(ctx)
	if err != nil {
		return s, err
	}
	for c := range ch {
		n, err := d.bstore.GetSize(ctx, c)
		if err != nil {
			return s, err
		}
		s.Blocks++
		s.BlockBytes += int64(n)
	}
	if s.Elems, err = countPrefix(ctx, d.pds, crdtNS+"/s/s"); err != nil {
		return s, err
	}
	if err := d.pds.DB.Flush(); err != nil {
		return s, err
	}
	err = filepath.WalkDir(filepath.Join(d.dir, "pebble"), func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err == nil {
			s.PebbleBytes += fi.Size()
		}
		return err
	})
	return s, err
}

// writeBatches writes keys [0, n) with round's values, batch entries per delta.
func writeBatches(ctx context.Context, st *crdt.Datastore, n, batch, round int) error {
	for start := 0; start < n; start += batch {
		b, err := st.Batch(ctx)
		if err != nil {
			return err
		}
		for i := start; i < min(start+batch, n); i++ {
			if err := b.Put(ctx, key(i), value(i, round)); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// cpuSeconds is this process's user+system time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procStatus reads a "kB" field of /proc/self/status, in KiB.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// syncResult is what B reports (JSON on its stdout).
type syncResult struct {
	KeysSec     float64 // from crdt.New until every key answers with its latest value; -1 if not reached
	DAGSec      float64 // until every block of A's DAG is processed too; -1 if not reached
	Keys        int     // keys B answered at the end
	Processed   int     // blocks B had processed at the end
	FirstPutSec float64 // first PutHook call
	CPUSec      float64 // B's CPU from crdt.New to the end
	HWMKiB      int64   // B's peak RSS (VmHWM), whole process
	GoSysMiB    float64 // Go runtime's memory from the OS at the end
	BlocksRecv  uint64  // bitswap blocks received
	BytesRecv   uint64
	DupBlocks   uint64
	Dirty       bool // the crdt marked itself dirty
	Err         string
}

func runB(c config) error {
	res := syncResult{KeysSec: -1, DAGSec: -1, FirstPutSec: -1}
	err := syncB(c, &res)
	if err != nil {
		res.Err = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func syncB(c config, res *syncResult) error {
	ctx := context.Background()
	d, err := newDevice(c.dir)
	if err != nil {
		return err
	}
	pi, err := peer.AddrInfoFromString(c.connect)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = d.host.Connect(cctx, *pi)
	cancel()
	if err != nil {
		return err
	}
	var puts atomic.Int64
	var firstPut atomic.Int64
	cpu0 := cpuSeconds()
	t0 := time.Now()
	hook := func(ds.Key, []byte) {
		if puts.Add(1) == 1 {
			firstPut.Store(int64(time.Since(t0)))
		}
	}
	if err := d.start(c.topic, hook); err != nil {
		return err
	}
	defer func() {
		res.CPUSec = cpuSeconds() - cpu0
		if n := firstPut.Load(); n > 0 {
			res.FirstPutSec = time.Duration(n).Seconds()
		}
		res.Dirty = d.store.IsDirty(ctx)
		if st, err := d.bs.Stat(); err == nil {
			res.BlocksRecv, res.BytesRecv, res.DupBlocks = st.BlocksReceived, st.DataReceived, st.DupBlksReceived
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		res.GoSysMiB = float64(ms.Sys) / (1 << 20)
		res.HWMKiB = procStatus("VmHWM")
		// Close may wait for a fetch in flight; A kills B if it hangs.
		d.close()
	}()

	sampleOK := func() (bool, error) {
		for s := range c.samples {
			i := s * c.keys / c.samples
			v, err := d.store.Get(ctx, key(i))
			if errors.Is(err, ds.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if string(v) != string(value(i, c.round)) {
				return false, nil
			}
		}
		return true, nil
	}
	deadline := time.After(c.timeout)
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-deadline:
			res.Keys, err = countPrefix(ctx, d.store, "/")
			if err != nil {
				return err
			}
			res.Processed, err = countPrefix(ctx, d.pds, crdtNS+"/b")
			return err
		case <-tick.C:
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			fmt.Fprintf(os.Stderr, "  B %4.0f s: %d puts\n", time.Since(t0).Seconds(), puts.Load())
		}
		if res.KeysSec < 0 && puts.Load() >= int64(c.keys) {
			n, err := countPrefix(ctx, d.store, "/")
			if err != nil {
				return err
			}
			ok, err := sampleOK()
			if err != nil {
				return err
			}
			if n == c.keys && ok {
				res.KeysSec = time.Since(t0).Seconds()
				res.Keys = n
			}
		}
		if res.KeysSec >= 0 {
			n, err := countPrefix(ctx, d.pds, crdtNS+"/b")
			if err != nil {
				return err
			}
			res.Processed = n
			if n >= c.blocks {
				res.DAGSec = time.Since(t0).Seconds()
				return nil
			}
		}
	}
}

// row is one line of the sync table.
type row struct {
	name   string
	keys   int
	deltas int
	write  time.Duration // A's writes (all rounds before this sync)
	writeC float64       // A's CPU for them
	res    syncResult
	aCPU   float64 // A's CPU while B synced
}

func runA(c config) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "crdtbench-")
	if err != nil {
		return err
	}
	if !c.keepTemp {
		defer os.RemoveAll(tmp)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	started := time.Now().UTC()
	var rows []row
	var history []dagStats
	var historyT []time.Duration

	// Scenario 1: scan batches.
	a, err := newDevice(filepath.Join(tmp, "a1"))
	if err != nil {
		return err
	}
	if err := a.start("crdtbench-1", nil); err != nil {
		a.close()
		return err
	}
	fmt.Fprintf(os.Stderr, "1: A writes %d entries in batches of %d\n", c.keys, c.batch)
	cpu0, t0 := cpuSeconds(), time.Now()
	if err := writeBatches(ctx, a.store, c.keys, c.batch, 0); err != nil {
		a.close()
		return err
	}
	r1 := row{name: "1 scan batches", keys: c.keys, write: time.Since(t0), writeC: cpuSeconds() - cpu0}
	st, err := a.stats(ctx)
	if err != nil {
		a.close()
		return err
	}
	history, historyT = append(history, st), append(historyT, r1.write)
	r1.deltas = st.Blocks
	fmt.Fprintf(os.Stderr, "1: written in %.1f s (%d blocks); B syncs\n", r1.write.Seconds(), st.Blocks)
	r1.res, r1.aCPU = spawnB(c, self, filepath.Join(tmp, "b1"), a, "crdtbench-1", c.keys, 0, st.Blocks)
	rows = append(rows, r1)

	// History: rewrite every key c.rounds more times.
	var totalW time.Duration
	var totalC float64
	totalW, totalC = r1.write, r1.writeC
	for round := 1; round <= c.rounds; round++ {
		cpu0, t0 := cpuSeconds(), time.Now()
		if err := writeBatches(ctx, a.store, c.keys, c.batch, round); err != nil {
			a.close()
			return err
		}
		w := time.Since(t0)
		totalW += w
		totalC += cpuSeconds() - cpu0
		st, err := a.stats(ctx)
		if err != nil {
			a.close()
			return err
		}
		fmt.Fprintf(os.Stderr, "history round %d: %.1f s, %d blocks, %d elems\n", round, w.Seconds(), st.Blocks, st.Elems)
		history, historyT = append(history, st), append(historyT, w)
	}

	// Scenario 3: a new device after the history.
	if c.rounds > 0 {
		last := history[len(history)-1]
		fmt.Fprintf(os.Stderr, "3: B syncs after %d rewrites\n", c.rounds)
		r3 := row{name: fmt.Sprintf("3 after %d rewrites", c.rounds), keys: c.keys, deltas: last.Blocks, write: totalW, writeC: totalC}
		r3.res, r3.aCPU = spawnB(c, self, filepath.Join(tmp, "b3"), a, "crdtbench-1", c.keys, c.rounds, last.Blocks)
		rows = append(rows, r3)
	}
	aHWM := procStatus("VmHWM")
	a.close()

	// Scenario 4: edits, one delta each, on a fresh A.
	if c.edits > 0 {
		a, err := newDevice(filepath.Join(tmp, "a4"))
		if err != nil {
			return err
		}
		if err := a.start("crdtbench-4", nil); err != nil {
			a.close()
			return err
		}
		fmt.Fprintf(os.Stderr, "4: A writes %d entries, one delta each\n", c.edits)
		cpu0, t0 := cpuSeconds(), time.Now()
		for i := range c.edits {
			if err := a.store.Put(ctx, key(i), value(i, 0)); err != nil {
				a.close()
				return err
			}
		}
		r4 := row{name: "4 edits (1 entry/delta)", keys: c.edits, write: time.Since(t0), writeC: cpuSeconds() - cpu0}
		st, err := a.stats(ctx)
		if err != nil {
			a.close()
			return err
		}
		r4.deltas = st.Blocks
		fmt.Fprintf(os.Stderr, "4: written in %.1f s (%d blocks, %.1f MiB pebble); B syncs\n", r4.write.Seconds(), st.Blocks, mib(st.PebbleBytes))
		r4.res, r4.aCPU = spawnB(c, self, filepath.Join(tmp, "b4"), a, "crdtbench-4", c.edits, 0, st.Blocks)
		rows = append(rows, r4)
		a.close()
	}

	report(c, started, rows, history, historyT, aHWM)
	return nil
}

// spawnB runs one syncing device B as a child process and returns its
// result and A's CPU over the same time.
func spawnB(c config, self, dir string, a *device, topic string, keys, round, blocks int) (syncResult, float64) {
	res := syncResult{KeysSec: -1, DAGSec: -1, FirstPutSec: -1}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self,
		"-role", "b",
		"-connect", a.addr(),
		"-topic", topic,
		"-keys", strconv.Itoa(keys),
		"-round", strconv.Itoa(round),
		"-blocks", strconv.Itoa(blocks),
		"-dir", dir,
		"-timeout", c.timeout.String(),
		"-poll", c.poll.String(),
		"-samples", strconv.Itoa(c.samples),
	)
	cmd.Stderr = os.Stderr
	cpu0 := cpuSeconds()
	out, err := cmd.Output()
	aCPU := cpuSeconds() - cpu0
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		res.Err = fmt.Sprintf("child: %v; output %q", errors.Join(err, jerr), out)
	} else if err != nil && res.Err == "" {
		res.Err = err.Error()
	}
	if res.Err != "" {
		fmt.Fprintln(os.Stderr, "B:", res.Err)
	}
	return res, aCPU
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func secs(s float64, timeout time.Duration) string {
	if s < 0 {
		return fmt.Sprintf(">%.0f s", timeout.Seconds())
	}
	return fmt.Sprintf("%.1f s", s)
}

func report(c config, started time.Time, rows []row, history []dagStats, historyT []time.Duration, aHWM int64) {
	host, _ := os.Hostname()
	fmt.Printf("go-ds-crdt v0.6.8, 2 devices on loopback (pebble, bitswap, gossipsub), %s, %s, %d cores, %s\n",
		started.Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runtime.Version())
	fmt.Println()
	fmt.Printf("%-24s %7s %6s %9s %7s %8s %8s %7s %7s %10s %7s\n",
		"sync of a new device", "keys", "deltas", "A write", "A CPU", "B keys", "B DAG", "B CPU", "A CPU", "B peak RSS", "B recv")
	for _, r := range rows {
		fmt.Printf("%-24s %7d %6d %7.1f s %5.1f s %8s %8s %5.1f s %5.1f s %6.0f MiB %3.0f MiB\n",
			r.name, r.keys, r.deltas, r.write.Seconds(), r.writeC,
			secs(r.res.KeysSec, c.timeout), secs(r.res.DAGSec, c.timeout),
			r.res.CPUSec, r.aCPU, float64(r.res.HWMKiB)/1024, mib(int64(r.res.BytesRecv)))
	}
	for _, r := range rows {
		if r.res.KeysSec < 0 || r.res.DAGSec < 0 {
			fmt.Printf("  %s: not complete in %.0f s: %d of %d keys, %d of %d blocks processed\n",
				r.name, c.timeout.Seconds(), r.res.Keys, r.keys, r.res.Processed, r.deltas)
		}
		if r.res.Dirty || r.res.Err != "" {
			fmt.Printf("  %s: dirty=%t err=%q\n", r.name, r.res.Dirty, r.res.Err)
		}
	}
	fmt.Println()
	fmt.Printf("%-24s %7s %8s %9s %10s %10s %9s\n", "A's store after write", "keys", "blocks", "DAG MiB", "set elems", "pebble MiB", "write")
	for i, s := range history {
		fmt.Printf("%-24d %7d %8d %9.1f %10d %10.1f %7.1f s\n",
			i+1, s.Keys, s.Blocks, mib(s.BlockBytes), s.Elems, mib(s.PebbleBytes), historyT[i].Seconds())
	}
	fmt.Printf("\nA's peak RSS (this process, scenarios 1-3): %.0f MiB\n", float64(aHWM)/1024)
	fmt.Printf("B keys: every key answered with A's latest value; B DAG: every block of A's DAG merged; clocks from B's crdt.New.\n")
	fmt.Printf("B CPU: B's process from crdt.New; A CPU: A's process while B synced; B peak RSS: B's VmHWM; B recv: bitswap bytes.\n")
}
