package broker

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// The limiter at given times: an alarm message takes one token from each
// bucket, the buckets refill at their rate, and a flood is reported once,
// again after a failed report, and again only after FloodQuiet without a
// refusal.
func TestLimiter_BucketsAndFloods(t *testing.T) {
	l := newLimiter(Config{MessagesPerMinute: 60, MessageBurst: 5, AlarmsPerMinute: 30, AlarmBurst: 5,
		FloodQuiet: time.Minute}, slog.New(slog.DiscardHandler))
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	alarm := func(at time.Time) verdict {
		v := l.admit("d", false, at)
		if v.ok {
			v = l.admit("d", true, at)
		}
		return v
	}
	for i := range 5 {
		if v := alarm(t0); !v.ok {
			t.Fatalf("alarm %d of a burst of 5: %+v", i, v)
		}
	}
	v := alarm(t0)
	if v.ok || v.limit != monitoring.FloodLimitMessages || v.retryAfter != time.Second || v.report == nil ||
		v.report.refused != 1 || !v.report.since.Equal(t0) {
		t.Fatalf("the sixth: %+v, want refused by the message bucket for 1 s, reported", v)
	}
	if v := alarm(t0); v.ok || v.report != nil {
		t.Fatalf("while the report is in flight: %+v, want refused, not reported again", v)
	}
	l.reported("d", t0, errNotReported, t0)
	if v := alarm(t0.Add(500 * time.Millisecond)); v.ok || v.report != nil {
		t.Fatalf("half a second after a failed report: %+v, want refused, not reported yet", v)
	}
	// 1.5 s on: one message token, but the alarm bucket (one every 2 s)
	// has none; the report is tried again.
	v = alarm(t0.Add(1500 * time.Millisecond))
	if v.ok || v.limit != monitoring.FloodLimitAlarms || v.report == nil || v.report.refused != 4 {
		t.Fatalf("1.5 s on: %+v, want refused by the alarm bucket, reported again with 4 refused", v)
	}
	l.reported("d", t0, nil, t0.Add(1500*time.Millisecond))
	if v := alarm(t0.Add(4 * time.Second)); !v.ok {
		t.Fatalf("4 s on: %+v, want a token in each bucket", v)
	}
	if v := l.admit("d", false, t0.Add(4*time.Second)); !v.ok {
		t.Fatalf("a heartbeat 4 s on: %+v, want a message token left", v)
	}
	if v := alarm(t0.Add(4 * time.Second)); !v.ok {
		t.Fatalf("a second alarm 4 s on: %+v, want the last tokens", v)
	}
	if v := alarm(t0.Add(4 * time.Second)); v.ok || v.report != nil {
		t.Fatalf("a third alarm 4 s on: %+v, want refused in the same flood, reported already", v)
	}
	if f := l.inProgress(t0.Add(4 * time.Second)); len(f) != 1 || f[0].Refused != 5 || !f[0].Reported || !f[0].Since.Equal(t0) {
		t.Fatalf("floods %+v", f)
	}
	// Quiet for FloodQuiet: the flood is over; a new refusal is a new one.
	later := t0.Add(4*time.Second + time.Minute)
	if f := l.inProgress(later); len(f) != 0 {
		t.Fatalf("floods after a quiet minute %+v", f)
	}
	for range 5 {
		alarm(later)
	}
	if v := alarm(later); v.ok || v.report == nil || v.report.refused != 1 || !v.report.since.Equal(later) {
		t.Fatalf("a new flood: %+v, want it reported", v)
	}
	if n, r := l.begun.Load(), l.refused.Load(); n != 2 || r != 6 {
		t.Fatalf("floods begun %d, refused %d; want 2 and 6", n, r)
	}
	if v := l.admit("other", true, later); !v.ok {
		t.Fatalf("another device: %+v", v)
	}
}

var errNotReported = errors.New("no leader")
