package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
