package api

import (
	"context"
	"net/http"
	"net/url"
)

// Folders keeps directories in sync among the cloud's devices
// (docs/FOLDERS.md). It is optional: a Backend that lacks it answers the
// folder endpoints with 404. Adding or joining needs a running daemon
// (ErrOffline otherwise); an unknown folder, path or version is
// ErrNotFound; a bad path or ID is ErrInvalid; a path already synced, or a
// folder already joined, is ErrConflict.
type Folders interface {
	FolderAdd(ctx context.Context, req FolderAddRequest) (FolderInfo, error)
	Folders(ctx context.Context) ([]FolderInfo, error)
	FolderJoin(ctx context.Context, req FolderJoinRequest) (FolderInfo, error)
	FolderLeave(ctx context.Context, id string) (FolderInfo, error)
	FolderConfirm(ctx context.Context, id string) (FolderInfo, error)
	FolderVersions(ctx context.Context, folder, path string) ([]FolderVersion, error)
	FolderRestore(ctx context.Context, req FolderRestoreRequest) (FolderVersion, error)
	Conflicts(ctx context.Context) ([]FolderConflict, error)
}

// FolderAddRequest is POST /api/v1/folders: sync an existing directory
// (absolute path on the daemon's machine) as a new folder.
type FolderAddRequest struct {
	Path string `json:"path"`
	// ReceiveOnly applies other devices' changes but sends none.
	ReceiveOnly bool `json:"receive_only,omitempty"`
}

// FolderJoinRequest is POST /api/v1/folders/join: subscribe this device
// to a folder another member has, into Path (created if missing).
type FolderJoinRequest struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	ReceiveOnly bool   `json:"receive_only,omitempty"`
}

// FolderIDRequest is POST /api/v1/folders/leave and /confirm.
type FolderIDRequest struct {
	ID string `json:"id"`
}

// FolderRestoreRequest is POST /api/v1/folders/restore. Path is absolute
// (inside a folder) or relative to Folder's root. At is RFC 3339: the
// newest version not newer than it; "" means the newest.
type FolderRestoreRequest struct {
	Folder string `json:"folder,omitempty"`
	Path   string `json:"path"`
	At     string `json:"at,omitempty"`
}

// FolderInfo is one folder and its status (GET /api/v1/folders, and the
// result of add, join, leave and confirm).
type FolderInfo struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	ReceiveOnly bool   `json:"receive_only,omitempty"`
	// State: "scanning", "syncing", "idle" (in sync), "held" (deletes wait
	// for confirm), "stopped" (marker missing), "error", "left".
	State            string `json:"state"`
	Error            string `json:"error,omitempty"`
	Files            int    `json:"files"`
	Dirs             int    `json:"dirs"`
	Bytes            int64  `json:"bytes"`
	NeedFiles        int    `json:"need_files"`
	NeedBytes        int64  `json:"need_bytes"`
	HeldDeletes      int    `json:"held_deletes"`
	HeldLocalDeletes int    `json:"held_local_deletes"`
	Conflicts        int    `json:"conflicts"`
	Devices          int    `json:"devices"` // other devices whose index this one follows
	Connected        int    `json:"connected"`
	LastScan         string `json:"last_scan,omitempty"` // RFC 3339
}

// FolderVersion is one kept old version of a file.
type FolderVersion struct {
	Folder string `json:"folder"`
	Path   string `json:"path"` // relative to the folder root
	Time   string `json:"time"` // RFC 3339 (nanoseconds)
	Size   int64  `json:"size"`
}

// FolderConflict is one conflict copy (GET /api/v1/conflicts).
type FolderConflict struct {
	Folder string `json:"folder"`
	Path   string `json:"path"` // relative to the folder root
	Abs    string `json:"abs"`  // absolute path on the daemon's machine
}

func (h *handler) folders(w http.ResponseWriter, r *http.Request) (Folders, bool) {
	f, ok := h.b.(Folders)
	if !ok {
		h.fail(w, r, Errorf(ErrNotFound, "this node does not sync folders"))
	}
	return f, ok
}

func (h *handler) folderList(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	fs, err := f.Folders(r.Context())
	if fs == nil {
		fs = []FolderInfo{}
	}
	h.reply(w, r, fs, err)
}

func (h *handler) folderAdd(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	var req FolderAddRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Path == "" {
		h.fail(w, r, Errorf(ErrInvalid, `missing "path": give the absolute path of the directory to sync`))
		return
	}
	fi, err := f.FolderAdd(r.Context(), req)
	h.reply(w, r, fi, err)
}

func (h *handler) folderJoin(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	var req FolderJoinRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.ID == "" || req.Path == "" {
		h.fail(w, r, Errorf(ErrInvalid, `"id" and "path" are required: the folder's ID (pcnode folder ls on another device) and where to put it`))
		return
	}
	fi, err := f.FolderJoin(r.Context(), req)
	h.reply(w, r, fi, err)
}

func (h *handler) folderByID(op func(Folders, context.Context, string) (FolderInfo, error)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		f, ok := h.folders(w, r)
		if !ok {
			return
		}
		var req FolderIDRequest
		if err := decodeJSON(r.Body, &req); err != nil {
			h.fail(w, r, err)
			return
		}
		if req.ID == "" {
			h.fail(w, r, Errorf(ErrInvalid, `missing "id": give the folder's ID (pcnode folder ls)`))
			return
		}
		fi, err := op(f, r.Context(), req.ID)
		h.reply(w, r, fi, err)
	}
}

func (h *handler) folderVersions(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("path") == "" {
		h.fail(w, r, Errorf(ErrInvalid, `missing "path" parameter`))
		return
	}
	vs, err := f.FolderVersions(r.Context(), q.Get("folder"), q.Get("path"))
	if vs == nil {
		vs = []FolderVersion{}
	}
	h.reply(w, r, vs, err)
}

func (h *handler) folderRestore(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	var req FolderRestoreRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Path == "" {
		h.fail(w, r, Errorf(ErrInvalid, `missing "path"`))
		return
	}
	v, err := f.FolderRestore(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) conflicts(w http.ResponseWriter, r *http.Request) {
	f, ok := h.folders(w, r)
	if !ok {
		return
	}
	cs, err := f.Conflicts(r.Context())
	if cs == nil {
		cs = []FolderConflict{}
	}
	h.reply(w, r, cs, err)
}

// folderRoutes are the folder endpoints, added to the handler's routes.
func (h *handler) folderRoutes() map[string]route {
	return map[string]route{
		"/api/v1/folders":          {method: http.MethodGet, serve: h.folderList, post: h.folderAdd},
		"/api/v1/folders/join":     {method: http.MethodPost, serve: h.folderJoin},
		"/api/v1/folders/leave":    {method: http.MethodPost, serve: h.folderByID(Folders.FolderLeave)},
		"/api/v1/folders/confirm":  {method: http.MethodPost, serve: h.folderByID(Folders.FolderConfirm)},
		"/api/v1/folders/versions": {method: http.MethodGet, serve: h.folderVersions},
		"/api/v1/folders/restore":  {method: http.MethodPost, serve: h.folderRestore},
		"/api/v1/conflicts":        {method: http.MethodGet, serve: h.conflicts},
	}
}

// FolderAdd calls POST /api/v1/folders.
func (c *Client) FolderAdd(ctx context.Context, req FolderAddRequest) (FolderInfo, error) {
	var out FolderInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/folders", req, &out)
	return out, err
}

// Folders calls GET /api/v1/folders.
func (c *Client) Folders(ctx context.Context) ([]FolderInfo, error) {
	var out []FolderInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/folders", nil, &out)
	return out, err
}

// FolderJoin calls POST /api/v1/folders/join.
func (c *Client) FolderJoin(ctx context.Context, req FolderJoinRequest) (FolderInfo, error) {
	var out FolderInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/folders/join", req, &out)
	return out, err
}

// FolderLeave calls POST /api/v1/folders/leave.
func (c *Client) FolderLeave(ctx context.Context, id string) (FolderInfo, error) {
	var out FolderInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/folders/leave", FolderIDRequest{ID: id}, &out)
	return out, err
}

// FolderConfirm calls POST /api/v1/folders/confirm.
func (c *Client) FolderConfirm(ctx context.Context, id string) (FolderInfo, error) {
	var out FolderInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/folders/confirm", FolderIDRequest{ID: id}, &out)
	return out, err
}

// FolderVersions calls GET /api/v1/folders/versions.
func (c *Client) FolderVersions(ctx context.Context, folder, path string) ([]FolderVersion, error) {
	var out []FolderVersion
	q := url.Values{"path": {path}}
	if folder != "" {
		q.Set("folder", folder)
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/folders/versions?"+q.Encode(), nil, &out)
	return out, err
}

// FolderRestore calls POST /api/v1/folders/restore.
func (c *Client) FolderRestore(ctx context.Context, req FolderRestoreRequest) (FolderVersion, error) {
	var out FolderVersion
	err := c.do(ctx, http.MethodPost, "/api/v1/folders/restore", req, &out)
	return out, err
}

// Conflicts calls GET /api/v1/conflicts.
func (c *Client) Conflicts(ctx context.Context) ([]FolderConflict, error) {
	var out []FolderConflict
	err := c.do(ctx, http.MethodGet, "/api/v1/conflicts", nil, &out)
	return out, err
}
