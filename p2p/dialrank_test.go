package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"
)

func TestDialRankerOrder(t *testing.T) {
	addrs := []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001"),
		multiaddr.StringCast("/ip4/203.0.113.7/udp/4001/quic-v1"),
		multiaddr.StringCast("/ip4/203.0.113.7/tcp/4001"),
	}
	delay := map[string]time.Duration{}
	for _, ad := range dialRanker(addrs) {
		delay[ad.Addr.String()] = ad.Delay
	}
	if len(delay) != len(addrs) {
		t.Fatalf("ranked %d addresses, want %d: %v", len(delay), len(addrs), delay)
	}
	if tcp, quic := delay["/ip4/127.0.0.1/tcp/4001"], delay["/ip4/127.0.0.1/udp/4001/quic-v1"]; tcp != 0 || quic <= tcp {
		t.Errorf("loopback: tcp after %v, quic after %v; want tcp at once, quic later", tcp, quic)
	}
	// Public addresses keep libp2p's order: QUIC first.
	if tcp, quic := delay["/ip4/203.0.113.7/tcp/4001"], delay["/ip4/203.0.113.7/udp/4001/quic-v1"]; quic >= tcp {
		t.Errorf("public: tcp after %v, quic after %v; want quic first", tcp, quic)
	}
}

// TestDialPrefersTCPOnLoopback: a host listening on TCP and QUIC is
// reached over TCP when the dialer knows both addresses.
func TestDialPrefersTCPOnLoopback(t *testing.T) {
	a, b := startHost(t, localConfig(t)), startHost(t, localConfig(t))
	lb := b.Libp2p()
	la := a.Libp2p()
	la.Peerstore().AddAddrs(lb.ID(), lb.Addrs(), peerstore.TempAddrTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := la.Connect(ctx, peer.AddrInfo{ID: lb.ID()}); err != nil {
		t.Fatal(err)
	}
	conns := la.Network().ConnsToPeer(lb.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	for _, c := range conns {
		if !isTCPAddr(c.RemoteMultiaddr()) {
			t.Errorf("connected over %s, want TCP (b listens on %v)", c.RemoteMultiaddr(), lb.Addrs())
		}
	}
}
