package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// A session started through the leader is checked in and ended at once
// through a follower's gateway: the follower may not have applied the
// start yet, and must catch up rather than answer not_found.
func TestIngest_FollowerCatchesUpWithASessionJustStarted(t *testing.T) {
	nodes := mustThreeNodes(t)
	leader, follower := nodes[0], nodes[1]
	pollUntil(t, 10*time.Second, "a leader", func() bool {
		for i, n := range nodes {
			if n.Cluster().IsLeader() {
				leader, follower = n, nodes[(i+1)%3]
				return true
			}
		}
		return false
	})
	f := mustFixture(t, leader.Service(), "catchup")
	pollUntil(t, 10*time.Second, "the follower has the device's secret", func() bool {
		return follower.Service().CheckDeviceSecret(f.device, f.secret)
	})
	d := mustDevice(t, follower.BrokerAddr(), f.device, f.secret)
	for i := range 20 {
		id := fmt.Sprintf("s-catchup-%d", i)
		if _, err := leader.Service().StartSession(context.Background(), "start-"+id, "test", monitoring.StartSessionRequest{
			SessionID: id, WorkerID: f.worker, DeviceID: f.device, Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"session/checkin", "session/end"} {
			d.publish(f.device, typ, map[string]any{"event_id": fmt.Sprintf("%s-%s", id, typ[8:]), "ts": ts(), "session_id": id, "pin": "1111"})
			if r, raw := d.reply(); !r.OK {
				t.Fatalf("round %d: %s right after the start on the leader: %s", i, typ, raw)
			}
		}
	}
}
