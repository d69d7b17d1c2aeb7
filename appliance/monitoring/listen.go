package monitoring

// Listen-in requests: an operator asks the device of an alarm to open its
// microphone and stream its audio (audio.go) for a while. The request is
// recorded through Raft, so whichever node holds the device's connection
// sends it (broker/downlink.go), and a device that reconnects before the
// request's time is up is asked again (broker/resync.go).
//
// A device never shows a listen request: it streams silently. So it may be
// sent for a silent alarm (duress, discreet panic) too: covert listening is
// how a duress alarm is verified. A duress alarm raised by a Duress-PIN
// session action is an alarm that a Safe-PIN action never has, so a request
// about it only ever goes to a device under duress; what an onlooker sees
// of the device is the same either way, because the device shows nothing.

import (
	"context"
	"fmt"
	"time"
)

// Bounds of a listen-in request, in seconds of audio asked for.
const (
	MinListenSeconds     = 10
	MaxListenSeconds     = 600
	DefaultListenSeconds = 120
)

// listenRequestCmd asks the device of an alarm to stream its audio for
// Seconds. The actor is the operator (or "token:<name>").
type listenRequestCmd struct {
	Header
	AlarmID string `json:"alarm_id"`
	Seconds int    `json:"seconds"`
}

// checkListen checks what can be checked of a request without the state:
// the Service before proposing, the state machine again on apply.
func checkListen(actor, alarmID string, seconds int) error {
	if actor == "system" || deviceOfActor(actor) != "" {
		return invalid("actor", "a listen-in is asked for by an operator, not %q", actor)
	}
	if err := validID("alarm_id", alarmID); err != nil {
		return err
	}
	if seconds < MinListenSeconds || seconds > MaxListenSeconds {
		return invalid("seconds", "%d is outside %d to %d", seconds, MinListenSeconds, MaxListenSeconds)
	}
	return nil
}

// applyListenRequest records a listen-in request on its alarm: a listen_in
// entry on the timeline by the operator, an audit record, and the time the
// device streams until. Rules, checked before anything is written: the
// alarm exists, was raised from a device, is not closed and has been
// acknowledged; a device-flooding alarm is about the device, not a worker
// in danger, and is refused.
func applyListenRequest(c *applyCtx, body []byte) ([]byte, error) {
	var cmd listenRequestCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := checkListen(c.hdr.Actor, cmd.AlarmID, cmd.Seconds); err != nil {
		return nil, err
	}
	a, err := getAlarm(c.txn, cmd.AlarmID)
	if err != nil {
		return nil, err
	}
	switch {
	case a.Status == StatusClosed:
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed; reopen it first", a.ID)
	case a.Status == StatusRaised:
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is not acknowledged: acknowledge it first", a.ID)
	case a.DeviceID == "":
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s was not raised from a device: there is no device to listen to", a.ID)
	case a.Type == AlarmDeviceFlooding:
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is about a device flooding the gateway, not a worker: there is nothing to listen to", a.ID)
	}

	// Every rule has been checked: write.
	now := c.now()
	a.Status = StatusInProgress
	a.ListenAt, a.ListenUntil = now, now.Add(time.Duration(cmd.Seconds)*time.Second)
	text := fmt.Sprintf("asked the device to stream its audio for %d s", cmd.Seconds)
	entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionListenIn, Text: text})
	if err != nil {
		return nil, err
	}
	resp, err := saveAlarm(c, a, CmdListenRequest, EventAlarmUpdated, entry, text)
	if err != nil {
		return nil, err
	}
	ev := *a
	c.emit(Event{Type: EventListenRequested, Alarm: &ev})
	return resp, nil
}

// RequestListen asks the device of an acknowledged alarm to stream its
// audio for seconds (0: DefaultListenSeconds), silently. The request is on
// the alarm's timeline as a listen_in entry by operator, and in the audit
// log.
func (s *Service) RequestListen(ctx context.Context, cmdID, operator, alarmID string, seconds int) (*Alarm, error) {
	if err := checkOperator(operator, alarmID); err != nil {
		return nil, err
	}
	if seconds == 0 {
		seconds = DefaultListenSeconds
	}
	if err := checkListen(operator, alarmID, seconds); err != nil {
		return nil, err
	}
	cmd := listenRequestCmd{Header: s.header(operator), AlarmID: alarmID, Seconds: seconds}
	return s.proposeAlarm(ctx, cmdID, CmdListenRequest, &cmd)
}
