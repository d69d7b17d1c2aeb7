package monitoring

// The escalation policy: an operator works down the worker's escalation
// contacts, in order, until one confirms the worker's welfare, and after a
// genuine alarm a contact is briefed before the alarm closes.
//
// An alarm's contacts are its worker's (Worker.Contacts), else its
// organisation's (AlarmContacts). From logActionCmd's RulesContactOutcome
// on, an escalation contact entry names one of them and says how the call
// went (ContactOutcomes). After no_answer or left_message for contact i,
// contact i+1 is due the organisation's ContactWait later: a deadline of
// kind DeadlineContactDue, owned by the alarm, which the alarm mirrors
// (ContactDue, ContactDueAt). When it fires, the alarm is marked
// ContactOverdue, a system entry joins the timeline ("contact X due", or
// that none is left) and EventContactDue goes out, so the console shows the
// reminder. The next contact entry, or the close, clears it.
//
// From AcknowledgeCmd's RulesContactReminder on, the first acknowledgement
// of an alarm of a worker who may be in danger (reminderAfterAck) sets the
// same deadline for the first contact, so that an alarm where nobody calls
// any contact is reminded too.
//
// From CloseAlarmCmd's RulesBriefing on, closing such an alarm
// (BriefingRequired) as worker_safe or incident_handled needs a contact
// entry with outcome briefed or welfare_confirmed, or the operator's
// reason why none (NoBriefingReason); false_alarm and test closes, test and
// technical alarms, and the worker's accidental-press reset need neither.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// reminderAfterAck reports whether the first acknowledgement of an alarm of
// type t sets the reminder to call the first escalation contact.
func reminderAfterAck(t AlarmType) bool {
	switch t {
	case AlarmRedAlert, AlarmDuress, AlarmDiscreetPanic, AlarmManDown, AlarmMissedCheckIn:
		return true
	}
	return false
}

// BriefingRequired reports whether a genuine close of an alarm of type t
// needs an escalation contact briefed: every alarm of a worker who may have
// been in danger, not test alarms nor the technical ones (low battery, a
// flooding device).
func BriefingRequired(t AlarmType) bool {
	switch t {
	case AlarmTest, AlarmLowBattery, AlarmDeviceFlooding:
		return false
	}
	return true
}

// genuine reports whether resolution r says the alarm was genuine.
func genuine(r Resolution) bool {
	return r == ResolutionWorkerSafe || r == ResolutionIncidentHandled
}

// AlarmContacts returns the escalation contacts of alarm a, in order: its
// worker's, else its organisation's. A worker or organisation that is gone
// has none.
func AlarmContacts(txn *badger.Txn, a *Alarm) ([]Contact, error) {
	if a.WorkerID != "" {
		var w Worker
		ok, err := getJSON(txn, pWorker+a.WorkerID, &w)
		if err != nil {
			return nil, err
		}
		if ok && len(w.Contacts) > 0 {
			return w.Contacts, nil
		}
	}
	if a.OrgID == "" {
		return nil, nil
	}
	var o Organisation
	if _, err := getJSON(txn, pOrg+a.OrgID, &o); err != nil {
		return nil, err
	}
	return o.Contacts, nil
}

// contactWait returns organisation orgID's wait for a contact's answer.
func contactWait(txn *badger.Txn, orgID string) (time.Duration, error) {
	if orgID == "" {
		return DefaultContactWait, nil
	}
	var o Organisation
	if _, err := getJSON(txn, pOrg+orgID, &o); err != nil {
		return 0, err
	}
	if o.ContactWait > 0 {
		return o.ContactWait, nil
	}
	return DefaultContactWait, nil
}

// ContactLabel writes a contact as "Sam Patel (manager), 07700 900123".
func ContactLabel(c Contact) string {
	s := c.Name
	if c.Relation != "" {
		s += " (" + c.Relation + ")"
	}
	return s + ", " + c.Phone
}

func contactNames(cs []Contact) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// checkContactEntry checks an escalation contact entry e on alarm a under
// RulesContactOutcome, and returns the index of its contact in cs (the
// alarm's list). The name matches whatever its case and surrounding
// spaces.
func checkContactEntry(cs []Contact, e TimelineEntry) (int, error) {
	if !slices.Contains(ContactOutcomes, e.Outcome) {
		return 0, invalid("entry.outcome", "%q is not an outcome of a call to a contact: use one of %s",
			e.Outcome, strings.Join(ContactOutcomes, ", "))
	}
	if len(cs) == 0 {
		return 0, invalid("entry.contact", "%q is not an escalation contact: neither the worker nor the organisation has any", e.Contact)
	}
	name := strings.TrimSpace(e.Contact)
	for i, c := range cs {
		if strings.EqualFold(strings.TrimSpace(c.Name), name) {
			return i, nil
		}
	}
	return 0, invalid("entry.contact", "%q is not an escalation contact of this alarm: one of %s", e.Contact, contactNames(cs))
}

// contactDeadlineID is the ID of the contact deadline set by the command
// at log index index.
func contactDeadlineID(alarmID string, index uint64) string {
	return fmt.Sprintf("alarm/%s/contact/%d", alarmID, index)
}

// setContactDue makes contact next of a's list due at due: it replaces
// a's contact deadline and mirrors it on a (written by the caller).
func setContactDue(c *applyCtx, a *Alarm, next int, due time.Time) error {
	d := &Deadline{ID: contactDeadlineID(a.ID, c.entry.Index), Kind: DeadlineContactDue, Due: due,
		AlarmID: a.ID, DeviceID: a.DeviceID, SessionID: a.SessionID}
	if err := putOwnedDeadline(c, alarmOwner(a.ID), d); err != nil {
		return err
	}
	a.ContactDue, a.ContactDueAt, a.ContactOverdue = next, due, false
	return nil
}

// clearContactDue deletes a's contact deadline, if any, and its mirror on
// a (written by the caller).
func clearContactDue(c *applyCtx, a *Alarm) error {
	if err := clearOwnedDeadline(c, alarmOwner(a.ID), DeadlineContactDue); err != nil {
		return err
	}
	a.ContactDue, a.ContactDueAt, a.ContactOverdue = 0, time.Time{}, false
	return nil
}

// moveEscalation applies an accepted contact entry e for contact i of cs
// to a: the deadline it had goes; after no answer or a message, the next
// contact is due ContactWait from now.
func moveEscalation(c *applyCtx, a *Alarm, i int, e TimelineEntry) error {
	if err := clearContactDue(c, a); err != nil {
		return err
	}
	if e.Outcome != ContactNoAnswer && e.Outcome != ContactLeftMessage {
		return nil
	}
	wait, err := contactWait(c.txn, a.OrgID)
	if err != nil {
		return err
	}
	return setContactDue(c, a, i+1, c.now().Add(wait))
}

// remindAfterAck sets the reminder for the first contact at the first
// acknowledgement of a (RulesContactReminder).
func remindAfterAck(c *applyCtx, a *Alarm) error {
	if !reminderAfterAck(a.Type) {
		return nil
	}
	wait, err := contactWait(c.txn, a.OrgID)
	if err != nil {
		return err
	}
	return setContactDue(c, a, 0, c.now().Add(wait))
}

// contactDueText is the reminder for contact next of cs.
func contactDueText(cs []Contact, next int) string {
	switch {
	case len(cs) == 0:
		return "no escalation contacts on file: tell the supervisor"
	case next >= len(cs):
		return "no escalation contact left to call: tell the supervisor"
	}
	return fmt.Sprintf("contact %s due", ContactLabel(cs[next]))
}

// fireContactDue acts on a contact deadline d, stored at key: it marks the
// alarm's reminder as shown. A deadline replaced or cleared since, or of a
// closed alarm, is stale.
func fireContactDue(c *applyCtx, key string, d *Deadline) ([]byte, error) {
	owner := alarmOwner(d.AlarmID)
	cur, err := ownedDeadline(c, owner, d.Kind)
	if err != nil {
		return nil, err
	}
	var a Alarm
	found, err := getJSON(c.txn, pAlarm+d.AlarmID, &a)
	if err != nil {
		return nil, err
	}
	if err := dropFiredDeadline(c, owner, key, d.Kind); err != nil {
		return nil, err
	}
	if !found || string(cur) != key || a.Status == StatusClosed || !a.ContactDueAt.Equal(d.Due) {
		return json.Marshal(fireResult{Outcome: "stale", Kind: d.Kind})
	}
	cs, err := AlarmContacts(c.txn, &a)
	if err != nil {
		return nil, err
	}
	a.ContactOverdue = true
	te := TimelineEntry{Kind: ActionContactDue, Actor: "system", Text: contactDueText(cs, a.ContactDue)}
	if a.ContactDue < len(cs) {
		te.Contact = cs[a.ContactDue].Name
	}
	entry, err := c.addTimeline(&a, te)
	if err != nil {
		return nil, err
	}
	if _, err := saveAlarm(c, &a, CmdFireDeadline, EventContactDue, entry, te.Text); err != nil {
		return nil, err
	}
	return json.Marshal(fireResult{Outcome: "fired", Kind: d.Kind, AlarmID: a.ID})
}

// contactReached is the outcome the console logged for "reached, briefed"
// before the outcomes were fixed (RulesContactOutcome): it counts as a
// briefing.
const contactReached = "reached"

// Briefed reports whether an escalation contact entry's outcome says the
// contact was briefed (or confirmed the worker's welfare).
func Briefed(outcome string) bool {
	return outcome == ContactBriefed || outcome == ContactWelfareConfirmed || outcome == contactReached
}

// briefed reports whether alarm a's timeline has an escalation contact
// entry with outcome briefed or welfare_confirmed.
func briefed(txn *badger.Txn, a *Alarm) (bool, error) {
	tl, err := AlarmTimeline(txn, a.ID)
	if err != nil {
		return false, err
	}
	for _, e := range tl {
		if e.Kind == ActionContact && Briefed(e.Outcome) {
			return true, nil
		}
	}
	return false, nil
}

// checkBriefing applies the close rule of RulesBriefing to closing a with
// resolution res and reason (trimmed): it refuses a genuine close of an
// alarm that needs a briefing when no contact was briefed and no reason is
// given, naming the contact to call next.
func checkBriefing(txn *badger.Txn, a *Alarm, res Resolution, reason string) error {
	if len(reason) > MaxTextLen {
		return invalid("no_briefing_reason", "is %d bytes, longer than %d", len(reason), MaxTextLen)
	}
	if !genuine(res) || !BriefingRequired(a.Type) || reason != "" {
		return nil
	}
	ok, err := briefed(txn, a)
	if err != nil || ok {
		return err
	}
	cs, err := AlarmContacts(txn, a)
	if err != nil {
		return err
	}
	next, err := nextContact(txn, a, cs)
	if err != nil {
		return err
	}
	const need = "closing a genuine alarm needs an escalation contact briefed (or confirming the worker's welfare)"
	if next < 0 {
		return ruleErr(CodeNeedBriefing, "no_briefing_reason",
			"%s: no escalation contacts on file, so record why none was briefed", need)
	}
	return ruleErr(CodeNeedBriefing, "no_briefing_reason",
		"%s: call %s next, or record why none was briefed", need, ContactLabel(cs[next]))
}

// nextContact returns the index in cs of the contact to call next on a:
// the one due, else the first not called yet, else the first; -1 when cs
// is empty.
func nextContact(txn *badger.Txn, a *Alarm, cs []Contact) (int, error) {
	if len(cs) == 0 {
		return -1, nil
	}
	if !a.ContactDueAt.IsZero() && a.ContactDue < len(cs) {
		return a.ContactDue, nil
	}
	tl, err := AlarmTimeline(txn, a.ID)
	if err != nil {
		return 0, err
	}
	for i, c := range cs {
		called := slices.ContainsFunc(tl, func(e TimelineEntry) bool {
			return e.Kind == ActionContact && strings.EqualFold(strings.TrimSpace(e.Contact), strings.TrimSpace(c.Name))
		})
		if !called {
			return i, nil
		}
	}
	return 0, nil
}
