package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/pcnode/pcnode/blobstore"
	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
	"github.com/pcnode/pcnode/node/folder"
	"github.com/pcnode/pcnode/node/share"
	"github.com/pcnode/pcnode/p2p"
)

// The home server's part of the node (docs/SERVER.md). A node of role
// server, besides relaying for members (p2p) and serving the gateway
// (gateway.go):
//
//   - keeps a receive-only replica of every folder any member has: it
//     learns the folders from the members' protocol lists (each folder is
//     served on folder.ProtocolID/<id>, which identify reports) and joins
//     each one under server.replica_dir;
//   - keeps the members' shares available while they sleep: every device
//     pushes its share list to the cloud's servers (ShareMirrorProtocol),
//     and a server fetches, pins and serves each active share as a share of
//     its own, revoking it when the owner revokes it or it expires.
//
// Every device runs the pushing side; only a server accepts the pushes.

// ShareMirrorProtocol carries a device's share list to a home server: the
// device writes one JSON shareList and closes its side; the server
// answers one JSON mirrorReply. Only members may use it.
const ShareMirrorProtocol protocol.ID = "/pcnode/share-mirror/1.0.0"

// Server defaults.
const (
	// ReplicaDir is where a server keeps folder replicas when
	// server.replica_dir is empty: <home>/replicas/<folder id>.
	ReplicaDir = "replicas"
	// serverDir holds the server's own state: mirrors.json.
	serverDir = "server"
	// sharePushInterval is the safety net of the share push: a push that
	// failed, or a server that missed a change, is caught up this often.
	// Pushes also happen at once on a change and on each new connection.
	sharePushInterval = time.Minute
	// replicaScanInterval is the safety net of the folder discovery,
	// which otherwise follows identify's protocol updates.
	replicaScanInterval = time.Minute
	// mirrorTimeout bounds fetching one share's content for a mirror; a
	// mirror that fails is tried again on the next push.
	mirrorTimeout = 10 * time.Minute
	// pushTimeout bounds one push of the share list.
	pushTimeout = 30 * time.Second
	// maxShareList bounds a pushed list: share.MaxShares entries of a
	// few hundred bytes each.
	maxShareList = 8 << 20
)

// serverState is the server part's running state.
type serverState struct {
	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// push asks the device side to push the share list now.
	push chan struct{}

	// Server side only.
	isServer bool
	work     chan struct{}            // reconcile mirrors now
	lists    map[peer.ID][]mirrorItem // latest list pushed by each member
	folders  map[peer.ID][]string     // folder IDs pushed by each member
	mirrors  map[string]string        // "<peer>/<share id>" -> local share ID
	mirrored int                      // len(mirrors), for metrics
}

// mirrorItem is one share of a pushed list (the wire form, JSON).
type mirrorItem struct {
	ID        string    `json:"id"`
	Root      string    `json:"root"`
	Name      string    `json:"name,omitempty"`
	Size      int64     `json:"size"`
	Expires   time.Time `json:"expires,omitzero"`
	Revoked   bool      `json:"revoked,omitempty"`
	Encrypted bool      `json:"encrypted,omitempty"`
	Unlisted  bool      `json:"unlisted,omitempty"`
}

// shareList is a device's push: every share it made itself, and the IDs
// of its folders (so that a server need not rely on identify alone, whose
// protocol list can miss a folder added while a connection was being
// identified).
type shareList struct {
	Version int          `json:"v"`
	Shares  []mirrorItem `json:"shares"`
	Folders []string     `json:"folders,omitempty"`
}

// maxPushedFolders bounds the folder IDs of one push.
const maxPushedFolders = 10000

type mirrorReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// decodeShareList parses and checks a pushed list. It accepts version 1
// only, at most share.MaxShares entries, each with a short ID of letters
// and digits, a CID, a name a link could carry and a size of -1 or more.
func decodeShareList(b []byte) (shareList, error) {
	var l shareList
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return shareList{}, fmt.Errorf("share list: %w", err)
	}
	if d.More() {
		return shareList{}, errors.New("share list: data after the object")
	}
	if l.Version != 1 {
		return shareList{}, fmt.Errorf("share list: version %d, want 1", l.Version)
	}
	if len(l.Shares) > share.MaxShares {
		return shareList{}, fmt.Errorf("share list: %d shares, at most %d", len(l.Shares), share.MaxShares)
	}
	if len(l.Folders) > maxPushedFolders {
		return shareList{}, fmt.Errorf("share list: %d folders, at most %d", len(l.Folders), maxPushedFolders)
	}
	for _, id := range l.Folders {
		if !validFolderID(id) {
			return shareList{}, fmt.Errorf("share list: bad folder id %q", id)
		}
	}
	seen := make(map[string]bool, len(l.Shares))
	for _, it := range l.Shares {
		if !validMirrorID(it.ID) {
			return shareList{}, fmt.Errorf("share list: bad id %q", it.ID)
		}
		if seen[it.ID] {
			return shareList{}, fmt.Errorf("share list: id %s twice", it.ID)
		}
		seen[it.ID] = true
		if _, err := cid.Parse(it.Root); err != nil {
			return shareList{}, fmt.Errorf("share list: %s: root: %w", it.ID, err)
		}
		if len(it.Name) > share.MaxNameLen || it.Size < -1 {
			return shareList{}, fmt.Errorf("share list: %s: bad name or size", it.ID)
		}
	}
	return l, nil
}

// validFolderID is folder's rule for IDs: 1 to 64 of [a-z0-9-].
func validFolderID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validMirrorID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (it mirrorItem) active(now time.Time) bool {
	return !it.Revoked && (it.Expires.IsZero() || now.Before(it.Expires))
}

// replicaDir is where this server keeps its folder replicas.
func (n *Node) replicaDir() string {
	if d := n.settings.Load().Server.ReplicaDir; d != "" {
		return d
	}
	return filepath.Join(n.home, ReplicaDir)
}

// startServerLocked starts the share push on every online node and, for
// role server, the mirror and replica work. Called by wire with n.mu held,
// after the folders. Its goroutines never take n.mu: Close holds it while
// it waits for them.
func (n *Node) startServerLocked(ctx context.Context) error {
	h, st := n.host, n.store
	lh := h.Libp2p()
	sv := &n.server
	sv.mu.Lock()
	defer sv.mu.Unlock()
	bg, cancel := context.WithCancel(context.Background())
	sv.cancel = cancel
	sv.running = true
	sv.push = make(chan struct{}, 1)
	sv.isServer = n.settings.Load().Role == RoleServer
	sub, err := lh.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("node: start: server: %w", err)
	}
	if sv.isServer {
		sv.work = make(chan struct{}, 1)
		sv.lists = map[peer.ID][]mirrorItem{}
		sv.folders = map[peer.ID][]string{}
		m, err := n.loadMirrors()
		if err != nil {
			sub.Close()
			cancel()
			return fmt.Errorf("node: start: server: %w", err)
		}
		sv.mirrors = m
		sv.mirrored = len(m)
		lh.SetStreamHandler(ShareMirrorProtocol, n.handleShareList)
		sv.wg.Add(1)
		go func() {
			defer sv.wg.Done()
			n.mirrorLoop(bg, st, h)
		}()
		n.log.Info("home server role", "replicas", n.replicaDir(), "relay", true, "gateway", n.settings.Load().gatewayListen() != "")
	}
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		defer sub.Close()
		n.serverEvents(bg, h, sub)
	}()
	return nil
}

// closeServer stops the server part and waits for it. Call before the
// folders and the host close.
func (n *Node) closeServer() {
	sv := &n.server
	sv.mu.Lock()
	if !sv.running {
		sv.mu.Unlock()
		return
	}
	sv.running = false
	cancel := sv.cancel
	isServer := sv.isServer
	sv.mu.Unlock()
	if isServer && n.host != nil {
		if lh := n.host.Libp2p(); lh != nil {
			lh.RemoveStreamHandler(ShareMirrorProtocol)
		}
	}
	cancel()
	sv.wg.Wait()
}

// sharesChanged asks for a push of the share list (with the folder IDs)
// to the servers; called after a share is created or revoked and after a
// folder is added or joined. It never blocks.
func (n *Node) sharesChanged() {
	n.server.mu.Lock()
	defer n.server.mu.Unlock()
	if n.server.running {
		select {
		case n.server.push <- struct{}{}:
		default:
		}
	}
}

// serverEvents drives both sides from identify: a device pushes its
// shares to a server that just identified; a server joins the folders a
// member just announced. A timer is the safety net of both.
func (n *Node) serverEvents(ctx context.Context, h *p2p.Host, sub event.Subscription) {
	lh := h.Libp2p()
	pushed := map[peer.ID][32]byte{} // what each server last acknowledged
	t := time.NewTicker(min(sharePushInterval, replicaScanInterval))
	defer t.Stop()
	n.scanReplicas(ctx, lh.Network().Peers())
	n.pushShares(ctx, h, pushed)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			var p peer.ID
			switch ev := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				p = ev.Peer
				delete(pushed, p) // a new connection: the server may have restarted
			case event.EvtPeerProtocolsUpdated:
				p = ev.Peer
			}
			if !n.members.IsMember(p) {
				continue
			}
			n.scanReplicas(ctx, []peer.ID{p})
			n.pushShares(ctx, h, pushed)
		case <-n.server.push:
			n.pushShares(ctx, h, pushed)
		case <-t.C:
			n.scanReplicas(ctx, lh.Network().Peers())
			n.pushShares(ctx, h, pushed)
		}
	}
}

// --- folder replicas (server side) ---

// scanReplicas joins, receive-only, every folder that one of peers
// serves and this server does not have yet.
func (n *Node) scanReplicas(ctx context.Context, peers []peer.ID) {
	if !n.server.isServer {
		return
	}
	lh := n.host.Libp2p()
	prefix := string(folder.ProtocolID) + "/"
	for _, p := range peers {
		if p == n.id || !n.members.IsMember(p) {
			continue
		}
		protos, err := lh.Peerstore().GetProtocols(p)
		if err != nil {
			continue
		}
		for _, pr := range protos {
			if id, ok := strings.CutPrefix(string(pr), prefix); ok {
				n.joinReplica(ctx, id, p)
			}
		}
	}
}

// joinReplica joins folder id, receive-only, under the replica directory,
// unless this server has it already.
func (n *Node) joinReplica(ctx context.Context, id string, from peer.ID) {
	if n.hasFolder(id) {
		return
	}
	dir := filepath.Join(n.replicaDir(), id)
	if _, err := n.FolderJoin(ctx, api.FolderJoinRequest{ID: id, Path: dir, ReceiveOnly: true}); err != nil {
		n.log.Warn("server: folder replica not started", "folder", id, "from", from, "err", err)
		return
	}
	n.log.Info("server: replicating folder", "folder", id, "from", from, "path", dir)
}

func (n *Node) hasFolder(id string) bool {
	n.folders.mu.Lock()
	defer n.folders.mu.Unlock()
	return slices.ContainsFunc(n.folders.conf, func(c folderConf) bool { return c.ID == id })
}

// --- share push (every device) ---

// ownShareList is this node's share list as pushed: its own shares, not
// the ones it mirrors for others.
func (n *Node) ownShareList() shareList {
	l := shareList{Version: 1, Shares: []mirrorItem{}}
	n.folders.mu.Lock()
	for _, c := range n.folders.conf {
		l.Folders = append(l.Folders, c.ID)
	}
	n.folders.mu.Unlock()
	reg := n.shares.registry()
	if reg == nil {
		return l
	}
	n.server.mu.Lock()
	mirrored := map[string]bool{}
	for _, local := range n.server.mirrors {
		mirrored[local] = true
	}
	n.server.mu.Unlock()
	for _, s := range reg.List() {
		if mirrored[s.ID] {
			continue
		}
		l.Shares = append(l.Shares, mirrorItem{
			ID: s.ID, Root: s.Root.String(), Name: s.Name, Size: s.Size,
			Expires: s.Expires, Revoked: !s.Revoked.IsZero(), Encrypted: s.Encrypted, Unlisted: s.Unlisted,
		})
	}
	return l
}

// pushShares sends the share list to every connected home server of the
// cloud whose last acknowledged list differs.
func (n *Node) pushShares(ctx context.Context, h *p2p.Host, pushed map[peer.ID][32]byte) {
	cs := n.members.state()
	if cs == nil {
		return
	}
	lh := h.Libp2p()
	var servers []peer.ID
	for _, m := range cs.Roster().Live() {
		if m.Role == cloud.RoleServer && m.Peer != n.id && lh.Network().Connectedness(m.Peer) == network.Connected {
			servers = append(servers, m.Peer)
		}
	}
	if len(servers) == 0 {
		return
	}
	b, err := json.Marshal(n.ownShareList())
	if err != nil {
		return
	}
	sum := sha256.Sum256(b)
	for _, p := range servers {
		if last, ok := pushed[p]; ok && last == sum {
			continue
		}
		if err := pushShareList(ctx, lh, p, b); err != nil {
			n.log.Debug("share push failed; retrying later", "server", p, "err", err)
			continue
		}
		pushed[p] = sum
		n.log.Debug("share list pushed", "server", p, "bytes", len(b))
	}
}

type streamOpener interface {
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
}

func pushShareList(ctx context.Context, h streamOpener, p peer.ID, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "share-mirror"), p, ShareMirrorProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if _, err := s.Write(b); err != nil {
		_ = s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return err
	}
	var r mirrorReply
	if err := json.NewDecoder(io.LimitReader(s, 4096)).Decode(&r); err != nil {
		_ = s.Reset()
		return err
	}
	if !r.OK {
		return fmt.Errorf("refused: %s", r.Error)
	}
	return nil
}

// --- share mirrors (server side) ---

// handleShareList takes a member's pushed list and hands it to the
// mirror loop.
func (n *Node) handleShareList(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	reply := func(r mirrorReply) {
		b, _ := json.Marshal(r)
		_, _ = s.Write(b)
	}
	if !n.members.IsMember(p) {
		reply(mirrorReply{Error: "not a member of this cloud"})
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(pushTimeout))
	b, err := io.ReadAll(io.LimitReader(s, maxShareList+1))
	if err == nil && len(b) > maxShareList {
		err = fmt.Errorf("share list longer than %d bytes", maxShareList)
	}
	var l shareList
	if err == nil {
		l, err = decodeShareList(b)
	}
	if err != nil {
		reply(mirrorReply{Error: err.Error()})
		return
	}
	sv := &n.server
	sv.mu.Lock()
	if !sv.running {
		sv.mu.Unlock()
		reply(mirrorReply{Error: "server stopping"})
		return
	}
	sv.lists[p] = l.Shares
	sv.folders[p] = l.Folders
	select {
	case sv.work <- struct{}{}:
	default:
	}
	sv.mu.Unlock()
	reply(mirrorReply{OK: true})
}

// mirrorLoop reconciles the mirrored shares with the members' lists
// whenever a list arrives, and on a timer for expiries and retries.
func (n *Node) mirrorLoop(ctx context.Context, st *blobstore.Store, h *p2p.Host) {
	t := time.NewTicker(sharePushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.server.work:
		case <-t.C:
		}
		n.reconcileMirrors(ctx, st, h)
	}
}

func mirrorKey(p peer.ID, id string) string { return p.String() + "/" + id }

// reconcileMirrors mirrors every active share of the lists not mirrored
// yet, and revokes the mirrors whose share was revoked, expired or
// dropped, or whose owner left the cloud.
func (n *Node) reconcileMirrors(ctx context.Context, st *blobstore.Store, h *p2p.Host) {
	reg := n.shares.registry()
	if reg == nil {
		return
	}
	now := n.now()
	sv := &n.server
	sv.mu.Lock()
	lists := maps.Clone(sv.lists)
	mirrors := maps.Clone(sv.mirrors)
	folders := maps.Clone(sv.folders)
	sv.mu.Unlock()

	for p, ids := range folders {
		if !n.members.IsMember(p) {
			continue
		}
		for _, id := range ids {
			n.joinReplica(ctx, id, p)
		}
	}

	wanted := map[string]bool{} // keys still active at their owner
	changed := false
	for p, items := range lists {
		if !n.members.IsMember(p) {
			continue
		}
		for _, it := range items {
			k := mirrorKey(p, it.ID)
			if !it.active(now) {
				continue
			}
			wanted[k] = true
			if _, ok := mirrors[k]; ok {
				continue
			}
			local, err := n.mirrorShare(ctx, st, h, p, it)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				n.log.Warn("server: share not mirrored; retrying on the next push", "owner", p, "share", it.ID, "root", it.Root, "err", err)
				continue
			}
			mirrors[k] = local
			changed = true
			n.log.Info("server: share mirrored", "owner", p, "share", it.ID, "root", it.Root, "local", local)
		}
	}
	// A mirror is revoked when its owner's latest list says so; owners
	// not heard from since the start keep their mirrors (a sleeping
	// laptop is the point), unless they left the cloud.
	for k, local := range mirrors {
		owner, _, _ := strings.Cut(k, "/")
		p, err := peer.Decode(owner)
		if err != nil {
			continue
		}
		_, heard := lists[p]
		if wanted[k] || (!heard && n.members.IsMember(p)) {
			continue
		}
		if s, err := reg.Get(local); err == nil && s.State(now) == share.StateActive {
			if _, err := reg.Revoke(local); err != nil {
				n.log.Warn("server: mirror not revoked", "local", local, "err", err)
				continue
			}
			n.log.Info("server: mirror revoked", "owner", p, "key", k, "local", local)
		}
	}
	if changed {
		sv.mu.Lock()
		for k, v := range mirrors {
			sv.mirrors[k] = v
		}
		sv.mirrored = len(sv.mirrors)
		m := maps.Clone(sv.mirrors)
		sv.mu.Unlock()
		if err := n.saveMirrors(m); err != nil {
			n.log.Error("server: saving the mirror list failed", "err", err)
		}
	}
}

// mirrorShare fetches the DAG of it from the members (owner first, over
// the DAG stream), pins it and records it as a share of this server.
func (n *Node) mirrorShare(ctx context.Context, st *blobstore.Store, h *p2p.Host, owner peer.ID, it mirrorItem) (string, error) {
	root, err := cid.Parse(it.Root)
	if err != nil {
		return "", err
	}
	reg := n.shares.registry()
	if reg == nil {
		return "", errors.New("share registry is not open")
	}
	ctx, cancel := context.WithTimeout(ctx, mirrorTimeout)
	defer cancel()
	n.gcMu.RLock()
	defer n.gcMu.RUnlock()
	if err := putEmpty(ctx, st); err != nil {
		return "", err
	}
	if bw, err := st.NewBlockWriter(ctx); err == nil {
		_, ferr := h.FetchDAG(ctx, owner, root, bw)
		if cerr := bw.Commit(); ferr == nil && cerr != nil {
			n.log.Debug("server: mirror fast fetch commit failed", "root", root, "err", cerr)
		}
	}
	// Completes (or checks) the DAG over bitswap from any member.
	if err := n.fetchWatched(ctx, blobstore.NewDAG(st, h.Exchange()), root, nil); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if err := st.Pin(ctx, root, true); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	rec := share.Share{Root: root, Name: it.Name, Size: it.Size, Expires: it.Expires, Encrypted: it.Encrypted, Unlisted: it.Unlisted}
	if checkLinkName(rec.Name) != nil {
		rec.Name = ""
	}
	s, err := reg.Create(ctx, rec)
	if err != nil {
		return "", err
	}
	if !s.Unlisted {
		n.server.wg.Add(1)
		go func() {
			defer n.server.wg.Done()
			pctx, cancel := context.WithTimeout(ctx, shareProvideTimeout)
			defer cancel()
			_ = h.Provide(pctx, root) // best effort: the local profile has no DHT
		}()
	}
	return s.ID, nil
}

func (n *Node) mirrorsFile() string { return filepath.Join(n.home, serverDir, "mirrors.json") }

func (n *Node) loadMirrors() (map[string]string, error) {
	b, err := os.ReadFile(n.mirrorsFile())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", n.mirrorsFile(), err)
	}
	return m, nil
}

func (n *Node) saveMirrors(m map[string]string) error {
	if err := os.MkdirAll(filepath.Join(n.home, serverDir), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(n.mirrorsFile(), append(b, '\n'), 0o600)
}

// serverHints are the provider hints of the cloud's home servers for a
// share link: a server keeps the share available when this device
// sleeps. At most max, each ending in /p2p/<server>.
func (n *Node) serverHints(max int) []multiaddr.Multiaddr {
	h := n.Host()
	if h == nil || max <= 0 {
		return nil
	}
	var out []multiaddr.Multiaddr
	for _, ai := range n.members.servers(h, n.id) {
		as, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			continue
		}
		// Direct addresses only: a relayed address of a server relays
		// through itself.
		for _, a := range as {
			if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
				continue
			}
			if n.settings.Load().Profile == ProfileLocal && !loopbackOnlyAddr(a) {
				continue
			}
			out = append(out, a)
			if len(out) == max {
				return out
			}
			break // one address per server leaves room for the others
		}
	}
	return out
}

// loopbackOnlyAddr reports whether a is an IP address on loopback.
func loopbackOnlyAddr(a multiaddr.Multiaddr) bool {
	for _, code := range []int{multiaddr.P_IP4, multiaddr.P_IP6} {
		if v, err := a.ValueForProtocol(code); err == nil {
			return strings.HasPrefix(v, "127.") || v == "::1"
		}
	}
	return false
}

// serverStats reports, for metrics, whether the server part runs, how
// many shares it mirrors (revoked ones included) and how many folders it
// replicates under its replica directory.
func (n *Node) serverStats() (isServer bool, mirrored, replicas int) {
	n.server.mu.Lock()
	isServer, mirrored = n.server.isServer && n.server.running, n.server.mirrored
	n.server.mu.Unlock()
	if !isServer {
		return false, 0, 0
	}
	dir := n.replicaDir()
	n.folders.mu.Lock()
	for _, c := range n.folders.conf {
		if c.ReceiveOnly && within(c.Path, dir) {
			replicas++
		}
	}
	n.folders.mu.Unlock()
	return isServer, mirrored, replicas
}

// receiveOnlyRescan is the safety-net rescan period of a receive-only
// folder (a home server's replicas): folder.DefaultRescanInterval is for
// folders whose local changes must reach the others within a minute.
const receiveOnlyRescan = 10 * time.Minute

// replicaRescan is folder.Config.RescanInterval for a folder.
func replicaRescan(receiveOnly bool) time.Duration {
	if receiveOnly {
		return receiveOnlyRescan
	}
	return 0 // folder.DefaultRescanInterval
}
