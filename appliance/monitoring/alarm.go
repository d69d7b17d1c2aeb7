package monitoring

// Alarms and their lifecycle: raised -> acknowledged -> in_progress ->
// closed (-> reopened as acknowledged). Every handler checks all of its
// rules before its first write, so a refusal leaves the transaction as it
// found it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Incident linking: related alarms share one IncidentID.
const (
	// RepeatWindow links an alarm to an open alarm from the same device
	// raised at most this long before it (a repeat).
	RepeatWindow = 10 * time.Minute
	// NearbyWindow and NearbyDistance link an alarm to an open alarm from
	// another device raised at most NearbyWindow before it, no more than
	// NearbyDistance metres away (colleagues at the same place).
	NearbyWindow   = 5 * time.Minute
	NearbyDistance = 200.0 // metres
)

// pIncident indexes alarms by incident:
// ix/incident/<incident id>/<raised>/<alarm id>.
const pIncident = "ix/incident/"

// Outcomes of a call to the worker (ActionCallWorker).
const (
	CallAnsweredSafe     = "answered_safe"
	CallAnsweredNoSpeech = "answered_no_speech" // the worker was prompted to tap twice
	CallNoAnswer         = "no_answer"
)

// Police routes (ActionPolice): the force's lone-worker URN, or 999 or 101.
const (
	RouteURN = "urn"
	Route999 = "999"
	Route101 = "101"
)

// LoggableActions are the timeline entry kinds an operator may log with
// logActionCmd; the others are written by the lifecycle itself.
var LoggableActions = []ActionKind{ActionCallWorker, ActionListenIn, ActionLocationOK,
	ActionPolice, ActionContact, ActionNote, ActionDeviceCmd}

// validAlarmType reports whether t is a known alarm type.
func validAlarmType(t AlarmType) bool {
	_, ok := DefaultPriorities[t]
	return ok
}

// validResolution reports whether r is a known resolution.
func validResolution(r Resolution) bool {
	for _, v := range Resolutions {
		if r == v {
			return true
		}
	}
	return false
}

// doNotCall reports whether alarms of type t must not lead to a call to the
// worker, and carry nothing an onlooker could see.
func doNotCall(t AlarmType) bool { return t == AlarmDuress || t == AlarmDiscreetPanic }

func resolutionList() string {
	s := make([]string, len(Resolutions))
	for i, r := range Resolutions {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func applyRaiseAlarm(c *applyCtx, body []byte) ([]byte, error) {
	var r RaiseAlarmCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	a, err := raiseAlarm(c, r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// raiseAlarm checks r, then raises the alarm: it writes the alarm, its
// indexes, its first timeline entry and an audit record, links it to an
// incident, and emits EventAlarmRaised. Sessions call it for missed
// check-ins and duress. It writes nothing when it refuses.
func raiseAlarm(c *applyCtx, r RaiseAlarmCmd) (*Alarm, error) {
	return raiseLinkedAlarm(c, r, nil, "")
}

// raiseLinkedAlarm is raiseAlarm, joining the incident of incident (with
// the reason why) when it is not nil instead of looking for one.
func raiseLinkedAlarm(c *applyCtx, r RaiseAlarmCmd, incident *Alarm, why string) (*Alarm, error) {
	txn := c.txn
	at := r.At
	if at.IsZero() {
		at = c.now()
	}
	switch {
	case validID("alarm_id", r.AlarmID) != nil:
		return nil, validID("alarm_id", r.AlarmID)
	case !validAlarmType(r.Type):
		return nil, invalid("type", "unknown alarm type %q", r.Type)
	case r.DeviceID == "" && r.WorkerID == "":
		return nil, invalid("device_id", "an alarm needs a device or a worker")
	case at.IsZero():
		return nil, invalid("at", "the alarm has no time")
	}
	if ok, err := exists(txn, pAlarm+r.AlarmID); err != nil {
		return nil, err
	} else if ok {
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %q already exists", r.AlarmID)
	}
	var dev *Device
	if r.DeviceID != "" {
		d, err := getDevice(txn, r.DeviceID)
		if err != nil {
			return nil, err
		}
		dev = d
	}
	workerID := r.WorkerID
	if workerID == "" && dev != nil {
		workerID = dev.WorkerID
	}
	var w *Worker
	if workerID != "" {
		wk, err := getWorker(txn, workerID)
		if err != nil {
			return nil, err
		}
		w = wk
	}
	orgID := ""
	switch {
	case w != nil && w.OrgID != "":
		orgID = w.OrgID
	case dev != nil:
		orgID = dev.OrgID
	}
	prio := DefaultPriorities[r.Type]
	if orgID != "" {
		org, err := getOrg(txn, orgID)
		if err != nil {
			return nil, err
		}
		if p, ok := org.Priorities[r.Type]; ok && p >= 1 && p <= MaxPriority {
			prio = p
		}
	}
	loc := r.Location
	if loc == nil && dev != nil && dev.Location != nil {
		l := *dev.Location
		loc = &l
	}
	a := &Alarm{
		ID: r.AlarmID, Type: r.Type, Priority: prio, Status: StatusRaised,
		OrgID: orgID, WorkerID: workerID, DeviceID: r.DeviceID, SessionID: r.SessionID,
		IncidentID: r.AlarmID, RaisedAt: at, DeviceTime: r.DeviceTime, Location: loc,
		DoNotCall: doNotCall(r.Type), Silent: doNotCall(r.Type),
	}
	link := incident
	if link == nil {
		var err error
		if link, why, err = findIncident(txn, a); err != nil {
			return nil, err
		}
	}

	// Every rule has been checked: write.
	if link != nil {
		a.IncidentID = link.IncidentID
	}
	raised := TimelineEntry{Kind: ActionRaised, At: at, Text: string(a.Type)}
	if _, err := c.addTimeline(a, raised); err != nil {
		return nil, err
	}
	if link != nil {
		te := TimelineEntry{Kind: ActionLinked, At: at, Actor: "system", Reference: link.ID,
			Text: fmt.Sprintf("joined incident %s: %s", a.IncidentID, why)}
		if _, err := c.addTimeline(a, te); err != nil {
			return nil, err
		}
	}
	if err := noteLatestUpdate(c, a); err != nil { // update.go
		return nil, err
	}
	if err := putJSON(txn, pAlarm+a.ID, a); err != nil {
		return nil, err
	}
	if err := setIndex(txn, openKey(a)); err != nil {
		return nil, err
	}
	if err := setIndex(txn, raisedKey(a)); err != nil {
		return nil, err
	}
	if err := setIndex(txn, []byte(pIncident+a.IncidentID+"/"+tkey(a.RaisedAt)+"/"+a.ID)); err != nil {
		return nil, err
	}
	if a.DeviceID != "" {
		if err := setIndex(txn, deviceAlarmKey(a)); err != nil {
			return nil, err
		}
	}
	detail := fmt.Sprintf("type=%s priority=%d incident=%s", a.Type, a.Priority, a.IncidentID)
	if err := c.audit(CmdRaiseAlarm, "alarm/"+a.ID, detail); err != nil {
		return nil, err
	}
	if err := setAckDeadline(c, a, 1); err != nil {
		return nil, err
	}
	ev := *a
	c.emit(Event{Type: EventAlarmRaised, At: at, Alarm: &ev})
	return a, nil
}

func raisedKey(a *Alarm) []byte { return []byte(pRaised + tkey(a.RaisedAt) + "/" + a.ID) }

func deviceAlarmKey(a *Alarm) []byte {
	return []byte(pDeviceAlarm + a.DeviceID + "/" + tkey(a.RaisedAt) + "/" + a.ID)
}

// exists reports whether key is in the state.
func exists(txn *badger.Txn, key string) (bool, error) {
	_, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// scanFrom calls fn with each key under prefix from prefix+start on, in
// order, until fn returns false or an error.
func scanFrom(txn *badger.Txn, prefix, start string, fn func(key []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek([]byte(prefix + start)); it.ValidForPrefix(opts.Prefix); it.Next() {
		more, err := fn(it.Item().Key())
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// lastSegment returns what follows the last '/' of key.
func lastSegment(key []byte) string {
	s := string(key)
	return s[strings.LastIndexByte(s, '/')+1:]
}

// findIncident returns the alarm that a (not yet written) joins, and why,
// or nil. First a repeat: an open alarm from the same device raised within
// RepeatWindow; then a colleague: an open alarm from another device within
// NearbyDistance raised within NearbyWindow. Candidates are taken in key
// order (oldest first), so every replica picks the same one.
func findIncident(txn *badger.Txn, a *Alarm) (*Alarm, string, error) {
	var found *Alarm
	var why string
	if a.DeviceID != "" {
		prefix := pDeviceAlarm + a.DeviceID + "/"
		err := scanFrom(txn, prefix, tkey(a.RaisedAt.Add(-RepeatWindow)), func(key []byte) (bool, error) {
			o, err := getAlarm(txn, lastSegment(key))
			if err != nil {
				return false, err
			}
			if o.Status != StatusClosed {
				found, why = o, "repeat from the same device"
				return false, nil
			}
			return true, nil
		})
		if err != nil || found != nil {
			return found, why, err
		}
	}
	if a.Location == nil {
		return nil, "", nil
	}
	err := scanFrom(txn, pRaised, tkey(a.RaisedAt.Add(-NearbyWindow)), func(key []byte) (bool, error) {
		o, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, err
		}
		if o.Status == StatusClosed || o.Location == nil || o.DeviceID == "" || o.DeviceID == a.DeviceID {
			return true, nil
		}
		if d := distance(*a.Location, *o.Location); d <= NearbyDistance {
			found, why = o, fmt.Sprintf("%.0f m from alarm %s of device %s", d, o.ID, o.DeviceID)
			return false, nil
		}
		return true, nil
	})
	return found, why, err
}

// distance returns the great-circle distance between two fixes, in metres
// (haversine).
func distance(p, q Location) float64 {
	const earthRadius = 6371000.0 // metres
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat, dLon := rad(q.Lat-p.Lat), rad(q.Lon-p.Lon)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(rad(p.Lat))*math.Cos(rad(q.Lat))*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(h)))
}

// loadAlarm returns the alarm a command names.
func loadAlarm(txn *badger.Txn, id string) (*Alarm, error) {
	if id == "" {
		return nil, invalid("alarm_id", "the command names no alarm")
	}
	return getAlarm(txn, id)
}

// saveAlarm writes an updated alarm, an audit record and the event; it
// returns the alarm as the command's response.
func saveAlarm(c *applyCtx, a *Alarm, t CmdType, et EventType, entry *TimelineEntry, detail string) ([]byte, error) {
	if err := putJSON(c.txn, pAlarm+a.ID, a); err != nil {
		return nil, err
	}
	if err := c.audit(t, "alarm/"+a.ID, detail); err != nil {
		return nil, err
	}
	ev := *a
	c.emit(Event{Type: et, Alarm: &ev, Entry: entry})
	return json.Marshal(a)
}

func applyAcknowledge(c *applyCtx, body []byte) ([]byte, error) {
	var r AcknowledgeCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	a, err := loadAlarm(c.txn, r.AlarmID)
	if err != nil {
		return nil, err
	}
	actor := c.hdr.Actor
	switch {
	case a.Status == StatusClosed:
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed; reopen it first", a.ID)
	case a.AckBy == actor:
		return json.Marshal(a) // already this operator's: nothing changes
	case a.AckBy != "" && !r.Takeover:
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is held by %s", a.ID, a.AckBy)
	}
	if err := clearOwnedDeadline(c, alarmOwner(a.ID), DeadlineAckOverdue); err != nil {
		return nil, err
	}
	if r.Rules >= RulesContactReminder && a.AckAt.IsZero() {
		if err := remindAfterAck(c, a); err != nil { // escalation.go
			return nil, err
		}
	}
	te := TimelineEntry{Kind: ActionAcknowledged}
	detail := ""
	if a.AckBy != "" {
		te.Text = "taken over from " + a.AckBy
		detail = te.Text
	}
	a.AckBy = actor
	if a.AckAt.IsZero() {
		a.AckAt = c.now() // the first acknowledgement counts for the KPIs
	}
	if a.Status == StatusRaised {
		a.Status = StatusAcknowledged
	}
	entry, err := c.addTimeline(a, te)
	if err != nil {
		return nil, err
	}
	return saveAlarm(c, a, CmdAcknowledge, EventAlarmUpdated, entry, detail)
}

// checkEntry checks an action an operator logs on alarm a at now, under
// the rules of version rules (logActionCmd.Rules), and fills in what the
// state machine adds to it: the URN a police call on the URN route quotes.
func checkEntry(txn *badger.Txn, a *Alarm, e *TimelineEntry, rules int, now time.Time) error {
	e.URN = ""
	if err := CheckAction(*e); err != nil {
		return err
	}
	if e.Kind == ActionPolice && e.Route == RouteURN && rules >= RulesURN {
		urn, err := checkURN(txn, a, e.Force, now)
		if err != nil {
			return err
		}
		e.URN = urn
	}
	if e.Kind != ActionCallWorker {
		return nil
	}
	if a.DoNotCall {
		return ruleErr(CodeConflict, "entry.kind", "do not call the worker: duress/discreet alarm")
	}
	if rules >= RulesIncidentDoNotCall {
		if dnc, err := incidentDoNotCall(txn, a.IncidentID); err != nil {
			return err
		} else if dnc != "" {
			return ruleErr(CodeConflict, "entry.kind", "do not call the worker: this alarm is in the incident of %s alarm %s", dncWhy(txn, dnc), dnc)
		}
	}
	return nil
}

// incidentDoNotCall returns the ID of an alarm of the incident that is
// do-not-call (duress, discreet, cancelled with the Duress PIN), or "".
// Calling the worker about any alarm of that incident could put them in
// danger: do-not-call is a property of the incident.
func incidentDoNotCall(txn *badger.Txn, incidentID string) (string, error) {
	if incidentID == "" {
		return "", nil
	}
	var found string
	err := scanPrefix(txn, pIncident+incidentID+"/", false, func(key, _ []byte) (bool, error) {
		o, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, err
		}
		if o.DoNotCall {
			found = o.ID
			return false, nil
		}
		return true, nil
	})
	return found, err
}

// dncWhy names the kind of do-not-call alarm id, for a refusal.
func dncWhy(txn *badger.Txn, id string) string {
	o, err := getAlarm(txn, id)
	switch {
	case err != nil:
		return "a do-not-call"
	case o.Type == AlarmDuress || o.DuressCancel:
		return "the duress"
	}
	return "the discreet"
}

// CheckAction checks the fields of an action an operator logs, whatever the
// alarm: its kind must be one of LoggableActions, with the fields that kind
// needs. It returns a *RuleError naming the field.
func CheckAction(e TimelineEntry) error {
	oneOf := func(field, v string, valid ...string) error {
		for _, s := range valid {
			if v == s {
				return nil
			}
		}
		if v == "" {
			return invalid(field, "%s needs %s: one of %s", e.Kind, field, strings.Join(valid, ", "))
		}
		return invalid(field, "%q is not one of %s", v, strings.Join(valid, ", "))
	}
	need := func(field, v string) error {
		if strings.TrimSpace(v) == "" {
			return invalid(field, "%s needs %s", e.Kind, field)
		}
		return nil
	}
	switch e.Kind {
	case ActionCallWorker:
		return oneOf("entry.outcome", e.Outcome, CallAnsweredSafe, CallAnsweredNoSpeech, CallNoAnswer)
	case ActionPolice:
		if err := need("entry.force", e.Force); err != nil {
			return err
		}
		return oneOf("entry.route", e.Route, RouteURN, Route999, Route101)
	case ActionContact:
		if err := need("entry.contact", e.Contact); err != nil {
			return err
		}
		return need("entry.outcome", e.Outcome)
	case ActionNote:
		return need("entry.text", e.Text)
	case ActionDeviceCmd:
		return need("entry.text", e.Text)
	case ActionListenIn, ActionLocationOK:
	case "":
		return invalid("entry.kind", "the action has no kind")
	default:
		return invalid("entry.kind", "%q cannot be logged; log one of %v", e.Kind, LoggableActions)
	}
	return nil
}

func applyLogAction(c *applyCtx, body []byte) ([]byte, error) {
	var r logActionCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	a, err := loadAlarm(c.txn, r.AlarmID)
	if err != nil {
		return nil, err
	}
	switch a.Status {
	case StatusClosed:
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed; reopen it first", a.ID)
	case StatusRaised:
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is not acknowledged: acknowledge it first", a.ID)
	}
	te := r.Entry
	if err := checkEntry(c.txn, a, &te, r.Rules, c.now()); err != nil {
		return nil, err
	}
	contact := -1 // the index of the escalation contact called (escalation.go)
	if te.Kind == ActionContact && r.Rules >= RulesContactOutcome {
		cs, err := AlarmContacts(c.txn, a)
		if err != nil {
			return nil, err
		}
		if contact, err = checkContactEntry(cs, te); err != nil {
			return nil, err
		}
		te.Contact = cs[contact].Name
	}

	// Every rule has been checked: write.
	if contact >= 0 {
		if err := moveEscalation(c, a, contact, te); err != nil {
			return nil, err
		}
	}
	te.Index, te.At, te.Actor, te.AlarmID = 0, time.Time{}, "", ""
	a.Status = StatusInProgress
	entry, err := c.addTimeline(a, te)
	if err != nil {
		return nil, err
	}
	return saveAlarm(c, a, CmdLogAction, EventAlarmUpdated, entry, string(te.Kind))
}

// applyCloseAlarm closes an alarm under the rules before the close rule: a
// resolution, and no confirmation. The Service proposes
// CmdCloseAlarmConfirmed instead; this stays for replaying older logs.
func applyCloseAlarm(c *applyCtx, body []byte) ([]byte, error) {
	return applyClose(c, body, false)
}

// applyCloseAlarmConfirmed closes an alarm with a resolution and how the
// worker's safety was confirmed.
func applyCloseAlarmConfirmed(c *applyCtx, body []byte) ([]byte, error) {
	return applyClose(c, body, true)
}

// checkConfirmation checks the confirmation of an operator's close.
func checkConfirmation(conf Confirmation) error {
	switch {
	case conf == "":
		return ruleErr(CodeNeedConfirmation, "confirmation",
			"closing an alarm needs how the worker's safety was confirmed: one of %s", confirmationList())
	case !slices.Contains(Confirmations, conf):
		return invalid("confirmation", "%q is not a confirmation: use one of %s", conf, confirmationList())
	}
	return nil
}

func confirmationList() string {
	s := make([]string, len(Confirmations))
	for i, c := range Confirmations {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

func applyClose(c *applyCtx, body []byte, confirmed bool) ([]byte, error) {
	var r CloseAlarmCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	switch {
	case r.Resolution == "":
		return nil, ruleErr(CodeNeedResolution, "resolution",
			"closing an alarm needs a resolution: one of %s", resolutionList())
	case !validResolution(r.Resolution):
		return nil, invalid("resolution", "%q is not a resolution: use one of %s", r.Resolution, resolutionList())
	}
	if confirmed {
		if err := checkConfirmation(r.Confirmation); err != nil {
			return nil, err
		}
	} else {
		r.Confirmation = ""
	}
	a, err := loadAlarm(c.txn, r.AlarmID)
	if err != nil {
		return nil, err
	}
	switch a.Status {
	case StatusClosed:
		return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is already closed", a.ID)
	case StatusRaised:
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s must be acknowledged before it is closed", a.ID)
	}
	reason := ""
	if r.Rules >= RulesBriefing {
		reason = strings.TrimSpace(r.NoBriefingReason)
		if err := checkBriefing(c.txn, a, r.Resolution, reason); err != nil { // escalation.go
			return nil, err
		}
	}

	// Every rule has been checked: write.
	if err := clearOwnedDeadline(c, alarmOwner(a.ID), DeadlineAckOverdue); err != nil {
		return nil, err
	}
	if err := clearContactDue(c, a); err != nil {
		return nil, err
	}
	a.NoBriefingReason = reason
	if err := c.txn.Delete(openKey(a)); err != nil {
		return nil, err
	}
	a.Status, a.Resolution, a.CloseNote, a.Confirmation = StatusClosed, r.Resolution, r.Note, r.Confirmation
	a.ClosedBy, a.ClosedAt = c.hdr.Actor, c.now()
	entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionClosed, Outcome: string(r.Resolution), Confirmation: r.Confirmation, Text: r.Note})
	if err != nil {
		return nil, err
	}
	cmd, detail := CmdCloseAlarm, "resolution="+string(r.Resolution)
	if confirmed {
		cmd, detail = CmdCloseAlarmConfirmed, detail+", confirmation="+string(r.Confirmation)
	}
	if reason != "" {
		detail += ", no briefing: " + reason
	}
	resp, err := saveAlarm(c, a, cmd, EventAlarmClosed, entry, detail)
	if err != nil {
		return nil, err
	}
	if r.Rules >= RulesPostIncidentReport && reportDue(a, r.Resolution) {
		if err := openReport(c, a, cmd); err != nil { // postincident.go
			return nil, err
		}
	}
	if r.Rules >= RulesNotify {
		if err := enqueueCloseNotice(c, a); err != nil { // outboxnotice.go
			return nil, err
		}
	}
	return resp, nil
}

func applyReopenAlarm(c *applyCtx, body []byte) ([]byte, error) {
	var r reopenAlarmCmd
	if err := c.decode(body, &r); err != nil {
		return nil, err
	}
	if strings.TrimSpace(r.Reason) == "" {
		return nil, invalid("reason", "reopening an alarm needs a reason")
	}
	a, err := loadAlarm(c.txn, r.AlarmID)
	if err != nil {
		return nil, err
	}
	if a.Status != StatusClosed {
		return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is not closed (it is %s)", a.ID, a.Status)
	}
	a.Status, a.AckBy = StatusAcknowledged, c.hdr.Actor
	a.Reopened++
	a.Resolution, a.CloseNote, a.ClosedBy, a.ClosedAt, a.Confirmation = "", "", "", time.Time{}, ""
	a.NoBriefingReason = ""
	// No reset waits for confirmation now; the device, told the alarm was
	// cancelled, still hears nothing of it (CancelledAt stays).
	a.ResetAt = time.Time{}
	if err := setIndex(c.txn, openKey(a)); err != nil {
		return nil, err
	}
	entry, err := c.addTimeline(a, TimelineEntry{Kind: ActionReopened, Text: r.Reason})
	if err != nil {
		return nil, err
	}
	return saveAlarm(c, a, CmdReopenAlarm, EventAlarmUpdated, entry, "reason="+r.Reason)
}
