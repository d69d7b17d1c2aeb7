package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestEscalation_ReminderFiresOnACluster: on three real nodes whose
// schedulers act only on the leader, an operator logs "no answer" for the
// first contact through a follower; once the organisation's wait has
// passed, the leader fires the contact deadline and every node shows the
// reminder for the next contact, with its event.
func TestEscalation_ReminderFiresOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{now: start}
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{
		Scheduler: &monitoring.SchedulerConfig{Interval: 50 * time.Millisecond},
		Setup:     func(svc *monitoring.Service) { svc.Now = clk.Now },
	})
	nodes := c.Nodes()
	ctx := context.Background()
	svc := nodes[1].Service // writes are forwarded to the leader
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", ContactWait: monitoring.MinContactWait}); err != nil {
		t.Fatal(err)
	}
	w := monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1", Contacts: []monitoring.Contact{
		{Name: "Alex Smith", Phone: "07700 900001", Relation: "manager"},
		{Name: "Sam Patel", Phone: "07700 900123", Relation: "manager"},
	}}
	if _, err := svc.PutWorker(ctx, "w1", "admin", w); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	clk.Set(start.Add(20 * time.Second))
	got, err := svc.LogAction(ctx, "no-answer", "olivia", a.ID, monitoring.TimelineEntry{
		Kind: monitoring.ActionContact, Contact: "Alex Smith", Outcome: monitoring.ContactNoAnswer})
	if err != nil {
		t.Fatal(err)
	}
	due := start.Add(20 * time.Second).Add(monitoring.MinContactWait)
	if got.ContactDue != 1 || !got.ContactDueAt.Equal(due) || got.ContactOverdue {
		t.Fatalf("after no answer: due %d at %s, overdue %v", got.ContactDue, got.ContactDueAt, got.ContactOverdue)
	}
	sub := nodes[2].Service.Subscribe(1024)
	defer sub.Close()

	// A second before, it is not due yet: the schedulers leave it.
	if early, err := svc.Due(due.Add(-time.Second), 10); err != nil || len(early) != 0 {
		t.Fatalf("due early: %+v %v", early, err)
	}

	clk.Set(due.Add(time.Second))
	var ev monitoring.Event
	clustertest.PollUntil(t, 10*time.Second, "the contact-due event on node 2", func() bool {
		for {
			select {
			case e := <-sub.C:
				if e.Type == monitoring.EventContactDue {
					ev = e
					return true
				}
				continue
			default:
			}
			return false
		}
	})
	if ev.Alarm == nil || ev.Alarm.ID != a.ID || !ev.Alarm.ContactOverdue || ev.Entry == nil || ev.Entry.Contact != "Sam Patel" {
		t.Fatalf("event %+v", ev)
	}
	for i, n := range nodes {
		clustertest.PollUntil(t, 5*time.Second, "the reminder on every node", func() bool {
			x, err := n.Service.Alarm(a.ID)
			return err == nil && x.ContactOverdue && x.ContactDue == 1
		})
		tl, err := n.Service.Timeline(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := tl[len(tl)-1]
		if last.Kind != monitoring.ActionContactDue || last.Text != "contact Sam Patel (manager), 07700 900123 due" {
			t.Fatalf("node %d: last entry %+v", i, last)
		}
	}
	if left, _ := svc.Due(clk.Now(), 10); len(left) != 0 {
		t.Fatalf("deadlines left %+v", left)
	}
}
