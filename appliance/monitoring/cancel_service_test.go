package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

func TestCancelAlarmService(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	nodes := [2]*monitoringtest.Node{mustSingle(t, now), mustSingle(t, now)}
	pins := [2]string{"1111", "2222"}
	var replies [2][]byte
	for i, n := range nodes {
		seedService(t, n.Service)
		if _, err := n.Service.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"}); err != nil {
			t.Fatal(err)
		}
		q, _ := n.Service.OpenAlarms()
		r, err := n.Service.CancelAlarm(ctx, "cancel", "device:d1", q[0].ID, pins[i])
		if err != nil {
			t.Fatalf("cancel with PIN %s: %v", pins[i], err)
		}
		// The alarm IDs differ between the two nodes; the rest must not.
		r.AlarmID = "x"
		replies[i], _ = json.Marshal(r)
	}
	if !bytes.Equal(replies[0], replies[1]) {
		t.Fatalf("replies differ:\nsafe   %s\nduress %s", replies[0], replies[1])
	}
	// The close rule: the Safe PIN leaves the alarm open, reset by the
	// worker, until an operator confirms they are safe.
	if q, _ := nodes[0].Service.OpenAlarms(); len(q) != 1 || !q[0].AwaitingConfirmation() || q[0].DoNotCall || q[0].Silent ||
		q[0].Status != monitoring.StatusRaised {
		t.Fatalf("safe: open queue %+v; want the alarm, raised, reset and awaiting confirmation", q)
	}
	q, _ := nodes[1].Service.OpenAlarms()
	if len(q) != 2 || q[0].IncidentID != q[1].IncidentID {
		t.Fatalf("duress: open queue %+v", q)
	}
	for _, a := range q {
		if !a.DoNotCall || !a.Silent {
			t.Fatalf("duress: alarm %+v is not do-not-call and silent", a)
		}
	}

	t.Run("refusals", func(t *testing.T) {
		n := mustSingle(t, now)
		seedService(t, n.Service)
		a, err := n.Service.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, id, actor, alarm, pin string
			code                        monitoring.Code
			field                       string
		}{
			{"no id", "", "device:d1", a.ID, "1111", monitoring.CodeInvalid, "id"},
			{"operator", "c1", "olivia", a.ID, "1111", monitoring.CodeInvalid, "actor"},
			{"no pin", "c2", "device:d1", a.ID, "", monitoring.CodeInvalid, "pin"},
			{"bad pin", "c3", "device:d1", a.ID, "12ab", monitoring.CodeInvalid, "pin"},
			{"no alarm", "c4", "device:d1", "nope", "1111", monitoring.CodeNotFound, "alarm_id"},
			{"wrong pin", "c5", "device:d1", a.ID, "9999", monitoring.CodeWrongPIN, "pin"},
			{"wrong pin replayed", "c5", "device:d1", a.ID, "9999", monitoring.CodeWrongPIN, "pin"},
		} {
			_, err := n.Service.CancelAlarm(ctx, tc.id, tc.actor, tc.alarm, tc.pin)
			var re *monitoring.RuleError
			if !errors.As(err, &re) || re.Code != tc.code || re.Field != tc.field {
				t.Fatalf("%s: got %v, want %s (%s)", tc.name, err, tc.code, tc.field)
			}
		}
		if w, _ := n.Service.Worker("w1"); w.WrongPINs != 1 {
			t.Fatalf("wrong PINs %d, want 1 (the replay is not counted)", w.WrongPINs)
		}
		if got, _ := n.Service.Alarm(a.ID); got.Status != monitoring.StatusRaised {
			t.Fatalf("alarm %s after a wrong PIN", got.Status)
		}
		if _, err := n.Service.CancelAlarm(ctx, "c6", "device:d1", a.ID, "1111"); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Service.CancelAlarm(ctx, "c7", "device:d1", a.ID, "1111"); !errors.Is(err, monitoring.ErrAlarmClosed) {
			t.Fatalf("cancel of a closed alarm: %v", err)
		}
	})
}
