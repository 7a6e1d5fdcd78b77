package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
	"github.com/pcnode/pcnode/p2p"
)

// DefaultVersion is reported by Status when Config.Version is empty.
const DefaultVersion = "dev"

// shutdownTimeout bounds how long Close waits for cancelled API requests
// to return before it cuts their connections.
const shutdownTimeout = 5 * time.Second

// Config configures a Node. Only Home is needed; the node's own settings
// come from <Home>/config.toml and the PCNODE_* environment.
type Config struct {
	// Home is the node's home directory, made by Init. Default: DefaultHome().
	Home string
	// Offline opens the store without networking and without the API
	// server: for CLI commands run without a daemon. Default false.
	Offline bool
	// Logger receives the node's logs. Default nil: discard.
	Logger *slog.Logger
	// APIListen overrides api.listen (host:port). Default "": the config's.
	APIListen string
	// Version is reported by Status. Default DefaultVersion.
	Version string
	// Getenv reads environment overrides (see Settings.ApplyEnv).
	// Default nil: os.Getenv.
	Getenv func(string) string
	// Now is the clock for share expiry, on both sides of a link.
	// Default nil: time.Now.
	Now func() time.Time
	// ShareStallTimeout: a get by share link fails when no block has
	// arrived for this long. Default 0: DefaultShareStallTimeout.
	ShareStallTimeout time.Duration
}

// Node is one pcnode: its home, block store, libp2p host and API server.
// Its methods implement api.Backend and are safe for concurrent use once
// Start has returned.
type Node struct {
	cfg  Config
	log  *slog.Logger
	home string
	// settings are the settings in effect. Reload replaces them while
	// requests read them, so they are only ever read through the atomic
	// pointer (a reader takes one consistent *Settings and keeps using it).
	settings atomic.Pointer[Settings]
	key      crypto.PrivKey
	id       peer.ID
	token    string
	metrics  *metrics
	logs     *api.LogRing // recent records for the dashboard (dashboard.go)

	// gcMu keeps GC out of the gap between writing blocks and pinning
	// them in Add and Get: both hold it shared from first block to pin,
	// GC holds it exclusively.
	gcMu sync.RWMutex

	// members is the cloud as p2p sees it; set at Start and by Join.
	members membership
	// shares is the share registry, read by bitswap's filter.
	shares shareState
	// folders are the synced folders (node/folders.go).
	folders folderSet
	// server is the home server's part and the share push (server.go).
	server serverState
	// joinMu makes joins one at a time; dnsKeyMu guards dns.key creation.
	joinMu   sync.Mutex
	dnsKeyMu sync.Mutex

	mu      sync.Mutex
	started bool
	closed  bool
	lock    *homeLock
	store   *blobstore.Store
	host    *p2p.Host
	csvc    *cloud.Service // nil offline or without a cloud
	dns     *dnsRecords    // nil offline or without dns.zone
	gw      *gatewayServer // nil when the gateway is off
	dag     ipld.DAGService
	srv     *http.Server
	srvDone chan struct{}
	// srvStop cancels the context of every API request, so Close does not
	// wait for a long add or a fetch that may never finish.
	srvStop context.CancelFunc
	apiURL  string

	// inflight counts API requests being served, so Close can wait for
	// their handlers: http.Server.Close does not.
	inflight sync.WaitGroup
}

var _ api.Backend = (*Node)(nil)

// New reads the home's config, key and token and allocates a node. It
// starts nothing and takes no lock: the home can be in use by another
// process until Start.
func New(cfg Config) (*Node, error) {
	if cfg.Home == "" {
		h, err := DefaultHome()
		if err != nil {
			return nil, err
		}
		cfg.Home = h
	}
	home, err := filepath.Abs(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("node: new: %w", err)
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := LoadSettings(home)
	if err != nil {
		return nil, err
	}
	if err := s.ApplyEnv(cfg.Getenv); err != nil {
		return nil, err
	}
	if cfg.APIListen != "" {
		if err := s.Set("api.listen", cfg.APIListen); err != nil {
			return nil, fmt.Errorf("node: new: %w", err)
		}
	}
	key, err := LoadKey(home)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node: new: peer ID: %w", err)
	}
	tok, err := LoadToken(home)
	if err != nil {
		return nil, err
	}
	log, ring := withLogRing(log)
	n := &Node{cfg: cfg, log: log, home: home, key: key, id: id, token: tok, logs: ring}
	n.settings.Store(s)
	n.metrics = newMetrics(n)
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.id }

// Home is the node's home directory (absolute).
func (n *Node) Home() string { return n.home }

// Settings returns a copy of the settings in effect (file, then
// environment, then Config).
func (n *Node) Settings() Settings { return *n.settings.Load() }

// APIURL is the base URL of the running API server, e.g.
// "http://127.0.0.1:5480", or "" when offline or not started.
func (n *Node) APIURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.apiURL
}

// Host is the libp2p host, or nil when offline or not started.
func (n *Node) Host() *p2p.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Handler is the node's HTTP API (see docs/API.md) with /metrics, as Start
// serves it. It is usable after Start, including on an offline node.
func (n *Node) Handler() http.Handler {
	host, _, _ := net.SplitHostPort(n.settings.Load().API.Listen)
	var allowed []string
	if host != "" {
		allowed = []string{host}
	}
	return api.NewHandler(n, api.HandlerConfig{
		Token:        n.token,
		Logger:       n.log.With("component", "api"),
		Metrics:      n.metrics.handler(),
		OnRequest:    n.metrics.request,
		AllowedHosts: allowed,
	})
}

// Start takes the home's lock, opens the block store and, unless offline,
// starts the libp2p host and the API server and writes <home>/api. It
// returns when the node is ready. A home in use by another process gives
// ErrHomeLocked. On failure everything started is undone.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("node: start: node is closed")
	}
	if n.started {
		return nil
	}
	if err := n.wire(ctx); err != nil {
		n.teardown()
		return err
	}
	n.started = true
	n.log.Info("node started", "id", n.id, "home", n.home, "online", !n.cfg.Offline, "api", n.apiURL)
	return nil
}

// wire is the one place where the node's parts are made and joined, in
// order: lock, store, cloud state, host (with the cloud's membership
// hooks), cloud service, DNS, API. teardown undoes it in reverse.
func (n *Node) wire(ctx context.Context) error {
	s := n.settings.Load()
	l, err := lockHome(n.home)
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.lock = l

	st, err := blobstore.Open(ctx, blobstore.Config{
		Dir:    filepath.Join(n.home, DataDir),
		NoSync: s.Store.NoSync,
		// Every read is re-hashed: a rotten block is quarantined and
		// fetched again instead of being exported or served to a peer
		// (docs/RELIABILITY.md has the cost).
		HashOnRead: true,
		Logger:     n.log.With("component", "blobstore"),
	})
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.store = st
	if err := n.openSharesLocked(ctx, st); err != nil {
		return err
	}

	cs, err := loadCloud(n.home)
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	if cs != nil {
		n.members.set(cs)
	}

	if n.cfg.Offline {
		n.dag = blobstore.NewDAG(st, nil)
		return nil
	}

	listen, err := parseAddrs(s.P2P.Listen)
	if err != nil {
		return fmt.Errorf("node: start: p2p.listen: %w", err)
	}
	var boot []peer.AddrInfo
	for _, b := range s.P2P.Bootstrap {
		ai, err := peer.AddrInfoFromString(b)
		if err != nil {
			return fmt.Errorf("node: start: p2p.bootstrap %q: %w", b, err)
		}
		boot = append(boot, *ai)
	}
	dnsAddrs, err := n.dnsDiscovery()
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	var secret []byte
	if cs != nil {
		secret = cs.Secret()
	}
	// The relays are read from the host's peer store, and the host does
	// not exist yet; an atomic rather than n.mu, since libp2p asks while
	// Close (holding n.mu) waits for it.
	var relayHost atomic.Pointer[p2p.Host]
	h, err := p2p.New(p2p.Config{
		Key:         n.key,
		Profile:     p2p.Profile(s.Profile),
		ListenAddrs: listen,
		Bootstrap:   boot,
		Blockstore:  st,
		ConnLow:     s.P2P.ConnLow,
		ConnHigh:    s.P2P.ConnHigh,
		Logger:      n.log.With("component", "p2p"),
		// The membership hooks read the cloud state through an adapter,
		// so a cloud joined while the daemon runs takes effect at once.
		Members:          &n.members,
		Revoked:          n.members.Revoked,
		RendezvousSecret: secret,
		PeerStoreFile:    filepath.Join(n.home, PeersFile),
		RelayService:     s.Role == RoleServer,
		DNSAddrs:         dnsAddrs,
		StaticRelays:     func() []peer.AddrInfo { return n.members.servers(relayHost.Load(), n.id) },
		// Members get every block, anyone else those of active shares.
		BlockFilter: n.serveBlock,
		// Members fetch whole DAGs over the fast stream.
		DAGStreamAllowed: n.members.IsMember,
	})
	if err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.host = h
	relayHost.Store(h)
	if err := h.Start(ctx); err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.dag = blobstore.NewDAG(st, h.Exchange())

	if cs != nil {
		if err := n.startCloudLocked(ctx, cs); err != nil {
			return err
		}
	}
	if err := n.startDNSLocked(ctx); err != nil {
		return err
	}
	if err := n.startGatewayLocked(st); err != nil {
		return err
	}
	if err := n.startFoldersLocked(ctx); err != nil {
		return err
	}
	if err := n.startServerLocked(ctx); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", s.API.Listen)
	if err != nil {
		return fmt.Errorf("node: start: api listen %s: %w (another daemon, or set api.listen)", s.API.Listen, err)
	}
	n.apiURL = "http://" + dialable(ln.Addr().(*net.TCPAddr))
	h2 := n.Handler()
	srvCtx, srvStop := context.WithCancel(context.Background())
	n.srvStop = srvStop
	n.srv = &http.Server{
		BaseContext: func(net.Listener) context.Context { return srvCtx },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.inflight.Add(1)
			defer n.inflight.Done()
			h2.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.srvDone = make(chan struct{})
	go func() {
		defer close(n.srvDone)
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api server stopped", "err", err)
		}
	}()
	// Written last, so a client that finds the file finds a ready node.
	if err := writeFileAtomic(filepath.Join(n.home, PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(n.home, api.APIFile), []byte(n.apiURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	return nil
}

// teardown stops whatever wire started, in reverse order, and waits.
func (n *Node) teardown() error {
	var errs []error
	if n.srv != nil {
		// Files first, so no new client finds a stopping daemon.
		_ = os.Remove(filepath.Join(n.home, api.APIFile))
		_ = os.Remove(filepath.Join(n.home, PIDFile))
		n.srvStop()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		if err := n.srv.Shutdown(ctx); err != nil {
			_ = n.srv.Close() // cut long streams; their contexts end with them
		}
		cancel()
		<-n.srvDone
		n.inflight.Wait() // their contexts ended with their connections
		n.srv = nil
	}
	if n.gw != nil {
		n.gw.close()
		n.gw = nil
	}
	if n.dns != nil {
		if err := n.dns.close(); err != nil {
			errs = append(errs, err)
		}
		n.dns = nil
	}
	// The server part joins folders: it stops first.
	n.closeServer()
	// Folders before the host: they serve streams on it.
	if err := n.closeFolders(); err != nil {
		errs = append(errs, err)
	}
	if n.csvc != nil {
		if err := n.csvc.Close(); err != nil {
			errs = append(errs, err)
		}
		n.csvc = nil
	}
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			errs = append(errs, err)
		}
		n.host = nil
	}
	// After the host: bitswap's filter reads the registry.
	if err := n.closeShares(); err != nil {
		errs = append(errs, err)
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
		n.store = nil
	}
	n.dag = nil
	n.apiURL = ""
	n.lock.unlock()
	n.lock = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node: close: %w", err)
	}
	return nil
}

// Close stops the API server (cancelling requests in progress, which end
// with an error), the host and the store, removes <home>/api and releases the lock. It is
// idempotent and waits for everything it stops.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if !n.started {
		return nil
	}
	err := n.teardown()
	n.log.Info("node closed", "id", n.id)
	return err
}

// parts returns the running store and DAG, or an error before Start or
// after Close.
func (n *Node) parts() (*blobstore.Store, ipld.DAGService, *p2p.Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.closed {
		return nil, nil, nil, errors.New("node is not running")
	}
	return n.store, n.dag, n.host, nil
}

// dialable turns a listener's address into one a client can dial: an
// unspecified address becomes the loopback of its family.
func dialable(a *net.TCPAddr) string {
	ip := a.IP
	switch {
	case ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

func parseAddrs(ss []string) ([]multiaddr.Multiaddr, error) {
	var out []multiaddr.Multiaddr
	for _, s := range ss {
		m, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// --- api.Backend ---

// Status reports the node's identity and addresses. Offline, Addrs is
// empty and Online false.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	_, _, h, err := n.parts()
	if err != nil {
		return api.Status{}, fmt.Errorf("node: status: %w", err)
	}
	st := api.Status{
		ID:      n.id.String(),
		Addrs:   []string{},
		API:     n.APIURL(),
		Profile: n.settings.Load().Profile,
		Version: n.cfg.Version,
		Home:    n.home,
		Online:  h != nil,
	}
	if h != nil {
		for _, a := range h.Addrs() {
			st.Addrs = append(st.Addrs, a.String())
		}
		st.Peers = len(h.Peers())
	}
	if cs := n.members.state(); cs != nil {
		st.Cloud = cs.ID().String()
	}
	n.mu.Lock()
	if n.dns != nil {
		st.DNS = n.dns.addr()
	}
	n.mu.Unlock()
	return st, nil
}

// Add imports the file or directory at req.Path (absolute) and pins it
// recursively unless req.NoPin. Progress is in bytes.
func (n *Node) Add(ctx context.Context, req api.AddRequest, fn api.ProgressFunc) (api.AddResult, error) {
	st, _, _, err := n.parts()
	if err != nil {
		return api.AddResult{}, fmt.Errorf("node: add: %w", err)
	}
	if !filepath.IsAbs(req.Path) {
		return api.AddResult{}, api.Errorf(api.ErrInvalid, "node: add %q: path must be absolute", req.Path)
	}
	if _, err := os.Lstat(req.Path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return api.AddResult{}, api.Errorf(api.ErrNotFound, "node: add %s: no such file or directory", req.Path)
		}
		return api.AddResult{}, fmt.Errorf("node: add: %w", err)
	}
	n.gcMu.RLock()
	defer n.gcMu.RUnlock()
	started := time.Now()
	res, err := st.Import(ctx, req.Path, blobstore.ImportOptions{Progress: progress(fn)})
	if err != nil {
		return api.AddResult{}, fmt.Errorf("node: add %s: %w", req.Path, st.DiskFull(err, started))
	}
	if !req.NoPin {
		if err := st.Pin(ctx, res.Root, true); err != nil {
			return api.AddResult{}, fmt.Errorf("node: add %s: pin %s: %w", req.Path, res.Root, err)
		}
	}
	return api.AddResult{CID: res.Root.String(), Name: res.Name, Size: res.Size, Blocks: res.Blocks}, nil
}

// Cat returns the content of the UnixFS file c; the caller closes it. The
// reader also implements io.Seeker. Online, missing blocks are fetched
// from peers as they are read.
func (n *Node) Cat(ctx context.Context, c cid.Cid) (io.ReadCloser, error) {
	_, dag, _, err := n.parts()
	if err != nil {
		return nil, fmt.Errorf("node: cat %s: %w", c, err)
	}
	r, err := blobstore.Cat(ctx, dag, c)
	if err != nil {
		return nil, n.contentErr("cat", c, err)
	}
	return r, nil
}

// Get makes the whole DAG under req.CID local (from peers when online),
// pins it recursively so that GC keeps it, and writes it to req.Output
// atomically. Offline it succeeds only for data already in the store.
// Progress is reported in blocks while fetching, then in bytes while
// writing.
func (n *Node) Get(ctx context.Context, req api.GetRequest, fn api.ProgressFunc) (api.GetResult, error) {
	if req.Link != "" {
		return n.getLink(ctx, req, fn)
	}
	st, dag, h, err := n.parts()
	if err != nil {
		return api.GetResult{}, fmt.Errorf("node: get: %w", err)
	}
	c, err := api.ParseCID(req.CID)
	if err != nil {
		return api.GetResult{}, err
	}
	if !filepath.IsAbs(req.Output) {
		return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: get %s: output %q must be an absolute path", c, req.Output)
	}
	started := time.Now()
	n.gcMu.RLock()
	err = n.putEmptyBlocks(ctx, st)
	complete := false
	var out *blobstore.StagedFile // the file, written while it arrives
	defer func() {
		if out != nil {
			out.Abort()
		}
	}()
	if err == nil && h != nil {
		// Members first, then other pcnode peers (which serve what they
		// would serve by bitswap): bitswap completes what they do not.
		peers := h.DAGSources(maxDAGOthers)
		var tee *fileTee
		if len(peers) > 0 {
			// An existing output is reported by Export, after the fetch,
			// as before.
			if sf, serr := blobstore.CreateStaged(req.Output); serr == nil {
				out, tee = sf, newFileTee(c, sf)
			}
		}
		complete = n.fetchFastFrom(ctx, st, h, c, peers, fn, tee)
		if tee != nil {
			if terr := tee.finish(); terr != nil || !complete {
				n.log.Debug("get: output not written during the fetch; exporting", "cid", c, "err", terr)
				out.Abort()
				out = nil
			}
		}
	}
	if err == nil && !complete {
		// Finds everything local, or fetches what is still missing by
		// bitswap. Not needed after a complete DAG stream: it verified
		// and stored every block under c (or found it stored).
		err = blobstore.Fetch(ctx, dag, c, progress(fn))
	}
	if err != nil && n.cfg.Offline && ctx.Err() == nil {
		// Offline the only source is the store, and merkledag reports a
		// missing child as "failed to fetch all nodes": it is not there.
		err = api.Errorf(api.ErrNotFound, "not in the local store (offline; start pcnode daemon to fetch from peers): %w", err)
	}
	if err == nil {
		err = st.Pin(ctx, c, true)
	}
	n.gcMu.RUnlock()
	if err != nil {
		// A block that could not be stored for want of space is
		// reported by bitswap as not found: say what to do instead.
		return api.GetResult{}, n.contentErr("get", c, st.DiskFull(err, started))
	}
	var size int64
	if out != nil {
		// Verified block by block, stored and pinned: publish it.
		size, err = out.Commit()
		out = nil
	} else {
		size, err = blobstore.Export(ctx, dag, c, req.Output, progress(fn))
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return api.GetResult{}, api.Errorf(api.ErrInvalid, "node: get %s: %s already exists: choose another output or remove it", c, req.Output)
		}
		return api.GetResult{}, n.contentErr("get", c, err)
	}
	return api.GetResult{CID: c.String(), Output: req.Output, Size: size}, nil
}

// maxDAGOthers bounds the peers outside the cloud a get asks over the
// DAG stream before bitswap.
const maxDAGOthers = 4

// fetchFast makes what it can of the DAG under c local over the members'
// DAG stream (p2p.DAGProtocol) from a connected member, durably. It
// reports whether the whole DAG is now local (FetchDAG returned nil: every
// block under c was stored already or arrived verified, and Commit made
// them durable). Otherwise it was best effort, and blobstore.Fetch
// afterwards completes the DAG.
func (n *Node) fetchFast(ctx context.Context, st *blobstore.Store, h *p2p.Host, c cid.Cid, fn api.ProgressFunc) bool {
	return n.fetchFastFrom(ctx, st, h, c, h.DAGPeers(), fn, nil)
}

// fetchFastFrom is fetchFast from the given peers, tried in order: a
// share's providers serve a friend the share's blocks over the DAG
// stream (through their BlockFilter), much faster than bitswap.
// fn, if set, hears the bytes received so far (the total is not known
// before the stream ends, so it is given as 0). tee, if set, follows every
// block stored (the caller finishes it).
func (n *Node) fetchFastFrom(ctx context.Context, st *blobstore.Store, h *p2p.Host, c cid.Cid, peers []peer.ID, fn api.ProgressFunc, tee *fileTee) bool {
	for _, p := range peers {
		// The writer outlives a cancelled fetch: what arrived verified is
		// still stored, so a get run again resumes where this one ended.
		bw, err := st.NewBlockWriter(context.WithoutCancel(ctx))
		if err != nil {
			return false
		}
		// A sender that stops sending is left after the stall timeout;
		// bitswap then completes the DAG from whoever has it.
		sink := &progressSink{BlockSink: bw, fn: fn, tee: tee}
		sctx, cancel := context.WithCancel(ctx)
		go n.watchStall(sctx, cancel, &sink.done)
		stats, err := h.FetchDAG(sctx, p, c, sink)
		cancel()
		if cerr := bw.Commit(); err == nil {
			err = cerr
		}
		if err == nil {
			n.log.Debug("fetched over the dag stream", "cid", c, "peer", p, "blocks", stats.Blocks, "bytes", stats.Bytes)
			return true
		}
		n.log.Debug("dag stream fetch failed", "cid", c, "peer", p, "blocks", stats.Blocks, "err", err)
		if ctx.Err() != nil {
			return false
		}
	}
	return false
}

// watchStall cancels ctx when *done has not grown for the stall timeout.
func (n *Node) watchStall(ctx context.Context, cancel context.CancelFunc, done *atomic.Int64) {
	limit := n.stallTimeout()
	tick := time.NewTicker(min(time.Second, limit))
	defer tick.Stop()
	last, since := done.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if d := done.Load(); d != last {
				last, since = d, now
			} else if now.Sub(since) >= limit {
				n.log.Debug("dag stream stalled", "for", limit)
				cancel()
				return
			}
		}
	}
}

// progressSink counts the bytes a DAG stream has stored so far and, with
// fn set, reports them.
type progressSink struct {
	p2p.BlockSink
	fn   api.ProgressFunc
	tee  *fileTee
	done atomic.Int64
}

func (s *progressSink) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := s.BlockSink.PutMany(ctx, bs); err != nil {
		return err
	}
	if s.tee != nil {
		if err := s.tee.add(ctx, bs); err != nil {
			return err
		}
	}
	var n int64
	for _, b := range bs {
		n += int64(len(b.RawData()))
	}
	d := s.done.Add(n)
	if s.fn != nil {
		s.fn(d, 0)
	}
	return nil
}

// Ls lists the directory c, or describes the file c as its one entry.
func (n *Node) Ls(ctx context.Context, c cid.Cid) ([]api.Entry, error) {
	_, dag, _, err := n.parts()
	if err != nil {
		return nil, fmt.Errorf("node: ls %s: %w", c, err)
	}
	es, err := blobstore.Ls(ctx, dag, c)
	if errors.Is(err, blobstore.ErrNotDir) {
		// A file lists as itself, as `ipfs ls` would show it in its parent.
		if r, cerr := blobstore.Cat(ctx, dag, c); cerr == nil {
			size, serr := r.Seek(0, io.SeekEnd)
			r.Close()
			if serr == nil {
				return []api.Entry{{Name: "", CID: c.String(), Size: size, Type: "file"}}, nil
			}
		}
	}
	if err != nil {
		return nil, n.contentErr("ls", c, err)
	}
	out := make([]api.Entry, 0, len(es))
	for _, e := range es {
		out = append(out, api.Entry{Name: e.Name, CID: e.Cid.String(), Size: e.Size, Type: e.Type})
	}
	return out, nil
}

// progress adapts fn to the store's callbacks, which report an unknown
// total as -1 where api.ProgressFunc uses 0.
func progress(fn api.ProgressFunc) func(done, total int64) {
	if fn == nil {
		return nil
	}
	return func(done, total int64) { fn(done, max(total, 0)) }
}

// contentErr marks a content error with its kind, adding what to do.
func (n *Node) contentErr(op string, c cid.Cid, err error) error {
	switch {
	case errors.Is(err, api.ErrNotFound):
		return fmt.Errorf("node: %s %s: %w", op, c, err)
	case ipld.IsNotFound(err) && n.cfg.Offline:
		return api.Errorf(api.ErrNotFound, "node: %s %s: not in the local store (offline; start pcnode daemon to fetch from peers): %w", op, c, err)
	case ipld.IsNotFound(err):
		return api.Errorf(api.ErrNotFound, "node: %s %s: %w", op, c, err)
	case errors.Is(err, blobstore.ErrIsDir):
		return api.Errorf(api.ErrInvalid, "node: %s %s: is a directory: use ls or get", op, c)
	case errors.Is(err, blobstore.ErrNotDir):
		return api.Errorf(api.ErrInvalid, "node: %s %s: not a directory: use cat or get", op, c)
	}
	return fmt.Errorf("node: %s %s: %w", op, c, err)
}

// PinAdd pins c (and, if recursive, every block under it).
func (n *Node) PinAdd(ctx context.Context, c cid.Cid, recursive bool) error {
	st, _, _, err := n.parts()
	if err != nil {
		return fmt.Errorf("node: pin add %s: %w", c, err)
	}
	if err := st.Pin(ctx, c, recursive); err != nil {
		return n.contentErr("pin add", c, err)
	}
	return nil
}

// PinRm removes the pin on c; a CID without a pin is ErrNotFound.
func (n *Node) PinRm(ctx context.Context, c cid.Cid) error {
	st, _, _, err := n.parts()
	if err != nil {
		return fmt.Errorf("node: pin rm %s: %w", c, err)
	}
	if err := st.Unpin(ctx, c); err != nil {
		if errors.Is(err, blobstore.ErrNotPinned) {
			return api.Errorf(api.ErrNotFound, "node: pin rm %s: %w", c, err)
		}
		return fmt.Errorf("node: pin rm %s: %w", c, err)
	}
	return nil
}

// PinLs lists the pins.
func (n *Node) PinLs(ctx context.Context) ([]api.Pin, error) {
	st, _, _, err := n.parts()
	if err != nil {
		return nil, fmt.Errorf("node: pin ls: %w", err)
	}
	ps, err := st.Pins(ctx)
	if err != nil {
		return nil, fmt.Errorf("node: pin ls: %w", err)
	}
	out := make([]api.Pin, 0, len(ps))
	for _, p := range ps {
		t := "direct"
		if p.Recursive {
			t = "recursive"
		}
		out = append(out, api.Pin{CID: p.Cid.String(), Type: t})
	}
	return out, nil
}

// GC removes every block not reachable from a pin.
func (n *Node) GC(ctx context.Context) (api.GCResult, error) {
	st, _, _, err := n.parts()
	if err != nil {
		return api.GCResult{}, fmt.Errorf("node: gc: %w", err)
	}
	// Synced folders reference their files' blocks from their indexes,
	// not from pins: a running folder hands its roots in; without the
	// daemon the folders are not loaded, so GC would not see them.
	roots, err := n.folderRoots()
	if err != nil {
		return api.GCResult{}, err
	}
	n.gcMu.Lock()
	r, err := st.GC(ctx, roots...)
	n.gcMu.Unlock()
	if err != nil {
		return api.GCResult{}, fmt.Errorf("node: gc: %w", err)
	}
	return api.GCResult{Removed: r.Removed, FreedBytes: r.Freed}, nil
}

// Verify re-hashes every block; corrupt ones are quarantined. Progress is
// in blocks.
func (n *Node) Verify(ctx context.Context, fn api.ProgressFunc) (api.VerifyResult, error) {
	st, dag, h, err := n.parts()
	if err != nil {
		return api.VerifyResult{}, fmt.Errorf("node: verify: %w", err)
	}
	r, err := st.Verify(ctx, progress(fn))
	if err != nil {
		return api.VerifyResult{}, fmt.Errorf("node: verify: %w", err)
	}
	if len(r.Corrupt) > 0 && h != nil {
		n.heal(ctx, st, dag, h, r.Corrupt)
	}
	out := api.VerifyResult{Checked: r.Checked, Corrupt: []string{}, Quarantined: r.Quarantined}
	for _, c := range r.Corrupt {
		out.Corrupt = append(out.Corrupt, c.String())
	}
	return out, nil
}

// RepoStat counts the store's blocks, bytes and pins.
func (n *Node) RepoStat(ctx context.Context) (api.RepoStat, error) {
	st, _, _, err := n.parts()
	if err != nil {
		return api.RepoStat{}, fmt.Errorf("node: repo stat: %w", err)
	}
	s, err := st.Stat(ctx)
	if err != nil {
		return api.RepoStat{}, fmt.Errorf("node: repo stat: %w", err)
	}
	return api.RepoStat{Blocks: s.Blocks, Bytes: s.Bytes, Pins: s.Pins, Path: s.Dir, DiskBytes: s.DiskBytes}, nil
}

// PeerList lists connected peers; offline it is empty.
func (n *Node) PeerList(ctx context.Context) ([]api.Peer, error) {
	_, _, h, err := n.parts()
	if err != nil {
		return nil, fmt.Errorf("node: peers: %w", err)
	}
	out := []api.Peer{}
	if h == nil {
		return out, nil
	}
	for _, p := range h.Peers() {
		out = append(out, peerOf(p.ID, p.Addrs, p.Direction))
	}
	return out, nil
}

// Connect dials addr, which must end in /p2p/<peer ID>. Offline it fails
// with api.ErrOffline.
func (n *Node) Connect(ctx context.Context, addr multiaddr.Multiaddr) (api.Peer, error) {
	_, _, h, err := n.parts()
	if err != nil {
		return api.Peer{}, fmt.Errorf("node: connect %s: %w", addr, err)
	}
	if h == nil {
		return api.Peer{}, api.Errorf(api.ErrOffline, "node: connect %s: node is offline: start pcnode daemon and connect through it", addr)
	}
	if _, err := peer.AddrInfoFromP2pAddr(addr); err != nil {
		return api.Peer{}, api.Errorf(api.ErrInvalid, "node: connect %s: address must end in /p2p/<peer ID>: %w", addr, err)
	}
	ai, err := h.Connect(ctx, addr)
	if err != nil {
		return api.Peer{}, fmt.Errorf("node: connect %s: %w", addr, err)
	}
	return peerOf(ai.ID, ai.Addrs, "outbound"), nil
}

func peerOf(id peer.ID, addrs []multiaddr.Multiaddr, dir string) api.Peer {
	p := api.Peer{ID: id.String(), Addrs: []string{}, Direction: dir}
	for _, a := range addrs {
		p.Addrs = append(p.Addrs, a.String())
	}
	return p
}
