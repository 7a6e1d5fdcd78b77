// Package p2p runs the device's libp2p host: transports (TCP, QUIC),
// security (TLS, Noise), the resource and connection managers, the dial
// policy of a profile, and bitswap over a block store handed in by the
// caller.
//
// It owns: the host's lifecycle, its addresses, connecting to peers, and
// exchanging blocks by CID.
//
// It also finds the person's other devices (siblings) and keeps them
// connected: a Kademlia DHT, a daily rendezvous key derived from the cloud
// secret, mDNS, DNS and remembered addresses all feed one pipeline that
// dials a found peer only if it is a member; AutoNAT v2, port mapping, hole
// punching and circuit relay v2 (served to members only) connect siblings
// behind NAT. Siblings reports, per sibling, how it was found and which
// path is in use. docs/DISCOVERY.md has the sources, timers and policies.
//
// It leaves to others: where blocks are stored (any boxo blockstore will
// do), who is a member of the cloud (the caller hands in Config.Members,
// Config.Revoked and the secret), where DNS addresses come from
// (Config.DNSAddrs), and UnixFS. It imports none of pcnode's packages.
//
// # Using a Host
//
// A Host is made in two steps. New checks the Config and allocates; it
// opens no socket. Start listens, starts bitswap and returns when the host
// accepts connections:
//
//	h, err := p2p.New(p2p.Config{Key: key, Blockstore: bs, Profile: p2p.ProfileLocal})
//	if err != nil { ... }
//	if err := h.Start(ctx); err != nil { ... }
//	defer h.Close()
//	fmt.Println(h.Addrs()) // [/ip4/127.0.0.1/tcp/41231/p2p/12D3Koo... ...]
//
// Another host dials one of those addresses with Connect, and then fetches
// blocks by CID: through Exchange (bitswap itself, which stores nothing) or
// through BlockService (which stores what it fetches in the blockstore, so
// the host then serves it to others). A merkledag over BlockService fetches
// whole UnixFS trees.
//
// # Profiles
//
// ProfileDefault is for real use: port 4001 on every interface, NAT port
// mapping, AutoNAT v2, hole punching, mDNS, the public Amino DHT and its
// bootstrap peers. ProfileLocal is for tests and demos: loopback only, and
// a dial policy enforced in three places (Connect, the connection gater,
// and a DNS resolver that resolves nothing) so that no address learned from
// a peer can make the host dial or look up anything off the machine. Its
// DHT serves among loopback peers; mDNS, AutoNAT, hole punching and port
// mapping are off; circuits are allowed only through a relay at a loopback
// address. ProfileLAN is for the network-namespace testbed: the
// documentation ranges and loopback only, mDNS, a private DHT, relays, and
// hole punching from observed addresses (path.go), no port mapping or
// AutoNAT.
//
// # Finding siblings
//
// With Config.Members, Config.RendezvousSecret and (in tests) a private
// Config.DHTPrefix, a started host looks for its siblings by itself:
//
//	h, err := p2p.New(p2p.Config{
//		Key: key, Blockstore: bs,
//		Members:          roster,       // IsMember(peer.ID) bool
//		Revoked:          roster.IsRevoked,
//		RendezvousSecret: cloudSecret,
//		DNSAddrs:         dnsaddrLookup, // optional
//		PeerStoreFile:    filepath.Join(home, "peers.json"),
//	})
//	...
//	for _, s := range h.Siblings() {
//		fmt.Println(s.ID, s.Sources, s.Path, s.Latency)
//	}
//
// # Limits
//
// The resource manager uses libp2p's default limits scaled to the machine
// (1/8 of RAM, half the file descriptors); the connection manager keeps
// between DefaultConnLow and DefaultConnHigh connections. See limits.go and
// bitswap.go for the figures and the reasons.
package p2p
