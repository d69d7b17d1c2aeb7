package cluster

import "errors"

// Sentinel errors of the cluster package. Callers compare with errors.Is; other
// packages alias these rather than define their own.
var (
	// ErrNotLeader is returned by an operation that only the leader may perform
	// when this node is not the leader and cannot forward it.
	ErrNotLeader = errors.New("not the leader")

	// ErrNoLeader is returned when no leader was known before the deadline,
	// for example while a quorum is missing.
	ErrNoLeader = errors.New("no leader")

	// ErrUnknownOutcome is returned when a command may or may not have been
	// committed: leadership was lost after it was appended, or the connection
	// to the leader broke after it was sent. Retrying with the same command ID
	// is always safe and returns the first result.
	ErrUnknownOutcome = errors.New("outcome unknown: retry with the same command ID")

	// ErrClosed is returned by a node that has been closed.
	ErrClosed = errors.New("cluster node closed")

	// ErrKeyNotFound is returned by the stable store for a key never set. Its
	// text is exactly "not found" because hashicorp/raft compares error text.
	ErrKeyNotFound = errors.New("not found")

	// ErrCommandTooLarge is returned when a command exceeds MaxCommandSize.
	ErrCommandTooLarge = errors.New("command too large")

	// ErrDiskFull is returned when a command is refused because the free
	// space of a data directory is under Config.MinFreeBytes: this node's, or
	// the leader's, or that of so many voters that no quorum could store it.
	// Nothing was written; the same command may be retried once space is
	// freed.
	ErrDiskFull = errors.New("disk nearly full: writes refused")
)
