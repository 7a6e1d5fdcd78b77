package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
)

// Client calls a daemon's API. It implements Backend, so the CLI runs the
// same code against a daemon or an offline node. Errors keep their kind:
// errors.Is(err, ErrNotFound) works as it does against the node itself,
// and a daemon that cannot be reached gives ErrNoDaemon. Safe for
// concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

var _ Backend = (*Client)(nil)

// NewClient returns a client for the API at baseURL (e.g.
// "http://127.0.0.1:5480") sending token. hc nil means a client without
// an overall timeout, since add and get may run for long; they end with
// their context.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// BaseURL is the API's base URL.
func (c *Client) BaseURL() string { return c.base }

// DialHome returns a client for the daemon running on home, after checking
// that it answers GET /health. It returns an error wrapping ErrNoDaemon when
// the home has no api file (no daemon started there) or the daemon does
// not answer (it crashed or is stopping), so the caller can fall back to
// opening the home offline.
func DialHome(home string) (*Client, error) {
	b, err := os.ReadFile(filepath.Join(home, APIFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("api: dial %s: %w: start one with pcnode daemon", home, ErrNoDaemon)
	}
	if err != nil {
		return nil, fmt.Errorf("api: dial %s: %w", home, err)
	}
	base := strings.TrimSpace(string(b))
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: dial %s: bad URL %q in %s file", home, base, APIFile)
	}
	tb, err := os.ReadFile(filepath.Join(home, TokenFile))
	if err != nil {
		return nil, fmt.Errorf("api: dial %s: read token: %w", home, err)
	}
	c := NewClient(base, strings.TrimSpace(string(tb)), nil)
	if err := c.Health(context.Background()); err != nil {
		return nil, fmt.Errorf("api: dial %s: %w", home, err)
	}
	return c, nil
}

// Health checks GET /health with a short timeout.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var h Health
	if err := c.do(ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return err
	}
	if !h.OK {
		return fmt.Errorf("%w: daemon at %s is not healthy", ErrNoDaemon, c.base)
	}
	return nil
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &s)
	return s, err
}

func (c *Client) Add(ctx context.Context, req AddRequest, fn ProgressFunc) (AddResult, error) {
	var res AddResult
	err := c.stream(ctx, "/api/v1/add", req, fn, &res)
	return res, err
}

// Cat returns the content; the caller closes it. A body cut short by the
// daemon reads as io.ErrUnexpectedEOF.
func (c *Client) Cat(ctx context.Context, id cid.Cid) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/cat?cid="+url.QueryEscape(id.String()), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) Get(ctx context.Context, req GetRequest, fn ProgressFunc) (GetResult, error) {
	var res GetResult
	err := c.stream(ctx, "/api/v1/get", req, fn, &res)
	return res, err
}

func (c *Client) Ls(ctx context.Context, id cid.Cid) ([]Entry, error) {
	var es []Entry
	err := c.do(ctx, http.MethodGet, "/api/v1/ls?cid="+url.QueryEscape(id.String()), nil, &es)
	return es, err
}

func (c *Client) PinAdd(ctx context.Context, id cid.Cid, recursive bool) error {
	return c.do(ctx, http.MethodPost, "/api/v1/pin/add", PinRequest{CID: id.String(), Recursive: &recursive}, nil)
}

func (c *Client) PinRm(ctx context.Context, id cid.Cid) error {
	return c.do(ctx, http.MethodPost, "/api/v1/pin/rm", PinRequest{CID: id.String()}, nil)
}

func (c *Client) PinLs(ctx context.Context) ([]Pin, error) {
	var ps []Pin
	err := c.do(ctx, http.MethodGet, "/api/v1/pin/ls", nil, &ps)
	return ps, err
}

func (c *Client) GC(ctx context.Context) (GCResult, error) {
	var r GCResult
	err := c.do(ctx, http.MethodPost, "/api/v1/gc", struct{}{}, &r)
	return r, err
}

func (c *Client) Verify(ctx context.Context, fn ProgressFunc) (VerifyResult, error) {
	var r VerifyResult
	err := c.stream(ctx, "/api/v1/repo/verify", struct{}{}, fn, &r)
	return r, err
}

func (c *Client) RepoStat(ctx context.Context) (RepoStat, error) {
	var r RepoStat
	err := c.do(ctx, http.MethodGet, "/api/v1/repo/stat", nil, &r)
	return r, err
}

func (c *Client) PeerList(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	err := c.do(ctx, http.MethodGet, "/api/v1/peers", nil, &ps)
	return ps, err
}

func (c *Client) Connect(ctx context.Context, addr multiaddr.Multiaddr) (Peer, error) {
	var p Peer
	err := c.do(ctx, http.MethodPost, "/api/v1/peers/connect", ConnectRequest{Addr: addr.String()}, &p)
	return p, err
}

// Cloud is GET /api/v1/cloud: the device's cloud (ErrNotFound when the
// home belongs to none).
func (c *Client) Cloud(ctx context.Context) (CloudInfo, error) {
	var ci CloudInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/cloud", nil, &ci)
	return ci, err
}

// Devices is GET /api/v1/devices: every member of the roster, live and
// revoked, this device first, then by name.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var ds []Device
	err := c.do(ctx, http.MethodGet, "/api/v1/devices", nil, &ds)
	return ds, err
}

// Invite is POST /api/v1/devices/invite: a new single-use invite code.
// ErrForbidden when this device is not an admin.
func (c *Client) Invite(ctx context.Context, req InviteRequest) (InviteResult, error) {
	var res InviteResult
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/invite", req, &res)
	return res, err
}

// Revoke is POST /api/v1/devices/revoke: revokes the device with that name
// or peer ID and returns it as now listed. ErrNotFound for an unknown
// device, ErrConflict for one already revoked, ErrForbidden when this
// device is not an admin.
func (c *Client) Revoke(ctx context.Context, device string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/revoke", DeviceRequest{Device: device}, &d)
	return d, err
}

// Rename is POST /api/v1/devices/rename. ErrConflict when name is taken.
func (c *Client) Rename(ctx context.Context, device, name string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "/api/v1/devices/rename", DeviceRequest{Device: device, Name: name}, &d)
	return d, err
}

// Join is POST /api/v1/join: the running daemon redeems an invite code
// and returns the cloud it joined. ErrConflict when the home already
// belongs to a cloud; ErrForbidden when the inviter refused the code.
func (c *Client) Join(ctx context.Context, req JoinRequest) (CloudInfo, error) {
	var ci CloudInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/join", req, &ci)
	return ci, err
}

// DNSDS is GET /api/v1/dns/ds: the DS and DNSKEY of the served zone.
func (c *Client) DNSDS(ctx context.Context) (DNSDS, error) {
	var d DNSDS
	err := c.do(ctx, http.MethodGet, "/api/v1/dns/ds", nil, &d)
	return d, err
}

// DNSPublish is POST /api/v1/dns/publish: pushes the cloud's records to
// dns.primary. ErrConflict when dns.zone, dns.primary or dns.tsig is unset.
func (c *Client) DNSPublish(ctx context.Context) (DNSPublishResult, error) {
	var res DNSPublishResult
	err := c.do(ctx, http.MethodPost, "/api/v1/dns/publish", struct{}{}, &res)
	return res, err
}

// Metrics returns the Prometheus text exposition from GET /metrics.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("api: GET /metrics: %w", err)
	}
	return b, nil
}

// send performs a request and returns a 200 response; any other status is
// turned into an error of the matching kind.
// busyRetries is how often send retries a request the daemon refused as
// over its concurrency limit (503 with Retry-After) or over this client's
// share of it (429 with Retry-After): such a request did nothing, so
// retrying is safe even for a POST.
const busyRetries = 5

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var b []byte
	if body != nil {
		var err error
		b, err = json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
		}
	}
	for try := 0; ; try++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.send1(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		busy := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
		if !busy || resp.Header.Get("Retry-After") == "" || try == busyRetries {
			defer resp.Body.Close()
			return nil, responseError(resp)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		wait := time.Duration(try+1) * 100 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, time.Duration(try+1)*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("api: %s %s: %w", method, path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// send1 makes one attempt of send and returns the response whatever its
// status.
func (c *Client) send1(req *http.Request) (*http.Response, error) {
	method, path := req.Method, req.URL.Path
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("api: %s %s: %w: nothing listens at %s; start one with pcnode daemon", method, path, ErrNoDaemon, c.base)
		}
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// stream posts body and reads an NDJSON answer: progress lines go to fn,
// the last line is decoded into out or turned into an error.
func (c *Client) stream(ctx context.Context, path string, body any, fn ProgressFunc, out any) error {
	resp, err := c.send(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		kind, err := classifyLine(line)
		if err != nil {
			return fmt.Errorf("api: POST %s: %w", path, err)
		}
		switch kind {
		case lineProgress:
			var p Progress
			if err := json.Unmarshal(line, &p); err != nil {
				return fmt.Errorf("api: POST %s: bad progress line: %w", path, err)
			}
			if fn != nil {
				fn(p.Done, p.Total)
			}
		case lineError:
			var e Error
			_ = json.Unmarshal(line, &e)
			return remoteError(e.Code, e.Error)
		default:
			if err := json.Unmarshal(line, out); err != nil {
				return fmt.Errorf("api: POST %s: bad result line: %w", path, err)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("api: POST %s: %w", path, err)
	}
	return fmt.Errorf("api: POST %s: stream ended without a result: %w", path, io.ErrUnexpectedEOF)
}

type lineKind int

const (
	lineResult lineKind = iota
	lineProgress
	lineError
)

// classifyLine tells the lines of an NDJSON answer apart by their keys:
// an "error" key marks the error line, a "done" key a progress line, and
// anything else is the result.
func classifyLine(line []byte) (lineKind, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return 0, fmt.Errorf("bad NDJSON line: %w", err)
	}
	if _, ok := probe["error"]; ok {
		return lineError, nil
	}
	if _, ok := probe["done"]; ok {
		return lineProgress, nil
	}
	return lineResult, nil
}

func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		e.Error = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return remoteError(resp.StatusCode, e.Error)
}

// remoteError rebuilds an error of the right kind from the daemon's answer.
func remoteError(code int, msg string) error {
	if kind := kindOf(code); kind != nil {
		return &kindError{kind: kind, err: errors.New(msg)}
	}
	return errors.New(msg)
}
