package monitoring

// Acknowledgement targets being missed. When an alarm is raised, a deadline
// of kind DeadlineAckOverdue is set at RaisedAt + AckTarget1 (BS 8484: 10 s).
// If it fires while the alarm is still unacknowledged, an EventAckOverdue
// goes out (the console escalates audibly, supervisors see it), a system
// note joins the timeline, and the second deadline is set at RaisedAt +
// AckTarget2 (40 s), which does the same once more. Acknowledging or
// closing the alarm deletes the pending one. Test alarms have none.

import (
	"encoding/json"
	"fmt"
	"time"
)

func alarmOwner(id string) string { return "alarm/" + id }

// ackTargets are the acknowledgement targets, in order; a deadline's
// number (1 or 2) picks one.
var ackTargets = [...]time.Duration{AckTarget1, AckTarget2}

// ackDeadlineID is the ID of alarm id's deadline for target n (1 or 2).
func ackDeadlineID(id string, n int) string { return fmt.Sprintf("alarm/%s/ack/%d", id, n) }

// setAckDeadline sets a's deadline for target n (1 or 2).
func setAckDeadline(c *applyCtx, a *Alarm, n int) error {
	if a.Type == AlarmTest {
		return nil
	}
	d := &Deadline{ID: ackDeadlineID(a.ID, n), Kind: DeadlineAckOverdue,
		Due: a.RaisedAt.Add(ackTargets[n-1]), AlarmID: a.ID, DeviceID: a.DeviceID, SessionID: a.SessionID}
	return putOwnedDeadline(c, alarmOwner(a.ID), d)
}

// fireAckOverdue acts on an acknowledgement deadline d, stored at key. The
// deadline goes either way.
func fireAckOverdue(c *applyCtx, key string, d *Deadline) ([]byte, error) {
	stale := func() ([]byte, error) {
		if err := dropFiredDeadline(c, alarmOwner(d.AlarmID), key, d.Kind); err != nil {
			return nil, err
		}
		return json.Marshal(fireResult{Outcome: "stale", Kind: d.Kind})
	}
	n := 0
	for i := range ackTargets {
		if d.ID == ackDeadlineID(d.AlarmID, i+1) {
			n = i + 1
		}
	}
	var a Alarm
	found, err := getJSON(c.txn, pAlarm+d.AlarmID, &a)
	if err != nil {
		return nil, err
	}
	if n == 0 || !found || a.Status == StatusClosed || !a.AckAt.IsZero() {
		return stale()
	}
	if err := dropFiredDeadline(c, alarmOwner(a.ID), key, d.Kind); err != nil {
		return nil, err
	}
	target := ackTargets[n-1]
	if n < len(ackTargets) {
		if err := setAckDeadline(c, &a, n+1); err != nil {
			return nil, err
		}
	}
	text := fmt.Sprintf("not acknowledged within %s", fmtTarget(target))
	entry, err := c.addTimeline(&a, TimelineEntry{Kind: ActionNote, Actor: "system", Text: text})
	if err != nil {
		return nil, err
	}
	if _, err := saveAlarm(c, &a, CmdFireDeadline, EventAckOverdue, entry, text); err != nil {
		return nil, err
	}
	return json.Marshal(fireResult{Outcome: "fired", Kind: d.Kind, AlarmID: a.ID})
}

// fmtTarget writes a target as "10 s".
func fmtTarget(d time.Duration) string { return fmt.Sprintf("%d s", int(d/time.Second)) }
