// Package folder keeps a directory equal on every device of a person that
// subscribes to it.
//
// It owns: scanning and watching the directory, the folder's index (path →
// CID, size, mode, mtime, deleted, version vector, last writer), the
// exchange of that index among members, fetching content by CID and
// writing it to disk crash-safely, conflicts, the mass-delete guard, the
// ignore file and the version history.
//
// It leaves to others: blocks and their transfer (blobstore, and bitswap
// through the DAG it is given), who is a member (Config.Members), finding
// and connecting to members (p2p), and which folders a device has (node).
//
// # Index exchange
//
// Each device keeps its own log: one entry per path, each stamped with a
// sequence number when the device changes it, by a scan or by applying a
// remote change. A device follows the log of every connected member over
// the stream protocol ProtocolID/<folder ID>: it sends "I hold your log up
// to seq N of epoch E" and receives batches of what follows, then each new
// change as it happens. The epoch is random per index database, so a
// device whose database was recreated is read again from the start. Each
// path then resolves (resolve) to the same target on every device, from
// the entries of all members: version vectors decide, concurrent versions
// keep the winner and conflict copies. docs/FOLDERS.md explains the choice
// of logs over a Merkle-CRDT, with figures.
//
// # Content
//
// A folder's files are the only copy of their content on the device: the
// block store keeps each file's inner DAG nodes and, for each leaf, a
// reference into the file (blobstore.Store.PutRefs), which the store
// re-hashes whenever it reads it. A scan references what it hashes; a pull
// references what it wrote and drops the fetched copies. A file changed
// behind the scanner's back makes its references stale: the store reports
// the block missing (never wrong bytes) and the folder re-hashes the file.
//
// # Use
//
//	f, err := folder.New(folder.Config{ID: folder.NewID(), Path: dir, Device: self,
//		Store: store, DAG: blobstore.NewDAG(store, host.Exchange()), Host: host.Libp2p(),
//		Members: cloud.IsMember, Dir: stateDir})
//	err = f.Start(ctx)
//	defer f.Close()
//	st := f.Status()
package folder
