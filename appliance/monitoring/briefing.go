package monitoring

// The escalation contacts' briefing: when the operator chooses it (the
// alarm page's "Send the briefing"), a mail to each escalation contact of
// the alarm that has an email address, through the outbox. The key is
// fixed per alarm and contact ("alarm/<id>/briefing/<address>"), so a
// second press, a retry or a new leader sends each contact one briefing.
// The enqueue is the operator's command: the audit log records who sent
// it to whom. The briefing of a silent alarm says not to call the worker.

import (
	"context"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// NoticeBriefing is the kind of the escalation contacts' briefing.
const NoticeBriefing = "contact_briefing"

// briefingKey is the idempotency key of alarm alarmID's briefing to email.
func briefingKey(alarmID, email string) string {
	return "alarm/" + alarmID + "/briefing/" + strings.ToLower(email)
}

// SendBriefing enqueues, as operator and under command ID cmdID (one per
// press: a retry reuses it), the briefing of alarm alarmID to its
// escalation contacts (AlarmContacts) that have an email address, each
// once. It returns the messages' IDs; a contact briefed already is not
// briefed again. An alarm whose contacts have no address is refused,
// naming alarm_id.
func (s *Service) SendBriefing(ctx context.Context, cmdID, operator, alarmID string) (*EnqueueResult, error) {
	if strings.TrimSpace(operator) == "" {
		return nil, invalid("actor", "who sends the briefing is missing")
	}
	var msgs []OutboxMessage
	err := s.view(func(txn *badger.Txn) error {
		a, err := getAlarm(txn, alarmID)
		if err != nil {
			return err
		}
		contacts, err := AlarmContacts(txn, a)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, c := range contacts {
			e := strings.ToLower(c.Email)
			if e == "" || seen[e] {
				continue
			}
			seen[e] = true
			n, err := alarmNotification(txn, a, NoticeBriefing, briefingKey(a.ID, c.Email), 0, Recipients{Emails: []string{c.Email}})
			if err != nil {
				return err
			}
			if n == nil { // an alarm of no organisation
				continue
			}
			n.Text = "Dear " + c.Name + ",\n\nan operator of the alarm receiving centre briefs you on this alarm.\n\n" + n.Text
			msgs = append(msgs, n.messages()...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case len(msgs) == 0:
		return nil, invalid("alarm_id", "no escalation contact of alarm %s has an email address: add one on the worker's or the organisation's page", alarmID)
	case len(msgs) > MaxOutboxRecipients:
		msgs = msgs[:MaxOutboxRecipients]
	}
	for i := range msgs {
		if err := validOutboxMessage(i, &msgs[i]); err != nil {
			return nil, err
		}
	}
	cmd := outboxEnqueueCmd{Header: s.header(operator), Messages: msgs}
	res, err := s.propose(ctx, cmdID, CmdOutboxEnqueue, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[EnqueueResult](res.Response)
}
