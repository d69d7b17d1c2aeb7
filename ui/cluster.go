package ui

import (
	"context"
	"time"
)

// Cluster is what the HTTP surface needs from this node's cluster member:
// its view of the cluster, and the administrator's changes of membership.
// The appliance supplies it; every other write goes through the monitoring
// Service.
type Cluster interface {
	// Status reports the cluster as this node sees it.
	Status() ClusterStatus
	// Join adds a voter with the given ID and cluster address.
	Join(ctx context.Context, id, addr string) error
	// Remove removes a member.
	Remove(ctx context.Context, id string) error
}

// ClusterStatus is what a node reports about itself and the cluster as it
// sees it (GET /api/v1/cluster/status, the console's cluster page). Its
// fields and their JSON names are those of the cluster's own status, which
// the appliance converts field for field.
type ClusterStatus struct {
	NodeID       string          `json:"node_id"`
	Addr         string          `json:"addr"`
	State        string          `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string          `json:"leader_id"`
	LeaderAddr   string          `json:"leader_addr"`
	Term         uint64          `json:"term"`
	CommitIndex  uint64          `json:"commit_index"`
	AppliedIndex uint64          `json:"applied_index"`
	LastLogIndex uint64          `json:"last_log_index"`
	LastSnapshot uint64          `json:"last_snapshot_index"`
	LastContact  string          `json:"last_contact"` // a follower's last contact with the leader
	Members      []ClusterMember `json:"members"`
	Time         time.Time       `json:"time"`
	Disk         *DiskStatus     `json:"disk,omitempty"`     // this node's free space; nil when not checked
	Problems     []string        `json:"problems,omitempty"` // what this node's services report as wrong now
	// Features are what this node's build knows, by name: the rules and
	// command types it can apply (docs/install.md, "Upgrading").
	Features map[string]int `json:"features,omitempty"`
}

// ClusterMember is one server in the cluster's configuration, with what
// this node last heard from it.
type ClusterMember struct {
	ID            string  `json:"id"`
	Addr          string  `json:"addr"`
	Voter         bool    `json:"voter"`
	Self          bool    `json:"self"`
	Leader        bool    `json:"leader"`
	Reachable     bool    `json:"reachable"`
	State         string  `json:"state,omitempty"`
	AppliedIndex  uint64  `json:"applied_index"`
	LastContact   *string `json:"last_contact,omitempty"` // RFC 3339 time of the last answer
	LastContactMS int64   `json:"last_contact_ago_ms"`    // -1 when never heard from
	// Disk is the member's free space as it last reported it; nil when
	// never heard from or not checked.
	Disk *DiskStatus `json:"disk,omitempty"`
	// Problems are what the member's services reported as wrong when it
	// last answered: an MQTT listener that cannot accept, say.
	Problems []string `json:"problems,omitempty"`
	// Features are what the member's build knows, as it last reported;
	// nil from a build that reports none (an upgrade is under way).
	Features map[string]int `json:"features,omitempty"`
}

// DiskStatus is a node's free space against the floor under which it
// refuses writes.
type DiskStatus struct {
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	FloorBytes uint64 `json:"floor_bytes"`
	Full       bool   `json:"full"` // under the floor: writes refused
}
