package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// TestAPIRefusals: the daemon's API refuses a request without the token
// (401) and an oversized body (413), and stays up for the next request.
func TestAPIRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon; skipped with -short")
	}
	t.Parallel()
	n := newProc(t, "api")
	n.start()
	base := apiURL(t, n.home)
	token, err := os.ReadFile(filepath.Join(n.home, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(token))

	tests := []struct {
		name   string
		method string
		path   string
		auth   string
		body   io.Reader
		want   int
	}{
		{"health needs no token", http.MethodGet, "/health", "", nil, http.StatusOK},
		{"no token", http.MethodGet, "/api/v1/status", "", nil, http.StatusUnauthorized},
		{"wrong token", http.MethodGet, "/api/v1/status", "Bearer " + strings.Repeat("0", len(tok)), nil, http.StatusUnauthorized},
		{"no token on add", http.MethodPost, "/api/v1/add", "", strings.NewReader(`{"path":"/etc/hostname"}`), http.StatusUnauthorized},
		{"100 MiB body", http.MethodPost, "/api/v1/add", "Bearer " + tok, hugeJSON(100 << 20), http.StatusRequestEntityTooLarge},
		{"right token", http.MethodGet, "/api/v1/status", "Bearer " + tok, nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, tc.method, base+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
			if tc.want >= 400 {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", body)
				}
			}
		})
		if !n.alive() {
			t.Fatalf("daemon died after %q\n%s", tc.name, n.logs())
		}
	}

	// Still serving: a real command goes through.
	if st := n.status(); !st.Online {
		t.Errorf("status after refusals: %+v", st)
	}
	// And the CLI with a wrong token (through --api) gets a clear error.
	if err := os.WriteFile(filepath.Join(n.home, api.TokenFile), []byte(strings.Repeat("1", len(tok))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = n.run("--api", base, "status")
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("status with a wrong token: %v", err)
	}
}

// apiURL is the base URL the daemon wrote to <home>/api.
func apiURL(t *testing.T, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, api.APIFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

// hugeJSON is a well-formed AddRequest of n bytes, its path a run of
// 'a': a decoder must read past any sane limit before it can reject it.
func hugeJSON(n int64) io.Reader {
	head, tail := `{"path":"/`, `"}`
	pad := n - int64(len(head)+len(tail))
	return io.MultiReader(strings.NewReader(head), io.LimitReader(as{}, pad), strings.NewReader(tail))
}

// as reads as an endless run of 'a'.
type as struct{}

func (as) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// TestAPIConcurrentClients: 1,000 clients at once against a daemon, from
// eight loopback addresses (half of them from one), most with the token
// and some without. Every
// unauthorised request is refused (401); every authorised one is served
// (200) or refused by a limit with Retry-After: 429 when its address has
// too many in progress, 503 when the daemon has; the daemon stays up.
func TestAPIConcurrentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon; skipped with -short")
	}
	t.Parallel()
	n := newProc(t, "apiload")
	n.start()
	n.must("add", writeRandom(t, t.TempDir(), 8<<20, 7))
	base := apiURL(t, n.home)
	token, err := os.ReadFile(filepath.Join(n.home, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(token))
	const clients, addrs = 1000, 8
	hcs := make([]*http.Client, addrs)
	for i := range hcs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}}
		tr := &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}
		defer tr.CloseIdleConnections()
		hcs[i] = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	}
	var mu sync.Mutex
	codes := map[string]map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		authorised := i%8 != 0
		wg.Go(func() {
			<-start
			// repo/verify re-hashes the store: slow enough that requests
			// overlap.
			req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/repo/verify", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			kind := "no token"
			if authorised {
				kind = "token"
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			code := -1
			// Half the clients share one address (one busy client); the
			// others spread over seven.
			hc := hcs[0]
			if i%2 == 1 {
				hc = hcs[1+(i/2)%(addrs-1)]
			}
			if resp, err := hc.Do(req); err == nil {
				code = resp.StatusCode
				if (code == 429 || code == 503) && resp.Header.Get("Retry-After") == "" {
					code = -code
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else {
				t.Errorf("client %d: %v", i, err)
			}
			mu.Lock()
			if codes[kind] == nil {
				codes[kind] = map[int]int{}
			}
			codes[kind][code]++
			mu.Unlock()
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("1,000 clients answered in %v: %v", time.Since(t0).Round(time.Millisecond), codes)
	for code := range codes["no token"] {
		if code != 401 {
			t.Errorf("unauthorised requests got %d: %v", code, codes["no token"])
		}
	}
	for code := range codes["token"] {
		if code != 200 && code != 429 && code != 503 {
			t.Errorf("authorised requests got %d (negative: a refusal without Retry-After): %v", code, codes["token"])
		}
	}
	if codes["token"][200] == 0 {
		t.Error("no authorised request was served")
	}
	if !n.alive() {
		t.Fatalf("daemon died\n%s", n.logs())
	}
	if st := n.status(); !st.Online {
		t.Errorf("status after the load: %+v", st)
	}
}
