package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Bounds of Config.PeerStoreFile. A cloud has a handful of devices; the
// bounds keep a corrupt or hostile file from costing more than a moment.
const (
	peerFileMaxBytes = 1 << 20 // larger files are refused, not read
	peerFileMaxPeers = 256     // most recently seen first
	peerFileMaxAddrs = 16      // per peer

	// peerFileSaveEvery spaces writes of the file: a burst of connections
	// costs one write.
	peerFileSaveEvery = time.Second

	peerFileVersion = 1
)

// peerFile is the JSON layout of Config.PeerStoreFile.
type peerFile struct {
	Version int              `json:"version"`
	Peers   []rememberedPeer `json:"peers"`
}

type rememberedPeer struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`
	LastSeen time.Time `json:"last_seen"`
}

// errPeerFile is wrapped by decodePeerFile's errors.
var errPeerFile = errors.New("bad peer store file")

// decodePeerFile parses a peer store file. Entries with a bad peer ID are
// skipped, as are bad addresses; the bounds are applied.
func decodePeerFile(data []byte) ([]peer.AddrInfo, error) {
	if len(data) > peerFileMaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errPeerFile, len(data), peerFileMaxBytes)
	}
	var f peerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", errPeerFile, err)
	}
	if f.Version != peerFileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errPeerFile, f.Version, peerFileVersion)
	}
	var out []peer.AddrInfo
	seen := map[peer.ID]bool{}
	for _, rp := range f.Peers {
		if len(out) == peerFileMaxPeers {
			break
		}
		id, err := peer.Decode(rp.ID)
		if err != nil || seen[id] {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range rp.Addrs {
			if len(ai.Addrs) == peerFileMaxAddrs {
				break
			}
			a, err := multiaddr.NewMultiaddr(s)
			if err != nil {
				continue
			}
			ai.Addrs = append(ai.Addrs, a)
		}
		seen[id] = true
		out = append(out, ai)
	}
	return out, nil
}

// encodePeerFile lays out peers, most recently seen first, within bounds.
func encodePeerFile(peers []rememberedPeer) ([]byte, error) {
	slices.SortFunc(peers, func(a, b rememberedPeer) int { return b.LastSeen.Compare(a.LastSeen) })
	if len(peers) > peerFileMaxPeers {
		peers = peers[:peerFileMaxPeers]
	}
	for i := range peers {
		if len(peers[i].Addrs) > peerFileMaxAddrs {
			peers[i].Addrs = peers[i].Addrs[:peerFileMaxAddrs]
		}
	}
	return json.MarshalIndent(peerFile{Version: peerFileVersion, Peers: peers}, "", "  ")
}

// loadPeerFile reads Config.PeerStoreFile; a missing file is no error.
func (h *Host) loadPeerFile() ([]peer.AddrInfo, error) {
	f, err := os.Open(h.s.peerFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, peerFileMaxBytes+1))
	if err != nil {
		return nil, err
	}
	return decodePeerFile(data)
}

// savePeerFile writes the members' last-known addresses atomically: a
// temporary file in the same directory, synced, renamed over the old one.
func (h *Host) savePeerFile(lh host.Host) error {
	var peers []rememberedPeer
	h.disc.mu.Lock()
	for id, r := range h.disc.siblings {
		if !h.isMember(id) {
			continue
		}
		rp := rememberedPeer{ID: id.String(), LastSeen: r.lastSeen.UTC()}
		if lh.Network().Connectedness(id) == network.Connected {
			rp.LastSeen = h.s.now().UTC()
		}
		// Addresses the peer itself reported (identify) first, then the
		// ones the sources gave.
		for _, a := range append(lh.Peerstore().Addrs(id), r.addrs...) {
			if s := a.String(); !slices.Contains(rp.Addrs, s) {
				rp.Addrs = append(rp.Addrs, s)
			}
		}
		if len(rp.Addrs) > 0 {
			peers = append(peers, rp)
		}
	}
	// A peer that became a member while already connected (it joined
	// through this host, or a roster naming it arrived later) has no
	// sibling record yet: remember it from the connection too, or a
	// restart would forget a device that is online right now.
	for _, id := range lh.Network().Peers() {
		if _, ok := h.disc.siblings[id]; ok || !h.isMember(id) {
			continue
		}
		rp := rememberedPeer{ID: id.String(), LastSeen: h.s.now().UTC()}
		for _, a := range lh.Peerstore().Addrs(id) {
			rp.Addrs = append(rp.Addrs, a.String())
		}
		if len(rp.Addrs) > 0 {
			peers = append(peers, rp)
		}
	}
	h.disc.mu.Unlock()
	data, err := encodePeerFile(peers)
	if err != nil {
		return err
	}
	return writeFileAtomic(h.s.peerFile, data)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// requestSave asks the saver to write the peer file soon.
func (h *Host) requestSave() {
	if h.s.peerFile == "" {
		return
	}
	select {
	case h.disc.saveReq <- struct{}{}:
	default:
	}
}

// saver writes the peer file when asked, at most once per
// peerFileSaveEvery, and once more when ctx ends.
func (h *Host) saver(ctx context.Context) {
	save := func() {
		lh := h.running()
		if lh == nil {
			return
		}
		if err := h.savePeerFile(lh); err != nil {
			h.s.log.Warn("p2p save peer store", "file", h.s.peerFile, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.disc.saveReq:
		}
		save()
		t := time.NewTimer(peerFileSaveEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dialRemembered hands the remembered peers to the pipeline.
func (h *Host) dialRemembered() {
	peers, err := h.loadPeerFile()
	if err != nil {
		h.s.log.Warn("p2p load peer store", "file", h.s.peerFile, "err", err)
		return
	}
	for _, ai := range peers {
		h.found(SourceRemembered, ai)
	}
}

// Remember adds peers to the peer store file at path (what
// Config.PeerStoreFile names), so that a host started later with that file
// dials them as remembered siblings, if they are members by then. A device
// that joins its cloud without a daemon records its inviter this way, and
// its first daemon finds the inviter with no other source. Entries already
// in the file are kept (a peer given again gets the new addresses first);
// an unreadable file is replaced. The write is atomic.
func Remember(path string, now time.Time, peers ...peer.AddrInfo) error {
	var f peerFile
	if data, err := os.ReadFile(path); err == nil && len(data) <= peerFileMaxBytes {
		if json.Unmarshal(data, &f) != nil || f.Version != peerFileVersion {
			f = peerFile{}
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("p2p: remember peers in %s: %w", path, err)
	}
	for _, ai := range peers {
		rp := rememberedPeer{ID: ai.ID.String(), LastSeen: now.UTC()}
		for _, a := range ai.Addrs {
			rp.Addrs = append(rp.Addrs, a.String())
		}
		i := slices.IndexFunc(f.Peers, func(p rememberedPeer) bool { return p.ID == rp.ID })
		if i >= 0 {
			for _, s := range f.Peers[i].Addrs {
				if !slices.Contains(rp.Addrs, s) {
					rp.Addrs = append(rp.Addrs, s)
				}
			}
			f.Peers[i] = rp
		} else {
			f.Peers = append(f.Peers, rp)
		}
	}
	data, err := encodePeerFile(f.Peers)
	if err != nil {
		return fmt.Errorf("p2p: remember peers in %s: %w", path, err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("p2p: remember peers in %s: %w", path, err)
	}
	return nil
}
