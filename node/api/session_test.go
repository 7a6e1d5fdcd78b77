package api

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// fakeClock is a settable clock for session expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testHost   = "127.0.0.1:5480"
	testOrigin = "http://127.0.0.1:5480"
)

// signIn posts the token to the session endpoint as a browser on the
// dashboard's page would and returns the cookie and CSRF token.
func signIn(t *testing.T, h http.Handler) (*http.Cookie, string) {
	t.Helper()
	req := httptest.NewRequest("POST", SessionPath, strings.NewReader(`{"token":"`+testToken+`"}`))
	req.Host = testHost
	req.Header.Set("Origin", testOrigin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	var info SessionInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil || info.CSRF == "" {
		t.Fatalf("sign-in answer %s: %v", rec.Body, err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("sign-in set %d cookies, want 1", len(cs))
	}
	return cs[0], info.CSRF
}

func TestSessionCookieAttributes(t *testing.T) {
	h := NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken})
	c, _ := signIn(t, h)
	if c.Name != "pcnode_session_5480" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie over http = %+v: want pcnode_session_5480, HttpOnly, SameSite=Strict, Path=/, not Secure", c)
	}
	if len(c.Value) != 64 {
		t.Errorf("session ID %q: want 32 random bytes in hex", c.Value)
	}
	// Over TLS the cookie is Secure.
	req := httptest.NewRequest("POST", SessionPath, strings.NewReader(`{"token":"`+testToken+`"}`))
	req.Host = testHost
	req.TLS = &tls.ConnectionState{}
	req.Header.Set("Origin", "https://"+testHost)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if rec.Code != 200 || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("sign-in over TLS: %d, cookies %+v: want one Secure cookie", rec.Code, cs)
	}
	// Two sign-ins get two sessions.
	c2, _ := signIn(t, h)
	if c2.Value == c.Value {
		t.Error("two sign-ins share a session ID")
	}
}

func TestSessionRules(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	f := newFake(cid.Undef)
	f.invite = InviteResult{Code: "pcnode1abc"}
	h := NewHandler(f, HandlerConfig{Token: testToken, Now: clock.now, SessionTTL: time.Hour})
	cookie, csrf := signIn(t, h)
	other := &http.Cookie{Name: "pcnode_session_5481", Value: cookie.Value}

	type hdr = map[string]string
	same := hdr{"Origin": testOrigin, "Sec-Fetch-Site": "same-origin"}
	with := func(base hdr, kv ...string) hdr {
		m := hdr{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	post, get := "POST", "GET"
	invite := "/api/v1/devices/invite"
	tests := []struct {
		name     string
		method   string
		target   string
		body     string
		cookie   *http.Cookie
		csrf     string
		headers  hdr
		host     string
		wantCode int
		wantCall bool
	}{
		{name: "no session", method: get, target: "/api/v1/status", wantCode: 401},
		{name: "unknown session", method: get, target: "/api/v1/status", cookie: &http.Cookie{Name: cookie.Name, Value: strings.Repeat("a", 64)}, wantCode: 401},
		{name: "cookie of another port", method: get, target: "/api/v1/status", cookie: other, wantCode: 401},
		{name: "session get", method: get, target: "/api/v1/status", cookie: cookie, wantCode: 200, wantCall: true},
		{name: "session get, foreign host", method: get, target: "/api/v1/status", cookie: cookie, host: "evil.example:5480", wantCode: 403},
		{name: "session post", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: same, wantCode: 200, wantCall: true},
		{name: "session post, Origin only", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Origin": testOrigin}, wantCode: 200, wantCall: true},
		{name: "session post, Referer only", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Referer": testOrigin + "/"}, wantCode: 200, wantCall: true},
		{name: "session post, foreign host", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: with(same, "Origin", "http://evil.example:5480"), host: "evil.example:5480", wantCode: 403},
		{name: "cross-site origin", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: with(same, "Origin", "http://evil.example"), wantCode: 403},
		{name: "cross-site fetch", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: with(same, "Sec-Fetch-Site", "cross-site"), wantCode: 403},
		{name: "same-site other port", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}, wantCode: 403},
		{name: "cross-site referer", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Referer": "http://evil.example/page"}, wantCode: 403},
		{name: "null origin", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Origin": "null"}, wantCode: 403},
		{name: "https origin to http", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, headers: hdr{"Origin": "https://127.0.0.1:5480"}, wantCode: 403},
		{name: "no origin headers", method: post, target: invite, body: `{}`, cookie: cookie, csrf: csrf, wantCode: 403},
		{name: "missing csrf", method: post, target: invite, body: `{}`, cookie: cookie, headers: same, wantCode: 403},
		{name: "wrong csrf", method: post, target: invite, body: `{}`, cookie: cookie, csrf: strings.Repeat("0", 64), headers: same, wantCode: 403},
		{name: "csrf without session", method: post, target: invite, body: `{}`, csrf: csrf, headers: same, wantCode: 401},
		{name: "bearer post needs no csrf", method: post, target: invite, body: `{}`, headers: hdr{"Authorization": "Bearer " + testToken}, wantCode: 200, wantCall: true},
		{name: "wrong bearer beats cookie", method: get, target: "/api/v1/status", cookie: cookie, headers: hdr{"Authorization": "Bearer nope"}, wantCode: 401},
		{name: "session info", method: get, target: SessionPath, cookie: cookie, wantCode: 200},
		{name: "session info without cookie", method: get, target: SessionPath, wantCode: 401},
		{name: "sign-in cross-site", method: post, target: SessionPath, body: `{"token":"` + testToken + `"}`, headers: hdr{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, wantCode: 403},
		{name: "sign-in without origin", method: post, target: SessionPath, body: `{"token":"` + testToken + `"}`, wantCode: 403},
		{name: "sign-in wrong token", method: post, target: SessionPath, body: `{"token":"` + strings.Repeat("0", 64) + `"}`, headers: same, wantCode: 401},
		{name: "sign-in empty token", method: post, target: SessionPath, body: `{"token":""}`, headers: same, wantCode: 401},
		{name: "sign-in bad body", method: post, target: SessionPath, body: `{"tok":1}`, headers: same, wantCode: 400},
		{name: "session put", method: "PUT", target: SessionPath, cookie: cookie, headers: same, wantCode: 405},
		{name: "sign-out cross-site", method: "DELETE", target: SessionPath, cookie: cookie, csrf: csrf, headers: hdr{"Origin": "http://evil.example"}, wantCode: 403},
		{name: "sign-out without csrf", method: "DELETE", target: SessionPath, cookie: cookie, headers: same, wantCode: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.calls = nil
			f.mu.Unlock()
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			req.Host = testHost
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.cookie != nil {
				req.AddCookie(tt.cookie)
			}
			if tt.csrf != "" {
				req.Header.Set(CSRFHeader, tt.csrf)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			f.mu.Lock()
			called := len(f.calls) > 0
			f.mu.Unlock()
			if called != tt.wantCall {
				t.Errorf("backend called = %v (%v), want %v", called, f.calls, tt.wantCall)
			}
			if rec.Code >= 400 {
				var e Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != rec.Code {
					t.Errorf("error body %s is not a JSON Error (%v)", rec.Body, err)
				}
			}
		})
	}

	do := func(method, target string, c *http.Cookie, token string) int {
		req := httptest.NewRequest(method, target, strings.NewReader(`{}`))
		req.Host = testHost
		req.AddCookie(c)
		req.Header.Set(CSRFHeader, token)
		req.Header.Set("Origin", testOrigin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	// Sign-out ends the session on the server: the same cookie is then
	// refused, and the answer tells the browser to drop it.
	c2, csrf2 := signIn(t, h)
	if code := do("GET", "/api/v1/status", c2, ""); code != 200 {
		t.Fatalf("second session: %d", code)
	}
	req := httptest.NewRequest("DELETE", SessionPath, nil)
	req.Host = testHost
	req.AddCookie(c2)
	req.Header.Set(CSRFHeader, csrf2)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("sign-out: %d, cookies %+v", rec.Code, rec.Result().Cookies())
	}
	if code := do("GET", "/api/v1/status", c2, ""); code != 401 {
		t.Errorf("after sign-out: %d, want 401", code)
	}
	if code := do("POST", invite, c2, csrf2); code != 401 {
		t.Errorf("post after sign-out: %d, want 401", code)
	}
	// The CSRF token of one session does not work with another.
	c3, _ := signIn(t, h)
	if code := do("POST", invite, c3, csrf); code != 403 {
		t.Errorf("csrf of another session: %d, want 403", code)
	}

	// Sessions expire.
	if code := do("POST", invite, cookie, csrf); code != 200 {
		t.Fatalf("before expiry: %d", code)
	}
	clock.advance(time.Hour - time.Second)
	if code := do("GET", "/api/v1/status", cookie, ""); code != 200 {
		t.Fatalf("a second before expiry: %d", code)
	}
	clock.advance(time.Second)
	if code := do("GET", "/api/v1/status", cookie, ""); code != 401 {
		t.Errorf("expired session GET: %d, want 401", code)
	}
	if code := do("POST", invite, cookie, csrf); code != 401 {
		t.Errorf("expired session POST: %d, want 401", code)
	}
}

// The session table stays bounded: signing in beyond MaxSessions ends the
// session closest to expiry.
func TestSessionLimit(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	h := NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken, Now: clock.now, MaxSessions: 3})
	var cs []*http.Cookie
	for range 4 {
		c, _ := signIn(t, h)
		cs = append(cs, c)
		clock.advance(time.Minute)
	}
	for i, c := range cs {
		req := httptest.NewRequest("GET", "/api/v1/status", nil)
		req.Host = testHost
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := 200
		if i == 0 {
			want = 401
		}
		if rec.Code != want {
			t.Errorf("session %d: %d, want %d", i, rec.Code, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		headers map[string]string
		tls     bool
		want    bool
	}{
		{headers: nil, want: false},
		{headers: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: true},
		{headers: map[string]string{"Sec-Fetch-Site": "none"}, want: false},
		{headers: map[string]string{"Sec-Fetch-Site": "same-site"}, want: false},
		{headers: map[string]string{"Origin": testOrigin}, want: true},
		{headers: map[string]string{"Origin": "HTTP://127.0.0.1:5480"}, want: true},
		{headers: map[string]string{"Origin": testOrigin, "Sec-Fetch-Site": "cross-site"}, want: false},
		{headers: map[string]string{"Origin": "http://127.0.0.1:5481"}, want: false},
		{headers: map[string]string{"Origin": "http://127.0.0.1"}, want: false},
		{headers: map[string]string{"Origin": testOrigin}, tls: true, want: false},
		{headers: map[string]string{"Origin": "https://127.0.0.1:5480"}, tls: true, want: true},
		{headers: map[string]string{"Referer": testOrigin + "/x?y"}, want: true},
		{headers: map[string]string{"Referer": "http://127.0.0.1:5480.evil.example/"}, want: false},
		{headers: map[string]string{"Referer": "::bad"}, want: false},
		{headers: map[string]string{"Origin": testOrigin, "Referer": "http://evil.example/"}, want: false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/api/v1/gc", nil)
		req.Host = testHost
		if tt.tls {
			req.TLS = &tls.ConnectionState{}
		}
		for k, v := range tt.headers {
			req.Header.Set(k, v)
		}
		if got := sameOrigin(req); got != tt.want {
			t.Errorf("sameOrigin(%v, tls=%v) = %v, want %v", tt.headers, tt.tls, got, tt.want)
		}
	}
}
