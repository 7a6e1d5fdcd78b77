package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/dnslink"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/share"
	"github.com/pcnode/pcnode/p2p"
)

// SharesDir is the directory in the home that holds the share registry.
const SharesDir = "shares"

// Share timers.
const (
	// DefaultShareStallTimeout: a get by link fails when no block has
	// arrived for this long. A sharer that revoked the share, or let it
	// expire, answers wants as if it had nothing, and bitswap would go on
	// asking forever; 15 s rides out a slow first connection.
	DefaultShareStallTimeout = 15 * time.Second
	// shareDialTimeout bounds each dial to a link's provider hint.
	shareDialTimeout = 10 * time.Second
	// shareProvideTimeout bounds announcing a share's root to the DHT.
	shareProvideTimeout = 2 * time.Minute
	// shareReprovideInterval: provider records live 48 h in the Amino
	// DHT; Kubo announces again every 22 h, and so does pcnode.
	shareReprovideInterval = 22 * time.Hour
)

var _ api.Sharing = (*Node)(nil)

// shareState is the node's sharing machinery: the registry and the
// background announcements. The registry is read by bitswap's filter
// without n.mu, hence the separate lock.
type shareState struct {
	mu  sync.RWMutex
	reg *share.Registry
	// host is the running host, for cutting fetchers off; read without
	// n.mu, which Close holds while it waits for the background work.
	host *p2p.Host
	// watchers counts the status streams being served.
	watchers atomic.Int64

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

func (s *shareState) registry() *share.Registry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.reg
}

func (n *Node) now() time.Time {
	if n.cfg.Now != nil {
		return n.cfg.Now()
	}
	return time.Now()
}

// openSharesLocked opens the registry over the block store. n.mu is held.
func (n *Node) openSharesLocked(ctx context.Context, st *blobstore.Store) error {
	reg, err := share.Open(ctx, share.Config{
		Dir:    filepath.Join(n.home, SharesDir),
		Blocks: st,
		Now:    n.now,
		Logger: n.log.With("component", "share"),
	})
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.shares.mu.Lock()
	n.shares.reg = reg
	n.shares.bgCtx, n.shares.bgCancel = context.WithCancel(context.Background())
	n.shares.mu.Unlock()
	return nil
}

// closeShares stops the announcements and closes the registry.
func (n *Node) closeShares() error {
	// The cancel happens under the lock, so that goShare, which checks
	// the context under it, adds nothing to bg once Wait has begun.
	n.shares.mu.Lock()
	reg := n.shares.reg
	n.shares.reg = nil
	n.shares.host = nil
	if n.shares.bgCancel != nil {
		n.shares.bgCancel()
	}
	n.shares.mu.Unlock()
	n.shares.bg.Wait()
	if reg == nil {
		return nil
	}
	return reg.Close()
}

// serveBlock is bitswap's serving policy (docs/SHARE.md): members get
// every block; anyone else only the blocks of active shares. A refusal
// looks to the peer exactly like a block this node does not have.
func (n *Node) serveBlock(p peer.ID, c cid.Cid) bool {
	if n.members.IsMember(p) {
		return true
	}
	reg := n.shares.registry()
	if reg == nil || !reg.Serve(c, p.String()) {
		return false
	}
	if _, ok := reg.Root(c); ok {
		reg.CountDownload(c, p.String())
	}
	return true
}

// Share imports req.Path (encrypted when asked) or takes req.CID, pins it
// and records it as a share. Progress is in bytes of the import.
func (n *Node) Share(ctx context.Context, req api.ShareRequest, fn api.ProgressFunc) (api.ShareInfo, error) {
	const op = "share"
	st, _, h, err := n.parts()
	if err != nil {
		return api.ShareInfo{}, fmt.Errorf("node: %s: %w", op, err)
	}
	reg := n.shares.registry()
	if reg == nil {
		return api.ShareInfo{}, fmt.Errorf("node: %s: share registry is not open", op)
	}
	if h == nil {
		return api.ShareInfo{}, api.Errorf(api.ErrOffline, "node: %s: node is offline: a link needs the daemon's addresses, so start pcnode daemon and share through it", op)
	}
	expires, err := ParseExpiry(req.Expires, n.now())
	if err != nil {
		return api.ShareInfo{}, api.Errorf(api.ErrInvalid, "node: %s: expires: %w", op, err)
	}
	if req.Name != "" {
		if req.Encrypt {
			return api.ShareInfo{}, api.Errorf(api.ErrInvalid, "node: %s: --name and --encrypt together: a DNS name cannot carry the key", op)
		}
		if err := n.checkShareName(req.Name); err != nil {
			return api.ShareInfo{}, err
		}
	}

	rec := share.Share{DNSName: req.Name, Size: -1, Expires: expires, Unlisted: req.Unlisted}
	n.gcMu.RLock()
	defer n.gcMu.RUnlock()
	switch {
	case req.Path != "":
		if !filepath.IsAbs(req.Path) {
			return api.ShareInfo{}, api.Errorf(api.ErrInvalid, "node: %s %q: path must be absolute", op, req.Path)
		}
		if _, err := os.Stat(req.Path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return api.ShareInfo{}, api.Errorf(api.ErrNotFound, "node: %s %s: no such file or directory", op, req.Path)
			}
			return api.ShareInfo{}, fmt.Errorf("node: %s: %w", op, err)
		}
		rec.Name = filepath.Base(req.Path)
		var res blobstore.ImportResult
		if req.Encrypt {
			var key share.Key
			res, key, err = sealAndImport(ctx, st, req.Path, fn)
			rec.Encrypted, rec.Key = true, key.String()
		} else {
			res, err = st.Import(ctx, req.Path, blobstore.ImportOptions{Progress: progress(fn)})
		}
		if err != nil {
			return api.ShareInfo{}, fmt.Errorf("node: %s %s: %w", op, req.Path, err)
		}
		rec.Root, rec.Size = res.Root, res.Size
	default:
		c, err := api.ParseCID(req.CID)
		if err != nil {
			return api.ShareInfo{}, err
		}
		if req.Encrypt {
			return api.ShareInfo{}, api.Errorf(api.ErrInvalid, "node: %s %s: --encrypt needs a path: content in the store is kept in the clear", op, c)
		}
		rec.Root = c
		rec.Size = n.fileSize(ctx, c)
	}
	if err := checkLinkName(rec.Name); err != nil {
		rec.Name = "" // the link names the item only when the name is safe everywhere
	}
	if err := st.Pin(ctx, rec.Root, true); err != nil {
		return api.ShareInfo{}, n.contentErr(op, rec.Root, err)
	}
	s, err := reg.Create(ctx, rec)
	if errors.Is(err, share.ErrIncomplete) {
		return api.ShareInfo{}, api.Errorf(api.ErrNotFound, "node: %s %s: not complete in the local store: pcnode get it first: %w", op, rec.Root, err)
	}
	if err != nil {
		return api.ShareInfo{}, fmt.Errorf("node: %s: %w", op, err)
	}
	if !s.Unlisted {
		n.provideShare(h, s.Root)
	}
	n.sharesChanged() // the cloud's home servers mirror it (server.go)
	if s.DNSName != "" {
		if err := n.publishShareNames(ctx); err != nil {
			return api.ShareInfo{}, fmt.Errorf("node: %s: share %s was created, but its name was not published: %w", op, s.ID, err)
		}
	}
	return n.shareInfo(s), nil
}

// sealAndImport encrypts path into a pipe and imports the ciphertext as
// one UnixFS file.
func sealAndImport(ctx context.Context, st *blobstore.Store, path string, fn api.ProgressFunc) (blobstore.ImportResult, share.Key, error) {
	key, err := share.NewKey()
	if err != nil {
		return blobstore.ImportResult{}, share.Key{}, err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := share.Seal(pw, path, key)
		pw.CloseWithError(err)
		done <- err
	}()
	res, err := st.ImportReader(ctx, pr, blobstore.ImportOptions{Progress: progress(fn)})
	pr.CloseWithError(errors.New("import stopped")) // unblocks Seal if the import failed
	if serr := <-done; err == nil && serr != nil {
		err = serr
	}
	return res, key, err
}

// fileSize is the size of the UnixFS file c, or -1 for a directory or
// when it cannot be read locally.
func (n *Node) fileSize(ctx context.Context, c cid.Cid) int64 {
	_, dag, _, err := n.parts()
	if err != nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := blobstore.Cat(ctx, dag, c)
	if err != nil {
		return -1
	}
	defer r.Close()
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return -1
	}
	return size
}

func checkLinkName(name string) error {
	_, err := share.Format(share.Link{Root: cid.NewCidV1(cid.Raw, []byte{0, 0}), Name: name, Size: -1})
	return err
}

// provideShare announces root to the DHT in the background, and again
// every shareReprovideInterval while a listed share of it is active. A
// failed announcement (no DHT peers yet, say, just after start) is tried
// again, backing off from 1 s to 5 min.
func (n *Node) provideShare(h *p2p.Host, root cid.Cid) {
	if h == nil {
		return
	}
	n.goShare(func(ctx context.Context) {
		backoff := time.Second
		failed := false
		for n.listedActive(root) {
			pctx, cancel := context.WithTimeout(ctx, shareProvideTimeout)
			err := h.Provide(pctx, root)
			cancel()
			next := shareReprovideInterval
			switch {
			case ctx.Err() != nil || errors.Is(err, p2p.ErrNotStarted):
				return // closing, or no DHT
			case err != nil && !failed:
				n.log.Warn("share: announce to the DHT failed; retrying", "root", root, "err", err)
				failed = true
				fallthrough
			case err != nil:
				next = backoff
				backoff = min(2*backoff, 5*time.Minute)
			default:
				n.log.Info("share: announced to the DHT", "root", root)
				failed, backoff = false, time.Second
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(next):
			}
		}
	})
}

// listedActive reports whether an active share not --unlisted has root.
func (n *Node) listedActive(root cid.Cid) bool {
	reg := n.shares.registry()
	if reg == nil {
		return false
	}
	now := n.now()
	for _, s := range reg.List() {
		if s.Root.Equals(root) && !s.Unlisted && s.State(now) == share.StateActive {
			return true
		}
	}
	return false
}

// Shares lists every share with its link as of now.
func (n *Node) Shares(ctx context.Context) ([]api.ShareInfo, error) {
	if _, _, _, err := n.parts(); err != nil {
		return nil, fmt.Errorf("node: shares: %w", err)
	}
	reg := n.shares.registry()
	if reg == nil {
		return nil, errors.New("node: shares: share registry is not open")
	}
	ss := reg.List()
	out := make([]api.ShareInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, n.shareInfo(s))
	}
	return out, nil
}

// ShareRevoke stops serving share id at once. A named share's DNS name is
// withdrawn when the node can publish (best effort: the name then points
// at content nobody serves).
func (n *Node) ShareRevoke(ctx context.Context, id string) (api.ShareInfo, error) {
	if _, _, _, err := n.parts(); err != nil {
		return api.ShareInfo{}, fmt.Errorf("node: share revoke %s: %w", id, err)
	}
	reg := n.shares.registry()
	if reg == nil {
		return api.ShareInfo{}, fmt.Errorf("node: share revoke %s: share registry is not open", id)
	}
	s, err := reg.Revoke(id)
	if errors.Is(err, share.ErrNotFound) {
		return api.ShareInfo{}, api.Errorf(api.ErrNotFound, "node: share revoke %s: no such share (pcnode share ls lists them)", id)
	}
	if err != nil {
		return api.ShareInfo{}, fmt.Errorf("node: share revoke %s: %w", id, err)
	}
	n.sharesChanged() // the home servers stop serving their mirror
	if s.DNSName != "" {
		if err := n.publishShareNames(ctx); err != nil {
			n.log.Warn("share: withdrawing the DNS name failed", "id", id, "name", s.DNSName, "err", err)
		}
	}
	return n.shareInfo(s), nil
}

// shareInfo describes s with a link carrying the node's current
// addresses (none offline) and /dnsaddr/<zone> when a zone is set.
func (n *Node) shareInfo(s share.Share) api.ShareInfo {
	now := n.now()
	info := api.ShareInfo{
		ID:        s.ID,
		CID:       s.Root.String(),
		Name:      s.Name,
		Size:      s.Size,
		Created:   s.Created.UTC().Format(time.RFC3339),
		State:     string(s.State(now)),
		Encrypted: s.Encrypted,
		Unlisted:  s.Unlisted,
		Downloads: s.Downloads,
	}
	if !s.Expires.IsZero() {
		info.Expires = s.Expires.UTC().Format(time.RFC3339)
	}
	if !s.Revoked.IsZero() {
		info.Revoked = s.Revoked.UTC().Format(time.RFC3339)
	}
	if !s.Encrypted {
		info.IPFS = "ipfs://" + s.Root.String()
	}
	if s.DNSName != "" && n.settings.Load().DNS.Zone != "" {
		info.DNSName = s.DNSName + "." + strings.TrimSuffix(n.settings.Load().DNS.Zone, ".")
	}
	if u := n.GatewayURL(); u != "" {
		info.Gateway = u + "/ipfs/" + s.Root.String() + "/"
	}
	l := share.Link{Root: s.Root, Name: s.Name, Size: s.Size, Expires: s.Expires, Key: s.Key, Providers: n.shareHints()}
	for {
		str, err := share.Format(l)
		if err == nil {
			info.Link = str
			break
		}
		if len(l.Providers) == 0 {
			n.log.Warn("share: cannot format link", "id", s.ID, "err", err)
			break
		}
		l.Providers = l.Providers[:len(l.Providers)-1] // too long: fewer hints
	}
	return info
}

// shareHints are the provider hints for links: the host's addresses
// (direct ones first) and /dnsaddr/<zone>, at most share.MaxProviders.
func (n *Node) shareHints() []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	max := share.MaxProviders
	var dnsaddr multiaddr.Multiaddr
	if z := strings.TrimSuffix(n.settings.Load().DNS.Zone, "."); z != "" {
		if m, err := multiaddr.NewMultiaddr("/dnsaddr/" + z); err == nil {
			dnsaddr = m
			max--
		}
	}
	if h := n.Host(); h != nil {
		var relayed []multiaddr.Multiaddr
		for _, a := range h.Addrs() {
			if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
				relayed = append(relayed, a)
				continue
			}
			out = append(out, a)
		}
		out = append(out, relayed...)
	}
	// The cloud's home servers keep the share available while this
	// device sleeps (server.go): they get a place whatever this host has.
	servers := n.serverHints(min(2, max))
	if len(out) > max-len(servers) {
		out = out[:max-len(servers)]
	}
	out = append(out, servers...)
	if dnsaddr != nil {
		out = append(out, dnsaddr)
	}
	return out
}

// checkShareName checks a --name and that the node can publish it: it
// needs dns.zone, and dns.primary (to publish by RFC 2136) or dns.listen
// (to serve the zone itself).
func (n *Node) checkShareName(name string) error {
	if !isDomainName(name) || strings.HasSuffix(name, ".") {
		return api.Errorf(api.ErrInvalid, "node: share: name %q is not a DNS name relative to the zone (letters, digits, -, one or more labels)", name)
	}
	c := n.settings.Load().DNS
	switch {
	case c.Zone == "":
		return api.Errorf(api.ErrConflict, "node: share: --name %s needs dns.zone: pcnode config set dns.zone example.org", name)
	case c.Primary == "" && c.Listen == "":
		return api.Errorf(api.ErrConflict, "node: share: --name %s needs a way to publish: set dns.primary (and dns.tsig) to update the zone's server, or dns.listen to serve the zone", name)
	}
	for _, s := range n.shares.registry().List() {
		if s.DNSName == name && s.State(n.now()) == share.StateActive {
			return api.Errorf(api.ErrConflict, "node: share: name %s is taken by active share %s: revoke it first", name, s.ID)
		}
	}
	return nil
}

// shareLinks are the DNSLink records of active named shares, for the
// zone the node serves or publishes.
func (n *Node) shareLinks() map[string]dnslink.Link {
	reg := n.shares.registry()
	if reg == nil {
		return nil
	}
	now := n.now()
	out := map[string]dnslink.Link{}
	for _, s := range reg.List() {
		if s.DNSName == "" || s.State(now) != share.StateActive || s.Encrypted {
			continue
		}
		out[s.DNSName] = dnslink.NewIPFSLink(s.Root, "")
	}
	return out
}

// publishShareNames brings the zone up to date with the named shares: the
// served zone is rebuilt, and with dns.primary the records are published.
func (n *Node) publishShareNames(ctx context.Context) error {
	n.mu.Lock()
	d := n.dns
	n.mu.Unlock()
	if d != nil && d.zone != nil {
		if err := d.rebuild(); err != nil {
			return err
		}
	}
	if n.settings.Load().DNS.Primary != "" {
		if _, err := n.DNSPublish(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ParseExpiry reads an expiry: "" (never), a duration with units d, h, m,
// s ("7d", "36h", "1d12h") or an RFC 3339 time. A duration counts from
// now; the result must be in the future.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("%s is in the past", s)
		}
		return t, nil
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return time.Time{}, fmt.Errorf("%q: want a duration like 7d, 36h, 90m or an RFC 3339 time", s)
		}
		v, _ := strconv.Atoi(rest[:i])
		var unit time.Duration
		switch rest[i] {
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		case 's':
			unit = time.Second
		default:
			return time.Time{}, fmt.Errorf("%q: unit %q: want d, h, m or s", s, rest[i])
		}
		total += time.Duration(v) * unit
		rest = rest[i+1:]
	}
	if total <= 0 || total > 100*365*24*time.Hour {
		return time.Time{}, fmt.Errorf("%q: want a duration from 1s to 100 years", s)
	}
	return now.Add(total), nil
}
