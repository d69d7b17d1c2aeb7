package appliance

import (
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/ui"
)

// clusterView is the cluster member as the HTTP surface sees it (ui.Cluster):
// its status in ui's own types, and the administrator's membership
// changes. Nothing under ui/ imports the cluster; this is the one place
// that converts.
type clusterView struct{ *cluster.Node }

var _ ui.Cluster = clusterView{}

// Status converts the cluster's status field for field: the conversions
// stop compiling when the two types drift apart.
func (v clusterView) Status() ui.ClusterStatus { return uiStatus(v.Node.Status()) }

// uiStatus converts a cluster status to ui's type.
func uiStatus(st cluster.Status) ui.ClusterStatus {
	members := make([]ui.ClusterMember, len(st.Members))
	for i, m := range st.Members {
		members[i] = ui.ClusterMember{
			ID: m.ID, Addr: m.Addr, Voter: m.Voter, Self: m.Self, Leader: m.Leader, Reachable: m.Reachable,
			State: m.State, AppliedIndex: m.AppliedIndex, LastContact: m.LastContact, LastContactMS: m.LastContactMS,
			Disk: uiDisk(m.Disk), Problems: m.Problems, Features: m.Features,
		}
	}
	out := ui.ClusterStatus{
		NodeID: st.NodeID, Addr: st.Addr, State: st.State, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastLogIndex: st.LastLogIndex,
		LastSnapshot: st.LastSnapshot, LastContact: st.LastContact, Members: members, Time: st.Time,
		Disk: uiDisk(st.Disk), Problems: st.Problems, Features: st.Features,
	}
	if st.Members == nil {
		out.Members = nil
	}
	return out
}

// uiDisk converts a disk status; nil stays nil.
func uiDisk(d *cluster.DiskStatus) *ui.DiskStatus {
	if d == nil {
		return nil
	}
	c := ui.DiskStatus(*d)
	return &c
}
