package api

import (
	"context"
	"io"

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

// Backend is everything the handler and the CLI use.
type Backend interface {
	Statuser
	Content
	Pinner
	Repo
	Peers
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
