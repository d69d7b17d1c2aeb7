package monitoring

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The outbox (outbox.go) and the notices the state machine enqueues
// (outboxnotice.go), on one replica's state machine.

func outboxEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.putOrg(Organisation{ID: "o1", Name: "Trust", Notify: NotifyPolicy{
		Close:  Recipients{Emails: []string{"duty@trust.example", "safety@trust.example"}, Webhooks: []string{"oncall"}},
		Duress: Recipients{Emails: []string{"managers@trust.example"}},
	}})
	e.putOrg(Organisation{ID: "o2", Name: "Council"})
	e.must(CmdPutWorker, putWorkerCmd{Header: e.hdr(), Worker: Worker{ID: "w1", Name: "Ann", OrgID: "o1"}})
	e.putWorker("x1", "o2")
	e.putDevice("d1", DeviceDedicated, "o1", "w1")
	e.putDevice("d3", DevicePhoneApp, "o2", "x1")
	return e
}

func testMessage(key, channel, to string) OutboxMessage {
	return OutboxMessage{Key: key, Kind: "incident_report", Channel: channel, To: to, OrgID: "o1",
		Subject: "Report", Text: "the report", Payload: json.RawMessage(`{"a":1}`)}
}

func (e *dirEnv) enqueue(msgs ...OutboxMessage) EnqueueResult {
	e.t.Helper()
	var r EnqueueResult
	if err := json.Unmarshal(e.must(CmdOutboxEnqueue, outboxEnqueueCmd{Header: e.hdr(), Messages: msgs}), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *dirEnv) outbox(id string) *OutboxMessage {
	e.t.Helper()
	var m OutboxMessage
	err := e.db.View(func(txn *badger.Txn) error {
		found, err := getJSON(txn, pOutbox+id, &m)
		if !found && err == nil {
			e.t.Fatalf("no outbox message %s", id)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return &m
}

func (e *dirEnv) alarmOutbox(id string) []OutboxMessage {
	e.t.Helper()
	var out []OutboxMessage
	if err := e.db.View(func(txn *badger.Txn) (err error) { out, err = outboxOf(txn, pOutboxAlarm+id+"/"); return err }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func outcome(e *dirEnv, id string, attempt int, sent bool, reason string, next time.Time, giveUp bool) outboxOutcomeCmd {
	return outboxOutcomeCmd{Header: e.hdr(), ID: id, Attempt: attempt, Sent: sent, Error: reason, NextAt: next, GiveUp: giveUp}
}

func TestOutbox_EnqueueIsIdempotentByKey(t *testing.T) {
	e := outboxEnv(t)
	r := e.enqueue(testMessage("report/a1", ChannelSMTP, "duty@trust.example"), testMessage("report/a1", ChannelWebhook, "oncall"))
	if r.New != 2 || len(r.IDs) != 2 || r.IDs[0] == r.IDs[1] {
		t.Fatalf("first enqueue: %+v", r)
	}
	if r.IDs[0] != OutboxID("report/a1", ChannelSMTP, "duty@trust.example") {
		t.Fatalf("ID %s is not derived from the key", r.IDs[0])
	}
	m := e.outbox(r.IDs[0])
	if m.State != OutboxDue || !m.NextAt.Equal(e.now) || !m.CreatedAt.Equal(e.now) || m.Attempts != 0 {
		t.Fatalf("new message: %+v", m)
	}
	if due := e.keys(pOutboxDue); len(due) != 2 {
		t.Fatalf("due index %v", due)
	}
	// A failure, then the same enqueue again (a second leader's): nothing
	// changes, the failure stays.
	e.now = e.now.Add(time.Second)
	e.must(CmdOutboxOutcome, outcome(e, r.IDs[0], 1, false, "connection refused", e.now.Add(10*time.Second), false))
	before := e.dump()
	again := e.enqueue(testMessage("report/a1", ChannelSMTP, "duty@trust.example"), testMessage("report/a1", ChannelWebhook, "oncall"))
	if again.New != 0 || again.IDs[0] != r.IDs[0] || again.IDs[1] != r.IDs[1] {
		t.Fatalf("second enqueue: %+v, want the same IDs and nothing new", again)
	}
	if after := e.dump(); after != before {
		t.Fatalf("a second enqueue changed the state")
	}
	// A new key is a new message, even to the same recipient.
	if r3 := e.enqueue(testMessage("report/a1/v2", ChannelSMTP, "duty@trust.example")); r3.New != 1 {
		t.Fatalf("new key: %+v", r3)
	}
}

func TestOutbox_Outcomes(t *testing.T) {
	e := outboxEnv(t)
	id := e.enqueue(testMessage("k1", ChannelSMTP, "duty@trust.example")).IDs[0]
	next := e.now.Add(10 * time.Second)
	e.must(CmdOutboxOutcome, outcome(e, id, 1, false, "dial tcp: connection refused", next, false))
	m := e.outbox(id)
	if m.State != OutboxFailed || m.Attempts != 1 || m.LastError != "dial tcp: connection refused" || !m.NextAt.Equal(next) ||
		len(m.Failures) != 1 || m.Failures[0].Node != "n1" {
		t.Fatalf("after a failure: %+v", m)
	}
	if due := e.keys(pOutboxDue); len(due) != 1 || !strings.Contains(due[0], tkey(next)) {
		t.Fatalf("due index %v, want one at %s", due, next)
	}
	// Failures keep the latest MaxOutboxFailures.
	for i := 2; i <= MaxOutboxFailures+3; i++ {
		e.now = e.now.Add(time.Minute)
		e.must(CmdOutboxOutcome, outcome(e, id, i, false, "timeout "+string(rune('a'+i)), e.now.Add(time.Minute), false))
	}
	if m := e.outbox(id); len(m.Failures) != MaxOutboxFailures || m.Attempts != MaxOutboxFailures+3 || m.Failures[0].Error != "timeout "+string(rune('a'+4)) {
		t.Fatalf("failures %d, attempts %d, first %q", len(m.Failures), m.Attempts, m.Failures[0].Error)
	}
	e.must(CmdOutboxOutcome, outcome(e, id, MaxOutboxFailures+4, true, "", time.Time{}, false))
	m = e.outbox(id)
	if m.State != OutboxSent || !m.SentAt.Equal(e.now) || !m.NextAt.IsZero() || m.LastError == "" {
		t.Fatalf("after sending: %+v", m)
	}
	if due := e.keys(pOutboxDue); len(due) != 0 {
		t.Fatalf("a sent message is still due: %v", due)
	}

	// Giving up ends the attempts, and is audited.
	id2 := e.enqueue(testMessage("k2", ChannelWebhook, "oncall")).IDs[0]
	e.must(CmdOutboxOutcome, outcome(e, id2, 1, false, "HTTP 500", time.Time{}, true))
	if m := e.outbox(id2); m.State != OutboxGaveUp || m.GaveUpAt.IsZero() || !m.NextAt.IsZero() {
		t.Fatalf("after giving up: %+v", m)
	}
	if due := e.keys(pOutboxDue); len(due) != 0 {
		t.Fatalf("a message given up is still due: %v", due)
	}
	if !strings.Contains(e.dump(), "gave up after 1 attempts: HTTP 500") {
		t.Fatalf("no audit record of the give-up")
	}
	if n := e.eventTypes(); n[len(n)-1] != EventOutbox {
		t.Fatalf("last event %s, want %s", n[len(n)-1], EventOutbox)
	}
}

func TestOutbox_Refusals(t *testing.T) {
	big := testMessage("k", ChannelSMTP, "a@b.example")
	big.Attachments = []Attachment{{Name: "r.pdf", ContentType: "application/pdf", Data: make([]byte, MaxOutboxMessage)}}
	withMsg := func(f func(m *OutboxMessage)) func(e *dirEnv) (CmdType, any) {
		return func(e *dirEnv) (CmdType, any) {
			m := testMessage("k", ChannelSMTP, "a@b.example")
			f(&m)
			return CmdOutboxEnqueue, outboxEnqueueCmd{Header: e.hdr(), Messages: []OutboxMessage{testMessage("ok", ChannelWebhook, "oncall"), m}}
		}
	}
	for _, tc := range []struct {
		name  string
		cmd   func(e *dirEnv) (CmdType, any)
		code  Code
		field string
	}{
		{"nothing to enqueue", func(e *dirEnv) (CmdType, any) {
			return CmdOutboxEnqueue, outboxEnqueueCmd{Header: e.hdr()}
		}, CodeInvalid, "messages"},
		{"no key", withMsg(func(m *OutboxMessage) { m.Key = " " }), CodeInvalid, "messages[1].key"},
		{"a kind in capitals", withMsg(func(m *OutboxMessage) { m.Kind = "Report" }), CodeInvalid, "messages[1].kind"},
		{"no subject", withMsg(func(m *OutboxMessage) { m.Subject = "" }), CodeInvalid, "messages[1].subject"},
		{"a subject of two lines", withMsg(func(m *OutboxMessage) { m.Subject = "a\r\nBcc: x@y.example" }), CodeInvalid, "messages[1].subject"},
		{"an unknown channel", withMsg(func(m *OutboxMessage) { m.Channel = "sms" }), CodeInvalid, "messages[1].channel"},
		{"not a mail address", withMsg(func(m *OutboxMessage) { m.To = "Ann <a@b.example>" }), CodeInvalid, "messages[1].to"},
		{"a mail without a body", withMsg(func(m *OutboxMessage) { m.Text, m.HTML = "", "" }), CodeInvalid, "messages[1].text"},
		{"a webhook URL for a name", withMsg(func(m *OutboxMessage) { m.Channel, m.To = ChannelWebhook, "https://x.example/" }),
			CodeInvalid, "messages[1].to"},
		{"a webhook with attachments", withMsg(func(m *OutboxMessage) {
			m.Channel, m.To = ChannelWebhook, "oncall"
			m.Attachments = []Attachment{{Name: "a.pdf", ContentType: "application/pdf"}}
		}), CodeInvalid, "messages[1].attachments"},
		{"an attachment with a path", withMsg(func(m *OutboxMessage) {
			m.Attachments = []Attachment{{Name: "../a.pdf", ContentType: "application/pdf"}}
		}), CodeInvalid, "messages[1].attachments[0].name"},
		{"a payload that is not an object", withMsg(func(m *OutboxMessage) { m.Payload = json.RawMessage(`[1]`) }), CodeInvalid, "messages[1].payload"},
		{"a link that is not a path", withMsg(func(m *OutboxMessage) { m.Link = "https://evil.example/" }), CodeInvalid, "messages[1].link"},
		{"too large", func(e *dirEnv) (CmdType, any) {
			return CmdOutboxEnqueue, outboxEnqueueCmd{Header: e.hdr(), Messages: []OutboxMessage{big}}
		}, CodeInvalid, "messages[0].text"},
		{"an unknown organisation", withMsg(func(m *OutboxMessage) { m.OrgID = "o9" }), CodeNotFound, "messages[1].org_id"},
		{"an unknown alarm", withMsg(func(m *OutboxMessage) { m.AlarmID = "a9" }), CodeNotFound, "messages[1].alarm_id"},
		{"the outcome of no message", func(e *dirEnv) (CmdType, any) {
			return CmdOutboxOutcome, outcome(e, "nope", 1, true, "", time.Time{}, false)
		}, CodeNotFound, "id"},
		{"an attempt recorded already", func(e *dirEnv) (CmdType, any) {
			id := e.enqueue(testMessage("k", ChannelSMTP, "a@b.example")).IDs[0]
			e.must(CmdOutboxOutcome, outcome(e, id, 1, false, "refused", e.now.Add(time.Second), false))
			return CmdOutboxOutcome, outcome(e, id, 1, true, "", time.Time{}, false)
		}, CodeConflict, "attempt"},
		{"a message sent already", func(e *dirEnv) (CmdType, any) {
			id := e.enqueue(testMessage("k", ChannelSMTP, "a@b.example")).IDs[0]
			e.must(CmdOutboxOutcome, outcome(e, id, 1, true, "", time.Time{}, false))
			return CmdOutboxOutcome, outcome(e, id, 2, true, "", time.Time{}, false)
		}, CodeConflict, "id"},
		{"a failure without its reason", func(e *dirEnv) (CmdType, any) {
			id := e.enqueue(testMessage("k", ChannelSMTP, "a@b.example")).IDs[0]
			return CmdOutboxOutcome, outcome(e, id, 1, false, " ", e.now.Add(time.Second), false)
		}, CodeInvalid, "error"},
		{"a failure without the next attempt", func(e *dirEnv) (CmdType, any) {
			id := e.enqueue(testMessage("k", ChannelSMTP, "a@b.example")).IDs[0]
			return CmdOutboxOutcome, outcome(e, id, 1, false, "refused", e.now, false)
		}, CodeInvalid, "next_at"},
		{"a sent message with an error", func(e *dirEnv) (CmdType, any) {
			id := e.enqueue(testMessage("k", ChannelSMTP, "a@b.example")).IDs[0]
			return CmdOutboxOutcome, outcome(e, id, 1, true, "refused", time.Time{}, false)
		}, CodeInvalid, "error"},
		{"a policy with a bad address", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Notify: NotifyPolicy{Duress: Recipients{Emails: []string{"managers"}}}}}
		}, CodeInvalid, "org.notify.duress.emails[0]"},
		{"a policy with an address twice", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Notify: NotifyPolicy{Close: Recipients{Emails: []string{"a@b.example", "a@b.example"}}}}}
		}, CodeInvalid, "org.notify.close.emails[1]"},
		{"a policy with a bad webhook name", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Notify: NotifyPolicy{Escalation: Recipients{Webhooks: []string{"On Call"}}}}}
		}, CodeInvalid, "org.notify.escalation.webhooks[0]"},
		{"a contact with a bad email", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Contacts: []Contact{{Name: "Kim", Phone: "+44 7700 900001", Email: "kim at home"}}}}
		}, CodeInvalid, "org.contacts[0].email"},
		{"a worker's contact with a bad email", func(e *dirEnv) (CmdType, any) {
			return CmdPutWorker, putWorkerCmd{Header: e.hdr(), Worker: Worker{ID: "w9", Name: "Nine", OrgID: "o1",
				Contacts: []Contact{{Name: "Kim", Phone: "+44 7700 900001", Email: "Kim <kim@home.example>"}}}}
		}, CodeInvalid, "worker.contacts[0].email"},
		{"a reports policy with a bad address", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Notify: NotifyPolicy{Reports: Recipients{Emails: []string{"quality@trust.example", "board at trust"}}}}}
		}, CodeInvalid, "org.notify.reports.emails[1]"},
		{"a reports policy with a webhook twice", func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three",
				Notify: NotifyPolicy{Reports: Recipients{Webhooks: []string{"intranet", "intranet"}}}}}
		}, CodeInvalid, "org.notify.reports.webhooks[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := outboxEnv(t)
			typ, body := tc.cmd(e)
			// refused checks that the refusal left the state as it was.
			e.refused(typ, body, tc.code, tc.field)
		})
	}
}

func TestOutbox_GenuineCloseEnqueuesItsNotice(t *testing.T) {
	e := outboxEnv(t)
	raise := func(id, dev string) {
		e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: id, Type: AlarmRedAlert, DeviceID: dev})
		e.now = e.now.Add(5 * time.Second)
		e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: id})
	}
	raise("a1", "d1")
	e.must(CmdLogAction, logActionCmd{Header: e.hdr(), AlarmID: "a1",
		Entry: TimelineEntry{Kind: ActionPolice, Force: "GMP", Route: Route999, Reference: "GMP-2026-0042"}})
	e.now = e.now.Add(time.Minute)
	e.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionIncidentHandled,
		Confirmation: ConfirmedByPolice, Note: "police attended", NoBriefingReason: "none on file", Rules: RulesNotify})
	closeIndex := e.index
	msgs := e.alarmOutbox("a1")
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3 (two mails, one webhook): %+v", len(msgs), msgs)
	}
	for _, m := range msgs {
		if m.Kind != NoticeAlarmClosed || m.OrgID != "o1" || m.State != OutboxDue || m.Link != "/alarms/a1" || m.AudioAlarmID != "a1" ||
			m.Key != closeNoticeKey("a1", closeIndex) {
			t.Fatalf("message %+v", m)
		}
		for _, want := range []string{"Ann", "Trust", "incident_handled", "police_attended", "GMP-2026-0042", "police attended"} {
			if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
				t.Fatalf("the notice does not say %q:\n%s", want, m.Text)
			}
		}
		var d AlarmNotice
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if d.Alarm.ID != "a1" || d.Worker.Name != "Ann" || d.Org.Name != "Trust" || d.Alarm.Resolution != "incident_handled" ||
			len(d.Alarm.PoliceReferences) != 1 || d.Alarm.ClosedAt.IsZero() {
			t.Fatalf("payload %s", m.Payload)
		}
	}
	// Reopened and closed again: told of again, under a new key.
	e.must(CmdReopenAlarm, reopenAlarmCmd{Header: e.hdr(), AlarmID: "a1", Reason: "rang back"})
	e.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionWorkerSafe,
		Confirmation: ConfirmedByWorker, NoBriefingReason: "none on file", Rules: RulesNotify})
	if n := len(e.alarmOutbox("a1")); n != 6 {
		t.Fatalf("%d messages after the second close, want 6", n)
	}

	for _, tc := range []struct {
		name  string
		dev   string
		res   Resolution
		rules int
	}{
		{"a false alarm", "d1", ResolutionFalseAlarm, RulesNotify},
		{"a close under the rules before", "d1", ResolutionWorkerSafe, RulesBriefing},
		{"an organisation without recipients", "d3", ResolutionWorkerSafe, RulesNotify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "b-" + strings.ReplaceAll(tc.name, " ", "-")
			raise(id, tc.dev)
			e.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: e.hdr(), AlarmID: id, Resolution: tc.res,
				Confirmation: ConfirmedByWorker, NoBriefingReason: "none on file", Rules: tc.rules})
			if msgs := e.alarmOutbox(id); len(msgs) != 0 {
				t.Fatalf("%d messages, want none", len(msgs))
			}
		})
	}
}

// outboxEvery is how often a step of the replicas property also generates
// an outbox command.
const outboxEvery = 3

// stepOutbox generates an enqueue (mostly valid, often a key seen before)
// or an attempt's outcome (mostly the next attempt of a message due), for
// the replicas property (determinism_test.go). It draws from its own random
// source, so that the other commands stay as they were.
func (g *gen) stepOutbox() {
	if g.or == nil {
		g.or = rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x0b0c))
	}
	r := g.or
	hdr := Header{At: g.now, Actor: "system", Node: "n2"}
	if r.IntN(4) == 0 {
		// A genuine close under the newest rules, which enqueues its
		// notice when the organisation has a policy (o1's), of an alarm
		// raised and acknowledged in this step: the open alarms the other
		// steps pick from stay as they were.
		id := fmt.Sprintf("ob%d", len(g.cmds))
		worker := genWorkerIDs[r.IntN(len(genWorkerIDs))]
		g.add(CmdRaiseAlarm, RaiseAlarmCmd{Header: Header{At: g.now, Actor: "sam", Node: "n1"}, AlarmID: id, Type: AlarmRedAlert, WorkerID: worker})
		g.add(CmdAcknowledge, AcknowledgeCmd{Header: Header{At: g.now, Actor: "sam", Node: "n1"}, AlarmID: id, Rules: RulesContactReminder})
		g.add(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: Header{At: g.now, Actor: "sam", Node: "n1"}, AlarmID: id,
			Resolution: []Resolution{ResolutionWorkerSafe, ResolutionIncidentHandled}[r.IntN(2)], Confirmation: ConfirmedByWorker,
			NoBriefingReason: "no answer from anyone", Rules: RulesNotify})
		return
	}
	if r.IntN(2) == 0 {
		var msgs []OutboxMessage
		for range 1 + r.IntN(3) {
			m := OutboxMessage{Key: "k" + string(rune('a'+r.IntN(6))), Kind: "incident_report", OrgID: "o1",
				Subject: "Report", Text: "text"}
			switch r.IntN(8) {
			case 0:
				m.Channel, m.To = "sms", "07700 900000"
			case 1:
				m.Channel, m.To = ChannelSMTP, "not an address"
			case 2, 3:
				m.Channel, m.To = ChannelWebhook, []string{"oncall", "sms-gateway"}[r.IntN(2)]
			default:
				m.Channel, m.To = ChannelSMTP, []string{"a@x.example", "b@x.example"}[r.IntN(2)]
			}
			if len(g.alarms) > 0 && r.IntN(2) == 0 {
				m.AlarmID = g.alarms[r.IntN(len(g.alarms))]
			}
			msgs = append(msgs, m)
		}
		g.add(CmdOutboxEnqueue, outboxEnqueueCmd{Header: hdr, Messages: msgs})
		return
	}
	var all []OutboxMessage
	if err := g.a.db.View(func(txn *badger.Txn) (err error) { all, err = listJSON[OutboxMessage](txn, pOutbox, 0); return err }); err != nil {
		g.t.Fatal(err)
	}
	cmd := outboxOutcomeCmd{Header: hdr, ID: "none", Attempt: 1}
	if len(all) > 0 && r.IntN(8) != 0 {
		m := all[r.IntN(len(all))]
		cmd.ID, cmd.Attempt = m.ID, m.Attempts+1-r.IntN(2)*r.IntN(2)
	}
	switch r.IntN(4) {
	case 0:
		cmd.Sent = true
	case 1:
		cmd.Error, cmd.GiveUp = "HTTP 500", true
	default:
		cmd.Error, cmd.NextAt = "connection refused", g.now.Add(time.Duration(r.IntN(3))*10*time.Second)
	}
	g.add(CmdOutboxOutcome, cmd)
}
