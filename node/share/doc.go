// Package share hands one file or folder to someone outside the cloud by
// content link.
//
// It owns three things:
//
//   - the share Registry: one record per share (root CID, name, size,
//     expiry, revocation, encryption, downloads), kept as a JSON file in a
//     directory the caller chooses, and for each share the set of block
//     CIDs of its DAG, so that the serving policy can answer
//     Registry.Active(c) in O(1) for every block a stranger asks for;
//   - the Link: the pcnode://share/<cid>?... format (Format, Parse), which
//     names the root, the item's name and size, hints where a provider is
//     reachable and, for an encrypted share, carries the key in the
//     fragment, the part of a URL that no server ever sees
//     (docs/SHARE.md specifies it);
//   - encryption of a share with age (filippo.io/age): Seal turns a file or
//     a directory into one age-encrypted stream to import as a UnixFS file,
//     Unseal decrypts such a stream and writes the item atomically;
//   - the messages of StatusProtocol, on which a sharer tells a friend's
//     pcnode that a share it is fetching stopped (WriteStatusRequest,
//     ReadStatusRequest, WriteStatus, ReadStatus). The registry gives what
//     the node needs to cut transfers: Changed, Serve and TakeFetchers
//     (who was served a share's blocks), RootState.
//
// It leaves to others: importing and fetching blocks (blobstore, p2p),
// deciding who is a member (node/cloud), serving blocks (the p2p host asks
// Serve through a bitswap filter; node's gateway asks Active per block),
// and publishing DNSLink names (node with dnslink).
//
// # Use
//
//	reg, err := share.Open(ctx, share.Config{Dir: home + "/shares", Blocks: store})
//	defer reg.Close()
//	s, err := reg.Create(ctx, share.Share{Root: root, Name: "photo.jpg", Size: n})
//	link, err := share.Format(share.Link{Root: s.Root, Name: s.Name, Size: s.Size, Providers: addrs})
//	ok := reg.Active(blockCID) // the serving policy for non-members
//	_, err = reg.Revoke(s.ID)  // takes effect for the next request
package share
