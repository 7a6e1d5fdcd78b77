package api

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// The dashboard is a single page of plain HTML, CSS and JavaScript
// embedded in the binary (web/): no build step, nothing fetched from the
// network. It talks to the API below /api/v1 with a session cookie; see
// session.go for the rules that make that safe, and docs/DASHBOARD.md.

//go:embed web
var webFiles embed.FS

// webPrefix is where the dashboard's assets live; "/" is its page.
const webPrefix = "/ui/"

// isWebPath reports whether p is the dashboard's page or one of its
// assets.
func isWebPath(p string) bool { return p == "/" || strings.HasPrefix(p, webPrefix) }

// contentSecurityPolicy lets the page run only its own script and style,
// talk only to its own origin and never be framed: an injected string
// cannot load or run anything.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func webHandler() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, errMethodWeb)
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-cache")
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		if r.URL.Path == "/" {
			u.Path = "/index.html"
		} else {
			u.Path = "/" + strings.TrimPrefix(r.URL.Path, webPrefix)
		}
		if u.Path == "/index.html" {
			// FileServer redirects /index.html to /; serve it directly.
			b, err := webFiles.ReadFile("web/index.html")
			if err != nil {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			hd.Set("Content-Type", "text/html; charset=utf-8")
			hd.Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = w.Write(b)
			}
			return
		}
		if path.Clean(u.Path) != u.Path || strings.HasSuffix(u.Path, "/") {
			writeError(w, http.StatusNotFound, errNoAsset)
			return
		}
		r2.URL = &u
		files.ServeHTTP(w, r2)
	})
}

var (
	errMethodWeb = Errorf(ErrInvalid, "the dashboard's pages are read with GET")
	errNoAsset   = Errorf(ErrNotFound, "no such dashboard file")
)

// dashboardRoutes are the endpoints the dashboard needs beyond the CLI's.
func (h *handler) dashboardRoutes() map[string]route {
	return map[string]route{
		"/api/v1/logs":              {method: http.MethodGet, serve: h.logs},
		"/api/v1/qr":                {method: http.MethodGet, serve: h.qr},
		"/api/v1/conflicts/resolve": {method: http.MethodPost, serve: h.conflictResolve},
	}
}

// qr serves GET /api/v1/qr?text=...: the text as a QR code in SVG.
func (h *handler) qr(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("text")
	svg, err := QRSVG(text)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(svg)
}

// QR calls GET /api/v1/qr and returns the SVG.
func (c *Client) QR(ctx context.Context, text string) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/qr?text="+url.QueryEscape(text), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("api: qr: %w", err)
	}
	return b, nil
}
