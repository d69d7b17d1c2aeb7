package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestSessionCluster_ExpiresWhileLeaderDies runs three nodes on real TCP,
// each with its FSM, Service and Scheduler. A session of 2 s (grace 1 s)
// is started; just before it runs out, the leader's scheduler and node are
// closed. The survivors elect a leader whose scheduler fires the overdue
// deadline and then the grace deadline: exactly one missed-check-in alarm
// is raised, within failover time plus grace (plus slack for the test).
//
// In one process a node cannot be SIGKILLed, and cluster.Node.Close hands
// leadership over before it stops, which is kinder than a kill. What
// matters here is the same: the node that led when the deadline was set
// is gone when it falls due, and nothing it held in memory survives.
// Crash-stop is covered by the cluster tests (clustertest's Kill) and by the
// fault-injection tier.
func TestSessionCluster_ExpiresWhileLeaderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{
		Scheduler: &monitoring.SchedulerConfig{Interval: 50 * time.Millisecond},
	})
	nodes := c.Nodes()
	ctx := context.Background()
	svc := nodes[1].Service // any node: writes are forwarded to the leader
	const (
		duration = 2 * time.Second
		grace    = time.Second
	)
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Grace: grace}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	s, err := svc.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: duration})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		clustertest.PollUntil(t, 5*time.Second, "the session on every node", func() bool {
			_, err := n.Service.Session("s1")
			return err == nil
		})
	}

	lead := c.WaitForLeader()
	// Until 800 ms before the timer runs out (the wall clock is the
	// condition: the Service stamps commands with it), so that the node,
	// whose Close hands leadership over first, is gone when it does.
	clustertest.PollUntil(t, duration+time.Second, "800 ms before the session is due", func() bool {
		return time.Now().After(s.NextDue.Add(-800 * time.Millisecond))
	})
	if s, _ := nodes[lead].Service.Session("s1"); s.Status != monitoring.SessionActive {
		t.Fatalf("the session was %s before the leader went", s.Status)
	}
	c.Stop(lead)
	if left := time.Until(s.NextDue); left > 0 {
		t.Logf("closed leader node %d %s before the session was due", lead, left.Round(time.Millisecond))
	} else {
		t.Logf("leader node %d took until %s after the session was due to close", lead, (-left).Round(time.Millisecond))
	}

	var survivors []*monitoringtest.Node
	for i, n := range nodes {
		if i != lead {
			survivors = append(survivors, n)
		}
	}
	const failover, slack = 2 * time.Second, 3 * time.Second
	limit := time.Until(s.NextDue.Add(grace + failover + slack))
	clustertest.PollUntil(t, limit, "a missed check-in alarm on every survivor within failover + grace", func() bool {
		for _, n := range survivors {
			if monitoring.CountAlarms(t, n.Service, monitoring.AlarmMissedCheckIn, "s1") < 1 {
				return false
			}
		}
		return true
	})
	t.Logf("alarm on every survivor %s after the session was due", time.Since(s.NextDue).Round(time.Millisecond))

	for _, n := range survivors {
		if c := monitoring.CountAlarms(t, n.Service, monitoring.AlarmMissedCheckIn, "s1"); c != 1 {
			t.Fatalf("node %s has %d missed check-in alarms, want exactly 1", n.ID(), c)
		}
		got, _ := n.Service.Session("s1")
		if got.Status != monitoring.SessionAlarm || got.AlarmID != monitoring.DeadlineAlarmID("session/s1/2/grace") {
			t.Fatalf("node %s: session %s, alarm %q", n.ID(), got.Status, got.AlarmID)
		}
		// Nothing of the session is left to fire, so no second alarm can
		// follow (the alarm's acknowledgement deadlines may be pending).
		due, err := n.Service.Due(time.Now().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.Kind != monitoring.DeadlineAckOverdue {
				t.Fatalf("node %s: deadline left %+v", n.ID(), d)
			}
		}
	}

	// The old leader comes back, catches up, and agrees: one alarm.
	nodes[lead] = c.Restart(lead)
	clustertest.PollUntil(t, 20*time.Second, "the restarted node to catch up", func() bool {
		s, err := nodes[lead].Service.Session("s1")
		return err == nil && s.Status == monitoring.SessionAlarm
	})
	if c := monitoring.CountAlarms(t, nodes[lead].Service, monitoring.AlarmMissedCheckIn, "s1"); c != 1 {
		t.Fatalf("restarted node has %d missed check-in alarms", c)
	}
}
