package api

import (
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/multiformats/go-multiaddr"
)

func TestClientRoundTrip(t *testing.T) {
	c := testCID(t, "hello")
	f := newFake(c)
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()
	cl := NewClient(srv.URL+"/", testToken, srv.Client())
	ctx := t.Context()

	st, err := cl.Status(ctx)
	if err != nil || !cmp.Equal(st, f.status) {
		t.Errorf("Status = %+v, %v; diff %s", st, err, cmp.Diff(f.status, st))
	}
	rc, err := cl.Cat(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "hello world" {
		t.Errorf("Cat = %q, %v", b, err)
	}
	es, err := cl.Ls(ctx, c)
	if err != nil || !cmp.Equal(es, f.entries) {
		t.Errorf("Ls: %v %s", err, cmp.Diff(f.entries, es))
	}
	if err := cl.PinAdd(ctx, c, false); err != nil || f.gotPin.c != c || f.gotPin.rec {
		t.Errorf("PinAdd: %v, backend got %+v", err, f.gotPin)
	}
	if err := cl.PinAdd(ctx, c, true); err != nil || !f.gotPin.rec {
		t.Errorf("PinAdd recursive: %v, backend got %+v", err, f.gotPin)
	}
	if err := cl.PinRm(ctx, c); err != nil {
		t.Errorf("PinRm: %v", err)
	}
	ps, err := cl.PinLs(ctx)
	if err != nil || !cmp.Equal(ps, f.pins) {
		t.Errorf("PinLs: %v %s", err, cmp.Diff(f.pins, ps))
	}
	gc, err := cl.GC(ctx)
	if err != nil || gc != f.gcRes {
		t.Errorf("GC = %+v, %v", gc, err)
	}
	rs, err := cl.RepoStat(ctx)
	if err != nil || rs != f.stat {
		t.Errorf("RepoStat = %+v, %v", rs, err)
	}
	peers, err := cl.PeerList(ctx)
	if err != nil || !cmp.Equal(peers, f.peers) {
		t.Errorf("PeerList: %v %s", err, cmp.Diff(f.peers, peers))
	}
	ma := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")
	p, err := cl.Connect(ctx, ma)
	if err != nil || p.Addrs[0] != ma.String() {
		t.Errorf("Connect = %+v, %v", p, err)
	}
	res, err := cl.Add(ctx, AddRequest{Path: "/abs/file", NoPin: true}, nil)
	if err != nil || res != f.addRes || f.gotAdd != (AddRequest{Path: "/abs/file", NoPin: true}) {
		t.Errorf("Add = %+v, %v; backend got %+v", res, err, f.gotAdd)
	}
	g, err := cl.Get(ctx, GetRequest{CID: c.String(), Output: "/tmp/o"}, nil)
	if err != nil || g != f.getRes || f.gotGet.Output != "/tmp/o" {
		t.Errorf("Get = %+v, %v", g, err)
	}

	ci, err := cl.Cloud(ctx)
	if err != nil || ci != f.cloud {
		t.Errorf("Cloud = %+v, %v", ci, err)
	}
	f.devices[0].Added = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ds, err := cl.Devices(ctx)
	if err != nil || !cmp.Equal(ds, f.devices) {
		t.Errorf("Devices: %v %s", err, cmp.Diff(f.devices, ds))
	}
	inv, err := cl.Invite(ctx, InviteRequest{TTL: "5m", Admin: true})
	if err != nil || inv.Code != f.invite.Code || f.gotInvite != (InviteRequest{TTL: "5m", Admin: true}) {
		t.Errorf("Invite = %+v, %v; backend got %+v", inv, err, f.gotInvite)
	}
	d, err := cl.Revoke(ctx, "phone")
	if err != nil || !d.Revoked || f.gotDevice != (DeviceRequest{Device: "phone"}) {
		t.Errorf("Revoke = %+v, %v; backend got %+v", d, err, f.gotDevice)
	}
	d, err = cl.Rename(ctx, "phone", "tablet")
	if err != nil || d.Name != "tablet" || f.gotDevice != (DeviceRequest{Device: "phone", Name: "tablet"}) {
		t.Errorf("Rename = %+v, %v; backend got %+v", d, err, f.gotDevice)
	}
	jr := JoinRequest{Code: "pcnode1x", Name: "b", Role: "server", Admin: true}
	if ci, err := cl.Join(ctx, jr); err != nil || ci != f.cloud || f.gotJoin != jr {
		t.Errorf("Join = %+v, %v; backend got %+v", ci, err, f.gotJoin)
	}
	if got, err := cl.DNSDS(ctx); err != nil || got != f.ds {
		t.Errorf("DNSDS = %+v, %v", got, err)
	}
	if got, err := cl.DNSPublish(ctx); err != nil || !cmp.Equal(got, f.publish) {
		t.Errorf("DNSPublish = %+v, %v", got, err)
	}
}

func TestClientErrorKinds(t *testing.T) {
	c := testCID(t, "hello")
	tests := []struct {
		name string
		fake func(*fakeBackend)
		call func(*Client) error
		want error
		msg  string
	}{
		{"cat missing", nil, func(cl *Client) error { _, err := cl.Cat(t.Context(), testCID(t, "other")); return err }, ErrNotFound, "not found"},
		{"pin rm not pinned", func(f *fakeBackend) { f.pinErr = Errorf(ErrNotFound, "not pinned") },
			func(cl *Client) error { return cl.PinRm(t.Context(), c) }, ErrNotFound, "not pinned"},
		{"connect offline", func(f *fakeBackend) { f.connErr = Errorf(ErrOffline, "node is offline: start the daemon") },
			func(cl *Client) error {
				_, err := cl.Connect(t.Context(), multiaddr.StringCast("/ip4/127.0.0.1/tcp/1"))
				return err
			}, ErrOffline, "start the daemon"},
		{"add invalid", func(f *fakeBackend) { f.addErr = Errorf(ErrInvalid, "path must be absolute") },
			func(cl *Client) error { _, err := cl.Add(t.Context(), AddRequest{Path: "rel"}, nil); return err }, ErrInvalid, "absolute"},
		{"revoke not admin", func(f *fakeBackend) { f.adminErr = Errorf(ErrForbidden, "this device is not an admin") },
			func(cl *Client) error { _, err := cl.Revoke(t.Context(), "x"); return err }, ErrForbidden, "not an admin"},
		{"rename taken", func(f *fakeBackend) { f.adminErr = Errorf(ErrConflict, "name taken") },
			func(cl *Client) error { _, err := cl.Rename(t.Context(), "x", "y"); return err }, ErrConflict, "name taken"},
		{"cloud none", func(f *fakeBackend) { f.cloudErr = Errorf(ErrNotFound, "no cloud") },
			func(cl *Client) error { _, err := cl.Cloud(t.Context()); return err }, ErrNotFound, "no cloud"},
		{"publish unset", func(f *fakeBackend) { f.dnsErr = Errorf(ErrConflict, "dns.primary is not set") },
			func(cl *Client) error { _, err := cl.DNSPublish(t.Context()); return err }, ErrConflict, "dns.primary"},
		{"wrong token", nil, func(cl *Client) error {
			_, err := NewClient(cl.base, "bad", nil).Status(t.Context())
			return err
		}, nil, "api.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(c)
			if tt.fake != nil {
				tt.fake(f)
			}
			srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
			defer srv.Close()
			err := tt.call(NewClient(srv.URL, testToken, nil))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want message containing %q", err, tt.msg)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.want)
			}
		})
	}
}

// TestClientCatCut: a stream the daemon aborts must not read as a
// complete file.
func TestClientCatCut(t *testing.T) {
	c := testCID(t, "hello")
	f := newFake(c)
	f.content[c.String()] = []byte(strings.Repeat("x", 100000))
	f.cutAfter = 10000 // past the server's write buffer, so the 200 is sent
	srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
	defer srv.Close()
	rc, err := NewClient(srv.URL, testToken, nil).Cat(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil {
		t.Fatalf("read %d bytes without error from a cut stream", len(b))
	}
}

func TestDialHome(t *testing.T) {
	t.Run("no api file", func(t *testing.T) {
		_, err := DialHome(t.TempDir())
		if !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "pcnode daemon") {
			t.Fatalf("err = %v, want ErrNoDaemon telling to start one", err)
		}
	})
	t.Run("stale api file", func(t *testing.T) {
		home := t.TempDir()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		writeHome(t, home, "http://"+addr)
		if _, err := DialHome(home); !errors.Is(err, ErrNoDaemon) {
			t.Fatalf("err = %v, want ErrNoDaemon", err)
		}
	})
	t.Run("garbage api file", func(t *testing.T) {
		home := t.TempDir()
		writeHome(t, home, "not a url")
		if _, err := DialHome(home); err == nil || errors.Is(err, ErrNoDaemon) {
			t.Fatalf("err = %v, want a bad-URL error", err)
		}
	})
	t.Run("running", func(t *testing.T) {
		f := newFake(testCID(t, "x"))
		srv := httptest.NewServer(NewHandler(f, HandlerConfig{Token: testToken}))
		defer srv.Close()
		home := t.TempDir()
		writeHome(t, home, srv.URL)
		cl, err := DialHome(home)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := cl.Status(t.Context()); err != nil || st.ID != "12D3KooWme" {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		srv.Close()
		if _, err := cl.Status(t.Context()); !errors.Is(err, ErrNoDaemon) {
			t.Fatalf("after the daemon stopped: err = %v, want ErrNoDaemon", err)
		}
	})
}

func writeHome(t *testing.T, home, url string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, APIFile), []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, TokenFile), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
