package appliance

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/ui"
)

// The HTTP surface's view of the cluster carries every field of the
// cluster's status, under the same JSON names: GET /api/v1/cluster/status
// and vigil status read it as they did when it was the cluster's own type.
func TestClusterView_StatusKeepsEveryField(t *testing.T) {
	last := "2026-12-07T10:00:00Z"
	disk := &cluster.DiskStatus{FreeBytes: 100 << 20, TotalBytes: 8 << 30, FloorBytes: 256 << 20, Full: true}
	st := cluster.Status{
		NodeID: "n1", Addr: "10.0.0.1:7000", State: "Follower", LeaderID: "n2", LeaderAddr: "10.0.0.2:7000",
		Term: 7, CommitIndex: 120, AppliedIndex: 119, LastLogIndex: 121, LastSnapshot: 64, LastContact: "12ms",
		Members: []cluster.Member{
			{ID: "n1", Addr: "10.0.0.1:7000", Voter: true, Self: true, Reachable: true, State: "Follower", AppliedIndex: 119, LastContactMS: -1,
				Disk: disk},
			{ID: "n2", Addr: "10.0.0.2:7000", Voter: true, Leader: true, Reachable: true, State: "Leader", AppliedIndex: 120,
				LastContact: &last, LastContactMS: 12},
		},
		Time: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		Disk: disk,
	}
	for _, p := range [][2]reflect.Type{
		{reflect.TypeOf(st), reflect.TypeOf(ui.ClusterStatus{})},
		{reflect.TypeOf(cluster.Member{}), reflect.TypeOf(ui.ClusterMember{})},
	} {
		if a, b := p[0].NumField(), p[1].NumField(); a != b {
			t.Fatalf("%s has %d fields, %s %d: convert the new ones in uiStatus", p[0], a, p[1], b)
		}
	}
	want, _ := json.Marshal(st)
	got, _ := json.Marshal(uiStatus(st))
	if string(got) != string(want) {
		t.Fatalf("converted status\n%s\nwant\n%s", got, want)
	}
	var zero cluster.Status
	want, _ = json.Marshal(zero)
	got, _ = json.Marshal(uiStatus(zero))
	if string(got) != string(want) {
		t.Fatalf("converted zero status\n%s\nwant\n%s", got, want)
	}
}
