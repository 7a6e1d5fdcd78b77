// Package blobstore keeps blocks by CID on an embedded store in the node's
// home and turns files and directory trees into UnixFS DAGs and back.
//
// It owns: the boxo-compatible block store (pebble on disk, or in memory),
// durable writes, UnixFS import and export, recursive and direct pins,
// mark-and-sweep garbage collection and verification (re-hashing every
// block, quarantining corrupt ones).
//
// It leaves to others: fetching blocks from the network (p2p hands it an
// exchange), deciding what to pin (node), and everything about peers.
// It imports none of pcnode's packages.
package blobstore
