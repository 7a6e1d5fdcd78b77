// Package node is pcnode's composition root: it owns the node's home
// directory (device key, config.toml, API token, data, cloud, DNS key,
// lock), the two profiles, and the one function (wire) that joins the
// block store, the cloud (node/cloud), the libp2p host with the cloud's
// membership hooks, the authoritative DNS zone (dnslink) and the API.
//
// Init creates a home and, unless told not to, a new cloud with this
// device as its only member; Join makes a home without a cloud join one
// with an invite code.
//
// A node is used in three steps:
//
//	n, err := node.New(node.Config{Home: home})
//	if err != nil { ... }
//	if err := n.Start(ctx); err != nil { ... } // returns when ready
//	defer n.Close()
//
// Commands that make sense without a daemon open the same home offline
// (see Config.Offline) and get the same methods without networking: the
// cloud and its devices are read from the roster on disk, revoke and
// rename sign a new roster that travels when the daemon next runs.
package node
