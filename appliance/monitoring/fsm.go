package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// FSM is Vigil's state machine. The cluster calls Apply with every committed
// command in log order; FSM keeps no state outside Badger except the events
// of the transaction in progress, which it publishes once the transaction
// commits.
type FSM struct {
	bus     *Bus
	pending []Event // events of the current state transaction
}

var (
	_ cluster.StateMachine = (*FSM)(nil)
	_ cluster.TxnObserver  = (*FSM)(nil)
)

// NewFSM returns the state machine.
func NewFSM() *FSM { return &FSM{bus: NewBus()} }

// Bus returns the bus on which the FSM publishes its events.
func (f *FSM) Bus() *Bus { return f.bus }

// handler applies one command type. It must check every rule before its
// first write: a refusal must leave txn untouched.
type handler func(c *applyCtx, body []byte) ([]byte, error)

// handlers maps each command type to its handler. Filled in init, because
// the handlers live in the files of their concerns.
var handlers map[CmdType]handler

func init() {
	handlers = map[CmdType]handler{
		CmdPutOrganisation:     applyPutOrganisation,
		CmdPutWorker:           applyPutWorker,
		CmdSetPINs:             applySetPINs,
		CmdPutDevice:           applyPutDevice,
		CmdDeviceStatus:        applyDeviceStatus,
		CmdStartSession:        applyStartSession,
		CmdSessionAction:       applySessionAction,
		CmdFireDeadline:        applyFireDeadline,
		CmdRaiseAlarm:          applyRaiseAlarm,
		CmdAcknowledge:         applyAcknowledge,
		CmdLogAction:           applyLogAction,
		CmdCloseAlarm:          applyCloseAlarm,
		CmdCloseAlarmConfirmed: applyCloseAlarmConfirmed,
		CmdListenRequest:       applyListenRequest,
		CmdReopenAlarm:         applyReopenAlarm,
		CmdCancelAlarm:         applyCancelAlarm,
		CmdResetAlarm:          applyResetAlarm,
		CmdSetDeviceSecret:     applySetDeviceSecret,
		CmdDevicePrompt:        applyDevicePrompt,
		CmdPromptAnswer:        applyPromptAnswer,
		CmdPostUpdate:          applyPostUpdate,
		CmdAudioChunk:          applyAudioChunk,
		CmdNodeDown:            applyNodeDown,
		CmdPutOperator:         applyPutOperator,
		CmdOperatorLogin:       applyOperatorLogin,
		CmdOperatorSignIn:      applyOperatorSignIn,
		CmdOperatorLogout:      applyOperatorLogout,
		CmdIssueResumeTicket:   applyIssueResumeTicket,
		CmdRedeemResumeTicket:  applyRedeemResumeTicket,
		CmdEndSessionFamily:    applyEndSessionFamily,
		CmdPutConsoleNode:      applyPutConsoleNode,
		CmdUseJoinToken:        applyUseJoinToken,
		CmdCreateAPIToken:      applyCreateAPIToken,
		CmdDisableAPIToken:     applyDisableAPIToken,
		CmdDeviceFlooding:      applyDeviceFlooding,
		CmdOutboxEnqueue:       applyOutboxEnqueue,
		CmdOutboxOutcome:       applyOutboxOutcome,
		CmdCreateLinkKey:       applyCreateLinkKey,
		CmdIssueAudioLink:      applyIssueAudioLink,
		CmdRevokeAudioLink:     applyRevokeAudioLink,
		CmdAudioLinkDownload:   applyAudioLinkDownload,
		CmdReportAction:        applyReportAction,
		CmdPurge:               applyPurge,
		CmdLegalHold:           applyLegalHold,
	}
}

// rulesKnown is the newest rules version of each command type that has
// them (the Rules field of its body): what this build's Service sets. A
// command under a newer version comes from a newer node, during a rolling
// upgrade; applying it under older rules would let this node diverge
// without a word, so Apply stops the node instead (docs/install.md,
// "Upgrading"). TestFSM_RulesKnownAreTheServicesNewest keeps the table
// equal to what the Service proposes.
var rulesKnown = map[CmdType]int{
	CmdSessionAction: RulesSessionAudioRef,
	CmdAudioChunk:    RulesAudioChunkRef,
	CmdAcknowledge:   RulesContactReminder,
	CmdLogAction:     RulesContactOutcome,
	CmdCloseAlarm:    RulesNotify,
	// The confirmed close has the close's body (CloseAlarmCmd).
	CmdCloseAlarmConfirmed: RulesNotify,
	CmdDeviceStatus:        RulesLowBattery,
}

// rulesKey is how a body that carries a rules version begins the field.
var rulesKey = []byte(`"rules"`)

// rulesTooNew reports whether body, a command of type t, asks for rules
// newer than this build knows, with the version asked and the newest known.
// Only the types in rulesKnown are checked: a type this build gives no
// versions is applied as before.
func rulesTooNew(t CmdType, body []byte) (asked, known int, newer bool) {
	known, versioned := rulesKnown[t]
	if !versioned || !bytes.Contains(body, rulesKey) {
		return 0, known, false // most commands: no version, so the oldest rules
	}
	var v struct {
		Rules int `json:"rules"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0, 0, false // the handler refuses it as malformed
	}
	return v.Rules, known, v.Rules > known
}

// Apply applies one command inside txn. It is deterministic: it reads and
// writes txn and nothing else, and takes the time from the command. A
// returned error refuses the command, and nothing has been written. An
// unknown command type, a rules version newer than this build knows, or a
// failure to read or write the state, stops the node with a panic: going on would let this node diverge from the others.
func (f *FSM) Apply(txn *badger.Txn, e cluster.Entry) ([]byte, error) {
	t, body, err := decode(e.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	if t == CmdDiagRecord {
		return applyDiagRecord(txn, e.Index, body)
	}
	h, ok := handlers[t]
	if !ok {
		panic(fmt.Sprintf("monitoring: entry %d (command ID %q) has unknown command type %d: "+
			"this node is older than the node that proposed it; upgrade it", e.Index, e.ID, byte(t)))
	}
	if v, known, newer := rulesTooNew(t, body); newer {
		panic(fmt.Sprintf("monitoring: entry %d (command ID %q) is a %s under rules version %d, newer than the %d this node knows: "+
			"this node is older than the node that proposed it; upgrade it", e.Index, e.ID, t, v, known))
	}
	c := &applyCtx{txn: txn, entry: e}
	resp, err := h(c, body)
	if err != nil {
		var re *RuleError
		var fe *FieldError
		switch {
		case errors.Is(err, badger.ErrTxnTooBig):
			return nil, err // the host retries in a smaller transaction
		case errors.As(err, &re), errors.As(err, &fe), errors.Is(err, ErrMalformedCommand):
			return nil, err
		}
		panic(fmt.Sprintf("monitoring: entry %d (%s): cannot apply: %v", e.Index, t, err))
	}
	f.pending = append(f.pending, c.events...)
	return resp, nil
}

// Committed implements cluster.TxnObserver: the events of the transaction
// are now durable in the state, so they go out.
func (f *FSM) Committed() {
	f.bus.publish(f.pending)
	f.pending = nil
}

// Discarded implements cluster.TxnObserver: the transaction will be applied
// again, and will emit its events again.
func (f *FSM) Discarded() { f.pending = nil }

// Loaded implements cluster.StateMachine. FSM keeps nothing in memory, so
// there is nothing to rebuild.
func (f *FSM) Loaded(*badger.Txn) error { return nil }

// applyCtx is what a handler works with: the transaction, the entry, the
// command's header, and the events and records it produces.
type applyCtx struct {
	txn       *badger.Txn
	entry     cluster.Entry
	hdr       Header
	events    []Event
	nAudit    int
	nTimeline int
}

// headed is a command body with a Header.
type headed interface{ header() *Header }

func (h *Header) header() *Header { return h }

// decode decodes a command body into v and checks its header.
func (c *applyCtx) decode(body []byte, v headed) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	h := v.header()
	switch {
	case h.At.IsZero():
		return invalid("at", "the command has no time")
	case h.Actor == "":
		return invalid("actor", "the command has no actor")
	}
	c.hdr = *h
	return nil
}

// now is the time of the command.
func (c *applyCtx) now() time.Time { return c.hdr.At }

// emit queues an event, published once the transaction commits.
func (c *applyCtx) emit(e Event) {
	e.Index = c.entry.Index
	if e.At.IsZero() {
		e.At = c.hdr.At
	}
	e.Node = c.hdr.Node
	c.events = append(c.events, e)
}

// audit appends a record to the audit log.
func (c *applyCtx) audit(command CmdType, subject, detail string) error {
	key := pAudit + ikey(c.entry.Index) + "/" + fmt.Sprintf("%04d", c.nAudit)
	c.nAudit++
	return putJSON(c.txn, key, AuditRecord{
		Index: c.entry.Index, At: c.hdr.At, Actor: c.hdr.Actor, Node: c.hdr.Node,
		Command: command.String(), Subject: subject, Detail: detail,
	})
}

// addTimeline appends an entry to an alarm's timeline, filling in its
// index, time and actor when empty.
func (c *applyCtx) addTimeline(a *Alarm, te TimelineEntry) (*TimelineEntry, error) {
	te.Index, te.AlarmID = c.entry.Index, a.ID
	if te.At.IsZero() {
		te.At = c.hdr.At
	}
	if te.Actor == "" {
		te.Actor = c.hdr.Actor
	}
	key := pTimeline + a.ID + "/" + ikey(c.entry.Index) + "/" + fmt.Sprintf("%04d", c.nTimeline)
	c.nTimeline++
	a.Actions++
	return &te, putJSON(c.txn, key, te)
}
