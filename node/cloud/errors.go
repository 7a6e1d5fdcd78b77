package cloud

import "errors"

// Sentinel errors; test for them with errors.Is. Every error the package
// returns wraps at most one of them, with the operation and the key.
var (
	// ErrInvalid marks malformed input: a file, roster, code or message
	// that does not decode or breaks a structural rule.
	ErrInvalid = errors.New("invalid")
	// ErrNoCloud is returned by Load for a directory that holds no cloud.
	ErrNoCloud = errors.New("no cloud in this directory")
	// ErrExists is returned by Create for a directory that already holds a
	// cloud, and by roster operations for a peer that is already a member.
	ErrExists = errors.New("already exists")
	// ErrBadSignature means a roster is not signed by the cloud's key.
	ErrBadSignature = errors.New("bad roster signature")
	// ErrWrongCloud means a roster names another cloud.
	ErrWrongCloud = errors.New("roster of another cloud")
	// ErrEquivocation means two different rosters carry the same version:
	// the cloud key signed both, which honest admins never do.
	ErrEquivocation = errors.New("roster equivocation: same version, different content")
	// ErrResurrection means a roster lists a revoked peer as a member
	// again, or drops its revocation.
	ErrResurrection = errors.New("revoked peer cannot return")
	// ErrRevoked is returned for an operation on, or by, a revoked peer.
	ErrRevoked = errors.New("peer is revoked")
	// ErrNotFound is returned when no live member has the given name or
	// peer ID.
	ErrNotFound = errors.New("no such member")
	// ErrNameTaken is returned when a live member already has the name.
	ErrNameTaken = errors.New("name already taken")
	// ErrNotAdmin is returned when an operation needs the cloud key and
	// this device does not hold it.
	ErrNotAdmin = errors.New("this device is not an admin of the cloud (no cloud key)")

	// ErrInviteExpired, ErrInviteUsed and ErrInviteUnknown are the three
	// ways a token is refused; ErrAdminNotAllowed refuses an admin join
	// with an invite that does not grant it. A joiner gets them back from
	// the inviter through the join protocol.
	ErrInviteExpired   = errors.New("invite has expired")
	ErrInviteUsed      = errors.New("invite has already been used")
	ErrInviteUnknown   = errors.New("invite is not known to the inviter (wrong code or another cloud)")
	ErrAdminNotAllowed = errors.New("invite does not allow joining as admin")
	// ErrRefused wraps any other refusal the inviter sends back.
	ErrRefused = errors.New("join refused")
)
