package api

import (
	"context"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
)

// The handler needs the node's operations; they are grouped in small role
// interfaces so a test can hand in a fake of just the part it exercises.
// *node.Node satisfies all of them, and so does *Client.

// Statuser reports who the node is and where it listens.
type Statuser interface {
	Status(ctx context.Context) (Status, error)
}

// Content adds, reads and fetches UnixFS data. Add and Get report progress
// through fn (which may be nil) and block until done or ctx ends.
type Content interface {
	Add(ctx context.Context, req AddRequest, fn ProgressFunc) (AddResult, error)
	Cat(ctx context.Context, c cid.Cid) (io.ReadCloser, error)
	Get(ctx context.Context, req GetRequest, fn ProgressFunc) (GetResult, error)
	Ls(ctx context.Context, c cid.Cid) ([]Entry, error)
}

// Pinner keeps blocks from garbage collection.
type Pinner interface {
	PinAdd(ctx context.Context, c cid.Cid, recursive bool) error
	PinRm(ctx context.Context, c cid.Cid) error
	PinLs(ctx context.Context) ([]Pin, error)
}

// Repo maintains the block store.
type Repo interface {
	GC(ctx context.Context) (GCResult, error)
	Verify(ctx context.Context, fn ProgressFunc) (VerifyResult, error)
	RepoStat(ctx context.Context) (RepoStat, error)
}

// Peers lists and dials libp2p peers. Connect fails with a clear error when
// the node is offline.
type Peers interface {
	PeerList(ctx context.Context) ([]Peer, error)
	Connect(ctx context.Context, addr multiaddr.Multiaddr) (Peer, error)
}

// Membership reads the device's cloud and joins one. Cloud and Devices
// work offline (from the roster on disk); Join works offline too (it
// starts a short-lived host of its own). A home with no cloud gives
// ErrNotFound from Cloud and Devices; Join on a home that has one gives
// ErrConflict.
type Membership interface {
	Cloud(ctx context.Context) (CloudInfo, error)
	Devices(ctx context.Context) ([]Device, error)
	Join(ctx context.Context, req JoinRequest) (CloudInfo, error)
}

// Administration changes the cloud; it needs the cloud key (ErrForbidden
// on a device that is not an admin). Invite needs a running daemon
// (ErrOffline), since the joiner dials it; Revoke and Rename work offline
// and the new roster reaches the other devices when they next connect.
// An unknown device is ErrNotFound; an already revoked one, or a name in
// use, ErrConflict.
type Administration interface {
	Invite(ctx context.Context, req InviteRequest) (InviteResult, error)
	Revoke(ctx context.Context, device string) (Device, error)
	Rename(ctx context.Context, device, name string) (Device, error)
}

// DNS serves the person's zone and publishes it. Both need dns.zone
// (ErrConflict when unset); DNSPublish needs a running daemon (ErrOffline)
// and dns.primary and dns.tsig.
type DNS interface {
	DNSDS(ctx context.Context) (DNSDS, error)
	DNSPublish(ctx context.Context) (DNSPublishResult, error)
}

// Backend is everything the handler and the CLI use.
type Backend interface {
	Statuser
	Content
	Pinner
	Repo
	Peers
	Membership
	Administration
	DNS
}

// ProgressFunc receives progress of long work: done and total in the
// unit of the operation (bytes for add and get, blocks for verify); total
// is 0 when unknown. It must not block.
type ProgressFunc func(done, total int64)

// Status is GET /api/v1/status.
type Status struct {
	ID      string   `json:"id"`      // peer ID
	Addrs   []string `json:"addrs"`   // full multiaddrs ending in /p2p/<id>
	API     string   `json:"api"`     // base URL of the API, e.g. http://127.0.0.1:5001
	Profile string   `json:"profile"` // "local" or "default"
	Version string   `json:"version"`
	Home    string   `json:"home"`
	Online  bool     `json:"online"` // false when the home was opened without networking
	Peers   int      `json:"peers"`
	Cloud   string   `json:"cloud,omitempty"` // cloud ID; absent when the home belongs to no cloud
	DNS     string   `json:"dns,omitempty"`   // address the authoritative DNS server answers on; absent when off
}

// AddRequest is POST /api/v1/add. Path is absolute and on the daemon's
// machine (the API listens on loopback only).
type AddRequest struct {
	Path string `json:"path"`
	// NoPin leaves the result unpinned (it is pinned recursively by default).
	NoPin bool `json:"no_pin,omitempty"`
}

// AddResult is the last line of POST /api/v1/add.
type AddResult struct {
	CID    string `json:"cid"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`   // bytes of file content
	Blocks int    `json:"blocks"` // blocks written
}

// GetRequest is POST /api/v1/get: fetch the DAG under CID (from the local
// store or from peers) and write it to Output, atomically.
type GetRequest struct {
	CID    string `json:"cid"`
	Output string `json:"output"` // absolute path on the daemon's machine
	// Link, if set, is the share link CID came from (docs/SHARE.md): the
	// node connects to its provider hints, refuses it once expired,
	// checks the size and decrypts an encrypted share into Output.
	Link string `json:"link,omitempty"`
}

// GetResult is the last line of POST /api/v1/get.
type GetResult struct {
	CID    string `json:"cid"`
	Output string `json:"output"`
	Size   int64  `json:"size"`
}

// Entry is one link of a directory (or the file itself) in GET /api/v1/ls.
type Entry struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Size int64  `json:"size"`
	Type string `json:"type"` // "file", "dir", "symlink" or "other"
}

// Pin is one entry of GET /api/v1/pin/ls.
type Pin struct {
	CID  string `json:"cid"`
	Type string `json:"type"` // "recursive" or "direct"
}

// GCResult is POST /api/v1/gc.
type GCResult struct {
	Removed    int   `json:"removed"`
	FreedBytes int64 `json:"freed_bytes"`
}

// VerifyResult is the last line of POST /api/v1/repo/verify.
type VerifyResult struct {
	Checked     int      `json:"checked"`
	Corrupt     []string `json:"corrupt"`     // CIDs whose bytes no longer hash to them
	Quarantined int      `json:"quarantined"` // moved out of the store, kept for inspection
}

// RepoStat is GET /api/v1/repo/stat.
type RepoStat struct {
	Blocks    int    `json:"blocks"`
	Bytes     int64  `json:"bytes"` // sum of block sizes
	Pins      int    `json:"pins"`
	Path      string `json:"path"`       // data directory ("" for memory)
	DiskBytes int64  `json:"disk_bytes"` // space used on disk by the store
}

// Peer is one connected libp2p peer.
type Peer struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction,omitempty"` // "inbound" or "outbound"
}

// PinRequest is POST /api/v1/pin/add and /api/v1/pin/rm.
type PinRequest struct {
	CID string `json:"cid"`
	// Recursive pins the whole DAG under CID (default true); false pins the
	// root block only. Ignored by pin/rm.
	Recursive *bool `json:"recursive,omitempty"`
}

// ConnectRequest is POST /api/v1/peers/connect.
type ConnectRequest struct {
	Addr string `json:"addr"` // multiaddr ending in /p2p/<peer ID>
}

// Health is GET /health, the one endpoint without a token.
type Health struct {
	OK bool `json:"ok"`
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
	// Code is the HTTP status the error maps to. It matters in the last
	// line of an NDJSON stream, whose status line already said 200.
	Code int `json:"code,omitempty"`
}

// Progress is a progress line of a streaming (NDJSON) response; the last
// line of such a response is the result object or an Error.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total,omitempty"`
}

// CloudInfo is GET /api/v1/cloud: this device's cloud as its roster says.
type CloudInfo struct {
	ID      string `json:"id"`      // the cloud ID (k51…)
	Device  string `json:"device"`  // this device's name in the roster
	PeerID  string `json:"peer_id"` // this device's peer ID
	Role    string `json:"role"`    // this device's role: "device" or "server"
	Admin   bool   `json:"admin"`   // this device holds the cloud key
	Revoked bool   `json:"revoked"` // this device has been revoked from the cloud
	Version uint64 `json:"version"` // roster version
	Members int    `json:"members"` // live (not revoked) members, this device included
	// RevokedCount is how many devices were ever revoked.
	RevokedCount int `json:"revoked_count"`
	// PendingInvites are issued invites neither used nor expired (admins only).
	PendingInvites int  `json:"pending_invites"`
	Online         bool `json:"online"` // false when read from disk without a daemon
}

// Device is one member of the cloud in GET /api/v1/devices, live or
// revoked. The fields after Self describe the connection and are filled
// only by a running daemon.
type Device struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`   // peer ID
	Role    string    `json:"role"` // "device" or "server"
	Admin   bool      `json:"admin"`
	Revoked bool      `json:"revoked"`
	Added   time.Time `json:"added"`
	// RevokedAt is when it was revoked; absent when live.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Self      bool      `json:"self"` // this device

	// Connected: some connection to the device is open now.
	Connected bool `json:"connected"`
	// Sources says how it was found: "mdns", "dht", "dns", "remembered",
	// "manual", "inbound".
	Sources []string `json:"sources,omitempty"`
	// Path is "direct" or "relayed" while connected, else absent; Relay
	// names the relay of a relayed path.
	Path  string `json:"path,omitempty"`
	Relay string `json:"relay,omitempty"`
	// WhyNotDirect explains a relayed or missing connection.
	WhyNotDirect string `json:"why_not_direct,omitempty"`
	// LatencyMS is the moving average of pings, in milliseconds; 0 when unknown.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// LastSeen is when a discovery source last reported it, or it last connected.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Addrs are its known addresses (without /p2p/<id>).
	Addrs []string `json:"addrs,omitempty"`
}

// InviteRequest is POST /api/v1/devices/invite.
type InviteRequest struct {
	// TTL is how long the invite stays valid, a Go duration ("15m", "1h");
	// "" means 15 minutes. At most 24h.
	TTL string `json:"ttl,omitempty"`
	// Admin lets the joiner become an admin (receive the cloud key).
	Admin bool `json:"admin,omitempty"`
}

// InviteResult is the answer to POST /api/v1/devices/invite. Code is
// single-use; show it as text or with cloud.WriteQR.
type InviteResult struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
	Cloud   string    `json:"cloud"` // cloud ID
	Admin   bool      `json:"admin"`
	Addrs   []string  `json:"addrs"` // where the joiner dials this device (full multiaddrs)
}

// DeviceRequest is POST /api/v1/devices/revoke and /api/v1/devices/rename.
type DeviceRequest struct {
	Device string `json:"device"`         // the device's name or peer ID
	Name   string `json:"name,omitempty"` // the new name (rename only)
}

// JoinRequest is POST /api/v1/join.
type JoinRequest struct {
	Code string `json:"code"` // the invite code, "pcnode1…"
	// Name is this device's name in the roster; "" means the name setting
	// (by default the host name).
	Name string `json:"name,omitempty"`
	// Role is "device" or "server"; "" means the role setting.
	Role string `json:"role,omitempty"`
	// Admin asks for the cloud key; the invite must allow it.
	Admin bool `json:"admin,omitempty"`
}

// DNSDS is GET /api/v1/dns/ds: the zone's DNSSEC key and the DS record to
// enter at the parent zone (the registrar).
type DNSDS struct {
	Zone   string `json:"zone"`   // fully qualified, e.g. "example.org."
	DS     string `json:"ds"`     // DS record, zone-file text (also a valid dns.trust_anchor)
	DNSKEY string `json:"dnskey"` // DNSKEY record, zone-file text
	KeyTag uint16 `json:"key_tag"`
}

// DNSPublishResult is POST /api/v1/dns/publish: what the RFC 2136 update
// changed at dns.primary, each record in zone-file text. Both are empty
// when the zone was already current.
type DNSPublishResult struct {
	Zone    string   `json:"zone"`
	Primary string   `json:"primary"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}
