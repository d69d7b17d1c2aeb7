package monitoring_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// clock is a settable clock for the Service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// mustSessions starts one session per duration, for workers w0, w1... on
// pooled devices p0, p1..., in organisation o1 (grace one minute).
func mustSessions(t *testing.T, svc *monitoring.Service, durations ...time.Duration) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i, d := range durations {
		w, p, s := fmt.Sprintf("w%d", i), fmt.Sprintf("p%d", i), fmt.Sprintf("s%d", i)
		if _, err := svc.PutWorker(ctx, "put-"+w, "admin", monitoring.Worker{ID: w, Name: w, OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutDevice(ctx, "put-"+p, "admin", monitoring.Device{ID: p, Kind: monitoring.DevicePooled, OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.StartSession(ctx, "start-"+s, "admin", monitoring.StartSessionRequest{SessionID: s, WorkerID: w, DeviceID: p, Duration: d}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScheduler_FiresInDueOrderOnlyWhileLeader(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, start)
	clk := &clock{now: start}
	n.Service.Now = clk.Now
	// s0 is due last, s1 first, s2 in between.
	mustSessions(t, n.Service, 3*time.Hour, time.Hour, 2*time.Hour)
	sub := n.Service.Subscribe(1024)
	defer sub.Close()

	var leader atomic.Bool
	var asked atomic.Int64
	sch := monitoring.NewScheduler(n.Service, func() bool { asked.Add(1); return leader.Load() }, monitoring.SchedulerConfig{Interval: 10 * time.Millisecond})
	if err := sch.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sch.Close()

	clk.Set(start.Add(4 * time.Hour)) // every session is due
	clustertest.PollUntil(t, 5*time.Second, "the scheduler to ask for leadership a few times", func() bool { return asked.Load() >= 5 })
	if as, _ := n.Service.ActiveSessions(); as[0].Status != monitoring.SessionActive || as[1].Status != monitoring.SessionActive || as[2].Status != monitoring.SessionActive {
		t.Fatalf("a scheduler that does not lead fired a deadline: %+v", as)
	}

	leader.Store(true)
	var reminded []string
	clustertest.PollUntil(t, 10*time.Second, "three reminders", func() bool {
		for {
			select {
			case ev := <-sub.C:
				if ev.Type == monitoring.EventCheckInReminder {
					reminded = append(reminded, ev.Session.ID)
				}
				continue
			default:
			}
			return len(reminded) >= 3
		}
	})
	if want := []string{"s1", "s2", "s0"}; !slices.Equal(reminded, want) {
		t.Fatalf("reminders in order %v, want %v (due order)", reminded, want)
	}
	// The grace deadlines (due + 1 min) have passed too: one alarm each.
	clustertest.PollUntil(t, 10*time.Second, "three missed check-in alarms", func() bool {
		for _, id := range []string{"s0", "s1", "s2"} {
			if monitoring.CountAlarms(t, n.Service, monitoring.AlarmMissedCheckIn, id) != 1 {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"s0", "s1", "s2"} {
		s, _ := n.Service.Session(id)
		if s.Status != monitoring.SessionAlarm || s.AlarmID != monitoring.DeadlineAlarmID(fmt.Sprintf("session/%s/2/grace", id)) {
			t.Fatalf("session %s: %s, alarm %q", id, s.Status, s.AlarmID)
		}
	}
	if due, _ := n.Service.Due(clk.Now(), 100); len(due) != 0 {
		t.Fatalf("deadlines left: %v", due)
	}
}

// TestScheduler_AtMostOnce runs two schedulers that both believe they lead
// (an old and a new leader overlapping during a failover) on one state:
// each deadline fires once, and one alarm is raised.
func TestScheduler_AtMostOnce(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, start)
	clk := &clock{now: start}
	n.Service.Now = clk.Now
	mustSessions(t, n.Service, time.Hour)

	// The same proposal twice: the second is the first's result.
	due, err := n.Service.Due(start.Add(time.Hour), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("Due = %v, %v", due, err)
	}
	ctx := context.Background()
	for i := range 2 {
		if out, err := n.Service.FireDeadline(ctx, due[0]); err != nil || out != "fired" {
			t.Fatalf("firing %d: %q, %v", i, out, err)
		}
	}
	if s, _ := n.Service.Session("s0"); s.Status != monitoring.SessionOverdue || s.Seq != 2 {
		t.Fatalf("session after a double firing: %s, seq %d", s.Status, s.Seq)
	}

	clk.Set(start.Add(2 * time.Hour))
	var schs []*monitoring.Scheduler
	for range 2 {
		s := monitoring.NewScheduler(n.Service, func() bool { return true }, monitoring.SchedulerConfig{Interval: 5 * time.Millisecond})
		schs = append(schs, s)
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.PollUntil(t, 10*time.Second, "the missed check-in alarm", func() bool {
		return monitoring.CountAlarms(t, n.Service, monitoring.AlarmMissedCheckIn, "s0") >= 1
	})
	for _, s := range schs {
		s.Close()
		s.Close() // twice is safe
	}
	if c := monitoring.CountAlarms(t, n.Service, monitoring.AlarmMissedCheckIn, "s0"); c != 1 {
		t.Fatalf("%d missed check-in alarms, want 1", c)
	}
}

func TestScheduler_DeadlineAlarmIDIsStable(t *testing.T) {
	a, b := monitoring.DeadlineAlarmID("session/s1/2/grace"), monitoring.DeadlineAlarmID("session/s1/2/grace")
	if a != b || a == monitoring.DeadlineAlarmID("session/s1/4/grace") || len(a) != 36 {
		t.Fatalf("DeadlineAlarmID: %q, %q", a, b)
	}
}
