package p2p

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func TestLANPolicy(t *testing.T) {
	const relay = "12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYn39Qdm3Pt"
	tests := []struct {
		addr             string
		dialable, listen bool
	}{
		{"/ip4/192.0.2.7/tcp/4001", true, true},
		{"/ip4/198.51.100.2/udp/4001/quic-v1", true, true},
		{"/ip4/203.0.113.3/tcp/4001/p2p/" + relay, true, true},
		{"/ip4/127.0.0.1/tcp/5", true, true},
		{"/ip4/0.0.0.0/tcp/4001", false, true},
		{"/ip6/::/udp/4001/quic-v1", false, true},
		{"/ip4/203.0.113.3/tcp/4001/p2p/" + relay + "/p2p-circuit", true, false},
		{"/ip4/203.0.113.3/tcp/4001/p2p/" + relay + "/p2p-circuit/p2p/" + relay, true, false},
		{"/ip4/8.8.8.8/tcp/4001/p2p/" + relay + "/p2p-circuit", false, false},
		{"/ip4/8.8.8.8/tcp/4001", false, false},
		{"/ip4/10.0.0.1/tcp/4001", false, false},
		{"/ip4/192.168.1.2/udp/4001/quic-v1", false, false},
		{"/ip4/192.0.3.1/tcp/1", false, false},
		{"/dns4/example.org/tcp/4001", false, false},
		{"/ip6/2001:db8::1/tcp/4001", false, false},
	}
	for _, tt := range tests {
		a := multiaddr.StringCast(tt.addr)
		if got := lanDialable(a); got != tt.dialable {
			t.Errorf("lanDialable(%s) = %v, want %v", a, got, tt.dialable)
		}
		if got := lanListenable(a); got != tt.listen {
			t.Errorf("lanListenable(%s) = %v, want %v", a, got, tt.listen)
		}
	}
}

func TestNATClassification(t *testing.T) {
	ma := multiaddr.StringCast
	own := []multiaddr.Multiaddr{ma("/ip4/192.0.2.2/tcp/4001"), ma("/ip4/192.0.2.2/udp/4001/quic-v1")}
	local := ma("/ip4/192.0.2.2/tcp/4001")
	now := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	type obs struct{ addr, local, remote string }
	tests := []struct {
		name  string
		obs   []obs
		want  string
		punch []string
	}{
		{name: "nothing observed", want: ""},
		{name: "same LAN", obs: []obs{{"/ip4/192.0.2.2/tcp/4001", local.String(), "/ip4/192.0.2.3/tcp/4001"}}, want: NATNone},
		{name: "port preserved", obs: []obs{
			{"/ip4/203.0.113.2/tcp/4001", local.String(), "/ip4/203.0.113.3/tcp/4001"},
			{"/ip4/203.0.113.2/tcp/4001", local.String(), "/ip4/203.0.113.9/tcp/4001"},
		}, want: NATPreserved, punch: []string{"/ip4/203.0.113.2/tcp/4001"}},
		{name: "port changed", obs: []obs{
			{"/ip4/203.0.113.2/tcp/33012", local.String(), "/ip4/203.0.113.3/tcp/4001"},
		}, want: NATSymmetric, punch: []string{"/ip4/203.0.113.2/tcp/33012"}},
		{name: "two ports for one socket", obs: []obs{
			{"/ip4/203.0.113.2/udp/5000/quic-v1", "/ip4/192.0.2.2/udp/5000/quic-v1", "/ip4/203.0.113.3/udp/4001/quic-v1"},
			{"/ip4/203.0.113.2/udp/5001/quic-v1", "/ip4/192.0.2.2/udp/5000/quic-v1", "/ip4/203.0.113.4/udp/4001/quic-v1"},
		}, want: NATSymmetric, punch: []string{"/ip4/203.0.113.2/udp/5000/quic-v1", "/ip4/203.0.113.2/udp/5001/quic-v1"}},
		{name: "relayed and loopback say nothing", obs: []obs{
			{"/ip4/127.0.0.1/tcp/4001", local.String(), "/ip4/127.0.0.1/tcp/9"},
			{"/ip4/203.0.113.2/tcp/4001", local.String(), "/ip4/203.0.113.3/tcp/4001/p2p/12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYn39Qdm3Pt/p2p-circuit"},
		}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newPathState()
			for _, o := range tt.obs {
				ps.observe(ma(o.addr), ma(o.local), ma(o.remote), now)
			}
			n := ps.nat(own, now)
			if n.Mapping != tt.want {
				t.Errorf("mapping %q (%s), want %q", n.Mapping, n.Evidence, tt.want)
			}
			var punch []string
			for _, a := range ps.punchAddrs(own, now, lanDirect) {
				punch = append(punch, a.String())
			}
			if !cmp.Equal(punch, tt.punch) {
				t.Errorf("punch addrs %v, want %v", punch, tt.punch)
			}
			if got := ps.punchAddrs(own, now.Add(observedTTL+time.Second), lanDirect); len(got) != 0 {
				t.Errorf("punch addrs after the TTL: %v", got)
			}
		})
	}
}

func TestAdvertisedCircuits(t *testing.T) {
	relay, err := peer.Decode("12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYn39Qdm3Pt")
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{s: settings{profile: ProfileLAN}, path: newPathState()}
	in := []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/192.0.2.2/tcp/4001"), multiaddr.StringCast("/ip4/10.1.1.1/tcp/4001"), multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")}
	h.path.setRelayAddrs(relay, []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/203.0.113.3/tcp/4001"), multiaddr.StringCast("/ip4/203.0.113.3/udp/4001/quic-v1/p2p/" + relay.String())})
	var got []string
	for _, a := range h.advertised(in) {
		got = append(got, a.String())
	}
	want := []string{
		"/ip4/192.0.2.2/tcp/4001",
		"/ip4/203.0.113.3/tcp/4001/p2p/" + relay.String() + "/p2p-circuit",
		"/ip4/203.0.113.3/udp/4001/quic-v1/p2p/" + relay.String() + "/p2p-circuit",
	}
	if !cmp.Equal(got, want) {
		t.Errorf("advertised %v, want %v", got, want)
	}
	h.path.setRelayAddrs(relay, nil)
	if got := h.advertised(in); len(got) != 1 {
		t.Errorf("after the reservation is gone: %v", got)
	}
}

// TestLateMemberFromEarlierReport: a source reports a peer before the
// roster names it (mDNS is fast, roster gossip slower); once it becomes a
// member, the host dials it without waiting for the source to report it
// again.
func TestLateMemberFromEarlierReport(t *testing.T) {
	ac, bc := localConfig(t), localConfig(t)
	ac.DHT, bc.DHT = DHTOff, DHTOff
	ida, idb := peerOf(t, ac), peerOf(t, bc)
	am := newMemberSet(ida)
	ac.Members = am
	bc.Members = newMemberSet(ida, idb)
	a, b := startHost(t, ac), startHost(t, bc)
	a.found(SourceMDNS, peer.AddrInfo{ID: idb, Addrs: b.Libp2p().Addrs()})
	if connectedTo(a, idb) {
		t.Fatal("dialled a peer that is not a member")
	}
	am.add(idb)
	waitFor(t, "a dials b once b is a member", func() bool { return connectedTo(a, idb) })
	for _, s := range a.Siblings() {
		if s.ID == idb && !slices.Contains(s.Sources, SourceMDNS) {
			t.Errorf("b found by %v, want mdns", s.Sources)
		}
	}
}

// TestLANConnectRefuses: a ProfileLAN host refuses, before any socket,
// an address outside loopback and the documentation ranges.
func TestLANConnectRefuses(t *testing.T) {
	cfg := localConfig(t)
	cfg.Profile = ProfileLAN
	cfg.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")}
	cfg.DHT = DHTOff
	cfg.MDNS = ToggleOff
	h := startHost(t, cfg)
	const id = "12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYn39Qdm3Pt"
	for _, a := range []string{"/ip4/8.8.8.8/tcp/4001/p2p/" + id, "/ip4/10.0.0.1/udp/4001/quic-v1/p2p/" + id, "/dns4/example.org/tcp/4001/p2p/" + id} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := h.Connect(ctx, multiaddr.StringCast(a))
		cancel()
		if !errors.Is(err, ErrRefused) {
			t.Errorf("Connect(%s) = %v, want ErrRefused", a, err)
		}
	}
	for _, a := range h.Addrs() {
		if manet.IsIPLoopback(a) {
			t.Errorf("advertises loopback address %s", a)
		}
	}
}
