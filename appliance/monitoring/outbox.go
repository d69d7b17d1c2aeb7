package monitoring

// The outbox: notifications to send outside Vigil (mail through the
// installation's SMTP relay, webhooks), replicated like every other record so
// that losing the node that was sending one loses nothing.
//
// A notification is an OutboxMessage, one per recipient and channel, made by
// CmdOutboxEnqueue: either in the same Raft entry as the command that causes
// it (the close of a genuine alarm, under CloseAlarmCmd's RulesNotify), or by
// the leader as a follow-up (the duress and escalation notices, from a scan
// of the alarms in the state: outboxtrigger.go; another part's message
// through Service.EnqueueNotification). Its ID is derived from the caller's
// idempotency key, the channel and the recipient, so a second enqueue of the
// same message changes nothing. Only the leader delivers (the notify
// package); each attempt's outcome is recorded by CmdOutboxOutcome: sent,
// failed (with the reason and the time of the next attempt, which the leader
// chooses with its back-off), or gave up. A new leader delivers what is due
// in the state. A message may be sent twice (the leader dies after sending,
// before the outcome is committed): the ID goes in the mail's Message-ID and
// the webhook's Idempotency-Key so that the receiver drops the second.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Notification channels.
const (
	ChannelSMTP    = "smtp"    // mail through the installation's relay; To is an address
	ChannelWebhook = "webhook" // a JSON POST; To names a webhook of the node configuration
)

// Notification kinds made by the state machine. Other parts may enqueue
// kinds of their own (lower-case letters, digits and underscores).
const (
	NoticeAlarmClosed = "alarm_closed"   // a genuine alarm closed: the summary
	NoticeDuress      = "duress_raised"  // a duress or discreet alarm raised: its managers, at once
	NoticeEscalation  = "ack_escalation" // an alarm not acknowledged within a target: its supervisors
)

// Outbox states.
const (
	OutboxDue    = "due"     // not tried yet
	OutboxFailed = "failed"  // tried and failed; tried again at NextAt
	OutboxSent   = "sent"    // the receiver took it
	OutboxGaveUp = "gave_up" // failed until the leader gave up
)

// Limits of an outbox message.
const (
	// MaxOutboxMessage bounds a message's subject, texts, payload and
	// attachments together: it is replicated and kept.
	MaxOutboxMessage = 256 << 10
	// MaxOutboxRecipients bounds the recipients of one enqueue.
	MaxOutboxRecipients = 50
	// MaxOutboxFailures is how many of the latest failures a message keeps.
	MaxOutboxFailures = 10
	// MaxOutboxError bounds a failure's recorded reason.
	MaxOutboxError = 500
)

// Attachment is a file sent with a mail (a webhook carries none).
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"data"` // base64 in JSON
}

// OutboxFailure is one failed attempt.
type OutboxFailure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
	Node  string    `json:"node,omitempty"` // the leader that tried
}

// OutboxMessage is one notification to one recipient over one channel, and
// its delivery state.
type OutboxMessage struct {
	// ID is the message's idempotency key as receivers see it (Message-ID,
	// Idempotency-Key): derived from Key, Channel and To.
	ID string `json:"id"`
	// Key is the enqueuer's idempotency key, the same for every recipient
	// of one notification.
	Key     string `json:"key"`
	Kind    string `json:"kind"`
	Channel string `json:"channel"`
	To      string `json:"to"` // a mail address, or a webhook's name
	OrgID   string `json:"org_id,omitempty"`
	AlarmID string `json:"alarm_id,omitempty"`
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Payload is the webhook's "data" object (docs/notifications.md).
	Payload json.RawMessage `json:"payload,omitempty"`
	// Link is the console path of what the message is about, such as
	// /alarms/<id>; the sender puts it after the node's public URL.
	Link string `json:"link,omitempty"`
	// AudioAlarmID asks the sender for a link to the audio of this alarm,
	// when it has a way to make one (notify.Hooks.AudioLink).
	AudioAlarmID string       `json:"audio_alarm_id,omitempty"`
	Attachments  []Attachment `json:"attachments,omitempty"`

	State         string          `json:"state"`
	CreatedAt     time.Time       `json:"created_at"`
	Attempts      int             `json:"attempts"`
	LastError     string          `json:"last_error,omitempty"`
	LastAttemptAt time.Time       `json:"last_attempt_at,omitzero"`
	NextAt        time.Time       `json:"next_at,omitzero"` // while due or failed
	SentAt        time.Time       `json:"sent_at,omitzero"`
	GaveUpAt      time.Time       `json:"gave_up_at,omitzero"`
	Failures      []OutboxFailure `json:"failures,omitempty"` // the latest MaxOutboxFailures
}

// Pending reports whether the message is still to be delivered.
func (m *OutboxMessage) Pending() bool { return m.State == OutboxDue || m.State == OutboxFailed }

// OutboxID is the ID of the message with idempotency key key to one
// recipient over one channel: 32 hex digits of a SHA-256.
func OutboxID(key, channel, to string) string {
	h := sha256.Sum256([]byte(key + "\x00" + channel + "\x00" + strings.ToLower(to)))
	return hex.EncodeToString(h[:16])
}

// Outbox key prefixes (keys.go).
const (
	pOutbox      = "outbox/"          // outbox/<id> -> OutboxMessage
	pOutboxDue   = "ix/outbox-due/"   // ix/outbox-due/<next at>/<id>: pending, by next attempt
	pOutboxAlarm = "ix/outbox-alarm/" // ix/outbox-alarm/<alarm id>/<id>
	pOutboxOrg   = "ix/outbox-org/"   // ix/outbox-org/<org id>/<created>/<id>
)

func outboxDueKey(m *OutboxMessage) []byte {
	return []byte(pOutboxDue + tkey(m.NextAt) + "/" + m.ID)
}

// outboxEnqueueCmd adds messages to the outbox; a message whose ID is
// there already is left as it is.
type outboxEnqueueCmd struct {
	Header
	Messages []OutboxMessage `json:"messages"` // the what and whom; ID and state are filled in
}

// outboxOutcomeCmd records the outcome of one delivery attempt.
type outboxOutcomeCmd struct {
	Header
	ID string `json:"id"`
	// Attempt is the attempt's number: the message's Attempts + 1. An
	// outcome of an attempt already recorded is refused.
	Attempt int    `json:"attempt"`
	Sent    bool   `json:"sent"`
	Error   string `json:"error,omitempty"`
	// NextAt is when to try again after a failure; GiveUp instead ends
	// the message's attempts.
	NextAt time.Time `json:"next_at,omitzero"`
	GiveUp bool      `json:"give_up,omitempty"`
}

// EnqueueResult is the reply to an enqueue: the messages' IDs in order, and
// how many were new.
type EnqueueResult struct {
	IDs []string `json:"ids"`
	New int      `json:"new"`
}

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// validOutboxMessage checks what an enqueuer gives, field i of the command.
func validOutboxMessage(i int, m *OutboxMessage) error {
	f := func(name string) string { return fmt.Sprintf("messages[%d].%s", i, name) }
	switch {
	case strings.TrimSpace(m.Key) == "" || len(m.Key) > 200:
		return invalid(f("key"), "an idempotency key of 1 to 200 bytes is required")
	case !kindRE.MatchString(m.Kind):
		return invalid(f("kind"), "%q is not a kind: lower-case letters, digits and _, up to 40", m.Kind)
	case strings.TrimSpace(m.Subject) == "" || len(m.Subject) > maxSubject || strings.ContainsAny(m.Subject, "\r\n"):
		return invalid(f("subject"), "a subject of one line, up to %d bytes, is required", maxSubject)
	case len(m.Link) > 500 || (m.Link != "" && !strings.HasPrefix(m.Link, "/")):
		return invalid(f("link"), "must be a console path beginning with /")
	}
	switch m.Channel {
	case ChannelSMTP:
		if err := validMailAddress(f("to"), m.To); err != nil {
			return err
		}
		if m.Text == "" && m.HTML == "" {
			return invalid(f("text"), "a mail needs a text or an HTML body")
		}
	case ChannelWebhook:
		if err := validWebhookName(f("to"), m.To); err != nil {
			return err
		}
		if len(m.Attachments) > 0 {
			return invalid(f("attachments"), "a webhook carries no attachments")
		}
	default:
		return invalid(f("channel"), "%q is not a channel: use %s or %s", m.Channel, ChannelSMTP, ChannelWebhook)
	}
	if len(m.Payload) > 0 && (!json.Valid(m.Payload) || m.Payload[0] != '{') {
		return invalid(f("payload"), "must be a JSON object")
	}
	size := len(m.Subject) + len(m.Text) + len(m.HTML) + len(m.Payload)
	for j, a := range m.Attachments {
		if a.Name == "" || len(a.Name) > 200 || strings.ContainsAny(a.Name, "/\\\r\n\"") {
			return invalid(f(fmt.Sprintf("attachments[%d].name", j)), "a plain file name of up to 200 bytes is required")
		}
		if a.ContentType == "" || !strings.Contains(a.ContentType, "/") {
			return invalid(f(fmt.Sprintf("attachments[%d].content_type", j)), "a media type such as application/pdf is required")
		}
		size += len(a.Data)
	}
	if size > MaxOutboxMessage {
		return invalid(f("text"), "the message is %d bytes, over the %d an outbox message may hold", size, MaxOutboxMessage)
	}
	return nil
}

// validMailAddress checks a bare mail address (no display name).
func validMailAddress(field, s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || len(s) > 254 {
		return invalid(field, "%q is not a mail address such as duty.manager@example.org", s)
	}
	return nil
}

var webhookNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

// validWebhookName checks the name of a webhook of the node configuration.
func validWebhookName(field, s string) error {
	if !webhookNameRE.MatchString(s) {
		return invalid(field, "%q is not a webhook name: lower-case letters, digits, - and _, up to 40", s)
	}
	return nil
}

func applyOutboxEnqueue(c *applyCtx, body []byte) ([]byte, error) {
	var cmd outboxEnqueueCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	switch {
	case len(cmd.Messages) == 0:
		return nil, invalid("messages", "nothing to enqueue")
	case len(cmd.Messages) > MaxOutboxRecipients:
		return nil, invalid("messages", "%d messages, over the %d of one enqueue", len(cmd.Messages), MaxOutboxRecipients)
	}
	for i := range cmd.Messages {
		m := &cmd.Messages[i]
		if err := validOutboxMessage(i, m); err != nil {
			return nil, err
		}
		if m.OrgID != "" {
			if ok, err := exists(c.txn, pOrg+m.OrgID); err != nil || !ok {
				if err != nil {
					return nil, err
				}
				return nil, ruleErr(CodeNotFound, fmt.Sprintf("messages[%d].org_id", i), "no organisation %q", m.OrgID)
			}
		}
		if m.AlarmID != "" {
			if ok, err := exists(c.txn, pAlarm+m.AlarmID); err != nil || !ok {
				if err != nil {
					return nil, err
				}
				return nil, ruleErr(CodeNotFound, fmt.Sprintf("messages[%d].alarm_id", i), "no alarm %q", m.AlarmID)
			}
		}
	}
	// Every rule has been checked: write.
	res, err := enqueueOutbox(c, cmd.Messages)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// enqueueOutbox writes the messages that are not in the outbox yet, due at
// once. The caller has checked them.
func enqueueOutbox(c *applyCtx, msgs []OutboxMessage) (*EnqueueResult, error) {
	res := &EnqueueResult{IDs: []string{}}
	for _, in := range msgs {
		m := OutboxMessage{
			Key: in.Key, Kind: in.Kind, Channel: in.Channel, To: in.To, OrgID: in.OrgID, AlarmID: in.AlarmID,
			Subject: in.Subject, Text: in.Text, HTML: in.HTML, Payload: in.Payload, Link: in.Link,
			AudioAlarmID: in.AudioAlarmID, Attachments: in.Attachments,
		}
		m.ID = OutboxID(m.Key, m.Channel, m.To)
		res.IDs = append(res.IDs, m.ID)
		found, err := exists(c.txn, pOutbox+m.ID)
		if err != nil {
			return nil, err
		}
		if found {
			continue // idempotent: the first enqueue stands
		}
		m.State, m.CreatedAt, m.NextAt = OutboxDue, c.now(), c.now()
		if err := putJSON(c.txn, pOutbox+m.ID, &m); err != nil {
			return nil, err
		}
		if err := setIndex(c.txn, outboxDueKey(&m)); err != nil {
			return nil, err
		}
		if m.AlarmID != "" {
			if err := setIndex(c.txn, []byte(pOutboxAlarm+m.AlarmID+"/"+m.ID)); err != nil {
				return nil, err
			}
		}
		if m.OrgID != "" {
			if err := setIndex(c.txn, []byte(pOutboxOrg+m.OrgID+"/"+tkey(m.CreatedAt)+"/"+m.ID)); err != nil {
				return nil, err
			}
		}
		subject := "outbox/" + m.ID
		if err := c.audit(CmdOutboxEnqueue, subject, fmt.Sprintf("%s by %s to %s", m.Kind, m.Channel, m.To)); err != nil {
			return nil, err
		}
		c.emit(Event{Type: EventOutbox, Outbox: publicOutbox(&m)})
		res.New++
	}
	return res, nil
}

func applyOutboxOutcome(c *applyCtx, body []byte) ([]byte, error) {
	var cmd outboxOutcomeCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	var m OutboxMessage
	found, err := getJSON(c.txn, pOutbox+cmd.ID, &m)
	if err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(cmd.Error)
	switch {
	case !found:
		return nil, ruleErr(CodeNotFound, "id", "no outbox message %q", cmd.ID)
	case !m.Pending():
		return nil, ruleErr(CodeConflict, "id", "outbox message %s is %s already", m.ID, m.State)
	case cmd.Attempt != m.Attempts+1:
		return nil, ruleErr(CodeConflict, "attempt", "attempt %d of message %s is recorded already (next: %d)", cmd.Attempt, m.ID, m.Attempts+1)
	case cmd.Sent && (reason != "" || cmd.GiveUp):
		return nil, invalid("error", "a sent message has no error and is not given up")
	case !cmd.Sent && reason == "":
		return nil, invalid("error", "a failed attempt needs its reason")
	case !cmd.Sent && !cmd.GiveUp && !cmd.NextAt.After(cmd.At):
		return nil, invalid("next_at", "a failed attempt needs the time of the next one, after the attempt")
	}
	// Every rule has been checked: write.
	if err := c.txn.Delete(outboxDueKey(&m)); err != nil {
		return nil, err
	}
	m.Attempts, m.LastAttemptAt = cmd.Attempt, c.now()
	detail := ""
	switch {
	case cmd.Sent:
		m.State, m.SentAt, m.NextAt = OutboxSent, c.now(), time.Time{}
	default:
		if len(reason) > MaxOutboxError {
			reason = reason[:MaxOutboxError]
		}
		m.LastError = reason
		m.Failures = append(m.Failures, OutboxFailure{At: c.now(), Error: reason, Node: c.hdr.Node})
		if n := len(m.Failures); n > MaxOutboxFailures {
			m.Failures = append([]OutboxFailure(nil), m.Failures[n-MaxOutboxFailures:]...)
		}
		if cmd.GiveUp {
			m.State, m.GaveUpAt, m.NextAt = OutboxGaveUp, c.now(), time.Time{}
			detail = fmt.Sprintf("gave up after %d attempts: %s", m.Attempts, reason)
		} else {
			m.State, m.NextAt = OutboxFailed, cmd.NextAt
			if err := setIndex(c.txn, outboxDueKey(&m)); err != nil {
				return nil, err
			}
		}
	}
	if err := putJSON(c.txn, pOutbox+m.ID, &m); err != nil {
		return nil, err
	}
	if detail != "" {
		if err := c.audit(CmdOutboxOutcome, "outbox/"+m.ID, detail); err != nil {
			return nil, err
		}
	}
	c.emit(Event{Type: EventOutbox, Outbox: publicOutbox(&m)})
	return json.Marshal(publicOutbox(&m))
}

// publicOutbox returns m without its attachments' data, for events, lists
// and replies.
func publicOutbox(m *OutboxMessage) *OutboxMessage {
	p := *m
	if len(p.Attachments) > 0 {
		p.Attachments = make([]Attachment, len(m.Attachments))
		for i, a := range m.Attachments {
			p.Attachments[i] = Attachment{Name: a.Name, ContentType: a.ContentType}
		}
	}
	return &p
}

// outboxOf reads the messages whose IDs are the last segment of the keys
// under prefix, in key order.
func outboxOf(txn *badger.Txn, prefix string) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := scanPrefix(txn, prefix, false, func(key, _ []byte) (bool, error) {
		var m OutboxMessage
		found, err := getJSON(txn, pOutbox+lastSegment(key), &m)
		if err != nil {
			return false, err
		}
		if found {
			out = append(out, *publicOutbox(&m))
		}
		return true, nil
	})
	return out, err
}
