package monitoring_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestPurge_ReplicatedOnACluster: on three real nodes whose schedulers act
// only on the leader, once an organisation's retention has passed the
// leader's purges remove the closed alarm on every node; the open alarm and
// the alarm of an incident on legal hold (put through a follower) stay;
// the three nodes end with the same state hash, and the audit log says
// what was purged.
func TestPurge_ReplicatedOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{now: start}
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{
		Scheduler: &monitoring.SchedulerConfig{Interval: 50 * time.Millisecond, PurgeInterval: 100 * time.Millisecond},
		Setup:     func(svc *monitoring.Service) { svc.Now = clk.Now },
	})
	nodes := c.Nodes()
	ctx := context.Background()
	svc := nodes[1].Service
	org := monitoring.Organisation{ID: "o1", Name: "Trust", Retention: monitoring.Retention{AlarmDays: 30, AudioDays: 7, LocationDays: 7}}
	if _, err := svc.PutOrganisation(ctx, "org", "admin", org); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	raise := func(cmd string) *monitoring.Alarm {
		t.Helper()
		a, err := svc.RaiseAlarm(ctx, cmd, "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmTest, DeviceID: "d1",
			Location: &monitoring.Location{Lat: 53.48, Lon: -2.24, Source: "gps"}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	closeIt := func(a *monitoring.Alarm) {
		t.Helper()
		if _, err := svc.Acknowledge(ctx, "ack-"+a.ID, "olivia", a.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Close(ctx, "close-"+a.ID, "olivia", a.ID, monitoring.ResolutionTest, monitoring.ConfirmedByWorker, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	purged := raise("raise-1")
	closeIt(purged)
	held := raise("raise-2")
	closeIt(held)
	if held.IncidentID == purged.IncidentID {
		t.Fatalf("set-up: both alarms are of incident %s", held.IncidentID)
	}
	if _, err := svc.LegalHold(ctx, "hold", "sam", held.IncidentID, true, "insurer's request"); err != nil {
		t.Fatal(err)
	}
	open := raise("raise-3")

	// Nothing is due yet: a purge (here through a follower) removes
	// nothing.
	if r, err := nodes[2].Service.Purge(ctx, 0); err != nil || !r.Empty() {
		t.Fatalf("a purge before anything is due: %+v, %v", r, err)
	}
	if _, err := nodes[0].Service.Alarm(purged.ID); err != nil {
		t.Fatalf("alarm purged before its time: %v", err)
	}

	clk.Set(start.Add(31 * 24 * time.Hour))
	for i, n := range nodes {
		clustertest.PollUntil(t, 15*time.Second, "the closed alarm purged on node", func() bool {
			_, err := n.Service.Alarm(purged.ID)
			return errors.Is(err, monitoring.ErrNotFound)
		})
		for _, id := range []string{held.ID, open.ID} {
			if _, err := n.Service.Alarm(id); err != nil {
				t.Fatalf("node %d: alarm %s: %v", i, id, err)
			}
		}
		if tl, err := n.Service.Timeline(purged.ID); !errors.Is(err, monitoring.ErrNotFound) && len(tl) != 0 {
			t.Fatalf("node %d: the purged alarm's timeline: %d entries, %v", i, len(tl), err)
		}
	}
	c.WaitConverged()
	var hashes [][]byte
	for i, n := range nodes {
		st, err := n.Service.DiagState()
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, st.Hash)
		if i > 0 && !bytes.Equal(st.Hash, hashes[0]) {
			t.Fatalf("node %d's state hash %x, node 0's %x", i, st.Hash, hashes[0])
		}
	}
	recs, err := nodes[2].Service.AuditFor("retention")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || (r.Command == "CmdPurge" && strings.Contains(r.Detail, "alarms: "+purged.ID))
	}
	if !found {
		t.Fatalf("no audit of the purge of %s in %+v", purged.ID, recs)
	}
}
