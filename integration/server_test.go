package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pcnode/pcnode/node/api"
)

// newServer is newProc for a home server: role server, which creates the
// cloud (so it is its admin and invites the others).
func newServer(t *testing.T, name string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: pcnodeBinary(t), home: filepath.Join(t.TempDir(), name)}
	p.must("init", "--profile", "local", "--role", "server", "--name", name)
	p.must("config", "set", "api.listen", "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

// shares is `pcnode share ls --json`.
func (p *proc) shares() []api.ShareInfo {
	p.t.Helper()
	var l struct {
		Shares []api.ShareInfo `json:"shares"`
	}
	p.mustJSON(&l, "share", "ls")
	return l.Shares
}

// waitShare polls p's shares until one of root c is in state.
func (p *proc) waitShare(c, state string) api.ShareInfo {
	p.t.Helper()
	deadline := time.Now().Add(memberWait)
	for {
		for _, s := range p.shares() {
			if s.CID == c && s.State == state {
				return s
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %s share of %s within %v: %+v\n%s", p.name, state, c, memberWait, p.shares(), p.logs())
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

// TestServerKeepsSharesAndFolders is issue 7's check: a laptop pairs with
// the home server, its folder is replicated on the server receive-only,
// its share is mirrored there, and with the laptop stopped the friend (no
// member) still gets the share, by the laptop's own link, from the server.
// A share the laptop revokes stops on the server too.
func TestServerKeepsSharesAndFolders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	srv := newServer(t, "server")
	laptop := newDevice(t, "laptop")
	friend := newProc(t, "friend")
	srv.start()
	laptop.start()
	friend.start()

	var inv api.InviteResult
	srv.mustJSON(&inv, "invite", "--ttl", "5m")
	var ci api.CloudInfo
	laptop.mustJSON(&ci, "join", inv.Code)
	srv.waitDevices("laptop online", connected("laptop"))

	// A folder on the laptop appears on the server by itself.
	t0 := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	docs := filepath.Join(t.TempDir(), "docs")
	writeAt(t, docs, "notes.txt", "notes", t0)
	writeAt(t, docs, "sub/plan.txt", "plan", t0)
	var fi api.FolderInfo
	laptop.mustJSON(&fi, "folder", "add", docs)
	replica := filepath.Join(srv.home, "replicas", fi.ID)
	waitSame(t, nil, docs, replica)
	var fs []api.FolderInfo
	srv.mustJSON(&struct {
		Folders *[]api.FolderInfo `json:"folders"`
	}{&fs}, "folder", "ls")
	if len(fs) != 1 || fs[0].ID != fi.ID || !fs[0].ReceiveOnly {
		t.Fatalf("server folders: %+v", fs)
	}
	// Receive-only: a file written on the server does not reach the laptop.
	writeAt(t, replica, "server-only.txt", "x", t0)
	writeAt(t, docs, "later.txt", "later", t0)
	waitFile(t, filepath.Join(replica, "later.txt"))
	if _, err := os.Stat(filepath.Join(docs, "server-only.txt")); err == nil {
		t.Error("a file written in the server's receive-only replica reached the laptop")
	}

	// Two shares: one the laptop revokes (the server's mirror follows), one
	// the friend fetches once the laptop sleeps.
	dir := t.TempDir()
	gone := writeRandom(t, dir, 100<<10, 2)
	var sGone api.ShareInfo
	laptop.mustJSON(&sGone, "share", gone)
	srv.waitShare(sGone.CID, "active")
	laptop.must("share", "revoke", sGone.ID)
	srv.waitShare(sGone.CID, "revoked")

	item := writeRandom(t, dir, 3<<20, 1)
	var sh api.ShareInfo
	laptop.mustJSON(&sh, "share", item)
	if sh.Link == "" {
		t.Fatalf("share: %+v", sh)
	}
	mirror := srv.waitShare(sh.CID, "active")
	if mirror.Size != sh.Size || mirror.Name != sh.Name {
		t.Errorf("mirror %+v of %+v", mirror, sh)
	}
	laptop.stop()

	out := filepath.Join(t.TempDir(), "from-server.bin")
	friend.must("get", sh.Link, "-o", out)
	sameFile(t, item, out)

	// The friend got it from the server: the server counts the download.
	for _, s := range srv.shares() {
		if s.CID == sh.CID && s.Downloads == 0 {
			t.Errorf("server's mirror shows no download: %+v", s)
		}
	}
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(memberWait)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, memberWait)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}

// TestDaemonReloadJSONLogs: a daemon logging JSON (log.format) takes a
// new DNS zone on SIGHUP without a restart, logs which changed keys need
// one, counts the zone's queries in /metrics, and every log line parses.
func TestDaemonReloadJSONLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon")
	}
	p := newProc(t, "reload")
	p.must("config", "set", "log.format", "json")
	p.start()
	if st := p.status(); st.DNS != "" {
		t.Fatalf("DNS served before it was configured: %+v", st)
	}

	p.must("config", "set", "dns.zone", "example.org")
	p.must("config", "set", "dns.listen", "127.0.0.1:0")
	p.must("config", "set", "p2p.conn_low", "7")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var dnsAddr string
	deadline := time.Now().Add(memberWait)
	for dnsAddr == "" {
		dnsAddr = p.status().DNS
		if dnsAddr == "" && time.Now().After(deadline) {
			t.Fatalf("no DNS server %v after SIGHUP\n%s", memberWait, p.logs())
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
	m := new(dns.Msg)
	m.SetQuestion("_pcnode.example.org.", dns.TypeTXT)
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("query the reloaded zone at %s: %v %v", dnsAddr, r, err)
	}
	if !p.alive() {
		t.Fatal("the daemon died of SIGHUP")
	}

	c, err := api.DialHome(p.home)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^pcnode_dns_queries_total\{transport="udp"\} [1-9]`).Match(b) {
		t.Errorf("no DNS query counted in /metrics:\n%s", grepLines(string(b), "pcnode_dns"))
	}
	for _, name := range []string{"pcnode_server ", "pcnode_p2p_connections{", "pcnode_relay_circuits ", "pcnode_relay_reservations "} {
		if !strings.Contains(string(b), "\n"+name) {
			t.Errorf("/metrics has no %s", name)
		}
	}

	p.stop()
	var reloaded, restartKeys bool
	for i, line := range strings.Split(strings.TrimSpace(readFile(t, p.home+".daemon.log")), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // the daemon's status on stdout shares the file
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line %d lacks time, level or msg: %s", i+1, line)
		}
		switch rec["msg"] {
		case "config reloaded":
			reloaded = strings.Contains(line, "dns.zone")
		case "config keys changed that take effect after a restart":
			restartKeys = strings.Contains(line, "p2p.conn_low")
		}
	}
	if !reloaded || !restartKeys {
		t.Errorf("log: reload record %v, restart keys record %v\n%s", reloaded, restartKeys, p.logs())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
