// Package node is pcnode's composition root: it owns the node's home
// directory (device key, config.toml, API token, data, lock), the two
// profiles, and the one function that wires the block store, the libp2p
// host and the API together.
//
// A node is used in three steps:
//
//	n, err := node.New(node.Config{Home: home})
//	if err != nil { ... }
//	if err := n.Start(ctx); err != nil { ... } // returns when ready
//	defer n.Close()
//
// Commands that make sense without a daemon open the same home offline
// (see Config.Offline) and get the same methods without networking.
package node
