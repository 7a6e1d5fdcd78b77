package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
)

// fakeBackend is a hand-written Backend. Each method returns the canned
// value or error; calls are recorded. Add and Get report progress and,
// when waitSeen is set, block until the test has seen a progress line,
// which proves progress arrives before the result.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string

	status   Status
	addRes   AddResult
	addErr   error
	getRes   GetResult
	getErr   error
	content  map[string][]byte // CID string → bytes, for Cat
	catErr   error
	cutAfter int // >0: Cat fails after this many bytes
	entries  []Entry
	pins     []Pin
	pinErr   error
	gcRes    GCResult
	verify   VerifyResult
	stat     RepoStat
	peers    []Peer
	connErr  error

	cloud     CloudInfo
	cloudErr  error // Cloud, Devices, Join
	devices   []Device
	adminErr  error // Invite, Revoke, Rename
	invite    InviteResult
	gotInvite InviteRequest
	gotDevice DeviceRequest
	gotJoin   JoinRequest
	ds        DNSDS
	publish   DNSPublishResult
	dnsErr    error

	progress [][2]int64    // reported by Add, Get and Verify before returning
	waitSeen chan struct{} // closed by the test when it saw progress
	gotAdd   AddRequest
	gotGet   GetRequest
	gotPin   struct {
		c   cid.Cid
		rec bool
	}
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeBackend) report(ctx context.Context, fn ProgressFunc) error {
	for _, p := range f.progress {
		if fn != nil {
			fn(p[0], p[1])
		}
	}
	if f.waitSeen != nil {
		select {
		case <-f.waitSeen:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("fake: progress never seen by the client")
		}
	}
	return nil
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	f.record("status")
	return f.status, nil
}

func (f *fakeBackend) Add(ctx context.Context, req AddRequest, fn ProgressFunc) (AddResult, error) {
	f.record("add")
	f.mu.Lock()
	f.gotAdd = req
	f.mu.Unlock()
	if err := f.report(ctx, fn); err != nil {
		return AddResult{}, err
	}
	return f.addRes, f.addErr
}

func (f *fakeBackend) Cat(_ context.Context, c cid.Cid) (io.ReadCloser, error) {
	f.record("cat")
	if f.catErr != nil {
		return nil, f.catErr
	}
	b, ok := f.content[c.String()]
	if !ok {
		return nil, Errorf(ErrNotFound, "fake: %s not found", c)
	}
	r := &seekCloser{r: bytes.NewReader(b)}
	if f.cutAfter > 0 {
		r.cut = f.cutAfter
	}
	return r, nil
}

func (f *fakeBackend) Get(ctx context.Context, req GetRequest, fn ProgressFunc) (GetResult, error) {
	f.record("get")
	f.mu.Lock()
	f.gotGet = req
	f.mu.Unlock()
	if err := f.report(ctx, fn); err != nil {
		return GetResult{}, err
	}
	return f.getRes, f.getErr
}

func (f *fakeBackend) Ls(context.Context, cid.Cid) ([]Entry, error) {
	f.record("ls")
	return f.entries, nil
}

func (f *fakeBackend) PinAdd(_ context.Context, c cid.Cid, rec bool) error {
	f.record("pin/add")
	f.mu.Lock()
	f.gotPin.c, f.gotPin.rec = c, rec
	f.mu.Unlock()
	return f.pinErr
}

func (f *fakeBackend) PinRm(context.Context, cid.Cid) error {
	f.record("pin/rm")
	return f.pinErr
}

func (f *fakeBackend) PinLs(context.Context) ([]Pin, error) {
	f.record("pin/ls")
	return f.pins, nil
}

func (f *fakeBackend) GC(context.Context) (GCResult, error) {
	f.record("gc")
	return f.gcRes, nil
}

func (f *fakeBackend) Verify(ctx context.Context, fn ProgressFunc) (VerifyResult, error) {
	f.record("verify")
	if err := f.report(ctx, fn); err != nil {
		return VerifyResult{}, err
	}
	return f.verify, nil
}

func (f *fakeBackend) RepoStat(context.Context) (RepoStat, error) {
	f.record("repo/stat")
	return f.stat, nil
}

func (f *fakeBackend) PeerList(context.Context) ([]Peer, error) {
	f.record("peers")
	return f.peers, nil
}

func (f *fakeBackend) Connect(_ context.Context, a multiaddr.Multiaddr) (Peer, error) {
	f.record("peers/connect")
	if f.connErr != nil {
		return Peer{}, f.connErr
	}
	return Peer{ID: "12D3KooWfake", Addrs: []string{a.String()}}, nil
}

func (f *fakeBackend) Cloud(context.Context) (CloudInfo, error) {
	f.record("cloud")
	return f.cloud, f.cloudErr
}

func (f *fakeBackend) Devices(context.Context) ([]Device, error) {
	f.record("devices")
	return f.devices, f.cloudErr
}

func (f *fakeBackend) Join(_ context.Context, req JoinRequest) (CloudInfo, error) {
	f.record("join")
	f.mu.Lock()
	f.gotJoin = req
	f.mu.Unlock()
	return f.cloud, f.cloudErr
}

func (f *fakeBackend) Invite(_ context.Context, req InviteRequest) (InviteResult, error) {
	f.record("devices/invite")
	f.mu.Lock()
	f.gotInvite = req
	f.mu.Unlock()
	return f.invite, f.adminErr
}

func (f *fakeBackend) Revoke(_ context.Context, device string) (Device, error) {
	f.record("devices/revoke")
	f.mu.Lock()
	f.gotDevice = DeviceRequest{Device: device}
	f.mu.Unlock()
	return Device{Name: device, Revoked: true}, f.adminErr
}

func (f *fakeBackend) Rename(_ context.Context, device, name string) (Device, error) {
	f.record("devices/rename")
	f.mu.Lock()
	f.gotDevice = DeviceRequest{Device: device, Name: name}
	f.mu.Unlock()
	return Device{Name: name}, f.adminErr
}

func (f *fakeBackend) DNSDS(context.Context) (DNSDS, error) {
	f.record("dns/ds")
	return f.ds, f.dnsErr
}

func (f *fakeBackend) DNSPublish(context.Context) (DNSPublishResult, error) {
	f.record("dns/publish")
	return f.publish, f.dnsErr
}

// seekCloser is a ReadSeekCloser that, with cut > 0, fails after cut bytes.
type seekCloser struct {
	r         *bytes.Reader // not embedded: its WriteTo would bypass Read
	cut, read int
}

func (s *seekCloser) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

func (s *seekCloser) Read(p []byte) (int, error) {
	if s.cut > 0 && s.read >= s.cut {
		return 0, errors.New("fake: disk on fire")
	}
	if s.cut > 0 && len(p) > s.cut-s.read {
		p = p[:s.cut-s.read]
	}
	n, err := s.r.Read(p)
	s.read += n
	return n, err
}

func (s *seekCloser) Close() error { return nil }
