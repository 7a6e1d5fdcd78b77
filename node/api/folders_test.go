package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ipfs/go-cid"
)

// fakeFolders adds a hand-written Folders to fakeBackend.
type fakeFolders struct {
	*fakeBackend
	list     []FolderInfo
	lastAdd  FolderAddRequest
	lastJoin FolderJoinRequest
	lastID   string
	lastVer  [2]string
	restore  FolderRestoreRequest
}

func (f *fakeFolders) FolderAdd(_ context.Context, req FolderAddRequest) (FolderInfo, error) {
	f.lastAdd = req
	return FolderInfo{ID: "abc", Path: req.Path, State: "scanning"}, nil
}
func (f *fakeFolders) Folders(context.Context) ([]FolderInfo, error) { return f.list, nil }
func (f *fakeFolders) FolderJoin(_ context.Context, req FolderJoinRequest) (FolderInfo, error) {
	f.lastJoin = req
	if req.ID == "taken" {
		return FolderInfo{}, Errorf(ErrConflict, "already joined")
	}
	return FolderInfo{ID: req.ID, Path: req.Path}, nil
}
func (f *fakeFolders) FolderLeave(_ context.Context, id string) (FolderInfo, error) {
	f.lastID = id
	if id == "nope" {
		return FolderInfo{}, Errorf(ErrNotFound, "no folder %s", id)
	}
	return FolderInfo{ID: id, State: "left"}, nil
}
func (f *fakeFolders) FolderConfirm(_ context.Context, id string) (FolderInfo, error) {
	f.lastID = id
	return FolderInfo{ID: id, State: "syncing"}, nil
}
func (f *fakeFolders) FolderVersions(_ context.Context, folder, path string) ([]FolderVersion, error) {
	f.lastVer = [2]string{folder, path}
	return []FolderVersion{{Folder: "abc", Path: "a.txt", Time: "2026-01-02T03:04:05Z", Size: 3}}, nil
}
func (f *fakeFolders) FolderRestore(_ context.Context, req FolderRestoreRequest) (FolderVersion, error) {
	f.restore = req
	return FolderVersion{Folder: "abc", Path: req.Path, Time: req.At}, nil
}
func (f *fakeFolders) Conflicts(context.Context) ([]FolderConflict, error) {
	return []FolderConflict{{Folder: "abc", Path: "x.sync-conflict-20260101-000000-ABCDEFG.txt", Abs: "/f/x.sync-conflict-20260101-000000-ABCDEFG.txt"}}, nil
}

func TestFolderEndpoints(t *testing.T) {
	f := &fakeFolders{fakeBackend: newFake(cid.Undef), list: []FolderInfo{{ID: "abc", Path: "/f", State: "idle", Files: 3}}}
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()
	cl := NewClient(srv.URL+"/", testToken, srv.Client())
	ctx := t.Context()

	fi, err := cl.FolderAdd(ctx, FolderAddRequest{Path: "/f", ReceiveOnly: true})
	if err != nil || fi.ID != "abc" || !f.lastAdd.ReceiveOnly {
		t.Errorf("FolderAdd = %+v, %v (sent %+v)", fi, err, f.lastAdd)
	}
	if _, err := cl.FolderAdd(ctx, FolderAddRequest{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("FolderAdd without path: %v", err)
	}
	ls, err := cl.Folders(ctx)
	if err != nil || !cmp.Equal(ls, f.list) {
		t.Errorf("Folders = %+v, %v", ls, err)
	}
	if fi, err := cl.FolderJoin(ctx, FolderJoinRequest{ID: "abc", Path: "/g"}); err != nil || fi.Path != "/g" {
		t.Errorf("FolderJoin = %+v, %v", fi, err)
	}
	if _, err := cl.FolderJoin(ctx, FolderJoinRequest{ID: "taken", Path: "/g"}); !errors.Is(err, ErrConflict) {
		t.Errorf("FolderJoin taken: %v", err)
	}
	if _, err := cl.FolderLeave(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FolderLeave unknown: %v", err)
	}
	if fi, err := cl.FolderConfirm(ctx, "abc"); err != nil || f.lastID != "abc" || fi.State != "syncing" {
		t.Errorf("FolderConfirm = %+v, %v", fi, err)
	}
	vs, err := cl.FolderVersions(ctx, "", "/f/a b.txt")
	if err != nil || len(vs) != 1 || f.lastVer != [2]string{"", "/f/a b.txt"} {
		t.Errorf("FolderVersions = %+v, %v, asked %v", vs, err, f.lastVer)
	}
	if v, err := cl.FolderRestore(ctx, FolderRestoreRequest{Path: "/f/a.txt", At: "2026-01-02T03:04:05Z"}); err != nil || v.Time != "2026-01-02T03:04:05Z" {
		t.Errorf("FolderRestore = %+v, %v", v, err)
	}
	cs, err := cl.Conflicts(ctx)
	if err != nil || len(cs) != 1 {
		t.Errorf("Conflicts = %+v, %v", cs, err)
	}
}

// A backend without Folders answers 404.
func TestFoldersMissing(t *testing.T) {
	srv := httptest.NewServer(NewHandler(newFake(cid.Undef), HandlerConfig{Token: testToken}))
	defer srv.Close()
	cl := NewClient(srv.URL+"/", testToken, srv.Client())
	if _, err := cl.Folders(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Folders on a backend without folders: %v", err)
	}
}
