package cluster

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Status is what a node reports about itself and the cluster as it sees it.
type Status struct {
	NodeID       string    `json:"node_id"`
	Addr         string    `json:"addr"`
	State        string    `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string    `json:"leader_id"`
	LeaderAddr   string    `json:"leader_addr"`
	Term         uint64    `json:"term"`
	CommitIndex  uint64    `json:"commit_index"`
	AppliedIndex uint64    `json:"applied_index"`
	LastLogIndex uint64    `json:"last_log_index"`
	LastSnapshot uint64    `json:"last_snapshot_index"`
	LastContact  string    `json:"last_contact"` // a follower's last contact with the leader
	Members      []Member  `json:"members"`
	Time         time.Time `json:"time"`
	// Disk is this node's free space against its floor; nil when the
	// check is off (Config.MinFreeBytes negative).
	Disk *DiskStatus `json:"disk,omitempty"`
	// Problems are what this node's services report as wrong with them
	// now (SetProblems), for the people who look after the cluster: an
	// MQTT listener that cannot accept, say. Empty when all is well.
	Problems []string `json:"problems,omitempty"`
	// Features are the versions of what this build knows, by name
	// (SetFeatures): the services beside the cluster use them so that a
	// node proposes nothing an older member cannot apply (FeatureFloor).
	Features map[string]int `json:"features,omitempty"`
}

// Member is one server in the Raft configuration, with what this node last
// heard from it over the cluster RPC.
type Member struct {
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
	// never heard from or its check is off.
	Disk *DiskStatus `json:"disk,omitempty"`
	// Problems are the member's Status.Problems as it last reported them.
	Problems []string `json:"problems,omitempty"`
	// Features are the member's Status.Features as it last reported them;
	// nil when never heard from, or from a build that reports none.
	Features map[string]int `json:"features,omitempty"`
}

// PeerStatus is the last answer from one peer.
type PeerStatus struct {
	At     time.Time
	Status Status
	Err    error
}

// Status returns this node's view of the cluster.
func (n *Node) Status() Status {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	st := Status{
		NodeID:       n.id,
		Addr:         n.addr,
		State:        n.raft.State().String(),
		LeaderID:     string(leaderID),
		LeaderAddr:   string(leaderAddr),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.Applied(),
		LastLogIndex: n.raft.LastIndex(),
		LastContact:  stats["last_contact"],
		Time:         time.Now().UTC(),
		Disk:         n.disk.status(),
	}
	if f := n.problems.Load(); f != nil {
		st.Problems = (*f)()
	}
	if f := n.features.Load(); f != nil {
		st.Features = *f
	}
	// From Raft's own record: listing the snapshot store would read the
	// disk, and warn about a snapshot being written, on every call.
	st.LastSnapshot, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return st
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, s := range f.Configuration().Servers {
		m := Member{
			ID:            string(s.ID),
			Addr:          string(s.Address),
			Voter:         s.Suffrage == raft.Voter,
			Self:          string(s.ID) == n.id,
			Leader:        s.ID == leaderID,
			LastContactMS: -1,
		}
		if m.Self {
			m.Reachable, m.State, m.AppliedIndex, m.LastContactMS = true, st.State, st.AppliedIndex, 0
			m.Disk, m.Problems, m.Features = st.Disk, st.Problems, st.Features
		} else if p := n.peers[m.ID]; p != nil && !p.At.IsZero() {
			m.Features = p.Status.Features
			at := p.At.UTC().Format(time.RFC3339Nano)
			m.LastContact = &at
			m.LastContactMS = time.Since(p.At).Milliseconds()
			m.Reachable = p.Err == nil && m.LastContactMS < int64(3*n.cfg.StatusInterval/time.Millisecond)
			m.State, m.AppliedIndex, m.Disk = p.Status.State, p.Status.AppliedIndex, p.Status.Disk
			if m.Reachable {
				m.Problems = p.Status.Problems
			}
		}
		st.Members = append(st.Members, m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Addr < st.Members[j].Addr })
	return st
}

// SetProblems sets the function Status calls for this node's problems:
// the cluster knows nothing of the services beside it (the broker's
// listeners), so the appliance tells it what to report. Members pass
// their problems to each other with their status, so every node's cluster
// page shows them all.
func (n *Node) SetProblems(f func() []string) { n.problems.Store(&f) }

// SetFeatures sets the versions of what this build knows, by name, that
// the node reports with its status. Members pass them to each other, so
// that each knows what the others can apply (FeatureFloor).
func (n *Node) SetFeatures(f map[string]int) {
	c := make(map[string]int, len(f))
	for k, v := range f {
		c[k] = v
	}
	n.features.Store(&c)
}

// FeatureFloor returns the newest version of feature name that every
// member of the configuration knows, at most newest: the least of this
// node's newest and each member's version as it last reported (0 when it
// reports features without name), and whether every member has reported.
// A member that never reported (a build that reports none, or one not
// heard from yet) is taken to know baseline. During a rolling upgrade a
// newer node so proposes only what the older ones can apply, and the newer
// rules start once every member runs the newer build.
func (n *Node) FeatureFloor(name string, newest, baseline int) (floor int, known bool) {
	floor, known = newest, true
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return min(floor, baseline), false
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.id {
			continue // this build: newest
		}
		v := baseline
		if pf, ok := n.peerFeatures[string(s.ID)]; ok {
			v = pf[name]
		} else if p := n.peers[string(s.ID)]; p == nil || p.At.IsZero() {
			known = false // not heard from since this node started, nor ever before
		}
		floor = min(floor, v)
	}
	return floor, known
}

// statusLoop asks every other member for its status, so each node knows when
// it last heard from each peer and how far behind each one is.
func (n *Node) statusLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.mux != nil && n.mux.tls != nil {
			n.mux.tls.recheck(n.logger)
		}
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == n.id {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, n.cfg.StatusInterval)
			asked := time.Now()
			resp, err := n.client.call(cctx, string(s.Address), &rpcRequest{Op: opStatus, FromNode: n.id})
			cancel()
			n.peersMu.Lock()
			p := n.peers[string(s.ID)]
			if p == nil {
				p = &PeerStatus{}
				n.peers[string(s.ID)] = p
			}
			answered := err == nil && resp.Status != nil
			featuresChanged := false
			if answered {
				p.At, p.Status, p.Err = time.Now(), *resp.Status, nil
				featuresChanged = n.notePeerFeatures(string(s.ID), resp.Status.Features)
			} else {
				p.Err = err
			}
			n.peersMu.Unlock()
			if featuresChanged {
				n.savePeerFeatures()
			}
			if answered {
				n.peerAnswered(string(s.ID), asked)
			}
		}
	}
}
