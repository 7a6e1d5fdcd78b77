package node

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// scrape returns the /metrics text of the node behind c.
func scrape(t *testing.T, c *api.Client) string {
	t.Helper()
	b, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// series returns the value of the first line of a scrape that starts
// with prefix (a name with some of its labels), and whether there is one.
func series(text, prefix string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		f, err := strconv.ParseFloat(line[i+1:], 64)
		return f, err == nil
	}
	return 0, false
}

// TestServerMetricsAndReload: a home server that serves its zone reports
// the server, folder and DNS series; a reload applies a new zone and
// port at once and lists the keys that need a restart.
func TestServerMetricsAndReload(t *testing.T) {
	home := newHomeWith(t, InitOptions{Name: "srv", Role: RoleServer}, map[string]string{
		"dns.zone": "example.org", "dns.listen": "127.0.0.1:0",
	})
	n := startNode(t, home, false)
	c, err := api.DialHome(home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context())
	if err != nil || st.DNS == "" {
		t.Fatalf("status %+v, %v", st, err)
	}
	if txt, _ := queryTXT(t, st.DNS, "_pcnode.example.org."); len(txt) == 0 {
		t.Fatal("no _pcnode record before the reload")
	}
	dir := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := c.FolderAdd(t.Context(), api.FolderAddRequest{Path: dir})
	if err != nil {
		t.Fatal(err)
	}

	m := scrape(t, c)
	for _, want := range []struct {
		prefix string
		min    float64
	}{
		{`pcnode_server `, 1},
		{`pcnode_server_mirrored_shares `, 0},
		{`pcnode_server_replica_folders `, 0},
		{`pcnode_dns_queries_total{transport="udp"}`, 1},
		{`pcnode_folder_state{folder="` + fi.ID + `"`, 1},
		{`pcnode_folder_need_files{folder="` + fi.ID + `"}`, 0},
		{`pcnode_folder_need_bytes{folder="` + fi.ID + `"}`, 0},
		{`pcnode_p2p_connections{path="direct"}`, 0},
		{`pcnode_relay_circuits `, 0},
		{`pcnode_relay_reservations `, 0},
	} {
		v, ok := series(m, want.prefix)
		if !ok || v < want.min {
			t.Errorf("series %s: %v (present %v), want at least %v", want.prefix, v, ok, want.min)
		}
	}

	// A new zone and a rate limit apply live; p2p.conn_low and the log
	// format wait for a restart.
	s, err := LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"dns.zone": "example.net", "dns.rate_limit": "off", "p2p.conn_low": "7", "log.format": "json", "log.level": "debug"} {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(home); err != nil {
		t.Fatal(err)
	}
	res, err := n.Reload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Applied)
	slices.Sort(res.NeedRestart)
	if !slices.Equal(res.Applied, []string{"dns.rate_limit", "dns.zone", "log.level"}) || !slices.Equal(res.NeedRestart, []string{"log.format", "p2p.conn_low"}) {
		t.Fatalf("reload: applied %v, need restart %v", res.Applied, res.NeedRestart)
	}
	if got := n.Settings(); got.DNS.Zone != "example.net" || got.P2P.ConnLow == 7 || got.Log.Format == "json" {
		t.Errorf("settings after reload: zone %q conn_low %d format %q", got.DNS.Zone, got.P2P.ConnLow, got.Log.Format)
	}
	st, err = c.Status(t.Context())
	if err != nil || st.DNS == "" {
		t.Fatalf("status after reload %+v, %v", st, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		txt, _ := queryTXT(t, st.DNS, "_pcnode.example.net.")
		if len(txt) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloaded zone example.net is not served")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}

	// A bad file changes nothing.
	if err := os.WriteFile(filepath.Join(home, ConfigFile), []byte("dns.zone = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Reload(t.Context()); err == nil {
		t.Error("reload of a bad config succeeded")
	}
	if got := n.Settings(); got.DNS.Zone != "example.net" {
		t.Errorf("zone after a failed reload: %q", got.DNS.Zone)
	}
}

// TestReloadWhileReading: SIGHUP's Reload replaces the settings while API
// requests read them. Under -race, any reader that does not go through
// the atomic pointer is a reported data race; the readers must also see
// one whole settings value (each reload here changes dns.zone).
func TestReloadWhileReading(t *testing.T) {
	home := newHomeWith(t, InitOptions{Name: "dev"}, map[string]string{"dns.zone": "zone0.example"})
	n := startNode(t, home, true)
	const reloads = 30
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := n.Settings()
				if !strings.HasPrefix(s.DNS.Zone, "zone") || s.Name != "dev" {
					t.Errorf("read settings %q/%q mid-reload", s.Name, s.DNS.Zone)
					return
				}
				if _, err := n.Status(t.Context()); err != nil {
					t.Errorf("status during reload: %v", err)
					return
				}
				if _, err := n.Shares(t.Context()); err != nil {
					t.Errorf("shares during reload: %v", err)
					return
				}
			}
		})
	}
	for i := range reloads {
		configure(t, home, map[string]string{"dns.zone": "zone" + strconv.Itoa(i+1) + ".example"})
		res, err := n.Reload(t.Context())
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if !slices.Contains(res.Applied, "dns.zone") {
			t.Fatalf("reload %d applied %v, want dns.zone", i, res.Applied)
		}
	}
	close(stop)
	wg.Wait()
	if z := n.Settings().DNS.Zone; z != "zone"+strconv.Itoa(reloads)+".example" {
		t.Errorf("zone after the reloads %q", z)
	}
}
