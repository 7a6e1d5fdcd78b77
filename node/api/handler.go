package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multiformats/go-multiaddr"
)

// DefaultMaxBodyBytes bounds request bodies when HandlerConfig leaves it
// zero. Requests carry paths and CIDs, never content, so 1 MiB is generous.
const DefaultMaxBodyBytes = 1 << 20

// progressInterval is how often a streaming response sends a progress line:
// often enough for a smooth bar, rarely enough that a fast import is not
// slowed by JSON encoding.
const progressInterval = 100 * time.Millisecond

// HandlerConfig configures NewHandler. The zero value serves the API but
// refuses every authenticated request, since there is no token to match.
type HandlerConfig struct {
	// Token is the bearer token every request except GET /health must
	// carry. Empty: all authenticated requests get 401.
	Token string
	// Logger receives one Debug line per request and Warn lines for
	// failures. Nil discards.
	Logger *slog.Logger
	// Metrics, if not nil, is served at GET /metrics (authenticated).
	// Nil: /metrics is 404.
	Metrics http.Handler
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// OnRequest, if not nil, is called once per request with its route
	// ("/api/v1/add", or "other" for unknown paths) and status code.
	OnRequest func(route string, code int)
	// AllowedHosts are host names (no port) accepted in the Host header
	// besides IP literals and "localhost". Names not listed get 403, which
	// stops DNS-rebinding attacks from a browser. Default none.
	AllowedHosts []string
	// MaxConcurrent bounds the authenticated requests served at once;
	// beyond it a request gets 503 with Retry-After. Default
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxPerClient bounds the authenticated requests one client (a
	// dashboard session, else a remote IP address) has in progress at
	// once; beyond it a request gets 429 with Retry-After, before the
	// global MaxConcurrent is consulted. Default DefaultMaxPerClient.
	MaxPerClient int
	// SessionTTL is how long a dashboard session lasts from sign-in.
	// Default DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions bounds the dashboard sessions kept. Default
	// DefaultMaxSessions.
	MaxSessions int
	// Now is the clock of session expiry. Default nil: time.Now.
	Now func() time.Time
}

type handler struct {
	b        Backend
	cfg      HandlerConfig
	log      *slog.Logger
	route    map[string]route
	sessions *sessions
	limit    limiter
	clients  *clientLimiter
	web      http.Handler
}

type route struct {
	method string
	serve  func(w http.ResponseWriter, r *http.Request)
	// post, if set, serves POST on the same path (method then is GET).
	post func(w http.ResponseWriter, r *http.Request)
}

// NewHandler returns the HTTP API over b. Routes are documented in
// docs/API.md. The handler is safe for concurrent use; b's methods are
// called with the request's context, so they stop when the client goes.
func NewHandler(b Backend, cfg HandlerConfig) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = DefaultMaxPerClient
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		b: b, cfg: cfg, log: log,
		sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, cfg.Now),
		limit:    newLimiter(cfg.MaxConcurrent),
		clients:  newClientLimiter(cfg.MaxPerClient),
		web:      webHandler(),
	}
	h.route = map[string]route{
		"/api/v1/status":         {method: http.MethodGet, serve: h.status},
		"/api/v1/add":            {method: http.MethodPost, serve: h.add},
		"/api/v1/cat":            {method: http.MethodGet, serve: h.cat},
		"/api/v1/get":            {method: http.MethodPost, serve: h.get},
		"/api/v1/ls":             {method: http.MethodGet, serve: h.ls},
		"/api/v1/pin/add":        {method: http.MethodPost, serve: h.pinAdd},
		"/api/v1/pin/rm":         {method: http.MethodPost, serve: h.pinRm},
		"/api/v1/pin/ls":         {method: http.MethodGet, serve: h.pinLs},
		"/api/v1/gc":             {method: http.MethodPost, serve: h.gc},
		"/api/v1/repo/verify":    {method: http.MethodPost, serve: h.verify},
		"/api/v1/repo/stat":      {method: http.MethodGet, serve: h.repoStat},
		"/api/v1/peers":          {method: http.MethodGet, serve: h.peers},
		"/api/v1/peers/connect":  {method: http.MethodPost, serve: h.connect},
		"/api/v1/cloud":          {method: http.MethodGet, serve: h.cloud},
		"/api/v1/devices":        {method: http.MethodGet, serve: h.devices},
		"/api/v1/devices/invite": {method: http.MethodPost, serve: h.invite},
		"/api/v1/devices/revoke": {method: http.MethodPost, serve: h.revoke},
		"/api/v1/devices/rename": {method: http.MethodPost, serve: h.rename},
		"/api/v1/join":           {method: http.MethodPost, serve: h.join},
		"/api/v1/dns/ds":         {method: http.MethodGet, serve: h.dnsDS},
		"/api/v1/dns/publish":    {method: http.MethodPost, serve: h.dnsPublish},
		"/api/v1/shares":         {method: http.MethodGet, serve: h.shareList, post: h.shareCreate},
		"/api/v1/shares/revoke":  {method: http.MethodPost, serve: h.shareRevoke},
		"/metrics":               {method: http.MethodGet, serve: h.metrics},
	}
	for path, rt := range h.folderRoutes() {
		h.route[path] = rt
	}
	for path, rt := range h.dashboardRoutes() {
		h.route[path] = rt
	}
	return h
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	routeName := "other"
	if _, ok := h.route[r.URL.Path]; ok || r.URL.Path == "/health" || r.URL.Path == SessionPath {
		routeName = r.URL.Path
	} else if isWebPath(r.URL.Path) {
		routeName = "dashboard"
	}
	defer func() {
		// Runs on return and on http.ErrAbortHandler alike.
		if w.code == 0 {
			w.code = http.StatusOK
		}
		if h.cfg.OnRequest != nil {
			h.cfg.OnRequest(routeName, w.code)
		}
		h.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "code", w.code, "dur", time.Since(start))
	}()

	if !h.hostAllowed(r.Host) {
		writeError(w, http.StatusForbidden, fmt.Errorf("host %q not allowed: use http://127.0.0.1:<port> or http://localhost:<port>", r.Host))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	if r.URL.Path == "/health" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on /health: use GET", r.Method))
			return
		}
		writeJSON(w, http.StatusOK, Health{OK: true})
		return
	}
	if isWebPath(r.URL.Path) {
		// The dashboard's page and assets hold no data: they load
		// without a session and ask for one.
		h.web.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == SessionPath {
		h.session(w, r)
		return
	}
	// Authentication comes before the concurrency limit, so that every
	// unauthorised request is refused as such even under a flood.
	if code, err := h.authenticate(r); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pcnode"`)
		}
		writeError(w, code, err)
		return
	}
	// One client over its share gets 429 and leaves the global slots to
	// the others; all clients together over the global bound get 503.
	client := clientOf(r)
	if !h.clients.tryAcquire(client) {
		refuseClientBusy(w)
		return
	}
	defer h.clients.release(client)
	if !h.limit.tryAcquire() {
		refuseBusy(w)
		return
	}
	defer h.limit.release()
	rt, ok := h.route[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint %s: see docs/API.md", r.URL.Path))
		return
	}
	if r.Method == http.MethodPost && rt.post != nil {
		rt.post(w, r)
		return
	}
	if r.Method != rt.method {
		allow := rt.method
		if rt.post != nil {
			allow += ", " + http.MethodPost
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, rt.method))
		return
	}
	rt.serve(w, r)
}

func (h *handler) hostAllowed(host string) bool {
	if host == "" {
		return false
	}
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if net.ParseIP(name) != nil || strings.EqualFold(name, "localhost") {
		return true
	}
	for _, a := range h.cfg.AllowedHosts {
		if strings.EqualFold(name, a) {
			return true
		}
	}
	return false
}

// --- routes ---

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.b.Status(r.Context())
	h.reply(w, r, st, err)
}

func (h *handler) add(w http.ResponseWriter, r *http.Request) {
	var req AddRequest
	if err := decodeAddRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.stream(w, r, func(ctx context.Context, fn ProgressFunc) (any, error) {
		return h.b.Add(ctx, req, fn)
	})
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	var req GetRequest
	if err := decodeGetRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.stream(w, r, func(ctx context.Context, fn ProgressFunc) (any, error) {
		return h.b.Get(ctx, req, fn)
	})
}

func (h *handler) verify(w http.ResponseWriter, r *http.Request) {
	h.stream(w, r, func(ctx context.Context, fn ProgressFunc) (any, error) {
		return h.b.Verify(ctx, fn)
	})
}

func (h *handler) cat(w http.ResponseWriter, r *http.Request) {
	c, err := ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rc, err := h.b.Cat(r.Context(), c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer rc.Close()
	// A known length lets the client tell a cut-off stream from the end.
	if s, ok := rc.(io.Seeker); ok {
		if n, err := s.Seek(0, io.SeekEnd); err == nil {
			if _, err := s.Seek(0, io.SeekStart); err == nil {
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			}
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent; aborting the connection is the only way
		// left to tell the client the body is incomplete.
		h.log.Warn("api: cat aborted", "cid", c, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (h *handler) ls(w http.ResponseWriter, r *http.Request) {
	c, err := ParseCID(r.URL.Query().Get("cid"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	es, err := h.b.Ls(r.Context(), c)
	if es == nil {
		es = []Entry{}
	}
	h.reply(w, r, es, err)
}

func (h *handler) pinAdd(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if err := decodePinRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := ParseCID(req.CID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rec := req.Recursive == nil || *req.Recursive
	err = h.b.PinAdd(r.Context(), c, rec)
	typ := "recursive"
	if !rec {
		typ = "direct"
	}
	h.reply(w, r, Pin{CID: c.String(), Type: typ}, err)
}

func (h *handler) pinRm(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if err := decodePinRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := ParseCID(req.CID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.b.PinRm(r.Context(), c)
	h.reply(w, r, struct {
		CID string `json:"cid"`
	}{c.String()}, err)
}

func (h *handler) pinLs(w http.ResponseWriter, r *http.Request) {
	ps, err := h.b.PinLs(r.Context())
	if ps == nil {
		ps = []Pin{}
	}
	h.reply(w, r, ps, err)
}

func (h *handler) gc(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.GC(r.Context())
	h.reply(w, r, res, err)
}

func (h *handler) repoStat(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.RepoStat(r.Context())
	h.reply(w, r, res, err)
}

func (h *handler) peers(w http.ResponseWriter, r *http.Request) {
	ps, err := h.b.PeerList(r.Context())
	if ps == nil {
		ps = []Peer{}
	}
	h.reply(w, r, ps, err)
}

func (h *handler) connect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
	if err := decodeConnectRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	ma, err := multiaddr.NewMultiaddr(req.Addr)
	if err != nil {
		h.fail(w, r, Errorf(ErrInvalid, "invalid multiaddr %q: %w", req.Addr, err))
		return
	}
	p, err := h.b.Connect(r.Context(), ma)
	h.reply(w, r, p, err)
}

func (h *handler) cloud(w http.ResponseWriter, r *http.Request) {
	ci, err := h.b.Cloud(r.Context())
	h.reply(w, r, ci, err)
}

func (h *handler) devices(w http.ResponseWriter, r *http.Request) {
	ds, err := h.b.Devices(r.Context())
	if ds == nil {
		ds = []Device{}
	}
	h.reply(w, r, ds, err)
}

func (h *handler) invite(w http.ResponseWriter, r *http.Request) {
	var req InviteRequest
	if err := decodeInviteRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.b.Invite(r.Context(), req)
	h.reply(w, r, res, err)
}

func (h *handler) revoke(w http.ResponseWriter, r *http.Request) {
	var req DeviceRequest
	if err := decodeDeviceRequest(r.Body, &req, false); err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.b.Revoke(r.Context(), req.Device)
	h.reply(w, r, d, err)
}

func (h *handler) rename(w http.ResponseWriter, r *http.Request) {
	var req DeviceRequest
	if err := decodeDeviceRequest(r.Body, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.b.Rename(r.Context(), req.Device, req.Name)
	h.reply(w, r, d, err)
}

func (h *handler) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decodeJoinRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	ci, err := h.b.Join(r.Context(), req)
	h.reply(w, r, ci, err)
}

func (h *handler) dnsDS(w http.ResponseWriter, r *http.Request) {
	ds, err := h.b.DNSDS(r.Context())
	h.reply(w, r, ds, err)
}

func (h *handler) dnsPublish(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.DNSPublish(r.Context())
	h.reply(w, r, res, err)
}

func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Metrics == nil {
		writeError(w, http.StatusNotFound, errors.New("metrics are not enabled on this node"))
		return
	}
	h.cfg.Metrics.ServeHTTP(w, r)
}

// --- responses ---

func (h *handler) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := StatusCode(err)
	if code >= 500 {
		h.log.Warn("api request failed", "path", r.URL.Path, "code", code, "err", err)
	}
	writeError(w, code, err)
}

// stream runs op and answers in NDJSON: progress lines, then the result
// or an Error line. If op fails before any progress was sent, the answer
// is a plain JSON error with its proper status code instead.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, op func(context.Context, ProgressFunc) (any, error)) {
	var (
		mu      sync.Mutex
		cur     Progress
		dirty   bool
		started bool
		werr    error
	)
	rc := http.NewResponseController(w)
	writeLine := func(v any) {
		if werr != nil {
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		b, _ := json.Marshal(v)
		if _, werr = w.Write(append(b, '\n')); werr == nil {
			werr = rc.Flush()
		}
	}
	take := func() (Progress, bool) {
		mu.Lock()
		defer mu.Unlock()
		p, d := cur, dirty
		dirty = false
		return p, d
	}
	fn := func(done, total int64) {
		mu.Lock()
		cur, dirty = Progress{Done: done, Total: total}, true
		mu.Unlock()
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if p, ok := take(); ok {
					writeLine(p)
				}
			}
		}
	})
	res, err := op(r.Context(), fn)
	close(stop)
	wg.Wait()

	if err != nil && !started {
		h.fail(w, r, err)
		return
	}
	if p, ok := take(); ok {
		writeLine(p)
	}
	if err != nil {
		code := StatusCode(err)
		if code >= 500 {
			h.log.Warn("api request failed", "path", r.URL.Path, "code", code, "err", err)
		}
		writeLine(Error{Error: err.Error(), Code: code})
		return
	}
	writeLine(res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(Error{Error: "api: encode response: " + err.Error(), Code: code})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error(), Code: code})
}

// statusWriter records the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// --- request decoding ---

// decodeJSON reads exactly one JSON object into v. Unknown fields, trailing
// data and bodies over the limit are errors: ErrInvalid, or the
// *http.MaxBytesError for the last.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body larger than %d bytes: %w", mbe.Limit, err)
		}
		if errors.Is(err, io.EOF) {
			return Errorf(ErrInvalid, "empty request body: send a JSON object")
		}
		return Errorf(ErrInvalid, "bad request body: %w", err)
	}
	// Anything but white space after the object is a malformed request.
	rest, err := io.ReadAll(io.MultiReader(dec.Buffered(), r))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body larger than %d bytes: %w", mbe.Limit, err)
		}
		return Errorf(ErrInvalid, "bad request body: %w", err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return Errorf(ErrInvalid, "bad request body: data after the JSON object")
	}
	return nil
}

func decodeAddRequest(r io.Reader, req *AddRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if req.Path == "" {
		return Errorf(ErrInvalid, `missing "path": give the absolute path of the file or directory to add`)
	}
	return nil
}

func decodeGetRequest(r io.Reader, req *GetRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if _, err := ParseCID(req.CID); err != nil {
		return err
	}
	if req.Output == "" {
		return Errorf(ErrInvalid, `missing "output": give the absolute path to write to`)
	}
	return nil
}

func decodePinRequest(r io.Reader, req *PinRequest) error {
	return decodeJSON(r, req)
}

func decodeConnectRequest(r io.Reader, req *ConnectRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if req.Addr == "" {
		return Errorf(ErrInvalid, `missing "addr": give a multiaddr ending in /p2p/<peer ID>`)
	}
	return nil
}

// MaxInviteTTL bounds InviteRequest.TTL: an invite is for walking to the
// other device, not for leaving lying around.
const MaxInviteTTL = 24 * time.Hour

// ParseInviteTTL parses InviteRequest.TTL: "" is 0 (the default), else a
// positive Go duration of at most MaxInviteTTL. A bad one is ErrInvalid.
func ParseInviteTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, Errorf(ErrInvalid, "invalid ttl %q: want a duration such as 15m or 1h", s)
	}
	if d <= 0 || d > MaxInviteTTL {
		return 0, Errorf(ErrInvalid, "invalid ttl %q: want more than 0 and at most %s", s, MaxInviteTTL)
	}
	return d, nil
}

func decodeInviteRequest(r io.Reader, req *InviteRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	_, err := ParseInviteTTL(req.TTL)
	return err
}

func decodeDeviceRequest(r io.Reader, req *DeviceRequest, rename bool) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if req.Device == "" {
		return Errorf(ErrInvalid, `missing "device": give the device's name or peer ID`)
	}
	if rename && req.Name == "" {
		return Errorf(ErrInvalid, `missing "name": give the device's new name`)
	}
	return nil
}

func decodeJoinRequest(r io.Reader, req *JoinRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if req.Code == "" {
		return Errorf(ErrInvalid, `missing "code": give the invite code printed by pcnode invite`)
	}
	switch req.Role {
	case "", "device", "server":
	default:
		return Errorf(ErrInvalid, `invalid "role" %q: want "device" or "server"`, req.Role)
	}
	return nil
}
