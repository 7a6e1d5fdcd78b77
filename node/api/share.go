package api

import (
	"context"
	"io"
	"net/http"
)

// Sharing hands items to people outside the cloud by link (docs/SHARE.md).
// It is optional: a Backend that lacks it answers the share endpoints
// with 404. Share needs a running daemon for a link with provider hints
// and for DNS names (ErrOffline otherwise); an unknown share is
// ErrNotFound; a bad path, CID or expiry is ErrInvalid; a DNS name
// without dns.zone and a way to publish it is ErrConflict.
type Sharing interface {
	Share(ctx context.Context, req ShareRequest, fn ProgressFunc) (ShareInfo, error)
	Shares(ctx context.Context) ([]ShareInfo, error)
	ShareRevoke(ctx context.Context, id string) (ShareInfo, error)
}

// ShareRequest is POST /api/v1/shares. Exactly one of Path and CID.
type ShareRequest struct {
	// Path is an absolute path on the daemon's machine: it is imported
	// (encrypted first if Encrypt) and pinned.
	Path string `json:"path,omitempty"`
	// CID names content already in the local store, complete.
	CID string `json:"cid,omitempty"`
	// Expires is how long the share lasts ("7d", "36h", "90m") or when
	// it ends (RFC 3339); "" means it never expires.
	Expires string `json:"expires,omitempty"`
	// Encrypt stores the item encrypted with a fresh key that only the
	// link carries. Needs Path.
	Encrypt bool `json:"encrypt,omitempty"`
	// Name publishes the share as _dnslink.<name>.<dns.zone>.
	Name string `json:"name,omitempty"`
	// Unlisted keeps the root out of the DHT.
	Unlisted bool `json:"unlisted,omitempty"`
}

// ShareInfo describes one share: the result of POST /api/v1/shares and an
// entry of GET /api/v1/shares.
type ShareInfo struct {
	ID   string `json:"id"`
	Link string `json:"link"` // pcnode://share/...; carries the key when encrypted
	// IPFS is ipfs://<cid> for a plain share, "" for an encrypted one
	// (its CID names ciphertext).
	IPFS      string `json:"ipfs,omitempty"`
	CID       string `json:"cid"`
	Name      string `json:"name,omitempty"`
	Size      int64  `json:"size"`
	Created   string `json:"created"`           // RFC 3339
	Expires   string `json:"expires,omitempty"` // RFC 3339; absent: never
	Revoked   string `json:"revoked,omitempty"` // RFC 3339; absent: not revoked
	State     string `json:"state"`             // "active", "revoked" or "expired"
	Encrypted bool   `json:"encrypted,omitempty"`
	Unlisted  bool   `json:"unlisted,omitempty"`
	Downloads int64  `json:"downloads"`
	// DNSName is <name>.<zone> when the share was published under a name.
	DNSName string `json:"dns_name,omitempty"`
	// Gateway is the URL of the item on this node's gateway, when it runs.
	Gateway string `json:"gateway,omitempty"`
}

// ShareRevokeRequest is POST /api/v1/shares/revoke.
type ShareRevokeRequest struct {
	ID string `json:"id"`
}

func (h *handler) sharing(w http.ResponseWriter, r *http.Request) (Sharing, bool) {
	s, ok := h.b.(Sharing)
	if !ok {
		h.fail(w, r, Errorf(ErrNotFound, "this node does not share items"))
	}
	return s, ok
}

func (h *handler) shareCreate(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sharing(w, r)
	if !ok {
		return
	}
	var req ShareRequest
	if err := decodeShareRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.stream(w, r, func(ctx context.Context, fn ProgressFunc) (any, error) {
		return s.Share(ctx, req, fn)
	})
}

func (h *handler) shareList(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sharing(w, r)
	if !ok {
		return
	}
	ss, err := s.Shares(r.Context())
	if ss == nil {
		ss = []ShareInfo{}
	}
	h.reply(w, r, ss, err)
}

func (h *handler) shareRevoke(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sharing(w, r)
	if !ok {
		return
	}
	var req ShareRevokeRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.ID == "" {
		h.fail(w, r, Errorf(ErrInvalid, `missing "id": give the share's ID (pcnode share ls)`))
		return
	}
	si, err := s.ShareRevoke(r.Context(), req.ID)
	h.reply(w, r, si, err)
}

func decodeShareRequest(r io.Reader, req *ShareRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	switch {
	case (req.Path == "") == (req.CID == ""):
		return Errorf(ErrInvalid, `give exactly one of "path" (absolute) and "cid"`)
	case req.CID != "":
		if _, err := ParseCID(req.CID); err != nil {
			return err
		}
		if req.Encrypt {
			return Errorf(ErrInvalid, `"encrypt" needs a "path": content already in the store by CID is stored in the clear`)
		}
	}
	return nil
}

// Share creates a share (streaming progress of the import, in bytes).
func (c *Client) Share(ctx context.Context, req ShareRequest, fn ProgressFunc) (ShareInfo, error) {
	var res ShareInfo
	err := c.stream(ctx, "/api/v1/shares", req, fn, &res)
	return res, err
}

// Shares lists the shares, newest first.
func (c *Client) Shares(ctx context.Context) ([]ShareInfo, error) {
	var out []ShareInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/shares", nil, &out)
	return out, err
}

// ShareRevoke revokes share id.
func (c *Client) ShareRevoke(ctx context.Context, id string) (ShareInfo, error) {
	var si ShareInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/shares/revoke", ShareRevokeRequest{ID: id}, &si)
	return si, err
}

var _ Sharing = (*Client)(nil)
