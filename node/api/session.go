package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The dashboard signs in with the API token once and then uses a cookie
// session, so the token never sits in the page's storage where a script
// could read it. A cookie is sent by the browser on its own, which opens
// the door to cross-site request forgery; three rules close it:
//
//   - the cookie is SameSite=Strict and HttpOnly (and Secure over TLS);
//   - every state-changing request (any method but GET and HEAD) made
//     with the cookie carries the session's CSRF token in the
//     X-CSRF-Token header (a synchronizer token, kept server-side);
//   - and it comes from the dashboard's own origin: Sec-Fetch-Site is
//     "same-origin", and Origin or Referer (whichever is sent) names this
//     scheme and Host.
//
// Bearer-token clients (the CLI) are not affected: a request with an
// Authorization header is judged by that header alone.

// Defaults for HandlerConfig's session fields.
const (
	// DefaultSessionTTL is how long a dashboard session lasts from sign-in:
	// a working day, so a tab left open overnight asks for the token again.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessions bounds the sessions kept in memory; signing in
	// beyond it ends the session closest to expiry.
	DefaultMaxSessions = 64
)

// SessionPath is the sign-in endpoint: POST {"token": "..."} signs in and
// sets the session cookie, GET reports the session (and its CSRF token),
// DELETE signs out.
const SessionPath = "/api/v1/session"

// CSRFHeader carries the session's CSRF token on state-changing requests
// made with a session cookie.
const CSRFHeader = "X-CSRF-Token"

// SessionCookie is the prefix of the session cookie's name; the API's
// port follows it ("pcnode_session_5480"), because browsers send cookies
// to every port of a host and two daemons on one machine must not
// overwrite each other's session.
const SessionCookie = "pcnode_session"

// SessionRequest is POST /api/v1/session.
type SessionRequest struct {
	Token string `json:"token"`
}

// SessionInfo is the answer to POST and GET /api/v1/session.
type SessionInfo struct {
	CSRF    string    `json:"csrf"` // send as X-CSRF-Token on POST requests
	Expires time.Time `json:"expires"`
}

type session struct {
	csrf    string
	expires time.Time
}

// sessions is the server-side session table. Safe for concurrent use.
type sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]session // by session ID
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, m: make(map[string]session)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// create starts a session and returns its ID and info.
func (s *sessions) create() (string, SessionInfo) {
	now := s.now()
	id := randomHex(32)
	se := session{csrf: randomHex(32), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= s.max {
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	s.m[id] = se
	return id, SessionInfo{CSRF: se.csrf, Expires: se.expires}
}

// lookup returns the live session id, if any; an expired one is dropped.
func (s *sessions) lookup(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(se.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return se, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// cookieName is the session cookie's name for a request to host.
func cookieName(host string) string {
	if _, port, err := net.SplitHostPort(host); err == nil && port != "" {
		return SessionCookie + "_" + port
	}
	return SessionCookie
}

func sessionID(r *http.Request) string {
	c, err := r.Cookie(cookieName(r.Host))
	if err != nil {
		return ""
	}
	return c.Value
}

// Errors of the session checks; their text tells a person what to do.
var (
	errNoAuth      = errors.New("missing or wrong API token: send \"Authorization: Bearer <token>\" with the token from the node's api.token file, or sign in to the dashboard")
	errCrossSite   = errors.New("cross-site request refused: state-changing requests with a session cookie must come from the dashboard's own origin")
	errBadCSRF     = errors.New("missing or wrong CSRF token: send the session's csrf value in the X-CSRF-Token header")
	errBadSignIn   = errors.New("wrong API token: use the token in the api.token file of the node's home")
	errNoSession   = errors.New("not signed in: POST /api/v1/session with the API token")
	errSessionGone = errors.New("session expired or unknown: sign in again")
)

// authenticate decides whether r may use the API: 0 when it may, else the
// status code and the reason.
func (h *handler) authenticate(r *http.Request) (int, error) {
	if r.Header.Get("Authorization") != "" {
		if h.bearerOK(r) {
			return 0, nil
		}
		return http.StatusUnauthorized, errNoAuth
	}
	id := sessionID(r)
	if id == "" {
		return http.StatusUnauthorized, errNoAuth
	}
	se, ok := h.sessions.lookup(id)
	if !ok {
		return http.StatusUnauthorized, errSessionGone
	}
	if safeMethod(r.Method) {
		return 0, nil
	}
	if !sameOrigin(r) {
		return http.StatusForbidden, errCrossSite
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(se.csrf)) != 1 {
		return http.StatusForbidden, errBadCSRF
	}
	return 0, nil
}

func (h *handler) bearerOK(r *http.Request) bool {
	if h.cfg.Token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(h.cfg.Token)) == 1
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// sameOrigin reports whether a browser says r comes from a page of this
// API's own origin. Every header that is present must agree, and at
// least one must be present: browsers send Sec-Fetch-Site and Origin on
// every POST, so a request with none of them did not come from the
// dashboard.
func sameOrigin(r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	seen := false
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		if s != "same-origin" {
			return false
		}
		seen = true
	}
	if o := r.Header.Get("Origin"); o != "" {
		if !strings.EqualFold(o, scheme+"://"+r.Host) {
			return false
		}
		seen = true
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
		seen = true
	}
	return seen
}

// session serves SessionPath.
func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		// Sign-in is itself protected against forgery: a foreign page
		// must not sign the browser in to a session of its choosing.
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, errCrossSite)
			return
		}
		var req SessionRequest
		if err := decodeJSON(r.Body, &req); err != nil {
			h.fail(w, r, err)
			return
		}
		if h.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(req.Token)), []byte(h.cfg.Token)) != 1 {
			h.log.Warn("api: dashboard sign-in with a wrong token", "remote", r.RemoteAddr)
			writeError(w, http.StatusUnauthorized, errBadSignIn)
			return
		}
		id, info := h.sessions.create()
		http.SetCookie(w, &http.Cookie{
			Name:     cookieName(r.Host),
			Value:    id,
			Path:     "/",
			Expires:  info.Expires,
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteStrictMode,
		})
		h.log.Info("api: dashboard sign-in", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, info)
	case http.MethodGet:
		se, ok := h.sessions.lookup(sessionID(r))
		if !ok {
			writeError(w, http.StatusUnauthorized, errNoSession)
			return
		}
		writeJSON(w, http.StatusOK, SessionInfo{CSRF: se.csrf, Expires: se.expires})
	case http.MethodDelete:
		id := sessionID(r)
		if _, ok := h.sessions.lookup(id); !ok {
			writeError(w, http.StatusUnauthorized, errNoSession)
			return
		}
		if code, err := h.authenticate(r); code != 0 {
			writeError(w, code, err)
			return
		}
		h.sessions.delete(id)
		http.SetCookie(w, &http.Cookie{
			Name: cookieName(r.Host), Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		})
		writeJSON(w, http.StatusOK, struct{}{})
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use POST to sign in, GET to check, DELETE to sign out", r.Method, SessionPath))
	}
}
