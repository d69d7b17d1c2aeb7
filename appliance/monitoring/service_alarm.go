package monitoring

// The Service's alarm methods: raise, acknowledge, log an action, close,
// reopen, and the queries the console needs.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// RaiseAlarmRequest is an alarm from a device, an operator (a test alarm)
// or the system. It needs a device or a worker.
type RaiseAlarmRequest struct {
	Type       AlarmType `json:"type"`
	DeviceID   string    `json:"device_id,omitempty"`
	WorkerID   string    `json:"worker_id,omitempty"` // else the device's worker
	SessionID  string    `json:"session_id,omitempty"`
	DeviceTime time.Time `json:"device_time,omitzero"` // the device's own clock
	Location   *Location `json:"location,omitempty"`   // else the device's last fix
}

// RaiseAlarm raises an alarm; cmdID is the device's event ID (or the
// console's request ID), so a retry returns the first alarm.
func (s *Service) RaiseAlarm(ctx context.Context, cmdID, actor string, req RaiseAlarmRequest) (*Alarm, error) {
	switch {
	case actor == "":
		return nil, invalid("actor", "who raises the alarm is missing")
	case !validAlarmType(req.Type):
		return nil, invalid("type", "unknown alarm type %q", req.Type)
	case req.DeviceID == "" && req.WorkerID == "":
		return nil, invalid("device_id", "an alarm needs a device or a worker")
	}
	if err := checkLocation(req.Location); err != nil {
		return nil, err
	}
	cmd := RaiseAlarmCmd{
		Header: s.header(actor), AlarmID: s.NewID(), Type: req.Type,
		DeviceID: req.DeviceID, WorkerID: req.WorkerID, SessionID: req.SessionID,
		DeviceTime: req.DeviceTime, Location: req.Location,
	}
	if cmd.SessionID == "" && cmd.DeviceID != "" {
		cmd.SessionID = s.deviceSessionID(cmd.DeviceID)
	}
	return s.proposeAlarm(ctx, cmdID, CmdRaiseAlarm, &cmd)
}

// deviceSessionID returns the ID of the session that uses device now, as
// this node knows it, or "": an alarm raised during a session carries the
// session's ID, whatever the device said, so that the operator sees the
// visit and its Update message. A session started a moment ago on another
// node may not be here yet; the alarm is raised without it.
func (s *Service) deviceSessionID(deviceID string) string {
	var id string
	_ = s.view(func(txn *badger.Txn) error {
		d, err := getDevice(txn, deviceID)
		if err != nil || d.WorkerID == "" {
			return err
		}
		sess, err := workerSession(txn, d.WorkerID)
		if err == nil && sess != nil && sess.DeviceID == deviceID {
			id = sess.ID
		}
		return err
	})
	return id
}

// Acknowledge claims an alarm for operator. Acknowledging an alarm the
// operator already holds changes nothing; one that another operator holds
// is refused unless takeover is set.
func (s *Service) Acknowledge(ctx context.Context, cmdID, operator, alarmID string, takeover bool) (*Alarm, error) {
	if err := checkOperator(operator, alarmID); err != nil {
		return nil, err
	}
	cmd := AcknowledgeCmd{Header: s.header(operator), AlarmID: alarmID, Takeover: takeover, Rules: RulesContactReminder}
	return s.proposeAlarm(ctx, cmdID, CmdAcknowledge, &cmd)
}

// LogAction adds an action (a call, a police escalation, a note...) to an
// acknowledged alarm's timeline. Index, At and Actor of entry are filled
// in, and the URN a police call on the URN route quotes (urn.go: refused
// for an alarm that is not eligible or a force without a valid URN).
func (s *Service) LogAction(ctx context.Context, cmdID, operator, alarmID string, entry TimelineEntry) (*Alarm, error) {
	if err := checkOperator(operator, alarmID); err != nil {
		return nil, err
	}
	if err := CheckAction(entry); err != nil {
		return nil, err
	}
	cmd := logActionCmd{Header: s.header(operator), AlarmID: alarmID, Entry: entry, Rules: RulesContactOutcome}
	return s.proposeAlarm(ctx, cmdID, CmdLogAction, &cmd)
}

// Close closes an acknowledged alarm with a resolution and how the
// worker's safety was confirmed (the close rule), both required. A genuine
// close (worker_safe, incident_handled) of an alarm of a worker who may
// have been in danger also needs an escalation contact briefed, or
// noBriefingReason, why none was (RulesBriefing, escalation.go): it is
// refused with CodeNeedBriefing otherwise.
func (s *Service) Close(ctx context.Context, cmdID, operator, alarmID string, resolution Resolution, confirmation Confirmation, note, noBriefingReason string) (*Alarm, error) {
	if err := checkOperator(operator, alarmID); err != nil {
		return nil, err
	}
	switch {
	case resolution == "":
		return nil, ruleErr(CodeNeedResolution, "resolution",
			"closing an alarm needs a resolution: one of %s", resolutionList())
	case !validResolution(resolution):
		return nil, invalid("resolution", "%q is not a resolution: use one of %s", resolution, resolutionList())
	}
	if err := checkConfirmation(confirmation); err != nil {
		return nil, err
	}
	if len(noBriefingReason) > MaxTextLen {
		return nil, invalid("no_briefing_reason", "is %d bytes, longer than %d", len(noBriefingReason), MaxTextLen)
	}
	cmd := CloseAlarmCmd{Header: s.header(operator), AlarmID: alarmID, Resolution: resolution, Note: note,
		Confirmation: confirmation, NoBriefingReason: noBriefingReason, Rules: RulesNotify}
	return s.proposeAlarm(ctx, cmdID, CmdCloseAlarmConfirmed, &cmd)
}

// Reopen reopens a closed alarm, acknowledged by operator; reason is
// required.
func (s *Service) Reopen(ctx context.Context, cmdID, operator, alarmID, reason string) (*Alarm, error) {
	if err := checkOperator(operator, alarmID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, invalid("reason", "reopening an alarm needs a reason")
	}
	cmd := reopenAlarmCmd{Header: s.header(operator), AlarmID: alarmID, Reason: reason}
	return s.proposeAlarm(ctx, cmdID, CmdReopenAlarm, &cmd)
}

// CancelAlarm cancels (resets) an alarm from the worker's device (actor
// "device:<id>", the alarm's own device). pin is checked against both of
// the worker's PINs (always both: the time taken must not reveal which
// matched). The Safe PIN tells the device the alarm is cancelled and
// leaves it open, reset by the worker, until an operator confirms the
// worker is safe and closes it (within an organisation's accidental-press
// window, it closes it as a false alarm); the Duress PIN gets the same
// reply, byte for byte, but makes the alarm silent and do-not-call and
// raises a silent duress alarm in its incident. A wrong PIN returns a
// *RuleError with CodeWrongPIN and is counted; the alarm is unchanged. A
// worker without a Safe PIN cannot cancel: an operator closes the alarm.
func (s *Service) CancelAlarm(ctx context.Context, cmdID, actor, alarmID, pin string) (CancelReply, error) {
	if err := validID("alarm_id", alarmID); err != nil {
		return CancelReply{}, err
	}
	deviceID := deviceOfActor(actor)
	if deviceID == "" {
		return CancelReply{}, invalid("actor", "an alarm is cancelled by its device: the actor is \"device:<id>\"")
	}
	if pin == "" {
		return CancelReply{}, invalid("pin", "a PIN is required")
	}
	if err := validatePIN("pin", pin); err != nil {
		return CancelReply{}, err
	}
	var w *Worker
	err := s.view(func(txn *badger.Txn) error {
		a, err := getAlarm(txn, alarmID)
		if err != nil {
			return err
		}
		// The device knows a duress alarm raised at a session action only
		// as an audio reference, which after the Safe PIN names no alarm:
		// a cancel of it is answered as for no alarm, before any PIN is
		// checked, as the Safe PIN's reference is (audioref.go).
		if ref, err := getAudioRef(txn, alarmID); err != nil || ref != nil {
			return cmp.Or(err, error(&RuleError{Code: CodeNotFound, Field: "alarm_id", Msg: fmt.Sprintf("no alarm %q", alarmID)}))
		}
		if err := checkCancel(a, deviceID); err != nil {
			// A resend of the cancel that closed it gets its first reply
			// from propose.
			if resent, rerr := cluster.CommandApplied(txn, CmdResetAlarm.String()+"/"+cmdID); rerr != nil || !resent {
				return cmp.Or(rerr, err)
			}
		}
		w, err = getWorker(txn, a.WorkerID)
		return err
	})
	if err != nil {
		return CancelReply{}, err
	}
	if w.SafePINHash == "" {
		return CancelReply{}, invalid("pin", "the worker has no Safe PIN: an operator must close the alarm")
	}
	outcome, err := s.checkWorkerPINs(ctx, w, pin)
	if err != nil {
		return CancelReply{}, err
	}
	cmd := cancelAlarmCmd{
		Header: s.header(actor), AlarmID: alarmID, PIN: outcome, PINVersion: w.PINVersion,
		DuressAlarmID: s.NewID(), // always made, so the command looks the same whichever PIN
	}
	res, err := s.propose(ctx, cmdID, CmdResetAlarm, cmd)
	if err != nil {
		return CancelReply{}, err
	}
	r, err := decodeResponse[cancelResult](res.Response)
	if err != nil {
		return CancelReply{}, err
	}
	if r.WrongPIN {
		return CancelReply{}, ruleErr(CodeWrongPIN, "pin", "the PIN is wrong (%d wrong since the last right one)", r.WrongPINs)
	}
	return r.CancelReply, nil
}

// OpenAlarms returns the open alarm queue: by priority, then oldest first.
func (s *Service) OpenAlarms() ([]Alarm, error) {
	var out []Alarm
	err := s.view(func(txn *badger.Txn) (err error) {
		if out, err = OpenAlarms(txn); err != nil {
			return err
		}
		return markIncidentsDoNotCall(txn, out)
	})
	return out, err
}

// markIncidentsDoNotCall is markIncidentDoNotCall for each of alarms,
// scanning each incident once: the queue often holds several alarms of
// one incident.
func markIncidentsDoNotCall(txn *badger.Txn, alarms []Alarm) error {
	dnc := map[string]bool{}
	for i := range alarms {
		a := &alarms[i]
		if a.DoNotCall {
			continue
		}
		v, ok := dnc[a.IncidentID]
		if !ok {
			id, err := incidentDoNotCall(txn, a.IncidentID)
			if err != nil {
				return err
			}
			v = id != ""
			dnc[a.IncidentID] = v
		}
		a.DoNotCall = v
	}
	return nil
}

// Alarm returns one alarm. It is do-not-call if any alarm of its incident
// is (markIncidentDoNotCall).
func (s *Service) Alarm(id string) (*Alarm, error) {
	var out *Alarm
	err := s.view(func(txn *badger.Txn) (err error) {
		if out, err = LookupAlarm(txn, id); err != nil {
			return err
		}
		return markIncidentDoNotCall(txn, out)
	})
	return out, err
}

// markIncidentDoNotCall makes a, a copy read for a reader, do-not-call if
// any alarm of its incident is: the state keeps each alarm's own flag, and
// the rule that refuses a call (checkEntry) looks at the incident too.
func markIncidentDoNotCall(txn *badger.Txn, a *Alarm) error {
	if a.DoNotCall {
		return nil
	}
	dnc, err := incidentDoNotCall(txn, a.IncidentID)
	a.DoNotCall = dnc != ""
	return err
}

// Timeline returns an alarm's timeline, in order.
func (s *Service) Timeline(alarmID string) ([]TimelineEntry, error) {
	var out []TimelineEntry
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = AlarmTimeline(txn, alarmID)
		return err
	})
	return out, err
}

// Incident returns the alarms of one incident, oldest first.
func (s *Service) Incident(incidentID string) ([]Alarm, error) {
	var out []Alarm
	err := s.view(func(txn *badger.Txn) (err error) {
		if out, err = IncidentAlarms(txn, incidentID); err != nil {
			return err
		}
		return markIncidentsDoNotCall(txn, out)
	})
	return out, err
}

// Audit returns up to limit audit records from log index from on.
func (s *Service) Audit(from uint64, limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = AuditLog(txn, from, limit)
		return err
	})
	return out, err
}

// AuditFor returns the audit records of one subject, such as "alarm/<id>".
func (s *Service) AuditFor(subject string) ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = AuditFor(txn, subject)
		return err
	})
	return out, err
}

// KPIs returns the KPIs of the alarms raised in [from, to) by organisation
// orgID (every organisation when empty).
func (s *Service) KPIs(orgID string, from, to time.Time) (*KPIs, error) {
	now := s.Now()
	var out *KPIs
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = ComputeKPIs(txn, orgID, from, to, now)
		return err
	})
	return out, err
}

// proposeAlarm proposes an alarm command and decodes the alarm it returns.
func (s *Service) proposeAlarm(ctx context.Context, cmdID string, t CmdType, body any) (*Alarm, error) {
	res, err := s.propose(ctx, cmdID, t, body)
	if err != nil {
		return nil, err
	}
	return decodeAlarm(res)
}

func decodeAlarm(res cluster.Result) (*Alarm, error) {
	a := new(Alarm)
	if err := json.Unmarshal(res.Response, a); err != nil {
		return nil, fmt.Errorf("cannot decode the alarm of entry %d: %w", res.Index, err)
	}
	return a, nil
}

func checkOperator(operator, alarmID string) error {
	switch {
	case operator == "":
		return invalid("operator", "the operator is missing")
	case alarmID == "":
		return invalid("alarm_id", "the alarm ID is missing")
	}
	return nil
}

// checkLocation refuses a fix outside the globe.
func checkLocation(l *Location) error {
	switch {
	case l == nil:
		return nil
	case l.Lat < -90 || l.Lat > 90:
		return invalid("location.lat", "%v is not a latitude", l.Lat)
	case l.Lon < -180 || l.Lon > 180:
		return invalid("location.lon", "%v is not a longitude", l.Lon)
	case l.Accuracy < 0:
		return invalid("location.accuracy_m", "%v is negative", l.Accuracy)
	case len(l.Address) > MaxAddressLen:
		return invalid("location.address", "is %d bytes, longer than %d", len(l.Address), MaxAddressLen)
	}
	return nil
}
