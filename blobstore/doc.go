// Package blobstore keeps blocks by CID on an embedded store in the node's
// home and turns files and directory trees into UnixFS DAGs and back.
//
// It owns: the boxo-compatible block store (pebble for small blocks and
// one file per large block on disk, or memory), durable writes, UnixFS
// import and export, recursive and direct pins, mark-and-sweep garbage
// collection and verification (re-hashing every block, quarantining
// corrupt ones).
//
// It leaves to others: fetching blocks from the network (p2p hands it an
// exchange), deciding what to pin (node), and everything about peers.
// It imports none of pcnode's packages.
//
// # Use
//
// Open a Store on a directory (Config{} alone gives an in-memory store):
//
//	s, err := blobstore.Open(ctx, blobstore.Config{Dir: home + "/blocks"})
//	defer s.Close()
//
// Import a file or a tree; the result is durable when Import returns.
// Pin it before the next GC, or GC collects it:
//
//	res, err := s.Import(ctx, path, blobstore.ImportOptions{})
//	err = s.Pin(ctx, res.Root, true)
//
// Read through a DAGService. With an exchange (bitswap) missing blocks are
// fetched; Fetch brings a whole DAG in, many blocks at a time:
//
//	dag := blobstore.NewDAG(s, exchange) // exchange may be nil: offline
//	err = blobstore.Fetch(ctx, dag, root, progress)
//	r, err := blobstore.Cat(ctx, dag, root)        // a file
//	ents, err := blobstore.Ls(ctx, dag, root)      // a directory
//	n, err := blobstore.Export(ctx, dag, root, dst, progress)
//
// Missing blocks are reported as ipld.ErrNotFound (ipld.IsNotFound), which
// boxo's blockservice relies on. Every method of Store is safe for
// concurrent use. docs/STORAGE.md explains the on-disk layout, the
// durability guarantees and the measurements behind the defaults.
package blobstore
