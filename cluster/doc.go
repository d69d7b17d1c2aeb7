// Package cluster replicates opaque commands with Raft (hashicorp/raft) over
// Badger, and hosts a state machine whose state lives in its own Badger
// database. It knows nothing of alarms.
//
// A Node is one appliance's member of the cluster. Apply works on every
// node: a follower forwards the command to the leader over the cluster port,
// which carries Raft and the cluster RPC multiplexed by a first byte. Apply
// returns only after the command is committed (on disk on a quorum) and
// applied by the leader, so whatever a caller reports as saved is saved.
// With Config.ServerTLS and ClientTLS the port is mutual TLS: only peers
// with a certificate from the cluster's CA are heard.
//
// Commands carry IDs: applying an ID twice returns the first result, so a
// caller may retry after any failure, including ErrUnknownOutcome.
//
// See DESIGN.md in this directory for the reasons behind each choice.
package cluster
