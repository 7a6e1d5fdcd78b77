package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testCID(t testing.TB, data string) cid.Cid {
	t.Helper()
	mh, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

func TestHandlerRoutes(t *testing.T) {
	c := testCID(t, "hello")
	missing := testCID(t, "missing")
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pcnode_test 1\n")
	})
	auth := "Bearer " + testToken
	tests := []struct {
		name     string
		method   string
		target   string
		body     string
		auth     string // "" = none
		host     string // "" = 127.0.0.1:5480
		fake     func(*fakeBackend)
		noMetric bool
		wantCode int
		wantBody string // substring of the body
		wantCall string // backend method that must have been called; "" = none
	}{
		{name: "health without token", method: "GET", target: "/health", wantCode: 200, wantBody: `"ok":true`},
		{name: "health wrong method", method: "POST", target: "/health", wantCode: 405},
		{name: "no token", method: "GET", target: "/api/v1/status", wantCode: 401, wantBody: "api.token"},
		{name: "wrong token", method: "GET", target: "/api/v1/status", auth: "Bearer " + strings.Repeat("0", 64), wantCode: 401},
		{name: "basic auth is not bearer", method: "GET", target: "/api/v1/status", auth: "Basic " + testToken, wantCode: 401},
		{name: "unknown route needs auth first", method: "GET", target: "/api/v1/nope", wantCode: 401},
		{name: "unknown route", method: "GET", target: "/api/v1/nope", auth: auth, wantCode: 404, wantBody: "no such endpoint"},
		{name: "wrong method", method: "POST", target: "/api/v1/status", auth: auth, wantCode: 405, wantBody: "use GET"},
		{name: "rebinding host", method: "GET", target: "/api/v1/status", auth: auth, host: "evil.example:5480", wantCode: 403},
		{name: "rebinding host on health", method: "GET", target: "/health", host: "evil.example", wantCode: 403},
		{name: "localhost host", method: "GET", target: "/api/v1/status", auth: auth, host: "localhost:5480", wantCode: 200, wantCall: "status"},
		{name: "ipv6 loopback host", method: "GET", target: "/api/v1/status", auth: auth, host: "[::1]:5480", wantCode: 200, wantCall: "status"},
		{name: "allowed host", method: "GET", target: "/api/v1/status", auth: auth, host: "pc.internal:5480", wantCode: 200, wantCall: "status"},
		{name: "status", method: "GET", target: "/api/v1/status", auth: auth, wantCode: 200, wantBody: `"id":"12D3KooWme"`, wantCall: "status"},
		{name: "cat", method: "GET", target: "/api/v1/cat?cid=" + c.String(), auth: auth, wantCode: 200, wantBody: "hello world", wantCall: "cat"},
		{name: "cat bad cid", method: "GET", target: "/api/v1/cat?cid=xyz", auth: auth, wantCode: 400, wantBody: `invalid CID \"xyz\"`},
		{name: "cat no cid", method: "GET", target: "/api/v1/cat", auth: auth, wantCode: 400, wantBody: "missing CID"},
		{name: "cat missing", method: "GET", target: "/api/v1/cat?cid=" + missing.String(), auth: auth, wantCode: 404, wantCall: "cat"},
		{name: "cat internal error", method: "GET", target: "/api/v1/cat?cid=" + c.String(), auth: auth,
			fake: func(f *fakeBackend) { f.catErr = errors.New("disk gone") }, wantCode: 500, wantBody: "disk gone"},
		{name: "ls", method: "GET", target: "/api/v1/ls?cid=" + c.String(), auth: auth, wantCode: 200, wantBody: `"name":"a.txt"`, wantCall: "ls"},
		{name: "add", method: "POST", target: "/api/v1/add", body: `{"path":"/tmp/x"}`, auth: auth, wantCode: 200, wantBody: `"cid":"bafyadd"`, wantCall: "add"},
		{name: "add empty body", method: "POST", target: "/api/v1/add", auth: auth, wantCode: 400, wantBody: "empty request body"},
		{name: "add no path", method: "POST", target: "/api/v1/add", body: `{}`, auth: auth, wantCode: 400, wantBody: `missing \"path\"`},
		{name: "add unknown field", method: "POST", target: "/api/v1/add", body: `{"path":"/x","pth":1}`, auth: auth, wantCode: 400, wantBody: "unknown field"},
		{name: "add trailing data", method: "POST", target: "/api/v1/add", body: `{"path":"/x"} {}`, auth: auth, wantCode: 400, wantBody: "after the JSON object"},
		{name: "add not json", method: "POST", target: "/api/v1/add", body: `path=/x`, auth: auth, wantCode: 400},
		{name: "add error before progress keeps its code", method: "POST", target: "/api/v1/add", body: `{"path":"/nope"}`, auth: auth,
			fake: func(f *fakeBackend) { f.addErr = Errorf(ErrNotFound, "node: add /nope: no such file") }, wantCode: 404, wantBody: "no such file"},
		{name: "get", method: "POST", target: "/api/v1/get", body: `{"cid":"` + c.String() + `","output":"/tmp/o"}`, auth: auth, wantCode: 200, wantBody: `"output":"/tmp/o"`, wantCall: "get"},
		{name: "get bad cid", method: "POST", target: "/api/v1/get", body: `{"cid":"nope","output":"/tmp/o"}`, auth: auth, wantCode: 400, wantBody: "invalid CID"},
		{name: "get no output", method: "POST", target: "/api/v1/get", body: `{"cid":"` + c.String() + `"}`, auth: auth, wantCode: 400, wantBody: `missing \"output\"`},
		{name: "get offline", method: "POST", target: "/api/v1/get", body: `{"cid":"` + c.String() + `","output":"/tmp/o"}`, auth: auth,
			fake: func(f *fakeBackend) { f.getErr = Errorf(ErrOffline, "node: get: node is offline: start the daemon") }, wantCode: 503},
		{name: "pin add", method: "POST", target: "/api/v1/pin/add", body: `{"cid":"` + c.String() + `"}`, auth: auth, wantCode: 200, wantBody: `"type":"recursive"`, wantCall: "pin/add"},
		{name: "pin add direct", method: "POST", target: "/api/v1/pin/add", body: `{"cid":"` + c.String() + `","recursive":false}`, auth: auth, wantCode: 200, wantBody: `"type":"direct"`, wantCall: "pin/add"},
		{name: "pin add bad cid", method: "POST", target: "/api/v1/pin/add", body: `{"cid":"Qm"}`, auth: auth, wantCode: 400},
		{name: "pin rm", method: "POST", target: "/api/v1/pin/rm", body: `{"cid":"` + c.String() + `"}`, auth: auth, wantCode: 200, wantCall: "pin/rm"},
		{name: "pin rm not pinned", method: "POST", target: "/api/v1/pin/rm", body: `{"cid":"` + c.String() + `"}`, auth: auth,
			fake: func(f *fakeBackend) { f.pinErr = Errorf(ErrNotFound, "not pinned") }, wantCode: 404, wantBody: "not pinned"},
		{name: "pin ls", method: "GET", target: "/api/v1/pin/ls", auth: auth, wantCode: 200, wantBody: `"type":"recursive"`, wantCall: "pin/ls"},
		{name: "pin ls empty is a list", method: "GET", target: "/api/v1/pin/ls", auth: auth,
			fake: func(f *fakeBackend) { f.pins = nil }, wantCode: 200, wantBody: `[]`, wantCall: "pin/ls"},
		{name: "gc", method: "POST", target: "/api/v1/gc", auth: auth, wantCode: 200, wantBody: `"removed":3`, wantCall: "gc"},
		{name: "gc wrong method", method: "GET", target: "/api/v1/gc", auth: auth, wantCode: 405},
		{name: "verify", method: "POST", target: "/api/v1/repo/verify", auth: auth, wantCode: 200, wantBody: `"checked":7`, wantCall: "verify"},
		{name: "repo stat", method: "GET", target: "/api/v1/repo/stat", auth: auth, wantCode: 200, wantBody: `"blocks":5`, wantCall: "repo/stat"},
		{name: "peers", method: "GET", target: "/api/v1/peers", auth: auth, wantCode: 200, wantBody: `"direction":"inbound"`, wantCall: "peers"},
		{name: "connect", method: "POST", target: "/api/v1/peers/connect", body: `{"addr":"/ip4/127.0.0.1/tcp/4001"}`, auth: auth, wantCode: 200, wantCall: "peers/connect"},
		{name: "connect bad addr", method: "POST", target: "/api/v1/peers/connect", body: `{"addr":"127.0.0.1:4001"}`, auth: auth, wantCode: 400, wantBody: "invalid multiaddr"},
		{name: "connect offline", method: "POST", target: "/api/v1/peers/connect", body: `{"addr":"/ip4/127.0.0.1/tcp/4001"}`, auth: auth,
			fake: func(f *fakeBackend) { f.connErr = Errorf(ErrOffline, "node: connect: node is offline") }, wantCode: 503, wantBody: "node is offline"},
		{name: "cloud", method: "GET", target: "/api/v1/cloud", auth: auth, wantCode: 200, wantBody: `"id":"k51cloud"`, wantCall: "cloud"},
		{name: "cloud none", method: "GET", target: "/api/v1/cloud", auth: auth,
			fake: func(f *fakeBackend) { f.cloudErr = Errorf(ErrNotFound, "no cloud: run pcnode join CODE") }, wantCode: 404, wantBody: "pcnode join", wantCall: "cloud"},
		{name: "devices", method: "GET", target: "/api/v1/devices", auth: auth, wantCode: 200, wantBody: `"name":"laptop"`, wantCall: "devices"},
		{name: "devices empty is a list", method: "GET", target: "/api/v1/devices", auth: auth,
			fake: func(f *fakeBackend) { f.devices = nil }, wantCode: 200, wantBody: `[]`, wantCall: "devices"},
		{name: "invite", method: "POST", target: "/api/v1/devices/invite", body: `{"ttl":"10m","admin":true}`, auth: auth, wantCode: 200, wantBody: `"code":"pcnode1abc"`, wantCall: "devices/invite"},
		{name: "invite default ttl", method: "POST", target: "/api/v1/devices/invite", body: `{}`, auth: auth, wantCode: 200, wantCall: "devices/invite"},
		{name: "invite bad ttl", method: "POST", target: "/api/v1/devices/invite", body: `{"ttl":"soon"}`, auth: auth, wantCode: 400, wantBody: "15m"},
		{name: "invite ttl too long", method: "POST", target: "/api/v1/devices/invite", body: `{"ttl":"48h"}`, auth: auth, wantCode: 400, wantBody: "at most"},
		{name: "invite not admin", method: "POST", target: "/api/v1/devices/invite", body: `{}`, auth: auth,
			fake: func(f *fakeBackend) { f.adminErr = Errorf(ErrForbidden, "this device is not an admin") }, wantCode: 403, wantBody: "not an admin", wantCall: "devices/invite"},
		{name: "invite offline", method: "POST", target: "/api/v1/devices/invite", body: `{}`, auth: auth,
			fake: func(f *fakeBackend) { f.adminErr = Errorf(ErrOffline, "start pcnode daemon") }, wantCode: 503, wantCall: "devices/invite"},
		{name: "revoke", method: "POST", target: "/api/v1/devices/revoke", body: `{"device":"phone"}`, auth: auth, wantCode: 200, wantBody: `"revoked":true`, wantCall: "devices/revoke"},
		{name: "revoke no device", method: "POST", target: "/api/v1/devices/revoke", body: `{}`, auth: auth, wantCode: 400, wantBody: `missing \"device\"`},
		{name: "revoke unknown", method: "POST", target: "/api/v1/devices/revoke", body: `{"device":"nope"}`, auth: auth,
			fake: func(f *fakeBackend) { f.adminErr = Errorf(ErrNotFound, "no device nope") }, wantCode: 404, wantCall: "devices/revoke"},
		{name: "revoke again", method: "POST", target: "/api/v1/devices/revoke", body: `{"device":"phone"}`, auth: auth,
			fake: func(f *fakeBackend) { f.adminErr = Errorf(ErrConflict, "already revoked") }, wantCode: 409, wantBody: "already revoked", wantCall: "devices/revoke"},
		{name: "rename", method: "POST", target: "/api/v1/devices/rename", body: `{"device":"phone","name":"tablet"}`, auth: auth, wantCode: 200, wantBody: `"name":"tablet"`, wantCall: "devices/rename"},
		{name: "rename no name", method: "POST", target: "/api/v1/devices/rename", body: `{"device":"phone"}`, auth: auth, wantCode: 400, wantBody: `missing \"name\"`},
		{name: "join", method: "POST", target: "/api/v1/join", body: `{"code":"pcnode1x","name":"b"}`, auth: auth, wantCode: 200, wantBody: `"id":"k51cloud"`, wantCall: "join"},
		{name: "join no code", method: "POST", target: "/api/v1/join", body: `{"name":"b"}`, auth: auth, wantCode: 400, wantBody: `missing \"code\"`},
		{name: "join bad role", method: "POST", target: "/api/v1/join", body: `{"code":"pcnode1x","role":"king"}`, auth: auth, wantCode: 400, wantBody: "role"},
		{name: "join has cloud", method: "POST", target: "/api/v1/join", body: `{"code":"pcnode1x"}`, auth: auth,
			fake: func(f *fakeBackend) { f.cloudErr = Errorf(ErrConflict, "already belongs to cloud k51") }, wantCode: 409, wantCall: "join"},
		{name: "dns ds", method: "GET", target: "/api/v1/dns/ds", auth: auth, wantCode: 200, wantBody: `"ds":"example.test.`, wantCall: "dns/ds"},
		{name: "dns publish unset", method: "POST", target: "/api/v1/dns/publish", auth: auth,
			fake: func(f *fakeBackend) { f.dnsErr = Errorf(ErrConflict, "dns.primary is not set") }, wantCode: 409, wantBody: "dns.primary", wantCall: "dns/publish"},
		{name: "dns publish", method: "POST", target: "/api/v1/dns/publish", auth: auth, wantCode: 200, wantBody: `"added":[`, wantCall: "dns/publish"},
		{name: "metrics need auth", method: "GET", target: "/metrics", wantCode: 401},
		{name: "metrics", method: "GET", target: "/metrics", auth: auth, wantCode: 200, wantBody: "pcnode_test 1"},
		{name: "metrics disabled", method: "GET", target: "/metrics", auth: auth, noMetric: true, wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(c)
			if tt.fake != nil {
				tt.fake(f)
			}
			var gotRoute string
			var gotCode int
			cfg := HandlerConfig{
				Token:        testToken,
				Metrics:      metrics,
				AllowedHosts: []string{"pc.internal"},
				OnRequest:    func(route string, code int) { gotRoute, gotCode = route, code },
			}
			if tt.noMetric {
				cfg.Metrics = nil
			}
			h := NewHandler(f, cfg)
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			req.Host = "127.0.0.1:5480"
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %q does not contain %q", body, tt.wantBody)
			}
			if gotCode != tt.wantCode {
				t.Errorf("OnRequest code = %d, want %d", gotCode, tt.wantCode)
			}
			if path := strings.SplitN(tt.target, "?", 2)[0]; path == "/api/v1/nope" {
				if gotRoute != "other" {
					t.Errorf("OnRequest route = %q, want other", gotRoute)
				}
			} else if gotRoute != path {
				t.Errorf("OnRequest route = %q, want %q", gotRoute, path)
			}
			if rec.Code >= 400 {
				var e Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code != rec.Code {
					t.Errorf("error body %q is not a JSON Error with code %d (%v)", body, rec.Code, err)
				}
				if rec.Code == 405 && rec.Header().Get("Allow") == "" {
					t.Error("405 without Allow header")
				}
			}
			called := strings.Join(f.calls, ",")
			if called != tt.wantCall && !(tt.wantCall == "" && rec.Code >= 400) {
				t.Errorf("backend calls = %q, want %q", called, tt.wantCall)
			}
			if tt.wantCall == "" && rec.Code >= 400 && rec.Code != 404 && rec.Code != 500 && rec.Code != 503 && rec.Code != 409 && len(f.calls) > 0 {
				t.Errorf("backend called (%q) for a refused request", called)
			}
		})
	}
}

func newFake(c cid.Cid) *fakeBackend {
	return &fakeBackend{
		status:  Status{ID: "12D3KooWme", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWme"}, Online: true},
		addRes:  AddResult{CID: "bafyadd", Name: "x", Size: 11, Blocks: 1},
		getRes:  GetResult{CID: c.String(), Output: "/tmp/o", Size: 11},
		content: map[string][]byte{c.String(): []byte("hello world")},
		entries: []Entry{{Name: "a.txt", CID: c.String(), Size: 11, Type: "file"}},
		pins:    []Pin{{CID: c.String(), Type: "recursive"}},
		gcRes:   GCResult{Removed: 3, FreedBytes: 300},
		verify:  VerifyResult{Checked: 7, Corrupt: []string{}},
		stat:    RepoStat{Blocks: 5, Bytes: 500, Pins: 1, Path: "/x/data"},
		peers:   []Peer{{ID: "12D3KooWother", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}, Direction: "inbound"}},
		cloud:   CloudInfo{ID: "k51cloud", Device: "laptop", Admin: true, Version: 2, Members: 2},
		devices: []Device{{Name: "laptop", ID: "12D3KooWme", Role: "device", Self: true}},
		invite:  InviteResult{Code: "pcnode1abc", Cloud: "k51cloud"},
		ds:      DNSDS{Zone: "example.test.", DS: "example.test.\t3600\tIN\tDS\t1 13 2 AB"},
		publish: DNSPublishResult{Zone: "example.test.", Added: []string{"x"}, Removed: []string{}},
	}
}

// TestHandlerHugeBody sends 100 MiB; the handler must answer 413 with a
// JSON error after reading about 1 MiB, and stay up.
func TestHandlerHugeBody(t *testing.T) {
	f := newFake(testCID(t, "x"))
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()

	const size = 100 << 20
	body := io.MultiReader(strings.NewReader(`{"path":"`), io.LimitReader(repeatReader('a'), size))
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/add", body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.ContentLength = size + 9
	resp, err := srv.Client().Do(req)
	if err != nil {
		// The server may close the connection while the client still
		// writes; the check below proves it survived.
		t.Logf("client: %v", err)
	} else {
		defer resp.Body.Close()
		var e Error
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("code = %d, want 413", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "larger than") {
			t.Fatalf("body = %+v, %v", e, err)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("backend called: %v", f.calls)
	}
	// Still serving.
	cl := NewClient(srv.URL, testToken, srv.Client())
	if _, err := cl.Status(t.Context()); err != nil {
		t.Fatalf("status after huge body: %v", err)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestHandlerProgressBeforeResult checks that progress lines reach the
// client while the operation still runs, for each streaming route.
func TestHandlerProgressBeforeResult(t *testing.T) {
	c := testCID(t, "hello")
	for _, route := range []string{"add", "get", "verify"} {
		t.Run(route, func(t *testing.T) {
			f := newFake(c)
			f.progress = [][2]int64{{5, 10}}
			seen := make(chan struct{})
			f.waitSeen = seen
			srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
			defer srv.Close()
			cl := NewClient(srv.URL, testToken, nil)

			var mu sync.Mutex
			var got [][2]int64
			var once sync.Once
			fn := func(done, total int64) {
				mu.Lock()
				got = append(got, [2]int64{done, total})
				mu.Unlock()
				once.Do(func() { close(seen) })
			}
			var err error
			switch route {
			case "add":
				var res AddResult
				res, err = cl.Add(t.Context(), AddRequest{Path: "/tmp/x"}, fn)
				if err == nil && res != f.addRes {
					t.Errorf("result = %+v, want %+v", res, f.addRes)
				}
			case "get":
				var res GetResult
				res, err = cl.Get(t.Context(), GetRequest{CID: c.String(), Output: "/tmp/o"}, fn)
				if err == nil && res != f.getRes {
					t.Errorf("result = %+v, want %+v", res, f.getRes)
				}
			case "verify":
				var res VerifyResult
				res, err = cl.Verify(t.Context(), fn)
				if err == nil && res.Checked != 7 {
					t.Errorf("result = %+v", res)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) == 0 || got[len(got)-1] != [2]int64{5, 10} {
				t.Errorf("progress = %v, want last {5 10}", got)
			}
		})
	}
}

// TestHandlerStreamErrorAfterProgress: once the 200 is sent, a failure is
// the last NDJSON line, and the client still gets the right kind.
func TestHandlerStreamErrorAfterProgress(t *testing.T) {
	f := newFake(testCID(t, "x"))
	f.progress = [][2]int64{{1, 2}}
	seen := make(chan struct{})
	f.waitSeen = seen
	f.addErr = Errorf(ErrNotFound, "node: add: vanished mid-way")
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()
	var once sync.Once
	_, err := NewClient(srv.URL, testToken, nil).Add(t.Context(), AddRequest{Path: "/x"}, func(int64, int64) {
		once.Do(func() { close(seen) })
	})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "vanished mid-way") {
		t.Fatalf("err = %v, want ErrNotFound with message", err)
	}
}

func TestStatusCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{Errorf(ErrInvalid, "x"), 400},
		{fmt.Errorf("wrapped: %w", Errorf(ErrNotFound, "x")), 404},
		{Errorf(ErrOffline, "x"), 503},
		{&http.MaxBytesError{Limit: 1}, 413},
		{errors.New("boom"), 500},
	}
	for _, tt := range tests {
		if got := StatusCode(tt.err); got != tt.want {
			t.Errorf("StatusCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
