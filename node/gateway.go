package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pcnode/pcnode/node/share"
)

// Gateway defaults.
const (
	// DefaultGatewayListen is where a node of role server serves its
	// gateway when gateway.listen is empty: Kubo's gateway port.
	DefaultGatewayListen = "0.0.0.0:8080"
	// localGatewayListen replaces it in the local profile.
	localGatewayListen = "127.0.0.1:0"
	// GatewayOff in gateway.listen turns the gateway off for any role.
	GatewayOff = "off"
	// gatewayRetrievalTimeout: the gateway serves only what the store
	// holds, so anything slower than this is a stuck client.
	gatewayRetrievalTimeout = 30 * time.Second
)

// gatewayServer is the running HTTP gateway.
type gatewayServer struct {
	srv  *http.Server
	url  string
	done chan struct{}
}

// gatewayListen is the address the gateway should listen on, "" for off.
func (s *Settings) gatewayListen() string {
	switch v := s.Gateway.Listen; {
	case v == GatewayOff:
		return ""
	case v != "":
		return v
	case s.Role != RoleServer:
		return ""
	case s.Profile == ProfileLocal:
		return localGatewayListen
	}
	return DefaultGatewayListen
}

// GatewayURL is the base URL of the running gateway ("http://host:port"),
// or "" when it is off.
func (n *Node) GatewayURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gw == nil {
		return ""
	}
	return n.gw.url
}

// startGatewayLocked serves /ipfs/<cid> for shared items, and starts the
// sharing work that needs the running host (the share status protocol and
// the cutting of fetchers when a share stops: share_watch.go), which
// belongs with it: both serve shares to strangers. n.mu is held.
func (n *Node) startGatewayLocked(st blockstore.Blockstore) error {
	if n.host != nil {
		n.serveShareStatusLocked(n.host)
	}
	addr := n.settings.Load().gatewayListen()
	if addr == "" {
		return nil
	}
	if n.settings.Load().Profile == ProfileLocal && !loopbackHostPort(addr) {
		return fmt.Errorf("node: start: gateway.listen %s is not a loopback address, and the local profile stays on loopback", addr)
	}
	reg := n.shares.registry()
	h, err := newGatewayHandler(st, reg)
	if err != nil {
		return fmt.Errorf("node: start: gateway: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: start: gateway.listen %s: %w", addr, err)
	}
	g := &gatewayServer{
		url:  "http://" + dialable(ln.Addr().(*net.TCPAddr)),
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		},
	}
	go func() {
		defer close(g.done)
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("gateway stopped", "err", err)
		}
	}()
	n.gw = g
	n.log.Info("gateway serving shares", "url", g.url)
	return nil
}

// close stops the gateway, cutting responses in progress, and waits.
func (g *gatewayServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		_ = g.srv.Close()
	}
	<-g.done
}

// newGatewayHandler is boxo's gateway over the blocks of active shares
// only: a request for anything else, shared or not, existing or not, gets
// the same 404 (but the root of an expired share a 410 saying so), and
// nothing is fetched from the network. Every block is checked as it is
// read, so a response in progress stops at the next block once its share
// is revoked or expires.
func newGatewayHandler(st blockstore.Blockstore, reg *share.Registry) (http.Handler, error) {
	// Each handler has its own registry: the process-wide one would
	// refuse a second node's gateway in one process (tests).
	metrics := prometheus.NewRegistry()
	bs := blockservice.New(sharedBlocks{st, reg}, nil)
	backend, err := gateway.NewBlocksBackend(bs, gateway.WithPrometheusRegistry(metrics))
	if err != nil {
		return nil, err
	}
	gw := gateway.NewHandler(gateway.Config{
		DeserializedResponses: true,
		NoDNSLink:             true,
		DisableHTMLErrors:     true,
		RetrievalTimeout:      gatewayRetrievalTimeout,
		MetricsRegistry:       metrics,
	}, backend)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := gatewayRoot(r.URL.Path)
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		if !reg.Active(c) {
			// The root of a share that expired says so: whoever asks
			// holds its link, which carries the expiry anyway. Anything
			// else, revoked shares included, is the same 404.
			if st, exp, ok := reg.RootState(c); ok && st == share.StateExpired {
				http.Error(w, "410 this share expired at "+exp.UTC().Format(time.RFC3339)+"; ask the sharer for a new link", http.StatusGone)
				return
			}
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		if _, root := reg.Root(c); root && r.Method == http.MethodGet {
			reg.CountDownload(c, "")
		}
		gw.ServeHTTP(w, r)
	}), nil
}

// gatewayRoot returns the CID of /ipfs/<cid>[/...].
func gatewayRoot(p string) (cid.Cid, bool) {
	rest, ok := strings.CutPrefix(p, "/ipfs/")
	if !ok {
		return cid.Undef, false
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	c, err := cid.Decode(rest)
	return c, err == nil
}

// sharedBlocks is a read-only view of the store that holds only the blocks
// of active shares; the rest read as missing.
type sharedBlocks struct {
	blockstore.Blockstore
	reg *share.Registry
}

func (s sharedBlocks) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if !s.reg.Active(c) {
		return false, nil
	}
	return s.Blockstore.Has(ctx, c)
}

func (s sharedBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if !s.reg.Active(c) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return s.Blockstore.Get(ctx, c)
}

func (s sharedBlocks) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if !s.reg.Active(c) {
		return 0, ipld.ErrNotFound{Cid: c}
	}
	return s.Blockstore.GetSize(ctx, c)
}

func (sharedBlocks) Put(context.Context, blocks.Block) error {
	return errors.New("gateway: read-only")
}

func (sharedBlocks) PutMany(context.Context, []blocks.Block) error {
	return errors.New("gateway: read-only")
}

func (sharedBlocks) DeleteBlock(context.Context, cid.Cid) error {
	return errors.New("gateway: read-only")
}
