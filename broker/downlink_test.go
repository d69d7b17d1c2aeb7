package broker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
)

// notices are what a device receives on down/alarm and down/reminder.
type notices struct {
	t         *testing.T
	alarms    chan []byte
	reminders chan []byte
}

// mustNotices subscribes d to its down/alarm and down/reminder topics.
func mustNotices(t *testing.T, d *device, id string) *notices {
	t.Helper()
	n := &notices{t: t, alarms: make(chan []byte, 64), reminders: make(chan []byte, 64)}
	for sub, ch := range map[string]chan []byte{broker.DownAlarm: n.alarms, broker.DownReminder: n.reminders} {
		tok := d.c.Subscribe(broker.DownTopic(id, sub), 1, func(_ paho.Client, m paho.Message) { ch <- m.Payload() })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", sub, tok.Error())
		}
	}
	return n
}

// alarm waits for the next down/alarm notice and checks it.
func (n *notices) alarm(alarmID, status string) {
	n.t.Helper()
	select {
	case b := <-n.alarms:
		var got broker.AlarmNotice
		if err := json.Unmarshal(b, &got); err != nil {
			n.t.Fatalf("down/alarm %s: %v", b, err)
		}
		if got.AlarmID != alarmID || got.Status != status || got.TS.IsZero() {
			n.t.Fatalf("down/alarm %s, want alarm %s status %s with ts", b, alarmID, status)
		}
	case <-time.After(15 * time.Second):
		n.t.Fatalf("no down/alarm %s for alarm %s", status, alarmID)
	}
}

// raise publishes an alarm of type typ and returns its ID.
func raise(t *testing.T, d *device, f fixture, eventID, typ string) string {
	t.Helper()
	d.publish(f.device, "alarm", map[string]any{"event_id": eventID, "ts": ts(), "alarm_type": typ})
	r, raw := d.reply()
	var res struct {
		AlarmID string `json:"alarm_id"`
	}
	if !r.OK || json.Unmarshal(r.Result, &res) != nil || res.AlarmID == "" {
		t.Fatalf("alarm %s: %s", typ, raw)
	}
	return res.AlarmID
}

// A red alert's device hears that it was received, acknowledged by an
// operator and closed, and, reopened, that it is acknowledged again.
func TestDownlink_AlarmLifecycle(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "dl")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	no := mustNotices(t, d, f.device)
	ctx := context.Background()

	id := raise(t, d, f, "a1", "red_alert")
	no.alarm(id, broker.AlarmNoticeReceived)
	if _, err := svc.Acknowledge(ctx, "ack-1", "op1", id, false); err != nil {
		t.Fatal(err)
	}
	no.alarm(id, broker.AlarmNoticeAcknowledged)
	if _, err := svc.Close(ctx, "close-1", "op1", id, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "called back", "no contacts on file (test)"); err != nil {
		t.Fatal(err)
	}
	no.alarm(id, broker.AlarmNoticeClosed)
	if _, err := svc.Reopen(ctx, "reopen-1", "sup1", id, "she rang again"); err != nil {
		t.Fatal(err)
	}
	no.alarm(id, broker.AlarmNoticeAcknowledged)
}

// Silent alarms (discreet panic, the duress alarm of a session ended with
// the Duress PIN) send nothing to the device, whatever operators do with
// them.
func TestDownlink_SilentAlarmsSendNothing(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "sl")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	no := mustNotices(t, d, f.device)
	ctx := context.Background()

	raise(t, d, f, "p1", "discreet_panic")
	d.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "sess-1", "duration": "45m"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("start: %s", raw)
	}
	d.publish(f.device, "session/end", map[string]any{"event_id": "s2", "ts": ts(), "session_id": "sess-1", "pin": "9999"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("end: %s", raw)
	}
	open, err := svc.OpenAlarms()
	if err != nil || len(open) != 2 {
		t.Fatalf("%d open alarms (%v), want the discreet panic and the duress alarm", len(open), err)
	}
	for i, a := range open {
		if !a.Silent {
			t.Fatalf("alarm %s (%s) is not silent", a.ID, a.Type)
		}
		if _, err := svc.Acknowledge(ctx, "ack-"+a.ID, "op1", a.ID, false); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := svc.Close(ctx, "close-"+a.ID, "op1", a.ID, monitoring.ResolutionIncidentHandled, monitoring.ConfirmedByPolice, "", "no contacts on file (test)"); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case b := <-no.alarms:
		t.Fatalf("down/alarm for a silent alarm: %s", b)
	case <-time.After(time.Second):
	}
	// Positive control: events are handled in commit order, so a notice for
	// a silent alarm would have come before this one.
	id := raise(t, d, f, "a1", "red_alert")
	no.alarm(id, broker.AlarmNoticeReceived)
}

// An alarm "cancelled" with the Duress PIN shows the device the same
// closed notice as one cancelled with the Safe PIN, and nothing after.
func TestDownlink_DuressCancelLooksLikeSafeCancel(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "dc")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	no := mustNotices(t, d, f.device)
	ctx := context.Background()

	for i, pin := range []string{"1111", "9999"} {
		id := raise(t, d, f, "a"+pin, "red_alert")
		no.alarm(id, broker.AlarmNoticeReceived)
		d.publish(f.device, "alarm/cancel", map[string]any{"event_id": "c" + pin, "ts": ts(), "alarm_id": id, "pin": pin})
		if r, raw := d.reply(); !r.OK {
			t.Fatalf("cancel %d: %s", i, raw)
		}
		no.alarm(id, broker.AlarmNoticeClosed)
	}
	// Operators deal with the alarm reset with the Safe PIN (it waits for
	// them to confirm the worker is safe), the duress-cancelled alarm and
	// the duress alarm; the device hears nothing of it, whichever PIN.
	open, err := svc.OpenAlarms()
	if err != nil || len(open) != 3 {
		t.Fatalf("%d open alarms (%v), want 3", len(open), err)
	}
	for _, a := range open {
		if _, err := svc.Acknowledge(ctx, "ack-"+a.ID, "op1", a.ID, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range open {
		if _, err := svc.Close(ctx, "close-"+a.ID, "op1", a.ID, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByPolice, "", "no contacts on file (test)"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case b := <-no.alarms:
		t.Fatalf("down/alarm after a cancel: %s", b)
	case <-time.After(time.Second):
	}
	id := raise(t, d, f, "a2", "red_alert")
	no.alarm(id, broker.AlarmNoticeReceived)
}

// A session whose time runs out sends its device a check-in reminder.
func TestDownlink_CheckInReminder(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "rm")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	no := mustNotices(t, d, f.device)

	d.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "sess-r", "duration": "1s"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("start: %s", raw)
	}
	s, err := n.Service.Session("sess-r")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-no.reminders:
		var got broker.ReminderNotice
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("down/reminder %s: %v", b, err)
		}
		if got.SessionID != "sess-r" || !got.Due.Equal(s.NextDue) || got.TS.IsZero() || !got.GraceUntil.After(got.Due) {
			t.Fatalf("down/reminder %s, want session sess-r due %s", b, s.NextDue)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no down/reminder")
	}
}
