package api

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
	"rsc.io/qr"
)

func TestDashboardAssets(t *testing.T) {
	h := NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken})
	get := func(method, target, host string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		method, target, host string
		wantCode             int
		wantType             string
		wantBody             string
	}{
		{"GET", "/", testHost, 200, "text/html", `<script src="/ui/app.js"`},
		{"HEAD", "/", testHost, 200, "text/html", ""},
		{"GET", "/ui/app.js", testHost, 200, "text/javascript", "X-CSRF-Token"},
		{"GET", "/ui/style.css", testHost, 200, "text/css", "body"},
		{"GET", "/ui/index.html", testHost, 200, "text/html", "Sign in"},
		{"GET", "/ui/nope.js", testHost, 404, "", ""},
		{"GET", "/ui/", testHost, 404, "", ""},
		{"GET", "/ui/../api.go", testHost, 404, "", ""},
		{"POST", "/", testHost, 405, "", ""},
		{"GET", "/", "evil.example:5480", 403, "", ""},
		{"GET", "/", "localhost:5480", 200, "text/html", ""},
	}
	for _, tt := range tests {
		rec := get(tt.method, tt.target, tt.host)
		if rec.Code != tt.wantCode {
			t.Errorf("%s %s (Host %s) = %d, want %d", tt.method, tt.target, tt.host, rec.Code, tt.wantCode)
			continue
		}
		if tt.wantCode != 200 {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("%s: Content-Type %q, want %s", tt.target, ct, tt.wantType)
		}
		if !strings.Contains(rec.Body.String(), tt.wantBody) {
			t.Errorf("%s: body lacks %q", tt.target, tt.wantBody)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", tt.target, csp)
		}
		if rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no X-Frame-Options DENY", tt.target)
		}
	}

	// Every asset the page names is served, and nothing comes from
	// another origin.
	page := get("GET", "/", testHost).Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("page names %d assets", len(refs))
	}
	for _, m := range refs {
		if !strings.HasPrefix(m[1], "/ui/") {
			t.Errorf("page refers to %q outside /ui/", m[1])
			continue
		}
		if rec := get("GET", m[1], testHost); rec.Code != 200 {
			t.Errorf("asset %s: %d", m[1], rec.Code)
		}
	}
	js := get("GET", "/ui/app.js", testHost).Body.String()
	for _, bad := range []string{"innerHTML", "http://", "https://", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js contains %q", bad)
		}
	}
	// Every element the script looks up by ID exists in the page.
	for _, m := range regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllStringSubmatch(js, -1) {
		if !strings.Contains(page, `id="`+m[1]+`"`) {
			t.Errorf("app.js uses #%s, which the page lacks", m[1])
		}
	}
}

// slowBackend holds Status until release is closed, counting the calls in
// progress.
type slowBackend struct {
	*fakeBackend
	inside  atomic.Int64
	release chan struct{}
}

func (s *slowBackend) Status(ctx context.Context) (Status, error) {
	s.inside.Add(1)
	select {
	case <-s.release:
		return Status{ID: "slow"}, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// A thousand clients at once: authorised ones beyond the global limit
// get 503 with Retry-After, every unauthorised one gets 401 or 403, and
// the handler answers all of them. (They all come from one address, so
// the per-client limit is set out of the way here; TestPerClientLimit
// tests it.)
func TestConcurrencyLimit(t *testing.T) {
	const clients = 1000
	const limit = 16
	sb := &slowBackend{fakeBackend: newFake(cid.Undef), release: make(chan struct{})}
	var done atomic.Int64
	srv := httptest.NewServer(NewHandler(sb, HandlerConfig{
		Token:         testToken,
		MaxConcurrent: limit,
		MaxPerClient:  clients,
		OnRequest:     func(string, int) { done.Add(1) },
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}

	type kind int
	const (
		authorised kind = iota
		noToken
		wrongToken
		foreignHost
		crossSite
	)
	kinds := []kind{authorised, authorised, noToken, wrongToken, foreignHost, crossSite}
	// A real session, so that the cross-site requests fail on the
	// same-origin rule and not merely for want of a session.
	login, _ := http.NewRequest("POST", srv.URL+SessionPath, strings.NewReader(`{"token":"`+testToken+`"}`))
	login.Header.Set("Origin", srv.URL)
	resp, err := hc.Do(login)
	if err != nil || resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in: %v %v", resp, err)
	}
	session := resp.Cookies()[0]
	resp.Body.Close()
	var mu sync.Mutex
	codes := map[kind]map[int]int{}
	var retryAfter atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		k := kinds[i%len(kinds)]
		wg.Go(func() {
			method, path := "GET", "/api/v1/status"
			if k == crossSite {
				method, path = "POST", "/api/v1/gc"
			}
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			switch k {
			case authorised:
				req.Header.Set("Authorization", "Bearer "+testToken)
			case wrongToken:
				req.Header.Set("Authorization", "Bearer "+strings.Repeat("f", 64))
			case foreignHost:
				req.Host = "evil.example"
				req.Header.Set("Authorization", "Bearer "+testToken)
			case crossSite:
				req.AddCookie(session)
				req.Header.Set("Origin", "http://evil.example")
			}
			code := -1
			resp, err := hc.Do(req)
			if err == nil {
				code = resp.StatusCode
				if code == 503 && resp.Header.Get("Retry-After") != "" {
					retryAfter.Add(1)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else {
				t.Errorf("client %d: %v", i, err)
			}
			mu.Lock()
			if codes[k] == nil {
				codes[k] = map[int]int{}
			}
			codes[k][code]++
			mu.Unlock()
		})
	}
	// All but the requests holding a slot finish while those wait; then
	// they are let go.
	deadline := time.Now().Add(90 * time.Second)
	for done.Load() < clients-limit+1 || sb.inside.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: %d answered, %d in the backend", done.Load(), sb.inside.Load())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}
	close(sb.release)
	wg.Wait()

	nAuth := 0
	for i := range clients {
		if kinds[i%len(kinds)] == authorised {
			nAuth++
		}
	}
	if got := codes[authorised]; got[200] != limit || got[503] != nAuth-limit || len(got) != 2 {
		t.Errorf("authorised clients got %v: want %d × 200 and %d × 503", got, limit, nAuth-limit)
	}
	if n := retryAfter.Load(); n != int64(nAuth-limit) {
		t.Errorf("%d answers with 503 and Retry-After, want %d", n, nAuth-limit)
	}
	for k, want := range map[kind]int{noToken: 401, wrongToken: 401, foreignHost: 403, crossSite: 403} {
		if got := codes[k]; len(got) != 1 || got[want] == 0 {
			t.Errorf("unauthorised kind %d got %v, want only %d", k, got, want)
		}
	}
	if n := sb.inside.Load(); n != limit {
		t.Errorf("backend entered %d times, want %d", n, limit)
	}
	t.Logf("codes: %v", codes)
}

// One client over its share gets 429 with Retry-After while other clients
// (another address, a dashboard session from the same address) are still
// served, and all clients together are still held to the global limit
// (503 with Retry-After).
func TestPerClientLimit(t *testing.T) {
	const perClient, global = 4, 10
	sb := &slowBackend{fakeBackend: newFake(cid.Undef), release: make(chan struct{})}
	srv := httptest.NewServer(NewHandler(sb, HandlerConfig{Token: testToken, MaxConcurrent: global, MaxPerClient: perClient}))
	defer srv.Close()
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		tr := &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: time.Minute}
	}
	a, b, c := from("127.0.0.1"), from("127.0.0.2"), from("127.0.0.3")
	login, _ := http.NewRequest("POST", srv.URL+SessionPath, strings.NewReader(`{"token":"`+testToken+`"}`))
	login.Header.Set("Origin", srv.URL)
	resp, err := a.Do(login)
	if err != nil || resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in: %v %v", resp, err)
	}
	session := resp.Cookies()[0]
	resp.Body.Close()

	var mu sync.Mutex
	codes := map[string]map[int]int{} // by who
	var wg sync.WaitGroup
	fire := func(who string, hc *http.Client, n int) {
		for range n {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", srv.URL+"/api/v1/status", nil)
				if who == "session" {
					req.AddCookie(session)
				} else {
					req.Header.Set("Authorization", "Bearer "+testToken)
				}
				code := -1
				if resp, err := hc.Do(req); err == nil {
					code = resp.StatusCode
					if code != 200 && resp.Header.Get("Retry-After") == "" {
						code = -code // refused without Retry-After
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else {
					t.Errorf("%s: %v", who, err)
				}
				mu.Lock()
				if codes[who] == nil {
					codes[who] = map[int]int{}
				}
				codes[who][code]++
				mu.Unlock()
			})
		}
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s: %s (codes %v, %d in the backend)", what, codes, sb.inside.Load())
			}
			time.Sleep(5 * time.Millisecond) // polling a condition under a deadline
		}
	}
	fire("a", a, 20)
	waitUntil("a: 4 inside, 16 refused", func() bool { return sb.inside.Load() == perClient && codes["a"][429] == 16 })
	fire("b", b, perClient+1)
	waitUntil("b: 4 more inside, 1 refused", func() bool { return sb.inside.Load() == 2*perClient && codes["b"][429] == 1 })
	fire("session", a, 2) // same address as a, its own client
	waitUntil("the session inside", func() bool { return sb.inside.Load() == global })
	fire("c", c, 1)
	waitUntil("c refused by the global limit", func() bool { return codes["c"][503] == 1 })
	close(sb.release)
	wg.Wait()
	want := map[string]map[int]int{
		"a":       {200: perClient, 429: 16},
		"b":       {200: perClient, 429: 1},
		"session": {200: 2},
		"c":       {503: 1},
	}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("answers by client (-want +got; negative: no Retry-After):\n%s", diff)
	}
}

// The client retries a request the daemon refused as busy.
func TestClientRetriesBusy(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  HandlerConfig
		code int
	}{
		{"global limit", HandlerConfig{MaxConcurrent: 1, MaxPerClient: 16}, 503},
		{"per-client limit", HandlerConfig{MaxConcurrent: 16, MaxPerClient: 1}, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := &slowBackend{fakeBackend: newFake(cid.Undef), release: make(chan struct{})}
			busy := make(chan struct{}, 16)
			cfg := tc.cfg
			cfg.Token = testToken
			cfg.OnRequest = func(_ string, code int) {
				if code == tc.code {
					busy <- struct{}{}
				}
			}
			srv := httptest.NewServer(NewHandler(sb, cfg))
			defer srv.Close()
			cl := NewClient(srv.URL, testToken, srv.Client())
			first := make(chan error, 1)
			go func() { _, err := cl.Status(t.Context()); first <- err }()
			deadline := time.Now().Add(30 * time.Second)
			for sb.inside.Load() < 1 {
				if time.Now().After(deadline) {
					t.Fatal("first request never reached the backend")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition under a deadline
			}
			second := make(chan error, 1)
			go func() { _, err := cl.Status(t.Context()); second <- err }()
			select {
			case <-busy:
			case <-time.After(30 * time.Second):
				t.Fatalf("second request was not refused with %d", tc.code)
			}
			close(sb.release)
			for _, ch := range []chan error{first, second} {
				if err := <-ch; err != nil {
					t.Errorf("Status: %v", err)
				}
			}
		})
	}
}

func TestLogRing(t *testing.T) {
	var next strings.Builder
	ring := NewLogRing(3, slog.LevelInfo)
	log := slog.New(ring.Handler(slog.NewTextHandler(&next, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.Debug("debug is not kept")
	log.Info("one", "k", 1)
	log.With("component", "p2p").WithGroup("g").Info("two", "peer", "a b", "n", 2)
	log.Warn("three", slog.Group("grp", "x", "y"))
	log.Error("four", "err", errors.New("boom"))

	got := ring.Records(0)
	var msgs, attrs []string
	for _, r := range got {
		msgs = append(msgs, r.Level+" "+r.Message)
		attrs = append(attrs, r.Attrs)
	}
	if diff := cmp.Diff([]string{"INFO two", "WARN three", "ERROR four"}, msgs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`component=p2p g.peer="a b" g.n=2`, "grp.x=y", "err=boom"}, attrs); diff != "" {
		t.Errorf("attrs (-want +got):\n%s", diff)
	}
	if r := ring.Records(1); len(r) != 1 || r[0].Message != "four" {
		t.Errorf("Records(1) = %+v", r)
	}
	// The next handler still gets what its own level lets through.
	if s := next.String(); strings.Contains(s, "one") || !strings.Contains(s, "three") || !strings.Contains(s, "four") {
		t.Errorf("next handler got %q", s)
	}
	// A huge message is cut.
	log.Info(strings.Repeat("x", 10000), "v", strings.Repeat("y", 10000))
	r := ring.Records(1)[0]
	if len(r.Message) > maxLogRecordBytes+4 || len(r.Attrs) > maxLogRecordBytes+4 {
		t.Errorf("record of %d+%d bytes kept", len(r.Message), len(r.Attrs))
	}
}

// logFake is a backend with a log ring and conflict resolution.
type logFake struct {
	*fakeBackend
	*LogRing
	resolved []ConflictResolveRequest
}

func (f *logFake) ResolveConflict(_ context.Context, req ConflictResolveRequest) (FolderConflict, error) {
	if req.Folder != "f1" {
		return FolderConflict{}, Errorf(ErrNotFound, "no folder %s", req.Folder)
	}
	f.resolved = append(f.resolved, req)
	return FolderConflict{Folder: req.Folder, Path: req.Path}, nil
}

func TestDashboardEndpoints(t *testing.T) {
	f := &logFake{fakeBackend: newFake(cid.Undef), LogRing: NewLogRing(10, slog.LevelInfo)}
	log := slog.New(f.LogRing.Handler(nil))
	for i := range 5 {
		log.Info(fmt.Sprint("line ", i))
	}
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()
	cl := NewClient(srv.URL, testToken, srv.Client())
	ctx := t.Context()

	recs, err := cl.Logs(ctx, 2)
	if err != nil || len(recs) != 2 || recs[0].Message != "line 3" || recs[1].Message != "line 4" {
		t.Errorf("Logs(2) = %+v, %v", recs, err)
	}
	if recs, err := cl.Logs(ctx, 0); err != nil || len(recs) != 5 {
		t.Errorf("Logs(0) = %d records, %v", len(recs), err)
	}

	svg, err := cl.QR(ctx, "pcnode1invitecode")
	if err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Errorf("QR = %.40q, %v", svg, err)
	}
	if _, err := cl.QR(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("QR of nothing: %v", err)
	}
	if _, err := cl.QR(ctx, strings.Repeat("x", MaxQRText+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("QR of too much: %v", err)
	}

	good := ConflictResolveRequest{Folder: "f1", Path: "a/b.sync-conflict-20260102-030405-ABCDEFG.txt", Keep: KeepCopy}
	if fc, err := cl.ResolveConflict(ctx, good); err != nil || fc.Path != good.Path || len(f.resolved) != 1 {
		t.Errorf("ResolveConflict = %+v, %v", fc, err)
	}
	for _, bad := range []ConflictResolveRequest{
		{Folder: "f1", Path: "a/b.txt", Keep: KeepCopy},
		{Folder: "f1", Path: good.Path, Keep: "both"},
		{Path: good.Path, Keep: KeepOriginal},
	} {
		if _, err := cl.ResolveConflict(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ResolveConflict(%+v): %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := cl.ResolveConflict(ctx, ConflictResolveRequest{Folder: "f2", Path: good.Path, Keep: KeepOriginal}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveConflict in unknown folder: %v", err)
	}
	if len(f.resolved) != 1 {
		t.Errorf("backend resolved %d, want 1", len(f.resolved))
	}

	// A backend without the optional roles answers 404.
	srv2 := httptest.NewServer(NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken}))
	defer srv2.Close()
	cl2 := NewClient(srv2.URL, testToken, srv2.Client())
	if _, err := cl2.Logs(ctx, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Logs without a source: %v", err)
	}
	if _, err := cl2.ResolveConflict(ctx, good); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveConflict without a resolver: %v", err)
	}
}

func TestConflictOriginal(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a.sync-conflict-20260102-030405-ABCDEFG.txt", "a.txt", true},
		{"dir/sub/a.sync-conflict-20260102-030405-ABCDEFG.tar.gz", "dir/sub/a.tar.gz", true},
		{"Makefile.sync-conflict-20260102-030405-ABCDEFG", "Makefile", true},
		{"x.y.sync-conflict-20260102-030405-W.z", "x.y.z", true},
		{"a.txt", "", false},
		{".sync-conflict-20260102-030405-ABCDEFG.txt", "", false},
		{"a.sync-conflict-2026010-030405-ABCDEFG.txt", "", false},
		{"a.sync-conflict-20260102-030405-.txt", "", false},
		{"a.sync-conflict-20260102x030405-ABC", "", false},
		{"a.sync-conflict-2026o102-030405-ABC", "", false},
		{"d.sync-conflict-20260102-030405-ABC/a.txt", "", false},
	}
	for _, tt := range tests {
		got, ok := ConflictOriginal(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ConflictOriginal(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// The SVG is well-formed and has exactly the code's dark modules.
func TestQRSVG(t *testing.T) {
	for _, text := range []string{"x", "pcnode1" + strings.Repeat("abcdefgh", 20), strings.Repeat("\xff", MaxQRText)} {
		svg, err := QRSVG(text)
		if err != nil {
			t.Fatalf("QRSVG(%d bytes): %v", len(text), err)
		}
		var doc struct {
			ViewBox string `xml:"viewBox,attr"`
			Paths   []struct {
				D string `xml:"d,attr"`
			} `xml:"path"`
		}
		if err := xml.Unmarshal(svg, &doc); err != nil || len(doc.Paths) != 1 {
			t.Fatalf("SVG does not parse: %v", err)
		}
		c, err := qr.Encode(text, qr.L)
		if err != nil {
			t.Fatal(err)
		}
		n := c.Size + 2*qrQuiet
		if doc.ViewBox != fmt.Sprintf("0 0 %d %d", n, n) {
			t.Errorf("viewBox %q, want %d modules", doc.ViewBox, n)
		}
		dark := 0
		for y := range c.Size {
			for x := range c.Size {
				if c.Black(x, y) {
					dark++
				}
			}
		}
		drawn := 0
		for _, m := range regexp.MustCompile(`h(\d+)v1`).FindAllStringSubmatch(doc.Paths[0].D, -1) {
			var k int
			fmt.Sscan(m[1], &k)
			drawn += k
		}
		if drawn != dark {
			t.Errorf("%d dark modules drawn, the code has %d", drawn, dark)
		}
	}
}

func FuzzConflictOriginal(f *testing.F) {
	for _, s := range []string{"a.sync-conflict-20260102-030405-ABCDEFG.txt", "a.txt", "", ".sync-conflict-", "x/y.sync-conflict-00000000-000000-Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, ok := ConflictOriginal(p)
		if !ok {
			if got != "" {
				t.Fatalf("not ok but %q", got)
			}
			return
		}
		if len(got) >= len(p) {
			t.Fatalf("original %q of %q is not shorter", got, p)
		}
		dir := p[:strings.LastIndex(p, "/")+1]
		if !strings.HasPrefix(got, dir) || strings.Contains(got[len(dir):], "/") {
			t.Fatalf("original %q of %q is in another directory", got, p)
		}
	})
}

func FuzzQRSVG(f *testing.F) {
	for _, s := range []string{"x", "pcnode1abc", "pcnode://share/bafy#key"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		svg, err := QRSVG(text)
		if text == "" || len(text) > MaxQRText {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("QRSVG(%d bytes): %v, want ErrInvalid", len(text), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("QRSVG(%q): %v", text, err)
		}
		if err := xml.Unmarshal(svg, new(struct{})); err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
	})
}

// The session answer is what the dashboard's script reads.
func TestSessionInfoJSON(t *testing.T) {
	b, _ := json.Marshal(SessionInfo{CSRF: "abc", Expires: time.Unix(0, 0).UTC()})
	if string(b) != `{"csrf":"abc","expires":"1970-01-01T00:00:00Z"}` {
		t.Errorf("SessionInfo JSON %s", b)
	}
}
