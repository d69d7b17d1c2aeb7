package monitoring

// Timed sessions (the "monitor timer") and their deadlines.
//
// A session that is not ended has at most one deadline in the state, at
// ix/deadline/<due>/<deadline id>, derived from the session (sessionDeadline):
// while active, "session/<id>/<seq>/due" at NextDue; while overdue,
// "session/<id>/<seq>/grace" at GraceUntil; none once the alarm is raised or
// the session ended. Every change bumps Seq and replaces the deadline, so a
// deadline that fires after the session changed finds no key and is a no-op.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Limits of a session's timers.
const (
	MaxSessionDuration = 24 * time.Hour
	MinCheckInInterval = 5 * time.Minute
	MaxCheckInInterval = 24 * time.Hour
)

// validCheckInInterval: 0 (none) or 5 minutes to 24 hours.
func validCheckInInterval(field string, d time.Duration) error {
	if d != 0 && (d < MinCheckInInterval || d > MaxCheckInInterval) {
		return invalid(field, "%s is outside %s..%s (or 0 for none)", d, MinCheckInInterval, MaxCheckInInterval)
	}
	return nil
}

// SessionReply is what a device is told after a check-in, an extension or
// an end. It is the same, byte for byte, whether the Safe PIN or the Duress
// PIN was entered: it holds nothing that a duress alarm changes.
type SessionReply struct {
	SessionID       string            `json:"session_id"`
	Action          SessionActionKind `json:"action"`
	Status          SessionStatus     `json:"status"`
	At              time.Time         `json:"at"` // when the action took effect
	EndsAt          time.Time         `json:"ends_at"`
	NextDue         time.Time         `json:"next_due"`
	CheckInInterval time.Duration     `json:"checkin_interval_ns,omitempty"`
	// AudioRef is where the device may stream audio after this action
	// (audioref.go): the same format whichever PIN. Empty in replies of
	// commands applied before sessionActionCmd's RulesSessionAudioRef.
	AudioRef string `json:"audio_ref,omitempty"`
}

// sessionActionResult is the state machine's response to SessionAction. For
// a Safe or Duress PIN it encodes exactly as the SessionReply; a wrong PIN
// adds WrongPIN, which the Service turns into ErrWrongPIN.
type sessionActionResult struct {
	SessionReply
	WrongPIN  bool `json:"wrong_pin,omitempty"`
	WrongPINs int  `json:"wrong_pins,omitempty"`
}

func replyOf(s *Session, action SessionActionKind, at time.Time) SessionReply {
	return SessionReply{
		SessionID: s.ID, Action: action, Status: s.Status, At: at,
		EndsAt: s.EndsAt, NextDue: s.NextDue, CheckInInterval: s.CheckInInterval,
	}
}

// sessionDeadline returns the deadline a session has in the state, or nil.
func sessionDeadline(s *Session) *Deadline {
	switch s.Status {
	case SessionActive:
		return &Deadline{ID: fmt.Sprintf("session/%s/%d/due", s.ID, s.Seq), Kind: DeadlineSessionDue,
			Due: s.NextDue, SessionID: s.ID, DeviceID: s.DeviceID}
	case SessionOverdue:
		return &Deadline{ID: fmt.Sprintf("session/%s/%d/grace", s.ID, s.Seq), Kind: DeadlineSessionGrace,
			Due: s.GraceUntil, SessionID: s.ID, DeviceID: s.DeviceID}
	}
	return nil
}

func deadlineKey(d *Deadline) string { return pDeadline + tkey(d.Due) + "/" + d.ID }

// nextDue is when the timer of s next runs out, from t: the next check-in
// or the expected end, whichever is first.
func nextDue(s *Session, t time.Time) time.Time {
	if s.CheckInInterval > 0 {
		if c := t.Add(s.CheckInInterval); c.Before(s.EndsAt) {
			return c
		}
	}
	return s.EndsAt
}

// saveSession writes s after a change from old (nil for a new session):
// the old deadline goes, Seq is bumped, the new deadline (if any) is
// written, and the indexes follow the status.
func saveSession(c *applyCtx, old, s *Session) error {
	if old != nil {
		if d := sessionDeadline(old); d != nil {
			if err := c.txn.Delete([]byte(deadlineKey(d))); err != nil {
				return err
			}
		}
	}
	s.Seq++
	if d := sessionDeadline(s); d != nil {
		if err := putJSON(c.txn, deadlineKey(d), d); err != nil {
			return err
		}
	}
	if s.Status == SessionEnded {
		if err := clearOwnedDeadline(c, deviceOwner(s.DeviceID), DeadlineDeviceOffline); err != nil {
			return err
		}
		if err := c.txn.Delete([]byte(pActive + s.ID)); err != nil {
			return err
		}
		if err := c.txn.Delete([]byte(pWorkerSession + s.WorkerID)); err != nil {
			return err
		}
	} else if old == nil {
		if err := setIndex(c.txn, []byte(pActive+s.ID)); err != nil {
			return err
		}
		if err := c.txn.Set([]byte(pWorkerSession+s.WorkerID), []byte(s.ID)); err != nil {
			return err
		}
	}
	return putJSON(c.txn, pSession+s.ID, s)
}

// workerSession returns the worker's session that has not ended, or nil.
func workerSession(txn *badger.Txn, workerID string) (*Session, error) {
	item, err := txn.Get([]byte(pWorkerSession + workerID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	s, err := getSession(txn, string(id))
	if err != nil {
		return nil, fmt.Errorf("index %s%s: %w", pWorkerSession, workerID, err)
	}
	return s, nil
}

// deviceSession returns the session not ended that uses d, or nil. A device
// in a session is always assigned to the session's worker, so the worker's
// session is the only candidate.
func deviceSession(c *applyCtx, d *Device) (*Session, error) {
	if d.WorkerID == "" {
		return nil, nil
	}
	s, err := workerSession(c.txn, d.WorkerID)
	if err != nil || s == nil || s.DeviceID != d.ID {
		return nil, err
	}
	return s, nil
}

// applyStartSession starts a session. A pooled device is assigned to the
// worker, unless it is in another worker's session.
func applyStartSession(c *applyCtx, body []byte) ([]byte, error) {
	var cmd startSessionCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("session_id", cmd.SessionID); err != nil {
		return nil, err
	}
	switch {
	case cmd.Duration <= 0:
		return nil, invalid("duration_ns", "must be positive")
	case cmd.Duration > MaxSessionDuration:
		return nil, invalid("duration_ns", "%s is longer than %s", cmd.Duration, MaxSessionDuration)
	}
	if err := validCheckInInterval("checkin_interval_ns", cmd.CheckInInterval); err != nil {
		return nil, err
	}
	if err := validText("update", cmd.Update); err != nil {
		return nil, err
	}
	if ok, err := getJSON(c.txn, pSession+cmd.SessionID, &Session{}); err != nil || ok {
		if err == nil {
			err = ruleErr(CodeConflict, "session_id", "session %q exists", cmd.SessionID)
		}
		return nil, err
	}
	w, err := getWorker(c.txn, cmd.WorkerID)
	if err != nil {
		return nil, err
	}
	d, err := getDevice(c.txn, cmd.DeviceID)
	if err != nil {
		return nil, err
	}
	if d.OrgID != w.OrgID {
		return nil, ruleErr(CodeConflict, "device_id", "device %q is in organisation %q, worker %q in %q", d.ID, d.OrgID, w.ID, w.OrgID)
	}
	if cur, err := workerSession(c.txn, w.ID); err != nil || cur != nil {
		if err == nil {
			err = ruleErr(CodeConflict, "worker_id", "worker %q already has session %q; end it first", w.ID, cur.ID)
		}
		return nil, err
	}
	assign := false
	switch {
	case d.WorkerID == w.ID:
	case d.Kind != DevicePooled:
		return nil, ruleErr(CodeConflict, "device_id", "device %q is assigned to worker %q; only pooled devices are assigned at the start of a session", d.ID, d.WorkerID)
	default:
		other, err := deviceSession(c, d)
		if err != nil {
			return nil, err
		}
		if other != nil {
			return nil, ruleErr(CodeConflict, "device_id", "pooled device %q is in use in session %q of worker %q", d.ID, other.ID, other.WorkerID)
		}
		assign = true
	}

	now := c.now()
	if assign {
		d.WorkerID, d.UpdatedAt = w.ID, now
		if err := putJSON(c.txn, pDevice+d.ID, d); err != nil {
			return nil, err
		}
		if err := c.audit(CmdStartSession, "device/"+d.ID, "pooled device assigned to worker "+w.ID); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventDeviceUpdated, Device: d})
	}
	s := &Session{
		ID: cmd.SessionID, WorkerID: w.ID, DeviceID: d.ID, OrgID: w.OrgID, Status: SessionActive,
		StartedAt: now, EndsAt: now.Add(cmd.Duration), CheckInInterval: cmd.CheckInInterval,
		Location: cmd.Location, Update: cmd.Update,
	}
	s.NextDue = nextDue(s, now)
	if err := saveSession(c, nil, s); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("worker %s, device %s, until %s", w.ID, d.ID, s.EndsAt.Format(time.RFC3339))
	if err := c.audit(CmdStartSession, "session/"+s.ID, detail); err != nil {
		return nil, err
	}
	c.emit(Event{Type: EventSessionStarted, Session: s})
	return json.Marshal(s)
}

// applySessionAction checks in, extends or ends a session, with the PIN
// outcome the Service found. A wrong PIN is not a refusal (a refusal cannot
// write): it is counted on the worker and answered with WrongPIN. A Duress
// PIN acts exactly as the Safe PIN and also raises a silent duress alarm;
// the reply is the same.
func applySessionAction(c *applyCtx, body []byte) ([]byte, error) {
	var cmd sessionActionCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	switch cmd.Action {
	case SessionCheckIn, SessionEnd:
	case SessionExtend:
		if cmd.ExtendBy <= 0 || cmd.ExtendBy > MaxSessionDuration {
			return nil, invalid("extend_by_ns", "must be in (0, %s]", MaxSessionDuration)
		}
	default:
		return nil, invalid("action", "%q is not one of checkin, extend, end", cmd.Action)
	}
	switch cmd.PIN {
	case pinNone, pinSafe, pinWrong:
	case pinDuress:
		if err := validID("alarm_id", cmd.AlarmID); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("pin", "unknown PIN outcome %q", cmd.PIN)
	}
	// Under RulesSessionAudioRef every PIN but a wrong one records AlarmID
	// as an audio reference: the duress alarm's ID, or one naming no alarm.
	audioRef := cmd.Rules >= RulesSessionAudioRef && cmd.PIN != pinWrong
	s, err := getSession(c.txn, cmd.SessionID)
	if err != nil {
		return nil, err
	}
	if s.Status == SessionEnded {
		return nil, ruleErr(CodeSessionEnded, "session_id", "session %q ended at %s", s.ID, s.EndedAt.Format(time.RFC3339))
	}
	w, err := getWorker(c.txn, s.WorkerID)
	if err != nil {
		return nil, err
	}
	if cmd.PINVersion != w.PINVersion {
		return nil, ruleErr(CodeStalePIN, "pin", "the worker's PINs changed since the PIN was checked; enter it again")
	}
	if cmd.PIN == pinNone && w.SafePINHash != "" {
		return nil, invalid("pin", "worker %q has a Safe PIN: it is required", w.ID)
	}
	now := c.now()
	next := *s
	switch cmd.Action {
	case SessionCheckIn:
		if !now.Before(s.EndsAt) {
			return nil, ruleErr(CodeConflict, "action", "session %q was due to end at %s: extend or end it", s.ID, s.EndsAt.Format(time.RFC3339))
		}
		next.Status, next.GraceUntil, next.LastCheckIn = SessionActive, time.Time{}, now
		next.NextDue = nextDue(&next, now)
	case SessionExtend:
		// From the expected end, or from now if that has passed: an overdue
		// worker extending means "from now".
		base := s.EndsAt
		if base.Before(now) {
			base = now
		}
		next.EndsAt = base.Add(cmd.ExtendBy)
		if next.EndsAt.Sub(now) > MaxSessionDuration {
			return nil, invalid("extend_by_ns", "the session would end more than %s from now", MaxSessionDuration)
		}
		next.Status, next.GraceUntil, next.LastCheckIn = SessionActive, time.Time{}, now
		next.NextDue = nextDue(&next, now)
	case SessionEnd:
		next.Status, next.EndedAt = SessionEnded, now
	}

	if cmd.PIN == pinWrong {
		w.WrongPINs++
		w.UpdatedAt = now
		if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
			return nil, err
		}
		detail := fmt.Sprintf("wrong PIN for %s on session %s (%d since the last right one)", cmd.Action, s.ID, w.WrongPINs)
		if err := c.audit(CmdSessionAction, "worker/"+w.ID, detail); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventWrongPIN, Worker: publicWorker(w), Session: s})
		return json.Marshal(sessionActionResult{SessionReply: replyOf(s, cmd.Action, now), WrongPIN: true, WrongPINs: w.WrongPINs})
	}

	if audioRef {
		if err := checkNewAudioRef(c.txn, cmd.AlarmID); err != nil {
			return nil, err
		}
	}
	if cmd.PIN == pinDuress {
		// First, so that a refusal by raiseAlarm leaves nothing written.
		r := RaiseAlarmCmd{Header: c.hdr, AlarmID: cmd.AlarmID, Type: AlarmDuress,
			DeviceID: s.DeviceID, WorkerID: s.WorkerID, SessionID: s.ID, Location: sessionLocation(c, s)}
		if _, err := raiseAlarm(c, r); err != nil {
			return nil, err
		}
	}
	if w.WrongPINs != 0 {
		w.WrongPINs, w.UpdatedAt = 0, now
		if err := putJSON(c.txn, pWorker+w.ID, w); err != nil {
			return nil, err
		}
	}
	if err := saveSession(c, s, &next); err != nil {
		return nil, err
	}
	if audioRef {
		if err := putAudioRef(c, cmd.AlarmID, s, now); err != nil {
			return nil, err
		}
	}
	if next.Status == SessionEnded && cmd.Rules >= RulesReleasePooled {
		if err := releasePooled(c, &next, now); err != nil {
			return nil, err
		}
	}
	// The audit record does not say which PIN: the duress alarm's own
	// records say that, to those allowed to see alarms.
	if err := c.audit(CmdSessionAction, "session/"+s.ID, string(cmd.Action)); err != nil {
		return nil, err
	}
	ev := EventSessionUpdated
	if next.Status == SessionEnded {
		ev = EventSessionEnded
	}
	c.emit(Event{Type: ev, Session: &next})
	reply := replyOf(&next, cmd.Action, now)
	if audioRef {
		reply.AudioRef = cmd.AlarmID
	}
	return json.Marshal(reply)
}

// releasePooled releases the pooled device of session s, which has ended,
// from its worker: until its next session it belongs to no one, and an
// alarm from it says so instead of naming the last worker. The same
// whichever PIN ended the session.
func releasePooled(c *applyCtx, s *Session, now time.Time) error {
	d, err := getDevice(c.txn, s.DeviceID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Kind != DevicePooled || d.WorkerID != s.WorkerID {
		return nil
	}
	d.WorkerID, d.UpdatedAt = "", now
	if err := putJSON(c.txn, pDevice+d.ID, d); err != nil {
		return err
	}
	if err := c.audit(CmdSessionAction, "device/"+d.ID, "pooled device released from worker "+s.WorkerID+" at the end of session "+s.ID); err != nil {
		return err
	}
	c.emit(Event{Type: EventDeviceUpdated, Device: d})
	return nil
}

// sessionLocation is the best known position of a session's worker: the
// device's last fix, else where the session started.
func sessionLocation(c *applyCtx, s *Session) *Location {
	var d Device
	if ok, err := getJSON(c.txn, pDevice+s.DeviceID, &d); err == nil && ok && d.Location != nil {
		return d.Location
	}
	return s.Location
}

// fireResult is the response to FireDeadline.
type fireResult struct {
	Outcome string `json:"outcome"` // "fired", "stale"
	Kind    string `json:"kind,omitempty"`
	AlarmID string `json:"alarm_id,omitempty"`
}

// applyFireDeadline acts on a deadline that has passed. A deadline that is
// no longer in the state (already fired, or the session changed) is a
// no-op that succeeds with outcome "stale".
func applyFireDeadline(c *applyCtx, body []byte) ([]byte, error) {
	var cmd fireDeadlineCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	switch {
	case cmd.DeadlineID == "":
		return nil, invalid("deadline_id", "must not be empty")
	case cmd.Due.IsZero():
		return nil, invalid("due", "must be set")
	}
	stale, _ := json.Marshal(fireResult{Outcome: "stale"})
	var d Deadline
	key := pDeadline + tkey(cmd.Due) + "/" + cmd.DeadlineID
	found, err := getJSON(c.txn, key, &d)
	if err != nil {
		return nil, err
	}
	if !found {
		return stale, nil
	}
	switch d.Kind {
	case DeadlineDeviceOffline:
		return fireDeviceOffline(c, key, &d, cmd.AlarmID)
	case DeadlineAckOverdue:
		return fireAckOverdue(c, key, &d)
	case DeadlineContactDue:
		return fireContactDue(c, key, &d) // escalation.go
	}
	if d.Kind != DeadlineSessionDue && d.Kind != DeadlineSessionGrace {
		// No command writes other kinds yet; drop it rather than retry forever.
		if err := c.txn.Delete([]byte(key)); err != nil {
			return nil, err
		}
		return json.Marshal(fireResult{Outcome: "stale", Kind: d.Kind})
	}
	s, err := getSession(c.txn, d.SessionID)
	if err != nil {
		return nil, err
	}
	if cur := sessionDeadline(s); cur == nil || cur.ID != d.ID || !cur.Due.Equal(d.Due) {
		// An orphan: cannot happen while saveSession keeps them in step.
		if err := c.txn.Delete([]byte(key)); err != nil {
			return nil, err
		}
		return stale, nil
	}
	next := *s
	switch d.Kind {
	case DeadlineSessionDue:
		org, err := getOrg(c.txn, s.OrgID)
		if err != nil {
			return nil, err
		}
		grace := org.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		next.Status, next.GraceUntil = SessionOverdue, d.Due.Add(grace)
		if err := saveSession(c, s, &next); err != nil {
			return nil, err
		}
		detail := fmt.Sprintf("due at %s: reminder sent, grace until %s", d.Due.Format(time.RFC3339), next.GraceUntil.Format(time.RFC3339))
		if err := c.audit(CmdFireDeadline, "session/"+s.ID, detail); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventCheckInReminder, Session: &next})
		c.emit(Event{Type: EventSessionUpdated, Session: &next})
		return json.Marshal(fireResult{Outcome: "fired", Kind: d.Kind})
	default: // DeadlineSessionGrace
		if err := validID("alarm_id", cmd.AlarmID); err != nil {
			return nil, err
		}
		r := RaiseAlarmCmd{Header: c.hdr, AlarmID: cmd.AlarmID, Type: AlarmMissedCheckIn,
			DeviceID: s.DeviceID, WorkerID: s.WorkerID, SessionID: s.ID, Location: sessionLocation(c, s)}
		if _, err := raiseAlarm(c, r); err != nil {
			return nil, err
		}
		next.Status, next.AlarmID = SessionAlarm, cmd.AlarmID
		if err := saveSession(c, s, &next); err != nil {
			return nil, err
		}
		detail := fmt.Sprintf("grace passed at %s: missed check-in alarm %s", d.Due.Format(time.RFC3339), cmd.AlarmID)
		if err := c.audit(CmdFireDeadline, "session/"+s.ID, detail); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventSessionUpdated, Session: &next})
		return json.Marshal(fireResult{Outcome: "fired", Kind: d.Kind, AlarmID: cmd.AlarmID})
	}
}
