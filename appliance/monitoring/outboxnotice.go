package monitoring

// What the outbox sends about alarms, per organisation's policy
// (Organisation.Notify), and when:
//
//   - the close of a genuine alarm (worker_safe, incident_handled): the
//     summary, to Notify.Close, enqueued by the close itself, in the same
//     Raft entry (CloseAlarmCmd's RulesNotify): the close cannot commit
//     without its notification;
//   - a duress or discreet-panic alarm raised: to Notify.Duress (the
//     managers), never to the worker; and an alarm not acknowledged within
//     a target (10 s, 40 s): to Notify.Escalation (the supervisors). Both
//     are follow-ups the leader enqueues from a scan of the state
//     (PendingNotices): recent alarms for the first, open ones for the
//     second. The scan reads only replicated state, so a new leader finds
//     what the old one had not enqueued yet; the enqueue is idempotent by
//     key ("alarm/<id>/duress", "alarm/<id>/ack/<n>"), so the old leader's
//     and the new one's are one.
//
// Why two ways: the close is one command with a rules version, so its
// notification can join its entry. A duress alarm is raised by five
// commands (a device's alarm, the Duress PIN on a session, a cancel or a
// reset, a prompt's answer) and an acknowledgement target is a deadline;
// carrying the notices in those entries would need a new rules version of
// each, while the scan changes no existing command and needs none.

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// NotifyPolicy is who an organisation's notifications go to.
type NotifyPolicy struct {
	// Close: the summary when a genuine alarm closes.
	Close Recipients `json:"close,omitzero"`
	// Duress: the managers told at once of a duress or discreet alarm.
	Duress Recipients `json:"duress,omitzero"`
	// Escalation: the supervisors told of an alarm not acknowledged within
	// a target.
	Escalation Recipients `json:"escalation,omitzero"`
	// Reports: the signed-off post-incident reports and the monthly
	// statistics (monthly.go).
	Reports Recipients `json:"reports,omitzero"`
}

// Recipients are mail addresses and the names of webhooks of the nodes'
// configuration (notify.webhooks; docs/notifications.md).
type Recipients struct {
	Emails   []string `json:"emails,omitempty"`
	Webhooks []string `json:"webhooks,omitempty"`
}

// Limits of a notification policy.
const (
	MaxNotifyEmails   = 20
	MaxNotifyWebhooks = 10
)

// DuressNoticeLookback is how far back the leader looks for duress and
// discreet alarms to tell the managers of: a policy set later does not
// send notices of older alarms.
const DuressNoticeLookback = 10 * time.Minute

// validNotifyPolicy checks an organisation's policy.
func validNotifyPolicy(p NotifyPolicy) error {
	for _, r := range []struct {
		field string
		r     Recipients
	}{{"org.notify.close", p.Close}, {"org.notify.duress", p.Duress}, {"org.notify.escalation", p.Escalation},
		{"org.notify.reports", p.Reports}} {
		if len(r.r.Emails) > MaxNotifyEmails {
			return invalid(r.field+".emails", "%d addresses, over %d", len(r.r.Emails), MaxNotifyEmails)
		}
		if len(r.r.Webhooks) > MaxNotifyWebhooks {
			return invalid(r.field+".webhooks", "%d webhooks, over %d", len(r.r.Webhooks), MaxNotifyWebhooks)
		}
		for i, e := range r.r.Emails {
			f := fmt.Sprintf("%s.emails[%d]", r.field, i)
			if err := validMailAddress(f, e); err != nil {
				return err
			}
			if slices.Contains(r.r.Emails[:i], e) {
				return invalid(f, "%q is listed twice", e)
			}
		}
		for i, w := range r.r.Webhooks {
			f := fmt.Sprintf("%s.webhooks[%d]", r.field, i)
			if err := validWebhookName(f, w); err != nil {
				return err
			}
			if slices.Contains(r.r.Webhooks[:i], w) {
				return invalid(f, "%q is listed twice", w)
			}
		}
	}
	return nil
}

// Notification is what a part of Vigil asks the outbox to send: one
// message per mail address and per webhook, each delivered on its own.
// Service.EnqueueNotification is the way in for other parts (the
// post-incident report, say).
type Notification struct {
	// Key is the idempotency key: a notification enqueued twice with the
	// same key (a retry, a second leader) is sent once. Make it from what
	// the notification is about, such as "report/<alarm id>/<version>".
	Key string `json:"key"`
	// Kind says why, such as "incident_report" (lower-case, digits, _).
	Kind string `json:"kind"`
	// OrgID and AlarmID, when set, list the message on the
	// organisation's and the alarm's outbox pages; they must exist.
	OrgID   string `json:"org_id,omitempty"`
	AlarmID string `json:"alarm_id,omitempty"`
	// Emails and Webhooks are the recipients (at least one).
	Emails   []string `json:"emails,omitempty"`
	Webhooks []string `json:"webhooks,omitempty"`
	// Subject is one line; Text and HTML are the mail's bodies (one at
	// least for mail) and the webhook's "text".
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Payload is the webhook's "data" object.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Link is a console path (/alarms/<id>): the sender makes it a URL.
	Link string `json:"link,omitempty"`
	// AudioAlarmID asks the sender to add a link to this alarm's audio.
	AudioAlarmID string `json:"audio_alarm_id,omitempty"`
	// Attachments go with the mails only.
	Attachments []Attachment `json:"attachments,omitempty"`
}

// messages returns one outbox message per recipient.
func (n *Notification) messages() []OutboxMessage {
	base := OutboxMessage{Key: n.Key, Kind: n.Kind, OrgID: n.OrgID, AlarmID: n.AlarmID, Subject: n.Subject,
		Text: n.Text, HTML: n.HTML, Payload: n.Payload, Link: n.Link, AudioAlarmID: n.AudioAlarmID}
	var out []OutboxMessage
	for _, e := range n.Emails {
		m := base
		m.Channel, m.To, m.Attachments = ChannelSMTP, e, n.Attachments
		out = append(out, m)
	}
	for _, w := range n.Webhooks {
		m := base
		m.Channel, m.To = ChannelWebhook, w
		out = append(out, m)
	}
	return out
}

// EnqueueNotification adds n to the outbox, each recipient's message once
// by n.Key; a message enqueued already is left as it is (its state is not
// reset). It returns the messages' IDs. The leader delivers them.
func (s *Service) EnqueueNotification(ctx context.Context, actor string, n Notification) (*EnqueueResult, error) {
	msgs := n.messages()
	switch {
	case len(msgs) == 0:
		return nil, invalid("emails", "a notification needs a mail address or a webhook")
	case len(msgs) > MaxOutboxRecipients:
		return nil, invalid("emails", "%d recipients, over %d", len(msgs), MaxOutboxRecipients)
	}
	for i := range msgs {
		if err := validOutboxMessage(i, &msgs[i]); err != nil {
			return nil, err
		}
	}
	cmd := outboxEnqueueCmd{Header: s.header(actor), Messages: msgs}
	res, err := s.propose(ctx, "enqueue/"+OutboxID(n.Key, "", ""), CmdOutboxEnqueue, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[EnqueueResult](res.Response)
}

// AlarmNotice is the data of the webhook of an alarm's notification (its
// "data"; docs/notifications.md).
type AlarmNotice struct {
	Alarm struct {
		ID         string    `json:"id"`
		Type       AlarmType `json:"type"`
		IncidentID string    `json:"incident_id,omitempty"`
		RaisedAt   time.Time `json:"raised_at"`
		AckAt      time.Time `json:"ack_at,omitzero"`
		AckBy      string    `json:"ack_by,omitempty"`
		ClosedAt   time.Time `json:"closed_at,omitzero"`
		ClosedBy   string    `json:"closed_by,omitempty"`
		Resolution string    `json:"resolution,omitempty"`
		// Confirmation is how the worker's safety was confirmed.
		Confirmation string `json:"confirmation,omitempty"`
		Note         string `json:"note,omitempty"`
		// PoliceReferences are the references of the police calls logged.
		PoliceReferences []string `json:"police_references,omitempty"`
		// Stage is the acknowledgement target missed (1: 10 s, 2: 40 s).
		Stage int `json:"stage,omitempty"`
	} `json:"alarm"`
	Worker struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"worker"`
	Org struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"org"`
}

// alarmNotification builds an alarm's notification of kind to r, with the
// key key; stage is the acknowledgement target missed, for an escalation.
// It returns nil when r is empty or the alarm has no organisation.
func alarmNotification(txn *badger.Txn, a *Alarm, kind, key string, stage int, r Recipients) (*Notification, error) {
	if len(r.Emails) == 0 && len(r.Webhooks) == 0 || a.OrgID == "" {
		return nil, nil
	}
	var d AlarmNotice
	d.Alarm.ID, d.Alarm.Type, d.Alarm.IncidentID, d.Alarm.RaisedAt = a.ID, a.Type, a.IncidentID, a.RaisedAt
	d.Alarm.AckAt, d.Alarm.AckBy, d.Alarm.Stage = a.AckAt, a.AckBy, stage
	if kind == NoticeAlarmClosed {
		d.Alarm.ClosedAt, d.Alarm.ClosedBy, d.Alarm.Resolution = a.ClosedAt, a.ClosedBy, string(a.Resolution)
		d.Alarm.Confirmation, d.Alarm.Note = string(a.Confirmation), a.CloseNote
		err := scanPrefix(txn, pTimeline+a.ID+"/", true, func(_, val []byte) (bool, error) {
			var te TimelineEntry
			if err := json.Unmarshal(val, &te); err != nil {
				return false, err
			}
			if te.Kind == ActionPolice && te.Reference != "" {
				d.Alarm.PoliceReferences = append(d.Alarm.PoliceReferences, te.Reference)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	d.Org.ID = a.OrgID
	if o, err := getOrg(txn, a.OrgID); err == nil {
		d.Org.Name = o.Name
	}
	if a.WorkerID != "" {
		d.Worker.ID = a.WorkerID
		if w, err := getWorker(txn, a.WorkerID); err == nil {
			d.Worker.Name = w.Name
		}
	}
	who := d.Worker.Name
	if who == "" {
		who = "no worker named"
	}
	var subject string
	switch kind {
	case NoticeAlarmClosed:
		subject = fmt.Sprintf("Alarm closed: %s of %s (%s), %s", a.Type, who, d.Org.Name, a.Resolution)
	case NoticeDuress:
		subject = fmt.Sprintf("DURESS: %s alarm of %s (%s): do not call the worker", a.Type, who, d.Org.Name)
	case NoticeEscalation:
		subject = fmt.Sprintf("Not acknowledged within %s: %s alarm of %s (%s)", fmtTarget(ackTargets[stage-1]), a.Type, who, d.Org.Name)
	case NoticeBriefing:
		subject = fmt.Sprintf("Briefing: %s alarm of %s (%s)", a.Type, who, d.Org.Name)
	}
	subject = clip(subject, maxSubject)
	lines := [][2]string{
		{"Organisation", d.Org.Name},
		{"Worker", who},
		{"Alarm", fmt.Sprintf("%s (%s)", a.Type, a.ID)},
		{"Raised", fmtNoticeTime(a.RaisedAt)},
	}
	if !a.AckAt.IsZero() {
		lines = append(lines, [2]string{"Acknowledged", fmtNoticeTime(a.AckAt) + " by " + a.AckBy})
	}
	switch kind {
	case NoticeAlarmClosed:
		refs := strings.Join(d.Alarm.PoliceReferences, ", ")
		if refs == "" {
			refs = "none"
		}
		lines = append(lines,
			[2]string{"Closed", fmtNoticeTime(a.ClosedAt) + " by " + a.ClosedBy},
			[2]string{"Resolution", string(a.Resolution)},
			[2]string{"Confirmation", string(a.Confirmation)},
			[2]string{"Police reference", refs})
		if a.CloseNote != "" {
			lines = append(lines, [2]string{"Note", a.CloseNote})
		}
	case NoticeDuress:
		lines = append(lines, [2]string{"Warning", "a silent alarm: do not call or message the worker"})
	case NoticeEscalation:
		lines = append(lines, [2]string{"Status", "no operator has acknowledged it yet"})
	case NoticeBriefing:
		status := "open: the alarm receiving centre is dealing with it"
		if a.Status == StatusClosed {
			status = "closed: " + string(a.Resolution)
		}
		lines = append(lines, [2]string{"Status", status})
		if a.DoNotCall || a.Type == AlarmDuress || a.Type == AlarmDiscreetPanic {
			lines = append(lines, [2]string{"Warning", "a silent alarm: do not call or message the worker"})
		}
	}
	var text, htm strings.Builder
	htm.WriteString("<table>")
	for _, l := range lines {
		fmt.Fprintf(&text, "%s: %s\n", l[0], l[1])
		fmt.Fprintf(&htm, "<tr><th align=\"left\">%s</th><td>%s</td></tr>", html.EscapeString(l[0]), html.EscapeString(l[1]))
	}
	htm.WriteString("</table>")
	payload, err := json.Marshal(&d)
	if err != nil {
		return nil, err
	}
	n := &Notification{
		Key: key, Kind: kind, OrgID: a.OrgID, AlarmID: a.ID,
		Emails: r.Emails, Webhooks: r.Webhooks,
		Subject: subject, Text: text.String(), HTML: htm.String(), Payload: payload,
		Link: "/alarms/" + a.ID,
	}
	if kind == NoticeAlarmClosed {
		n.AudioAlarmID = a.ID
	}
	return n, nil
}

// maxSubject is the longest subject of an outbox message.
const maxSubject = 300

// clip shortens s to at most n bytes, on a character boundary, marking the
// cut with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func fmtNoticeTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// closeNoticeKey is the idempotency key of the notification of the close
// applied at index: a reopened alarm closed again is told of again.
func closeNoticeKey(alarmID string, index uint64) string {
	return fmt.Sprintf("alarm/%s/closed/%d", alarmID, index)
}

// enqueueCloseNotice enqueues the close notification of a, just closed,
// when its resolution is genuine and its organisation has recipients.
func enqueueCloseNotice(c *applyCtx, a *Alarm) error {
	if a.Resolution != ResolutionWorkerSafe && a.Resolution != ResolutionIncidentHandled || a.OrgID == "" {
		return nil
	}
	var o Organisation
	found, err := getJSON(c.txn, pOrg+a.OrgID, &o)
	if err != nil || !found {
		return err
	}
	n, err := alarmNotification(c.txn, a, NoticeAlarmClosed, closeNoticeKey(a.ID, c.entry.Index), 0, o.Notify.Close)
	if err != nil || n == nil {
		return err
	}
	msgs := n.messages()
	for i := range msgs {
		// The policy's addresses were checked when it was set; a message
		// too large (a very long note) goes without its HTML.
		if validOutboxMessage(i, &msgs[i]) != nil {
			msgs[i].HTML = ""
		}
	}
	_, err = enqueueOutbox(c, msgs)
	return err
}

// PendingNotices returns the alarm notifications the leader is to enqueue
// at now: the duress notices of duress and discreet alarms raised within
// DuressNoticeLookback, and the escalation notices of open alarms not
// acknowledged within a target, leaving out those enqueued already (only
// the highest target missed is told of); then the report notices
// (PendingReportNotices).
func (s *Service) PendingNotices(now time.Time) ([]Notification, error) {
	var out []Notification
	orgs := map[string]*Organisation{}
	policy := func(txn *badger.Txn, id string) (*NotifyPolicy, error) {
		if o, ok := orgs[id]; ok {
			if o == nil {
				return nil, nil
			}
			return &o.Notify, nil
		}
		var o Organisation
		found, err := getJSON(txn, pOrg+id, &o)
		if err != nil || !found {
			orgs[id] = nil
			return nil, err
		}
		orgs[id] = &o
		return &o.Notify, nil
	}
	add := func(txn *badger.Txn, a *Alarm, kind, key string, stage int, r Recipients) error {
		n, err := alarmNotification(txn, a, kind, key, stage, r)
		if err != nil || n == nil {
			return err
		}
		var missing bool
		for _, m := range n.messages() {
			ok, err := exists(txn, pOutbox+OutboxID(m.Key, m.Channel, m.To))
			if err != nil {
				return err
			}
			missing = missing || !ok
		}
		if missing {
			out = append(out, *n)
		}
		return nil
	}
	err := s.view(func(txn *badger.Txn) error {
		err := scanFrom(txn, pRaised, tkey(now.Add(-DuressNoticeLookback)), func(key []byte) (bool, error) {
			a, err := getAlarm(txn, lastSegment(key))
			if err != nil {
				return false, err
			}
			if a.Type != AlarmDuress && a.Type != AlarmDiscreetPanic || a.OrgID == "" {
				return true, nil
			}
			p, err := policy(txn, a.OrgID)
			if err != nil || p == nil {
				return err == nil, err
			}
			return true, add(txn, a, NoticeDuress, "alarm/"+a.ID+"/duress", 0, p.Duress)
		})
		if err != nil {
			return err
		}
		return scanPrefix(txn, pOpen, false, func(key, _ []byte) (bool, error) {
			a, err := getAlarm(txn, lastSegment(key))
			if err != nil {
				return false, err
			}
			if !a.AckAt.IsZero() || a.Type == AlarmTest || a.OrgID == "" {
				return true, nil
			}
			stage := 0
			for i, t := range ackTargets {
				if !now.Before(a.RaisedAt.Add(t)) {
					stage = i + 1
				}
			}
			if stage == 0 {
				return true, nil
			}
			p, err := policy(txn, a.OrgID)
			if err != nil || p == nil {
				return err == nil, err
			}
			return true, add(txn, a, NoticeEscalation, fmt.Sprintf("alarm/%s/ack/%d", a.ID, stage), stage, p.Escalation)
		})
	})
	if err != nil {
		return nil, err
	}
	reports, err := s.PendingReportNotices(now) // monthly.go
	return append(out, reports...), err
}

// DueOutbox returns the messages due for an attempt at now, the earliest
// first, at most limit, with their attachments, from this node's state.
func (s *Service) DueOutbox(now time.Time, limit int) ([]OutboxMessage, error) {
	var out []OutboxMessage
	end := pOutboxDue + tkey(now) + "/\xff"
	err := s.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pOutboxDue, false, func(key, _ []byte) (bool, error) {
			if string(key) > end {
				return false, nil
			}
			var m OutboxMessage
			found, err := getJSON(txn, pOutbox+lastSegment(key), &m)
			if err != nil {
				return false, err
			}
			if found && m.Pending() {
				out = append(out, m)
			}
			return len(out) < limit, nil
		})
	})
	return out, err
}

// RecordOutboxOutcome records the outcome of attempt number attempt (the
// message's Attempts + 1) to deliver message id: sent, or failed with
// reason and either the time of the next attempt or giveUp.
func (s *Service) RecordOutboxOutcome(ctx context.Context, id string, attempt int, sent bool, reason string,
	next time.Time, giveUp bool) (*OutboxMessage, error) {
	cmd := outboxOutcomeCmd{Header: s.header("system"), ID: id, Attempt: attempt, Sent: sent, Error: reason,
		NextAt: next, GiveUp: giveUp}
	res, err := s.propose(ctx, fmt.Sprintf("outcome/%s/%d", id, attempt), CmdOutboxOutcome, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[OutboxMessage](res.Response)
}

// OutboxMessage returns one message of the outbox, without its
// attachments' data.
func (s *Service) OutboxMessage(id string) (*OutboxMessage, error) {
	var m OutboxMessage
	err := s.view(func(txn *badger.Txn) error {
		found, err := getJSON(txn, pOutbox+id, &m)
		if err == nil && !found {
			err = ruleErr(CodeNotFound, "id", "no outbox message %q", id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return publicOutbox(&m), nil
}

// AlarmOutbox returns the messages about an alarm, in the order enqueued.
func (s *Service) AlarmOutbox(alarmID string) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = outboxOf(txn, pOutboxAlarm+alarmID+"/")
		return err
	})
	slices.SortStableFunc(out, func(a, b OutboxMessage) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// OrgOutbox returns an organisation's messages: those given up, then those
// failing, then those due, then those sent, each the newest first; at most
// limit.
func (s *Service) OrgOutbox(orgID string, limit int) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := s.view(func(txn *badger.Txn) (err error) {
		out, err = outboxOf(txn, pOutboxOrg+orgID+"/")
		return err
	})
	rank := map[string]int{OutboxGaveUp: 0, OutboxFailed: 1, OutboxDue: 2, OutboxSent: 3}
	slices.SortStableFunc(out, func(a, b OutboxMessage) int {
		if r := rank[a.State] - rank[b.State]; r != 0 {
			return r
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}
