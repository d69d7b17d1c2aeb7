package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Readiness thresholds: how far a node may be behind and still take
// writes and serve reads that are nearly fresh.
const (
	// DefaultReadyMaxLag is the most committed entries a ready node may
	// not have applied yet.
	DefaultReadyMaxLag = 1000
	// DefaultReadyMaxSilence is the longest a ready follower may go
	// without hearing from its leader.
	DefaultReadyMaxSilence = 5 * time.Second
)

// Reasons a node is not ready (Readiness.Reason).
const (
	NotReadyClosed   = "closed"    // the node is not open
	NotReadyNoLeader = "no_leader" // no leader is known: an election, or no quorum reachable
	NotReadySilent   = "leader_silent"
	NotReadyBehind   = "behind"    // more than DefaultReadyMaxLag entries to apply
	NotReadyDiskFull = "disk_full" // the data directory is under its floor: writes are refused
)

// Readiness says whether this node can take writes now: it knows a
// leader, has heard from it lately, has applied nearly everything
// committed, and its disk is not full.
type Readiness struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // a NotReady constant when not ready
	Detail string `json:"detail,omitempty"` // the reason for people
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	Leader string `json:"leader_id,omitempty"`
	// CommitIndex and AppliedIndex are this node's.
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// Ready reports whether this node can take writes now. It reads only
// this node's memory: a load balancer may ask often.
func (n *Node) Ready() Readiness {
	r := Readiness{NodeID: n.id}
	if !n.opened.Load() || n.raft == nil {
		r.Reason, r.Detail = NotReadyClosed, "the node is starting or stopping"
		return r
	}
	state := n.raft.State()
	_, leader := n.raft.LeaderWithID()
	r.State, r.Leader = state.String(), string(leader)
	r.CommitIndex, r.AppliedIndex = n.raft.CommitIndex(), n.fsm.Applied()
	switch {
	case leader == "":
		r.Reason, r.Detail = NotReadyNoLeader, "no leader is known: an election is under way, or this node cannot reach a quorum"
	case state == raft.Follower && time.Since(n.raft.LastContact()) > DefaultReadyMaxSilence:
		r.Reason = NotReadySilent
		r.Detail = fmt.Sprintf("no word from the leader for more than %s", DefaultReadyMaxSilence)
	case r.CommitIndex > r.AppliedIndex && r.CommitIndex-r.AppliedIndex > DefaultReadyMaxLag:
		r.Reason = NotReadyBehind
		r.Detail = fmt.Sprintf("%d committed entries not applied yet (at most %d)", r.CommitIndex-r.AppliedIndex, DefaultReadyMaxLag)
	case n.disk != nil && n.disk.full.Load():
		r.Reason, r.Detail = NotReadyDiskFull, "the data directory is nearly full: this node refuses writes"
	default:
		r.Ready = true
	}
	return r
}
