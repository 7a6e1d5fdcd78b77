package p2p

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func TestRemember(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	a := peer.AddrInfo{ID: newPeerID(t), Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")}}
	b := peer.AddrInfo{ID: newPeerID(t), Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/2")}}
	now := time.Unix(1_800_000_000, 0)
	if err := Remember(path, now, a); err != nil {
		t.Fatal(err)
	}
	// A second call keeps a, adds b, and puts a's new address first.
	a2 := peer.AddrInfo{ID: a.ID, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/3")}}
	if err := Remember(path, now.Add(time.Minute), b, a2); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePeerFile(data)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[peer.ID][]string{}
	for _, ai := range got {
		for _, m := range ai.Addrs {
			byID[ai.ID] = append(byID[ai.ID], m.String())
		}
	}
	if want := []string{"/ip4/127.0.0.1/tcp/3", "/ip4/127.0.0.1/tcp/1"}; !slices.Equal(byID[a.ID], want) {
		t.Errorf("a's addresses %q, want %q", byID[a.ID], want)
	}
	if want := []string{"/ip4/127.0.0.1/tcp/2"}; !slices.Equal(byID[b.ID], want) {
		t.Errorf("b's addresses %q, want %q", byID[b.ID], want)
	}
	// A corrupt file is replaced, not an error.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remember(path, now, b); err != nil {
		t.Fatalf("remember over a corrupt file: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("peer file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRememberLateMember: a peer that connected before it was a member
// (a device joining through this host) is remembered at Close all the
// same, so a restart finds it.
func TestRememberLateMember(t *testing.T) {
	file := filepath.Join(t.TempDir(), "peers.json")
	a, b := localConfig(t), localConfig(t)
	a.ListenAddrs, b.ListenAddrs = tcpLoopback, tcpLoopback
	a.DHT, b.DHT = DHTOff, DHTOff
	idA, _ := peer.IDFromPrivateKey(a.Key)
	idB, _ := peer.IDFromPrivateKey(b.Key)
	members := newMemberSet(idA)
	a.Members, b.Members = members, newMemberSet(idA, idB)
	a.PeerStoreFile = file
	ha, hb := startHost(t, a), startHost(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hb.Connect(ctx, ha.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	// Close remembers what identify told a about b; wait until it has
	// (Connect returns when b's side is up, a's may still be identifying).
	waitFor(t, "a learns b's listen addresses", func() bool {
		lh, _ := ha.runningCtx()
		return lh != nil && len(lh.Peerstore().Addrs(idB)) > 0
	})
	members.add(idB) // b joins while connected
	if err := ha.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePeerFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(ai peer.AddrInfo) bool { return ai.ID == idB && len(ai.Addrs) > 0 }) {
		t.Errorf("peer file %s does not remember b, a member connected since before it joined", data)
	}
}
