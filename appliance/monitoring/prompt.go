package monitoring

// Prompts: an operator asks the worker something through the device ("tap
// twice if you need help", "call us back", a short message), and the
// device answers. The gateway node holding the device's connection sends
// the prompt on EventDevicePrompt (broker/downlink.go).
//
// A prompt shows on the device, where an onlooker may see it. While the
// worker has an open silent alarm (duress, discreet panic) a prompt is
// refused unless the operator overrides that knowingly; the override is
// written on the silent alarm's timeline and in the audit log.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// PromptKind is what a prompt asks of the worker.
type PromptKind string

// Prompt kinds.
const (
	// PromptTapTwice: "tap twice if you need help". The worker answers
	// without speaking; AnswerTapped means they need help.
	PromptTapTwice PromptKind = "tap_twice"
	// PromptCallBack: "call the monitoring centre".
	PromptCallBack PromptKind = "call_back"
	// PromptMessage: a short text to show; Text is required.
	PromptMessage PromptKind = "message"
)

// PromptKinds lists every prompt kind.
var PromptKinds = []PromptKind{PromptTapTwice, PromptCallBack, PromptMessage}

// PromptAnswer is how the worker answered a prompt.
type PromptAnswer string

// Prompt answers.
const (
	AnswerAcknowledged PromptAnswer = "acknowledged" // seen (any kind)
	AnswerTapped       PromptAnswer = "tapped"       // tapped twice (tap_twice only): needs help
	AnswerDeclined     PromptAnswer = "declined"     // dismissed (any kind)
)

// PromptAnswers lists every answer.
var PromptAnswers = []PromptAnswer{AnswerAcknowledged, AnswerTapped, AnswerDeclined}

// Timeline entry kinds written by prompts. They are not LoggableActions:
// only the prompt commands write them.
const (
	ActionPrompt       ActionKind = "prompt"        // Reference: the prompt ID; Text: kind and text
	ActionPromptAnswer ActionKind = "prompt_answer" // Reference: the prompt ID; Outcome: the answer
)

// Limits of prompts.
const (
	// MaxPromptText is the longest prompt text: it must fit a device's
	// screen.
	MaxPromptText = 500
	// DefaultPromptTTL is how long a prompt may be answered when the
	// operator gives no time.
	DefaultPromptTTL = 5 * time.Minute
	// MaxPromptTTL is the longest a prompt may be answered.
	MaxPromptTTL = time.Hour
)

// DevicePrompt is a prompt sent to a device, and its answer once given.
type DevicePrompt struct {
	ID        string     `json:"id"`
	DeviceID  string     `json:"device_id"`
	WorkerID  string     `json:"worker_id,omitempty"` // the device's worker when it was sent
	AlarmID   string     `json:"alarm_id,omitempty"`  // the alarm it is about, if any
	Kind      PromptKind `json:"kind"`
	Text      string     `json:"text,omitempty"`
	SentBy    string     `json:"sent_by"`
	SentAt    time.Time  `json:"sent_at"`
	ExpiresAt time.Time  `json:"expires_at"` // an answer at or after this is refused
	// SilentAlarmID is the open silent alarm of the worker that the operator
	// overrode to send the prompt.
	SilentAlarmID    string       `json:"silent_alarm_id,omitempty"`
	Answer           PromptAnswer `json:"answer,omitempty"`
	AnsweredAt       time.Time    `json:"answered_at,omitzero"`        // Vigil's time
	AnswerDeviceTime time.Time    `json:"answer_device_time,omitzero"` // the device's clock
	// RaisedAlarmID is the discreet panic alarm raised by a "tapped" answer
	// to a prompt that had no open alarm.
	RaisedAlarmID string `json:"raised_alarm_id,omitempty"`
}

// devicePromptCmd records a prompt an operator sends to a device.
type devicePromptCmd struct {
	Header
	PromptID  string     `json:"prompt_id"` // made by the proposer
	DeviceID  string     `json:"device_id"`
	AlarmID   string     `json:"alarm_id,omitempty"`
	Kind      PromptKind `json:"kind"`
	Text      string     `json:"text,omitempty"`
	ExpiresAt time.Time  `json:"expires_at"`
	// OverrideSilent sends the prompt even though the worker has an open
	// silent alarm.
	OverrideSilent bool `json:"override_silent,omitempty"`
}

// promptAnswerCmd records a device's answer to a prompt.
type promptAnswerCmd struct {
	Header
	PromptID   string       `json:"prompt_id"`
	DeviceID   string       `json:"device_id"`
	Answer     PromptAnswer `json:"answer"`
	DeviceTime time.Time    `json:"device_time,omitzero"`
	// AlarmID is the ID of the discreet panic alarm a "tapped" answer raises
	// when the prompt has no open alarm; made by the proposer whatever the
	// answer.
	AlarmID string `json:"alarm_id"`
}

// checkPromptFields checks what a prompt command says about itself.
func checkPromptFields(kind PromptKind, text string) error {
	if !slices.Contains(PromptKinds, kind) {
		if kind == "" {
			return invalid("kind", "a prompt needs a kind: one of %v", PromptKinds)
		}
		return invalid("kind", "%q is not one of %v", kind, PromptKinds)
	}
	switch {
	case len(text) > MaxPromptText:
		return invalid("text", "is %d bytes, longer than %d", len(text), MaxPromptText)
	case kind == PromptMessage && strings.TrimSpace(text) == "":
		return invalid("text", "a %s prompt needs its text", kind)
	}
	return nil
}

// checkAnswer checks an answer against the prompt's kind.
func checkAnswer(kind PromptKind, a PromptAnswer) error {
	switch {
	case a == "":
		return invalid("answer", "an answer is required: one of %v", PromptAnswers)
	case !slices.Contains(PromptAnswers, a):
		return invalid("answer", "%q is not one of %v", a, PromptAnswers)
	case a == AnswerTapped && kind != PromptTapTwice:
		return invalid("answer", "%q answers only a %s prompt, not %s", a, PromptTapTwice, kind)
	}
	return nil
}

// openAlarmsOf returns the open alarms of a device or of its worker, in
// the order of the open queue (the same on every replica).
func openAlarmsOf(txn *badger.Txn, deviceID, workerID string) ([]*Alarm, error) {
	var out []*Alarm
	err := scanPrefix(txn, pOpen, false, func(key, _ []byte) (bool, error) {
		a, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, fmt.Errorf("index %s: %w", key, err)
		}
		if (deviceID != "" && a.DeviceID == deviceID) || (workerID != "" && a.WorkerID == workerID) {
			out = append(out, a)
		}
		return true, nil
	})
	return out, err
}

// noteOnAlarm adds te to a's timeline, saves a and emits EventAlarmUpdated.
func noteOnAlarm(c *applyCtx, a *Alarm, te TimelineEntry) error {
	entry, err := c.addTimeline(a, te)
	if err != nil {
		return err
	}
	if err := putJSON(c.txn, pAlarm+a.ID, a); err != nil {
		return err
	}
	ev := *a
	c.emit(Event{Type: EventAlarmUpdated, Alarm: &ev, Entry: entry})
	return nil
}

func getPrompt(txn *badger.Txn, id string) (*DevicePrompt, error) {
	return getRecord[DevicePrompt](txn, pPrompt, "prompt", id)
}

// checkPrompt checks a prompt's IDs (the alarm's is optional), kind and
// text: the Service before proposing, the state machine again on apply.
func checkPrompt(promptID, deviceID, alarmID string, kind PromptKind, text string) error {
	if err := validID("prompt_id", promptID); err != nil {
		return err
	}
	if err := validID("device_id", deviceID); err != nil {
		return err
	}
	if alarmID != "" {
		if err := validID("alarm_id", alarmID); err != nil {
			return err
		}
	}
	return checkPromptFields(kind, text)
}

// applyDevicePrompt records a prompt. Rules: the device exists; the alarm,
// if named, is open and is the device's or its worker's; no open silent
// alarm of the device or its worker, unless OverrideSilent.
func applyDevicePrompt(c *applyCtx, body []byte) ([]byte, error) {
	var cmd devicePromptCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := checkPrompt(cmd.PromptID, cmd.DeviceID, cmd.AlarmID, cmd.Kind, cmd.Text); err != nil {
		return nil, err
	}
	now := c.now()
	switch {
	case !cmd.ExpiresAt.After(now):
		return nil, invalid("expires_at", "%s is not after the prompt's time %s", cmd.ExpiresAt.Format(time.RFC3339), now.Format(time.RFC3339))
	case cmd.ExpiresAt.Sub(now) > MaxPromptTTL:
		return nil, invalid("expires_at", "is more than %s after the prompt's time", MaxPromptTTL)
	}
	if ok, err := exists(c.txn, pPrompt+cmd.PromptID); err != nil || ok {
		if err == nil {
			err = ruleErr(CodeConflict, "prompt_id", "prompt %q exists", cmd.PromptID)
		}
		return nil, err
	}
	d, err := getDevice(c.txn, cmd.DeviceID)
	if err != nil {
		return nil, err
	}
	var linked *Alarm
	if cmd.AlarmID != "" {
		if linked, err = getAlarm(c.txn, cmd.AlarmID); err != nil {
			return nil, err
		}
		switch {
		case linked.Status == StatusClosed:
			return nil, ruleErr(CodeAlarmClosed, "alarm_id", "alarm %s is closed", linked.ID)
		case linked.DeviceID != d.ID && (d.WorkerID == "" || linked.WorkerID != d.WorkerID):
			return nil, ruleErr(CodeConflict, "alarm_id", "alarm %s is not of device %s or its worker", linked.ID, d.ID)
		}
	}
	open, err := openAlarmsOf(c.txn, d.ID, d.WorkerID)
	if err != nil {
		return nil, err
	}
	var silent *Alarm
	for _, a := range open {
		if a.Silent {
			silent = a
			break
		}
	}
	if silent != nil && !cmd.OverrideSilent {
		who := "device " + d.ID
		if d.WorkerID != "" {
			who = "worker " + d.WorkerID
		}
		return nil, ruleErr(CodeConflict, "override_silent",
			"%s has open silent alarm %s (%s): a prompt shows on the device and could expose them; set override_silent to send it anyway",
			who, silent.ID, silent.Type)
	}

	// Every rule has been checked: write.
	p := &DevicePrompt{
		ID: cmd.PromptID, DeviceID: d.ID, WorkerID: d.WorkerID, AlarmID: cmd.AlarmID, Kind: cmd.Kind,
		Text: cmd.Text, SentBy: c.hdr.Actor, SentAt: now, ExpiresAt: cmd.ExpiresAt,
	}
	detail := fmt.Sprintf("%s to device %s", p.Kind, p.DeviceID)
	if silent != nil {
		p.SilentAlarmID = silent.ID
		detail += fmt.Sprintf(", overriding open silent alarm %s (%s)", silent.ID, silent.Type)
	}
	if err := putJSON(c.txn, pPrompt+p.ID, p); err != nil {
		return nil, err
	}
	if linked != nil {
		te := TimelineEntry{Kind: ActionPrompt, Reference: p.ID, Text: promptLine(p)}
		if silent != nil && silent.ID == linked.ID {
			te.Text += " (sent despite this silent alarm: override)"
		}
		if err := noteOnAlarm(c, linked, te); err != nil {
			return nil, err
		}
	}
	if silent != nil && (linked == nil || silent.ID != linked.ID) {
		te := TimelineEntry{Kind: ActionPrompt, Reference: p.ID,
			Text: promptLine(p) + " (sent despite this silent alarm: override)"}
		if err := noteOnAlarm(c, silent, te); err != nil {
			return nil, err
		}
	}
	if err := c.audit(CmdDevicePrompt, "prompt/"+p.ID, detail); err != nil {
		return nil, err
	}
	ev := *p
	c.emit(Event{Type: EventDevicePrompt, Prompt: &ev})
	return json.Marshal(p)
}

// promptLine describes a prompt on a timeline.
func promptLine(p *DevicePrompt) string {
	if p.Text == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + ": " + p.Text
}

// applyPromptAnswer records a device's answer. Rules: the prompt exists,
// was sent to this device, is not answered and has not expired, and the
// answer fits its kind. A "tapped" answer to a prompt without an open alarm
// raises a discreet panic alarm (silent: nothing shows on the device).
func applyPromptAnswer(c *applyCtx, body []byte) ([]byte, error) {
	var cmd promptAnswerCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if err := validID("prompt_id", cmd.PromptID); err != nil {
		return nil, err
	}
	if err := validID("device_id", cmd.DeviceID); err != nil {
		return nil, err
	}
	p, err := getPrompt(c.txn, cmd.PromptID)
	if err != nil {
		return nil, err
	}
	now := c.now()
	switch {
	case p.DeviceID != cmd.DeviceID:
		return nil, ruleErr(CodeConflict, "prompt_id", "prompt %q was sent to another device, not to %s", p.ID, cmd.DeviceID)
	case p.Answer != "":
		return nil, ruleErr(CodeConflict, "prompt_id", "prompt %q was already answered %q at %s", p.ID, p.Answer, p.AnsweredAt.Format(time.RFC3339))
	case !now.Before(p.ExpiresAt):
		return nil, ruleErr(CodeConflict, "prompt_id", "prompt %q expired at %s", p.ID, p.ExpiresAt.Format(time.RFC3339))
	}
	if err := checkAnswer(p.Kind, cmd.Answer); err != nil {
		return nil, err
	}
	var a *Alarm
	if p.AlarmID != "" {
		if a, err = getAlarm(c.txn, p.AlarmID); err != nil {
			return nil, err
		}
	}
	var raised *Alarm
	if cmd.Answer == AnswerTapped && (a == nil || a.Status == StatusClosed) {
		if err := validID("alarm_id", cmd.AlarmID); err != nil {
			return nil, err
		}
		// First, so that a refusal by raiseAlarm leaves nothing written.
		r := RaiseAlarmCmd{Header: c.hdr, AlarmID: cmd.AlarmID, Type: AlarmDiscreetPanic,
			DeviceID: p.DeviceID, DeviceTime: cmd.DeviceTime}
		if raised, err = raiseAlarm(c, r); err != nil {
			return nil, err
		}
		p.RaisedAlarmID = raised.ID
	}
	p.Answer, p.AnsweredAt, p.AnswerDeviceTime = cmd.Answer, now, cmd.DeviceTime
	if err := putJSON(c.txn, pPrompt+p.ID, p); err != nil {
		return nil, err
	}
	te := TimelineEntry{Kind: ActionPromptAnswer, Reference: p.ID, Outcome: string(cmd.Answer), Text: promptLine(p)}
	for _, al := range []*Alarm{a, raised} {
		if al == nil {
			continue
		}
		if err := noteOnAlarm(c, al, te); err != nil {
			return nil, err
		}
	}
	detail := string(cmd.Answer)
	if raised != nil {
		detail += ": discreet panic alarm " + raised.ID + " raised"
	}
	if err := c.audit(CmdPromptAnswer, "prompt/"+p.ID, detail); err != nil {
		return nil, err
	}
	ev := *p
	c.emit(Event{Type: EventPromptAnswered, Prompt: &ev})
	return json.Marshal(p)
}

// PromptRequest is a prompt an operator sends to a device.
type PromptRequest struct {
	PromptID string // optional; the Service makes one when empty
	DeviceID string
	AlarmID  string // optional: the alarm the prompt is about
	Kind     PromptKind
	Text     string        // required for PromptMessage
	TTL      time.Duration // how long it may be answered; 0 means DefaultPromptTTL
	// OverrideSilent sends the prompt even though the worker has an open
	// silent alarm (duress, discreet panic). It is recorded.
	OverrideSilent bool
}

// SendPrompt records a prompt for a device; the node holding the device's
// connection sends it on down/prompt. It is refused with CodeConflict on
// field override_silent while the device or its worker has an open silent
// alarm, unless req.OverrideSilent is set.
func (s *Service) SendPrompt(ctx context.Context, cmdID, actor string, req PromptRequest) (*DevicePrompt, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who sends the prompt is missing")
	}
	if req.PromptID == "" {
		req.PromptID = s.NewID()
	}
	if err := checkPrompt(req.PromptID, req.DeviceID, req.AlarmID, req.Kind, req.Text); err != nil {
		return nil, err
	}
	switch {
	case req.TTL < 0 || req.TTL > MaxPromptTTL:
		return nil, invalid("ttl", "%s is outside (0, %s]", req.TTL, MaxPromptTTL)
	case req.TTL == 0:
		req.TTL = DefaultPromptTTL
	}
	h := s.header(actor)
	cmd := devicePromptCmd{Header: h, PromptID: req.PromptID, DeviceID: req.DeviceID, AlarmID: req.AlarmID,
		Kind: req.Kind, Text: req.Text, ExpiresAt: h.At.Add(req.TTL), OverrideSilent: req.OverrideSilent}
	return s.proposePrompt(ctx, cmdID, CmdDevicePrompt, cmd)
}

// PromptAnswerRequest is a device's answer to a prompt.
type PromptAnswerRequest struct {
	PromptID   string
	DeviceID   string // the device answering
	Answer     PromptAnswer
	DeviceTime time.Time // the device's clock
}

// AnswerPrompt records a device's answer to a prompt it was sent. An
// unknown prompt is refused with CodeNotFound; another device's, an
// answered or an expired prompt with CodeConflict, each naming which.
func (s *Service) AnswerPrompt(ctx context.Context, cmdID, actor string, req PromptAnswerRequest) (*DevicePrompt, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who answers is missing")
	}
	if err := validID("prompt_id", req.PromptID); err != nil {
		return nil, err
	}
	if err := validID("device_id", req.DeviceID); err != nil {
		return nil, err
	}
	if d := deviceOfActor(actor); d != "" && d != req.DeviceID {
		return nil, invalid("device_id", "device %s cannot answer for device %s", d, req.DeviceID)
	}
	if !slices.Contains(PromptAnswers, req.Answer) {
		return nil, checkAnswer("", req.Answer)
	}
	cmd := promptAnswerCmd{Header: s.header(actor), PromptID: req.PromptID, DeviceID: req.DeviceID,
		Answer: req.Answer, DeviceTime: req.DeviceTime,
		AlarmID: s.NewID(), // always made, so the command looks the same whatever the answer
	}
	return s.proposePrompt(ctx, cmdID, CmdPromptAnswer, cmd)
}

// Prompt returns one prompt from this node's state.
func (s *Service) Prompt(id string) (*DevicePrompt, error) {
	var p *DevicePrompt
	err := s.view(func(txn *badger.Txn) (err error) {
		p, err = getPrompt(txn, id)
		return err
	})
	return p, err
}

func (s *Service) proposePrompt(ctx context.Context, cmdID string, t CmdType, body any) (*DevicePrompt, error) {
	res, err := s.propose(ctx, cmdID, t, body)
	if err != nil {
		return nil, err
	}
	return decodeResponse[DevicePrompt](res.Response)
}
