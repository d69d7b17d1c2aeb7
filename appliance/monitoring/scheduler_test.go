package monitoring

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
func mustSessions(t *testing.T, svc *Service, durations ...time.Duration) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", Organisation{ID: "o1", Name: "Trust", Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i, d := range durations {
		w, p, s := fmt.Sprintf("w%d", i), fmt.Sprintf("p%d", i), fmt.Sprintf("s%d", i)
		if _, err := svc.PutWorker(ctx, "put-"+w, "admin", Worker{ID: w, Name: w, OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutDevice(ctx, "put-"+p, "admin", Device{ID: p, Kind: DevicePooled, OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.StartSession(ctx, "start-"+s, "admin", StartSessionRequest{SessionID: s, WorkerID: w, DeviceID: p, Duration: d}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScheduler_FiresInDueOrderOnlyWhileLeader(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, start)
	clk := &clock{now: start}
	n.svc.Now = clk.Now
	// s0 is due last, s1 first, s2 in between.
	mustSessions(t, n.svc, 3*time.Hour, time.Hour, 2*time.Hour)
	sub := n.svc.Subscribe(1024)
	defer sub.Close()

	var leader atomic.Bool
	var asked atomic.Int64
	sch := NewScheduler(n.svc, func() bool { asked.Add(1); return leader.Load() }, SchedulerConfig{Interval: 10 * time.Millisecond})
	if err := sch.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sch.Close()

	clk.Set(start.Add(4 * time.Hour)) // every session is due
	pollUntil(t, 5*time.Second, "the scheduler to ask for leadership a few times", func() bool { return asked.Load() >= 5 })
	if as, _ := n.svc.ActiveSessions(); as[0].Status != SessionActive || as[1].Status != SessionActive || as[2].Status != SessionActive {
		t.Fatalf("a scheduler that does not lead fired a deadline: %+v", as)
	}

	leader.Store(true)
	var reminded []string
	pollUntil(t, 10*time.Second, "three reminders", func() bool {
		for {
			select {
			case ev := <-sub.C:
				if ev.Type == EventCheckInReminder {
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
	pollUntil(t, 10*time.Second, "three missed check-in alarms", func() bool {
		for _, id := range []string{"s0", "s1", "s2"} {
			if countAlarms(t, n, AlarmMissedCheckIn, id) != 1 {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"s0", "s1", "s2"} {
		s, _ := n.svc.Session(id)
		if s.Status != SessionAlarm || s.AlarmID != deadlineAlarmID(fmt.Sprintf("session/%s/2/grace", id)) {
			t.Fatalf("session %s: %s, alarm %q", id, s.Status, s.AlarmID)
		}
	}
	if due, _ := n.svc.Due(clk.Now(), 100); len(due) != 0 {
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
	n.svc.Now = clk.Now
	mustSessions(t, n.svc, time.Hour)

	// The same proposal twice: the second is the first's result.
	due, err := n.svc.Due(start.Add(time.Hour), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("Due = %v, %v", due, err)
	}
	ctx := context.Background()
	for i := range 2 {
		if out, err := n.svc.fireDeadline(ctx, due[0]); err != nil || out != "fired" {
			t.Fatalf("firing %d: %q, %v", i, out, err)
		}
	}
	if s, _ := n.svc.Session("s0"); s.Status != SessionOverdue || s.Seq != 2 {
		t.Fatalf("session after a double firing: %s, seq %d", s.Status, s.Seq)
	}

	clk.Set(start.Add(2 * time.Hour))
	var schs []*Scheduler
	for range 2 {
		s := NewScheduler(n.svc, func() bool { return true }, SchedulerConfig{Interval: 5 * time.Millisecond})
		schs = append(schs, s)
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 10*time.Second, "the missed check-in alarm", func() bool {
		return countAlarms(t, n, AlarmMissedCheckIn, "s0") >= 1
	})
	for _, s := range schs {
		s.Close()
		s.Close() // twice is safe
	}
	if c := countAlarms(t, n, AlarmMissedCheckIn, "s0"); c != 1 {
		t.Fatalf("%d missed check-in alarms, want 1", c)
	}
}

func TestScheduler_DeadlineAlarmIDIsStable(t *testing.T) {
	a, b := deadlineAlarmID("session/s1/2/grace"), deadlineAlarmID("session/s1/2/grace")
	if a != b || a == deadlineAlarmID("session/s1/4/grace") || len(a) != 36 {
		t.Fatalf("deadlineAlarmID: %q, %q", a, b)
	}
}
