package api

import (
	"context"
	"io"
	"net/http"
	"path"
	"strings"
)

// ConflictResolver settles a conflict copy (docs/FOLDERS.md): either the
// copy replaces the file it conflicts with, or the copy is deleted. Both
// are ordinary edits of the folder, so they reach the other devices like
// any other. It is optional: a Backend without it answers
// POST /api/v1/conflicts/resolve with 404. A path that is not a current
// conflict copy of the folder is ErrNotFound.
type ConflictResolver interface {
	ResolveConflict(ctx context.Context, req ConflictResolveRequest) (FolderConflict, error)
}

// Ways to resolve a conflict copy.
const (
	// KeepCopy moves the conflict copy over the original file.
	KeepCopy = "keep-copy"
	// KeepOriginal deletes the conflict copy.
	KeepOriginal = "keep-original"
)

// ConflictResolveRequest is POST /api/v1/conflicts/resolve.
type ConflictResolveRequest struct {
	Folder string `json:"folder"` // folder ID
	Path   string `json:"path"`   // the conflict copy, relative to the folder root
	Keep   string `json:"keep"`   // KeepCopy or KeepOriginal
}

// ConflictOriginal returns the path of the file that conflict copy p
// (slash-separated, as FolderConflict.Path) was split from:
// "dir/name.sync-conflict-20260102-030405-ABCDEFG.ext" gives
// "dir/name.ext". ok is false when p is not a conflict copy's name.
func ConflictOriginal(p string) (string, bool) {
	const marker = ".sync-conflict-"
	dir, base := path.Split(p)
	i := strings.Index(base, marker)
	if i <= 0 {
		return "", false
	}
	stem, rest := base[:i], base[i+len(marker):]
	// rest is YYYYMMDD-HHMMSS-WRITER[.ext]
	if len(rest) < len("20060102-150405-")+1 || rest[8] != '-' || rest[15] != '-' {
		return "", false
	}
	for j, c := range rest[:15] {
		if j != 8 && (c < '0' || c > '9') {
			return "", false
		}
	}
	writerExt := rest[16:]
	ext := ""
	if k := strings.IndexByte(writerExt, '.'); k >= 0 {
		writerExt, ext = writerExt[:k], writerExt[k:]
	}
	if writerExt == "" {
		return "", false
	}
	return dir + stem + ext, true
}

func (h *handler) conflictResolve(w http.ResponseWriter, r *http.Request) {
	cr, ok := h.b.(ConflictResolver)
	if !ok {
		h.fail(w, r, Errorf(ErrNotFound, "this node does not resolve conflicts"))
		return
	}
	var req ConflictResolveRequest
	if err := decodeConflictResolveRequest(r.Body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	fc, err := cr.ResolveConflict(r.Context(), req)
	h.reply(w, r, fc, err)
}

func decodeConflictResolveRequest(r io.Reader, req *ConflictResolveRequest) error {
	if err := decodeJSON(r, req); err != nil {
		return err
	}
	if req.Folder == "" || req.Path == "" {
		return Errorf(ErrInvalid, `"folder" and "path" are required: the conflict copy as GET /api/v1/conflicts lists it`)
	}
	if _, ok := ConflictOriginal(req.Path); !ok {
		return Errorf(ErrInvalid, "%q is not the name of a conflict copy", req.Path)
	}
	switch req.Keep {
	case KeepCopy, KeepOriginal:
	default:
		return Errorf(ErrInvalid, `invalid "keep" %q: want %q or %q`, req.Keep, KeepCopy, KeepOriginal)
	}
	return nil
}

// ResolveConflict calls POST /api/v1/conflicts/resolve.
func (c *Client) ResolveConflict(ctx context.Context, req ConflictResolveRequest) (FolderConflict, error) {
	var out FolderConflict
	err := c.do(ctx, http.MethodPost, "/api/v1/conflicts/resolve", req, &out)
	return out, err
}

var _ ConflictResolver = (*Client)(nil)
