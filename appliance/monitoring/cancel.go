package monitoring

// Cancelling (resetting) an alarm from the worker's device with a PIN.
//
// The close rule (CmdResetAlarm): no alarm is closed without an operator
// confirming that the worker is safe or the incident was dealt with. The
// Safe PIN tells the device the alarm is cancelled, and leaves it open for
// the operators, marked as reset by the worker (ResetAt) and at a lower
// urgency, until an operator calls the worker back, confirms they are safe
// and closes it. Only an organisation's accidental-press window, when set,
// lets a Safe-PIN reset close an alarm no operator has taken yet, as a
// false alarm, by itself. The Duress PIN gets the same reply, byte for
// byte, but the alarm becomes do-not-call and silent, and a silent duress
// alarm joins its incident: the worker is being made to cancel. A wrong
// PIN is counted on the worker and changes nothing else.
//
// CmdCancelAlarm, whose Safe PIN closed the alarm as a false alarm with no
// operator involved, stays for replaying older logs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CancelReply is what a device is told when its alarm is cancelled. It is
// the same, byte for byte, whether the Safe PIN or the Duress PIN was
// entered: it holds nothing that the Duress PIN changes.
type CancelReply struct {
	AlarmID   string    `json:"alarm_id"`
	Cancelled bool      `json:"cancelled"` // always true in a reply
	At        time.Time `json:"at"`        // when the cancel took effect
}

// cancelResult is the state machine's response to CancelAlarm. For a Safe
// or Duress PIN it encodes exactly as the CancelReply; a wrong PIN adds
// WrongPIN, which the Service turns into ErrWrongPIN.
type cancelResult struct {
	CancelReply
	WrongPIN  bool `json:"wrong_pin,omitempty"`
	WrongPINs int  `json:"wrong_pins,omitempty"`
}

// Timeline texts of a cancel.
const (
	cancelSafeText = "cancelled by the worker with the Safe PIN"
	// The device was told "cancelled"; the operators must know it was not.
	cancelDuressText = "the worker cancelled with the DURESS PIN: the device shows the alarm as cancelled, " +
		"but the worker is under duress; do not call the worker; duress alarm %s raised"
)

// deviceOfActor returns the device ID of an actor "device:<id>", or "".
func deviceOfActor(actor string) string {
	id, ok := strings.CutPrefix(actor, "device:")
	if !ok {
		return ""
	}
	return id
}

// alarmClosedForDevice is the refusal of a cancel of an alarm that is
// closed, or that the device was told is cancelled (DuressCancel): the two
// must read the same.
func alarmClosedForDevice(a *Alarm) *RuleError {
	return ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed", a.ID)
}

// checkCancel checks the rules of a cancel from device deviceID that do
// not depend on the PIN: the alarm is the device's own and not closed, and
// has a worker whose PINs can be checked.
func checkCancel(a *Alarm, deviceID string) error {
	switch {
	case deviceID == "":
		return invalid("actor", "an alarm is cancelled by its device: the actor is \"device:<id>\"")
	case a.DeviceID != deviceID:
		return ruleErr(CodeConflict, "alarm_id", "alarm %s is not an alarm of device %s; only its own device can cancel it", a.ID, deviceID)
	case a.Status == StatusClosed || a.CancelledOnDevice():
		return alarmClosedForDevice(a)
	case a.Type == AlarmDuress, a.Type == AlarmDeviceFlooding:
		// A duress alarm never reaches the device, nor does the alarm about
		// a device that flooded (flood.go): only operators close them.
		return ruleErr(CodeConflict, "alarm_id", "alarm %s cannot be cancelled from the device", a.ID)
	case a.WorkerID == "":
		return ruleErr(CodeConflict, "alarm_id", "alarm %s has no worker whose PIN could cancel it", a.ID)
	}
	return nil
}

// applyCancelAlarm cancels an alarm under the rules before the close rule:
// the Safe PIN closes it. It stays for replaying older logs.
func applyCancelAlarm(c *applyCtx, body []byte) ([]byte, error) { return applyCancel(c, body, false) }

// applyResetAlarm cancels an alarm under the close rule: the Safe PIN
// leaves it open, awaiting confirmation.
func applyResetAlarm(c *applyCtx, body []byte) ([]byte, error) { return applyCancel(c, body, true) }

// Timeline texts of a reset under the close rule.
const (
	resetSafeText = "reset by the worker with the Safe PIN: the device shows the alarm as cancelled; " +
		"call the worker to confirm they are safe before closing"
	resetWindowText = "reset by the worker with the Safe PIN %s after the raise, within the organisation's " +
		"accidental-press window of %s and before any operator took it: closed as a false alarm"
)

// applyCancel cancels an alarm with the PIN outcome the Service found;
// reset says the close rule applies (CmdResetAlarm). A wrong PIN is not a
// refusal (a refusal cannot write): it is counted on the worker and
// answered with WrongPIN.
func applyCancel(c *applyCtx, body []byte, reset bool) ([]byte, error) {
	cmdType := CmdCancelAlarm
	if reset {
		cmdType = CmdResetAlarm
	}
	var cmd cancelAlarmCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	switch cmd.PIN {
	case pinSafe, pinWrong:
	case pinDuress:
		if err := validID("duress_alarm_id", cmd.DuressAlarmID); err != nil {
			return nil, err
		}
	case pinNone:
		return nil, invalid("pin", "cancelling an alarm needs the worker's PIN")
	default:
		return nil, invalid("pin", "unknown PIN outcome %q", cmd.PIN)
	}
	a, err := loadAlarm(c.txn, cmd.AlarmID)
	if err != nil {
		return nil, err
	}
	if err := checkCancel(a, deviceOfActor(c.hdr.Actor)); err != nil {
		return nil, err
	}
	w, err := getWorker(c.txn, a.WorkerID)
	if err != nil {
		return nil, err
	}
	if cmd.PINVersion != w.PINVersion {
		return nil, ruleErr(CodeStalePIN, "pin", "the worker's PINs changed since the PIN was checked; enter it again")
	}
	if w.SafePINHash == "" {
		return nil, invalid("pin", "worker %q has no Safe PIN: an operator must close the alarm", w.ID)
	}
	now := c.now()
	reply := CancelReply{AlarmID: a.ID, Cancelled: true, At: now}

	if cmd.PIN == pinWrong {
		w.WrongPINs++
		w.UpdatedAt = now
		if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
			return nil, err
		}
		detail := fmt.Sprintf("wrong PIN to cancel alarm %s (%d since the last right one)", a.ID, w.WrongPINs)
		if err := c.audit(cmdType, "worker/"+w.ID, detail); err != nil {
			return nil, err
		}
		ev := *a
		c.emit(Event{Type: EventWrongPIN, Worker: publicWorker(w), Alarm: &ev})
		return json.Marshal(cancelResult{CancelReply: CancelReply{AlarmID: a.ID, At: now}, WrongPIN: true, WrongPINs: w.WrongPINs})
	}

	if cmd.PIN == pinDuress {
		// First, so that a refusal by raiseAlarm leaves nothing written.
		r := RaiseAlarmCmd{Header: c.hdr, AlarmID: cmd.DuressAlarmID, Type: AlarmDuress,
			DeviceID: a.DeviceID, WorkerID: a.WorkerID, SessionID: a.SessionID}
		why := fmt.Sprintf("the Duress PIN was entered to cancel alarm %s", a.ID)
		if _, err := raiseLinkedAlarm(c, r, a, why); err != nil {
			return nil, err
		}
	}
	if w.WrongPINs != 0 {
		w.WrongPINs, w.UpdatedAt = 0, now
		if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
			return nil, err
		}
	}
	// What the device is told: the same for both PINs.
	if reset {
		a.CancelledAt = now
	}
	cancelled := Alarm{ID: a.ID, DeviceID: a.DeviceID, WorkerID: a.WorkerID}
	c.emit(Event{Type: EventAlarmCancelled, Alarm: &cancelled})
	if cmd.PIN == pinDuress {
		a.DuressCancel, a.DoNotCall, a.Silent = true, true, true
		entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionNote, Actor: "system",
			Text: fmt.Sprintf(cancelDuressText, cmd.DuressAlarmID)})
		if err != nil {
			return nil, err
		}
		if _, err := saveAlarm(c, a, cmdType, EventAlarmUpdated, entry, "duress PIN: alarm "+cmd.DuressAlarmID); err != nil {
			return nil, err
		}
		return json.Marshal(reply)
	}
	closeText, confirmation := cancelSafeText, Confirmation("")
	if reset {
		org, err := getOrg(c.txn, a.OrgID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		after := now.Sub(a.RaisedAt)
		if org == nil || org.AccidentalPressWindow <= 0 || after > org.AccidentalPressWindow || a.Status != StatusRaised {
			// The close rule: the alarm stays open until an operator
			// confirms the worker is safe.
			a.ResetAt = now
			entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionWorkerReset, Text: resetSafeText})
			if err != nil {
				return nil, err
			}
			if _, err := saveAlarm(c, a, cmdType, EventAlarmUpdated, entry, "reset by the worker (Safe PIN): awaiting confirmation"); err != nil {
				return nil, err
			}
			return json.Marshal(reply)
		}
		closeText = fmt.Sprintf(resetWindowText, after.Round(100*time.Millisecond), org.AccidentalPressWindow)
		confirmation, a.ResetAt = ConfirmedAccidentalPress, now
	}
	if err := clearOwnedDeadline(c, alarmOwner(a.ID), DeadlineAckOverdue); err != nil {
		return nil, err
	}
	if err := c.txn.Delete(openKey(a)); err != nil {
		return nil, err
	}
	a.Status, a.Resolution, a.CloseNote, a.Confirmation = StatusClosed, ResolutionFalseAlarm, closeText, confirmation
	a.ClosedBy, a.ClosedAt = c.hdr.Actor, now
	entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionClosed, Outcome: string(ResolutionFalseAlarm), Confirmation: confirmation, Text: closeText})
	if err != nil {
		return nil, err
	}
	if _, err := saveAlarm(c, a, cmdType, EventAlarmClosed, entry, "resolution=false_alarm, by the worker"); err != nil {
		return nil, err
	}
	return json.Marshal(reply)
}
