package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
	"github.com/pcnode/pcnode/p2p"
)

// errStalled ends a get by link when no block arrives for the stall
// timeout.
var errStalled = errors.New("no block arrived")

// getLink is Get for a share link: it checks the link, dials its hints,
// fetches the DAG (blocks stay in the store, so a rerun resumes), checks
// the size and writes the item, decrypting an encrypted share.
func (n *Node) getLink(ctx context.Context, req api.GetRequest, fn api.ProgressFunc) (api.GetResult, error) {
	const op = "get"
	st, dag, h, err := n.parts()
	if err != nil {
		return api.GetResult{}, fmt.Errorf("node: %s: %w", op, err)
	}
	l, err := share.Parse(req.Link)
	if err != nil {
		return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s: %w", op, err)
	}
	c := l.Root
	if req.CID != "" {
		rc, err := api.ParseCID(req.CID)
		if err != nil {
			return api.GetResult{}, err
		}
		if !rc.Equals(c) {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s: cid %s is not the link's root %s", op, rc, c)
		}
	}
	if !filepath.IsAbs(req.Output) {
		return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: output %q must be an absolute path", op, c, req.Output)
	}
	if l.Expired(n.now()) {
		return api.GetResult{}, api.Errorf(api.ErrForbidden, "node: %s %s: the share expired at %s; ask the sharer for a new link", op, c, l.Expires.UTC().Format(time.RFC3339))
	}
	var key share.Key
	if l.Encrypted() {
		if l.Key == "" {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: the share is encrypted but the link carries no key: its end (#k=AGE-SECRET-KEY-1...) was lost; ask the sharer for the whole link", op, c)
		}
		if key, err = share.ParseKey(l.Key); err != nil {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: %w", op, c, err)
		}
	}
	// The fetch ends with a cause: errStalled, errShareStopped or the
	// caller's.
	fctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var bg sync.WaitGroup
	var sharers []peer.ID
	if h != nil {
		sharers = n.dialHints(fctx, l.Providers)
		if len(sharers) > 0 {
			bg.Add(1)
			go func() {
				defer bg.Done()
				n.watchSharer(fctx, h, sharers, l.Providers, c, stop)
			}()
		}
		if !n.connectedToAny(h, sharers) {
			bg.Add(1)
			go func() {
				defer bg.Done()
				n.findShareProviders(fctx, h, c)
			}()
		}
	}

	// The item is written while it arrives over the DAG stream
	// (fetchtee.go) when it comes whole and in order: a plain file to a
	// staged file, an encrypted share through the decryption. Otherwise it
	// is exported (or decrypted from the store) afterwards.
	var out teeOutput
	defer func() {
		if out != nil {
			out.Abort()
		}
	}()
	var tee *fileTee
	if h != nil && len(sharers) > 0 {
		if l.Encrypted() {
			out = newUnsealOutput(key, req.Output)
		} else if sf, serr := blobstore.CreateStaged(req.Output); serr == nil {
			out = sf
		}
		if out != nil {
			tee = newFileTee(c, out)
		}
	}
	n.gcMu.RLock()
	err = n.putEmptyBlocks(fctx, st)
	// The sharers' DAG stream first (their BlockFilter serves a friend
	// exactly the share's blocks, checked block by block, so a revoke cuts
	// it too); bitswap completes whatever it did not bring.
	complete := err == nil && h != nil && n.fetchFastFrom(fctx, st, h, c, sharers, fn, tee)
	if tee != nil {
		if terr := tee.finish(); terr != nil || !complete {
			n.log.Debug("get: output not written during the fetch; exporting", "cid", c, "err", terr)
			out.Abort()
			out = nil
		}
	}
	if err == nil && !complete {
		err = n.fetchWatched(fctx, dag, c, fn)
	}
	if err == nil {
		err = st.Pin(fctx, c, true)
	}
	n.gcMu.RUnlock()
	if cause := context.Cause(fctx); err != nil && errors.Is(cause, errShareStopped) {
		err = cause
	}
	stop(nil)
	bg.Wait()
	switch {
	case errors.Is(err, errShareStopped):
		kind := api.ErrNotFound
		if strings.Contains(err.Error(), "expired") {
			kind = api.ErrForbidden
		}
		return api.GetResult{}, api.Errorf(kind, "node: %s %s: %w; nothing was written", op, c, err)
	case errors.Is(err, errStalled):
		return api.GetResult{}, api.Errorf(api.ErrNotFound, "node: %s %s: %w for %s: the sharer is offline, or the share was revoked or has expired (a share's provider answers as if it had nothing once it stops serving)", op, c, errStalled, n.stallTimeout())
	case err != nil:
		return api.GetResult{}, n.contentErr(op, c, err)
	}

	if l.Size >= 0 {
		got, err := n.dagFileBytes(ctx, c)
		if err != nil {
			return api.GetResult{}, n.contentErr(op, c, err)
		}
		if got != l.Size {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: the link says %d bytes but the content has %d: the link was altered or is for other content", op, c, l.Size, got)
		}
	}

	if !l.Encrypted() {
		var size int64
		if out != nil {
			// Verified block by block, stored, pinned and its size
			// checked: publish it.
			size, err = out.Commit()
			out = nil
		} else {
			size, err = blobstore.Export(ctx, dag, c, req.Output, progress(fn))
		}
		if errors.Is(err, fs.ErrExist) {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: %s already exists: choose another output or remove it", op, c, req.Output)
		}
		if err != nil {
			return api.GetResult{}, n.contentErr(op, c, err)
		}
		return api.GetResult{CID: c.String(), Output: req.Output, Size: size}, nil
	}
	var size int64
	if out != nil {
		// The decryption has read the whole share as it arrived, and
		// publishes its output once it sees the end.
		size, err = out.Commit()
		out = nil
	} else {
		r, cerr := blobstore.Cat(ctx, dag, c)
		if cerr != nil {
			return api.GetResult{}, n.contentErr(op, c, cerr)
		}
		defer r.Close()
		size, err = share.Unseal(r, key, req.Output)
	}
	switch {
	case errors.Is(err, share.ErrKey):
		return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: the link's key does not open this share (wrong or altered key): %w", op, c, err)
	case errors.Is(err, fs.ErrExist):
		return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: %s %s: %s already exists: choose another output or remove it", op, c, req.Output)
	case err != nil:
		return api.GetResult{}, fmt.Errorf("node: %s %s: decrypt: %w", op, c, err)
	}
	return api.GetResult{CID: c.String(), Output: req.Output, Size: size}, nil
}

func (n *Node) stallTimeout() time.Duration {
	if n.cfg.ShareStallTimeout > 0 {
		return n.cfg.ShareStallTimeout
	}
	return DefaultShareStallTimeout
}

// dialHints connects to the link's provider hints at once, each bounded,
// and returns the peers the hints name (the sharer), connected or not.
// Failures are logged, not fatal: the content may come from elsewhere.
// /dnsaddr hints are skipped: they name the person's devices, which may
// not hold the share, and the local profile resolves no names.
func (n *Node) dialHints(ctx context.Context, hints []multiaddr.Multiaddr) []peer.ID {
	h := n.Host()
	if h == nil {
		return nil
	}
	var wg sync.WaitGroup
	var peers []peer.ID
	for _, a := range hints {
		id, err := peer.IDFromP2PAddr(a)
		if err != nil {
			n.log.Debug("share: hint without a peer ID skipped", "addr", a)
			continue
		}
		if !slices.Contains(peers, id) {
			peers = append(peers, id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, shareDialTimeout)
			defer cancel()
			if _, err := h.Connect(ctx, a); err != nil {
				n.log.Debug("share: hint dial failed", "addr", a, "err", err)
			}
		}()
	}
	wg.Wait()
	return peers
}

// connectedToAny reports whether h is connected to one of peers.
func (n *Node) connectedToAny(h *p2p.Host, peers []peer.ID) bool {
	lh := h.Libp2p()
	if lh == nil {
		return false
	}
	for _, p := range peers {
		if lh.Network().Connectedness(p) == network.Connected {
			return true
		}
	}
	return false
}

// findShareProviders looks root up in the DHT until it has connected to a
// provider or ctx ends (the fetch's stall timeout ends it): used when no
// hint answered. A listed share's root is announced by its sharer (and by
// anyone who fetched and kept it, as bitswap serves what a node holds).
func (n *Node) findShareProviders(ctx context.Context, h *p2p.Host, root cid.Cid) {
	const (
		maxProviders = 8
		retry        = time.Second
	)
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, shareDialTimeout)
		found, err := h.FindProviders(lctx, root, maxProviders)
		cancel()
		if err != nil {
			n.log.Debug("share: DHT lookup failed", "root", root, "err", err)
			return // no DHT
		}
		connected := false
		for _, ai := range found {
			addrs, err := peer.AddrInfoToP2pAddrs(&ai)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				dctx, cancel := context.WithTimeout(ctx, shareDialTimeout)
				_, err = h.Connect(dctx, a)
				cancel()
				if err == nil {
					n.log.Info("share: connected to a provider found in the DHT", "root", root, "peer", ai.ID)
					connected = true
					break
				}
			}
		}
		if connected {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// fetchWatched is blobstore.Fetch that gives up with errStalled when no
// block has arrived for the stall timeout.
func (n *Node) fetchWatched(ctx context.Context, dag ipld.DAGService, c cid.Cid, fn api.ProgressFunc) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	stall := n.stallTimeout()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(min(stall/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if time.Since(time.Unix(0, last.Load())) > stall {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	err := blobstore.Fetch(ctx, dag, c, func(done, total int64) {
		last.Store(time.Now().UnixNano())
		if fn != nil {
			fn(done, max(total, 0))
		}
	})
	close(stop)
	<-done
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return errStalled
	}
	return err
}

// dagFileBytes is the file data under c: a file's size, or for a
// directory the sum over its tree, as blobstore.Export counts it.
func (n *Node) dagFileBytes(ctx context.Context, c cid.Cid) (int64, error) {
	_, dag, _, err := n.parts()
	if err != nil {
		return 0, err
	}
	r, err := blobstore.Cat(ctx, dag, c)
	if errors.Is(err, blobstore.ErrIsDir) {
		var total int64
		es, err := blobstore.Ls(ctx, dag, c)
		if err != nil {
			return 0, err
		}
		for _, e := range es {
			switch e.Type {
			case "file":
				total += e.Size
			case "dir":
				sub, err := n.dagFileBytes(ctx, e.Cid)
				if err != nil {
					return 0, err
				}
				total += sub
			}
		}
		return total, nil
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.Seek(0, io.SeekEnd)
}

// putEmptyBlocks stores the raw blocks of zero bytes under the hashes the
// importer uses. boxo's bitswap server never sends a block of size 0 (it
// answers HAVE instead), so a DAG holding an empty file could not be
// fetched; the content of these blocks is known, so they need no peer.
//
// Offline nothing is fetched, so nothing is put: the store stays exactly
// as the user left it. Online the blocks stay, unpinned unless a DAG uses
// them, until the next GC.
func (n *Node) putEmptyBlocks(ctx context.Context, st *blobstore.Store) error {
	if n.Host() == nil {
		return nil
	}
	return putEmpty(ctx, st)
}

// putEmpty stores the empty raw blocks (see putEmptyBlocks). It takes no
// lock: the server's goroutines, which must not take the node's, call it
// directly.
func putEmpty(ctx context.Context, st *blobstore.Store) error {
	for _, h := range []uint64{mh.SHA2_256, mh.BLAKE3} {
		c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: h, MhLength: -1}.Sum(nil)
		if err != nil {
			return err
		}
		b, err := blocks.NewBlockWithCid(nil, c)
		if err != nil {
			return err
		}
		if err := st.Put(ctx, b); err != nil {
			return fmt.Errorf("put empty block %s: %w", c, err)
		}
	}
	return nil
}

// teeOutput is where a fileTee writes an item as it arrives: Commit
// publishes it once the fetch is complete and checked, Abort drops it.
// *blobstore.StagedFile is one; unsealOutput another.
type teeOutput interface {
	io.Writer
	Commit() (int64, error)
	Abort()
}

var (
	_ teeOutput = (*blobstore.StagedFile)(nil)
	_ teeOutput = (*unsealOutput)(nil)
)

// errTeeAborted ends the decryption of an item whose fetch did not carry
// it whole: share.Unseal then leaves nothing at the output.
var errTeeAborted = errors.New("the fetch did not carry the share whole")

// unsealOutput decrypts an encrypted share while it arrives: share.Unseal
// reads what is written through a pipe, on a goroutine of its own. It
// publishes its output only once it reads the end of the pipe, which
// Commit gives it (Abort gives it an error instead).
type unsealOutput struct {
	pw   *io.PipeWriter
	done chan struct{}
	n    int64
	err  error
}

func newUnsealOutput(key share.Key, dst string) *unsealOutput {
	pr, pw := io.Pipe()
	u := &unsealOutput{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		u.n, u.err = share.Unseal(pr, key, dst)
		// A decryption that ended early (a wrong key, an existing
		// output) makes further writes fail instead of block.
		pr.CloseWithError(errTeeAborted)
	}()
	return u
}

func (u *unsealOutput) Write(p []byte) (int, error) { return u.pw.Write(p) }

func (u *unsealOutput) Commit() (int64, error) {
	u.pw.Close()
	<-u.done
	return u.n, u.err
}

func (u *unsealOutput) Abort() {
	u.pw.CloseWithError(errTeeAborted)
	<-u.done
}
