package p2p

import (
	"context"
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/multiformats/go-multiaddr"
)

// mdnsServiceName is pcnode's own mDNS service, so that a LAN full of IPFS
// nodes (which use _p2p._udp) does not flood the pipeline with strangers.
const mdnsServiceName = "_pcnode._udp"

// startDiscovery starts the DHT, the relay service, the discovery sources
// and the candidate pipeline on a freshly made libp2p host. On error the
// caller stops what was started.
func (h *Host) startDiscovery(ctx context.Context, lh host.Host) error {
	lh.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { h.connected(lh, c) },
	})
	h.live.Store(&liveHost{h: lh, ctx: ctx})
	// libp2p accepts connections from libp2p.New on; a sibling that
	// connected before the notifiee above was registered (a server
	// starting while its devices keep dialling it) would otherwise never
	// be recorded. Recording twice is harmless.
	for _, c := range lh.Network().Conns() {
		h.connected(lh, c)
	}

	if h.s.dht != DHTOff {
		mode := dht.ModeAuto
		switch h.s.dht {
		case DHTServer:
			mode = dht.ModeServer
		case DHTClient:
			mode = dht.ModeClient
		}
		d, err := dht.New(lh,
			dht.ProtocolPrefix(h.s.dhtPrefix),
			dht.Mode(mode),
			dht.BootstrapPeers(h.s.bootstrap...),
		)
		if err != nil {
			return fmt.Errorf("dht: %w", err)
		}
		h.dht = d
	}

	if h.s.relayService {
		// Members only (the ACL), in both profiles and from the start:
		// the relay's own addresses it hands to a member in a
		// reservation are loopback ones in ProfileLocal, and every
		// address it has otherwise (members are trusted with them, and
		// a home LAN or test network is not "public").
		filter := func(multiaddr.Multiaddr) bool { return true }
		if h.s.profile == ProfileLocal {
			filter = loopbackOnly
		}
		if h.s.profile == ProfileLAN {
			filter = lanDialable
		}
		r, err := relayv2.New(lh,
			relayv2.WithACL(memberACL{h}),
			relayv2.WithReservationAddressFilter(filter),
			relayv2.WithResources(memberRelayResources()),
		)
		if err != nil {
			return fmt.Errorf("relay service: %w", err)
		}
		h.relay = r
	}

	if err := h.startPath(ctx, lh); err != nil {
		return err
	}

	if h.s.mdns {
		m := mdns.NewMdnsService(lh, mdnsServiceName, mdnsNotifee{h})
		if err := m.Start(); err != nil {
			return fmt.Errorf("mdns: %w", err)
		}
		h.mdns = m
	}

	h.goBackground(ctx, func(ctx context.Context) {
		if len(h.s.bootstrap) > 0 {
			h.bootstrap(ctx)
		}
	})
	h.goBackground(ctx, h.pinger)
	if h.s.peerFile != "" {
		h.goBackground(ctx, func(context.Context) { h.dialRemembered() })
		h.goBackground(ctx, h.saver)
	}
	if h.dht != nil {
		// Runs without a secret too, waiting for SetRendezvousSecret.
		h.goBackground(ctx, func(ctx context.Context) { h.rendezvous(ctx, h.dht) })
	}
	if h.s.dnsAddrs != nil {
		h.goBackground(ctx, h.pollDNS)
	}
	h.goBackground(ctx, h.reconnect)
	if h.s.staticRelays != nil && !h.s.relayService && h.s.profile != ProfileLocal {
		h.goBackground(ctx, func(ctx context.Context) { h.reserveWithServers(ctx, lh) })
	}
	return nil
}

func (h *Host) goBackground(ctx context.Context, f func(context.Context)) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f(ctx)
	}()
}

// dialFailed records a failed dial to a sibling for Sibling.WhyNotDirect.
func (h *Host) dialFailed(p peer.ID, err error) {
	h.disc.mu.Lock()
	defer h.disc.mu.Unlock()
	if r, ok := h.disc.siblings[p]; ok {
		r.lastErr = err.Error()
	}
}

// memberACL limits the relay service to members: a member may reserve a
// slot, and a member may reach another member through it.
type memberACL struct{ h *Host }

var _ relayv2.ACLFilter = memberACL{}

func (a memberACL) AllowReserve(p peer.ID, _ multiaddr.Multiaddr) bool {
	return a.h.isMember(p)
}

func (a memberACL) AllowConnect(src peer.ID, _ multiaddr.Multiaddr, dest peer.ID) bool {
	return a.h.isMember(src) && a.h.isMember(dest)
}

// relaySource feeds Config.StaticRelays to autorelay.
func (h *Host) relaySource(ctx context.Context, num int) <-chan peer.AddrInfo {
	relays := h.s.staticRelays()
	ch := make(chan peer.AddrInfo, len(relays))
	for _, r := range relays {
		if len(ch) == num {
			break
		}
		if r.ID != h.ID() {
			ch <- r
		}
	}
	close(ch)
	return ch
}
