// Package p2p runs the device's libp2p host: transports (TCP, QUIC),
// security (Noise, TLS), the resource and connection managers, the dial
// policy of a profile, and bitswap over a block store handed in by the
// caller.
//
// It owns: the host's lifecycle, its addresses, connecting to peers, and
// exchanging blocks by CID.
//
// It leaves to others: where blocks are stored (any boxo blockstore will
// do), who is a member of the cloud (later issues hand in a gater), and
// UnixFS. It imports none of pcnode's packages.
package p2p
