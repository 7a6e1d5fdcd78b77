// Package cloud owns a device's membership of its personal cloud: the
// cloud key and ID, the cloud secret, the roster signed by the cloud key,
// invites, and the two libp2p protocols that carry them – join
// (/pcnode/join/1.0.0) and roster gossip (/pcnode/roster/1.0.0).
//
// A State is the cloud as one device keeps it in a directory (Create,
// Load, or Join for a new device). A Service runs the protocols on a
// libp2p host handed in by the caller and answers IsMember and Gate for
// the connection gater.
//
// It leaves to others: the device key and the host (node, p2p), discovery
// and rendezvous (p2p, using Secret), the CLI and API. docs/CLOUD.md
// describes the files, formats, protocols and threat model.
package cloud
