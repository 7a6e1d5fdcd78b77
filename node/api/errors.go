package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Names of the files a node's home holds for API clients.
const (
	APIFile   = "api"       // base URL of a running daemon's API; absent when none runs
	TokenFile = "api.token" // bearer token, hex, mode 0600
)

// Kinds of error that callers branch on. A Backend marks its errors with
// them (see Errorf); the handler maps them to HTTP status codes and the
// Client maps the codes back, so errors.Is works on both sides.
var (
	ErrInvalid  = errors.New("invalid request") // 400: the caller must change the request
	ErrNotFound = errors.New("not found")       // 404: no such content, pin or path
	ErrOffline  = errors.New("node is offline") // 503: needs networking; start the daemon
	// ErrForbidden: the request is understood but refused: this device is
	// not an admin of its cloud, or an invite was refused (403).
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: the request clashes with the node's state or settings:
	// the home already belongs to a cloud, a name is taken, a device is
	// already revoked, a needed setting is missing (409).
	ErrConflict = errors.New("conflict")
	ErrNoDaemon = errors.New("no daemon running") // the home has no reachable daemon (Client only)
)

// kindError carries a message and its kind; errors.Is matches both the
// kind and anything wrapped in the message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Errorf formats an error like fmt.Errorf and marks it with kind (one of
// ErrInvalid, ErrNotFound, ErrOffline, ErrForbidden, ErrConflict) without
// changing its message.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// ParseCID parses a CID given by a user; a bad one is an ErrInvalid error
// reading `invalid CID "x": reason`.
func ParseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, Errorf(ErrInvalid, "missing CID")
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, Errorf(ErrInvalid, "invalid CID %q: %w", s, err)
	}
	return c, nil
}

// StatusCode is the HTTP status for err.
func StatusCode(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound), ipld.IsNotFound(err), errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	case errors.Is(err, ErrOffline):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// kindOf is the inverse of StatusCode, for the client.
func kindOf(code int) error {
	switch code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return ErrInvalid
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusServiceUnavailable:
		return ErrOffline
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusConflict:
		return ErrConflict
	}
	return nil
}
