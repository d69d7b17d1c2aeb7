package monitoring

import "time"

// The records of the state. Each is stored as JSON under its key (keys.go).
// Fields are only ever added: old records and snapshots must still decode.

// AlarmType is what raised an alarm.
type AlarmType string

// Alarm types.
const (
	AlarmRedAlert       AlarmType = "red_alert"       // the worker pressed the panic button
	AlarmDiscreetPanic  AlarmType = "discreet_panic"  // a hidden gesture or button: do not call
	AlarmManDown        AlarmType = "man_down"        // a fall, tilt or no movement
	AlarmMissedCheckIn  AlarmType = "missed_checkin"  // a session timer ran out and the grace period passed
	AlarmDuress         AlarmType = "duress"          // the Duress PIN was entered: silent, do not call
	AlarmDeviceOffline  AlarmType = "device_offline"  // a device in a session stayed away too long
	AlarmDeviceFlooding AlarmType = "device_flooding" // a device went over its rate limits: technical, never sent to it (flood.go)
	AlarmLowBattery     AlarmType = "low_battery"
	AlarmTest           AlarmType = "test"
)

// AlarmTypes lists every alarm type, in the order the console shows them.
var AlarmTypes = []AlarmType{AlarmRedAlert, AlarmDuress, AlarmDiscreetPanic, AlarmManDown,
	AlarmMissedCheckIn, AlarmDeviceOffline, AlarmDeviceFlooding, AlarmLowBattery, AlarmTest}

// DefaultPriorities are the priorities of alarm types when the organisation
// sets none. 1 is the most urgent.
var DefaultPriorities = map[AlarmType]int{
	AlarmRedAlert:      1,
	AlarmDuress:        1,
	AlarmDiscreetPanic: 1,
	AlarmManDown:       1,
	AlarmMissedCheckIn: 2,
	AlarmDeviceOffline: 3,
	// After the alarms of a worker in danger: the flood's first alarm went
	// through, and comes first in the queue.
	AlarmDeviceFlooding: 3,
	AlarmLowBattery:     4,
	AlarmTest:           5,
}

// Priorities run from 1 (most urgent) to MaxPriority.
const MaxPriority = 9

// AlarmStatus is where an alarm is in its lifecycle:
// raised -> acknowledged -> in_progress -> closed (-> reopened as acknowledged).
type AlarmStatus string

// Alarm statuses.
const (
	StatusRaised       AlarmStatus = "raised"       // nobody has taken it yet
	StatusAcknowledged AlarmStatus = "acknowledged" // claimed by one operator
	StatusInProgress   AlarmStatus = "in_progress"  // the operator has logged an action
	StatusClosed       AlarmStatus = "closed"       // closed with a resolution
)

// Resolution is how an alarm was closed. Closing requires one.
type Resolution string

// Resolutions.
const (
	ResolutionWorkerSafe      Resolution = "worker_safe"      // the worker confirmed safe
	ResolutionIncidentHandled Resolution = "incident_handled" // the incident was dealt with (police attended)
	ResolutionFalseAlarm      Resolution = "false_alarm"      // raised by mistake
	ResolutionTest            Resolution = "test"             // a test alarm
)

// Resolutions lists every resolution.
var Resolutions = []Resolution{ResolutionWorkerSafe, ResolutionIncidentHandled, ResolutionFalseAlarm, ResolutionTest}

// Confirmation is how an operator confirmed, before closing an alarm, that
// the worker is safe or the incident was dealt with. Every close names one
// (CmdCloseAlarmConfirmed): no alarm is closed on a worker's reset alone,
// nor as a false alarm or a test without someone confirming it.
type Confirmation string

// Confirmations an operator can record.
const (
	// ConfirmedByWorker: the operator spoke to the worker, who confirmed
	// they are safe (a call back after a reset, or the worker calling in).
	ConfirmedByWorker Confirmation = "worker_confirmed"
	// ConfirmedByContact: an escalation contact confirmed the worker's
	// welfare.
	ConfirmedByContact Confirmation = "contact_confirmed"
	// ConfirmedByPolice: the police or site security attended and dealt
	// with the incident.
	ConfirmedByPolice Confirmation = "police_attended"
	// ConfirmedInPerson: someone with the worker (a manager, a colleague)
	// confirmed in person.
	ConfirmedInPerson Confirmation = "in_person"
)

// ConfirmedAccidentalPress is recorded by the system alone: the worker
// reset the alarm with the Safe PIN within the organisation's
// accidental-press window, before any operator took it.
const ConfirmedAccidentalPress Confirmation = "accidental_press"

// Confirmations lists what an operator may record.
var Confirmations = []Confirmation{ConfirmedByWorker, ConfirmedByContact, ConfirmedByPolice, ConfirmedInPerson}

// Location is a position fix.
type Location struct {
	Lat      float64   `json:"lat"`
	Lon      float64   `json:"lon"`
	Accuracy float64   `json:"accuracy_m,omitempty"` // radius in metres
	Source   string    `json:"source,omitempty"`     // gps, wifi, cell, manual
	At       time.Time `json:"at,omitzero"`
	Address  string    `json:"address,omitempty"` // as the worker typed it, for a session
}

// Contact is an escalation contact, called in order.
type Contact struct {
	Name     string `json:"name"`
	Phone    string `json:"phone"`
	Relation string `json:"relation,omitempty"` // manager, next of kin...
	// Email, optional, is where the operator's briefing goes (briefing.go).
	Email string `json:"email,omitempty"`
}

// ProcedureStep is one step of an organisation's response procedure.
type ProcedureStep struct {
	Title string `json:"title"`
	Text  string `json:"text,omitempty"`
	// Action, if set, is the timeline action that does the step (logging
	// it ticks the step): one of LoggableActions, or acknowledged.
	Action ActionKind `json:"action,omitempty"`
}

// Organisation is a customer: a hospital trust, a council department.
type Organisation struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Procedure        string            `json:"procedure,omitempty"` // the response procedure, as text
	ProcedureSteps   []ProcedureStep   `json:"procedure_steps,omitempty"`
	Contacts         []Contact         `json:"contacts,omitempty"` // default escalation contacts
	DefaultSession   time.Duration     `json:"default_session_ns,omitempty"`
	DefaultCheckIn   time.Duration     `json:"default_checkin_ns,omitempty"`
	Grace            time.Duration     `json:"grace_ns,omitempty"`             // after a reminder, before a missed-check-in alarm
	OfflineThreshold time.Duration     `json:"offline_threshold_ns,omitempty"` // a device in a session away this long raises an alarm
	Priorities       map[AlarmType]int `json:"priorities,omitempty"`           // overrides DefaultPriorities
	UpdatedAt        time.Time         `json:"updated_at"`
	// HeartbeatInterval and LocationInterval are how often the devices send
	// a heartbeat and their location (down/config); 0 means
	// DefaultHeartbeatInterval and DefaultLocationInterval.
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns,omitempty"`
	LocationInterval  time.Duration `json:"location_interval_ns,omitempty"`
	// AccidentalPressWindow, when set, lets a worker's Safe-PIN reset
	// within this time of the raise close the alarm as a false alarm by
	// itself, if no operator has taken it yet. 0 (the default): every
	// reset waits for an operator to confirm the worker is safe.
	AccidentalPressWindow time.Duration `json:"accidental_press_window_ns,omitempty"`
	// LowBattery is the battery level, in percent, under which a device's
	// report raises a low-battery alarm (once, until the battery is back
	// over it by LowBatteryHysteresis); 0 means DefaultLowBattery.
	LowBattery int `json:"low_battery_percent,omitempty"`
	// URNs are the organisation's police lone-worker URNs (urn.go), any
	// number per force (a renewal beside the URN it replaces): a police
	// call on a URN quotes the one of the entry's force not yet expired.
	URNs []PoliceURN `json:"urns,omitempty"`
	// ContactWait is how long an operator waits for an escalation
	// contact's answer: after "no answer" or "left a message" the next
	// contact is due this much later (escalation.go); 0 means
	// DefaultContactWait.
	ContactWait time.Duration `json:"contact_wait_ns,omitempty"`
	// Notify is who the organisation's notifications go to: the close of
	// a genuine alarm, duress alarms, acknowledgement escalations
	// (outboxnotice.go, docs/notifications.md).
	Notify NotifyPolicy `json:"notify,omitzero"`
	// Retention is how long the organisation's closed alarms, audio,
	// positions and delivered notifications are kept (retention.go,
	// docs/retention.md); unset, everything is kept.
	Retention Retention `json:"retention,omitzero"`
}

// The wait for an escalation contact's answer (Organisation.ContactWait).
const (
	DefaultContactWait = 5 * time.Minute
	// MinContactWait and MaxContactWait bound it: under a minute nobody
	// can call back; over an hour the escalation has stalled.
	MinContactWait = time.Minute
	MaxContactWait = time.Hour
)

// Low-battery alarms raised from a device's reports.
const (
	// DefaultLowBattery is an organisation's low-battery level unless it
	// sets one: below it a device may not last a shift.
	DefaultLowBattery = 15
	// MaxLowBattery bounds the level: above it, alarms for batteries that
	// would last for hours.
	MaxLowBattery = 50
	// LowBatteryHysteresis is how far over the level a battery must be
	// back before the next low reading raises a new alarm: a level read at
	// 14, 15, 14 raises one alarm, not two.
	LowBatteryHysteresis = 5
)

// MaxAccidentalPressWindow bounds an organisation's accidental-press
// window: beyond a minute a reset is no longer an accidental press that
// the worker corrected at once.
const MaxAccidentalPressWindow = time.Minute

// Defaults of an organisation's timers.
const (
	DefaultSessionDuration  = time.Hour
	DefaultGrace            = 2 * time.Minute
	DefaultOfflineThreshold = 10 * time.Minute
)

// Defaults and limits of the intervals an organisation's devices report at.
const (
	DefaultHeartbeatInterval = time.Minute
	DefaultLocationInterval  = 5 * time.Minute
	MinDeviceInterval        = 10 * time.Second
	MaxDeviceInterval        = 24 * time.Hour
)

// PoliceURN is the lone-worker URN of one police force. It is used before
// Expiry, not from then on.
type PoliceURN struct {
	Force  string    `json:"force"`
	URN    string    `json:"urn"`
	Expiry time.Time `json:"expiry"`
}

// ImportantInfo is what an operator must see first.
type ImportantInfo struct {
	Medical         string `json:"medical,omitempty"`
	SpecialHandling string `json:"special_handling,omitempty"` // "hard of hearing"
	DuressWord      string `json:"duress_word,omitempty"`
}

// Worker is a lone worker.
type Worker struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Phone     string        `json:"phone,omitempty"`
	OrgID     string        `json:"org_id"`
	Team      string        `json:"team,omitempty"`
	Important ImportantInfo `json:"important"`
	Contacts  []Contact     `json:"contacts,omitempty"` // ordered; empty means the organisation's
	// URNs were kept per worker before they moved to the organisation
	// (Organisation.URNs); they still decode and are shown, but a police
	// call does not use them.
	URNs []PoliceURN `json:"urns,omitempty"`
	// The PINs, only as slow hashes (pin.go). PINVersion changes whenever
	// either PIN is set, so a check made against old hashes is refused.
	SafePINHash   string    `json:"safe_pin_hash,omitempty"`
	DuressPINHash string    `json:"duress_pin_hash,omitempty"`
	PINVersion    uint64    `json:"pin_version"`
	WrongPINs     int       `json:"wrong_pins"` // wrong PINs since the last right one
	UpdatedAt     time.Time `json:"updated_at"`
	// LastUpdate is the worker's standing Update message, left from a
	// device outside any session, and LastUpdateAt when (update.go). Only
	// PostUpdate sets them.
	LastUpdate   string    `json:"last_update,omitempty"`
	LastUpdateAt time.Time `json:"last_update_at,omitzero"`
}

// DeviceKind says how a device is used.
type DeviceKind string

// Device kinds.
const (
	DevicePhoneApp  DeviceKind = "phone_app"
	DeviceDedicated DeviceKind = "dedicated"
	DevicePooled    DeviceKind = "pooled" // assigned to a worker when a session starts
)

// Device is a phone app or a dedicated alarm device.
type Device struct {
	ID        string     `json:"id"`
	Kind      DeviceKind `json:"kind"`
	Label     string     `json:"label,omitempty"`
	OrgID     string     `json:"org_id"`
	WorkerID  string     `json:"worker_id,omitempty"` // the assigned worker
	Battery   int        `json:"battery"`             // percent, -1 unknown
	Firmware  string     `json:"firmware,omitempty"`
	Location  *Location  `json:"location,omitempty"` // the last fix
	LastSeen  time.Time  `json:"last_seen,omitzero"`
	Connected bool       `json:"connected"`
	Node      string     `json:"node,omitempty"` // the node holding its connection, or that held the last one
	// ConnectedAt is when the connection on Node was made.
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// DisconnectedAt and DisconnectReason say when and why the last
	// connection ended, while Connected is false.
	DisconnectedAt   time.Time `json:"disconnected_at,omitzero"`
	DisconnectReason string    `json:"disconnect_reason,omitempty"`
	UpdatedAt        time.Time `json:"updated_at"`
	// LowBatteryAlarm is the low-battery alarm raised by the device's
	// reports for the battery's current low spell; cleared once the
	// battery is back over the level.
	LowBatteryAlarm string `json:"low_battery_alarm,omitempty"`
}

// SessionStatus is where a timed session is.
type SessionStatus string

// Session statuses.
const (
	SessionActive  SessionStatus = "active"  // the timer runs
	SessionOverdue SessionStatus = "overdue" // the timer ran out: reminder sent, grace running
	SessionAlarm   SessionStatus = "alarm"   // grace passed: a missed-check-in alarm is raised
	SessionEnded   SessionStatus = "ended"
)

// Session is a worker's timed session (the "monitor timer").
type Session struct {
	ID              string        `json:"id"`
	WorkerID        string        `json:"worker_id"`
	DeviceID        string        `json:"device_id"`
	OrgID           string        `json:"org_id"`
	Status          SessionStatus `json:"status"`
	StartedAt       time.Time     `json:"started_at"`
	EndsAt          time.Time     `json:"ends_at"` // expected end
	CheckInInterval time.Duration `json:"checkin_interval_ns,omitempty"`
	NextDue         time.Time     `json:"next_due"`             // the timer: end or next check-in
	GraceUntil      time.Time     `json:"grace_until,omitzero"` // set while overdue
	Location        *Location     `json:"location,omitempty"`
	Update          string        `json:"update,omitempty"` // the Update message
	LastCheckIn     time.Time     `json:"last_checkin,omitzero"`
	AlarmID         string        `json:"alarm_id,omitempty"` // the missed-check-in alarm
	EndedAt         time.Time     `json:"ended_at,omitzero"`
	// Seq counts timer changes; deadline IDs include it, so a deadline
	// fires at most once and a stale one is recognised.
	Seq uint64 `json:"seq"`
}

// Alarm is one alarm and its state.
type Alarm struct {
	ID         string      `json:"id"`
	Type       AlarmType   `json:"type"`
	Priority   int         `json:"priority"`
	Status     AlarmStatus `json:"status"`
	OrgID      string      `json:"org_id,omitempty"`
	WorkerID   string      `json:"worker_id,omitempty"`
	DeviceID   string      `json:"device_id,omitempty"`
	SessionID  string      `json:"session_id,omitempty"`
	IncidentID string      `json:"incident_id"` // related alarms share one; the first alarm's ID
	RaisedAt   time.Time   `json:"raised_at"`   // Vigil's time
	DeviceTime time.Time   `json:"device_time,omitzero"`
	Location   *Location   `json:"location,omitempty"`
	// DoNotCall: duress and discreet alarms. Calling the worker could put
	// them in danger.
	DoNotCall  bool       `json:"do_not_call"`
	Silent     bool       `json:"silent"` // nothing is sent to the device that an onlooker could see
	AckBy      string     `json:"ack_by,omitempty"`
	AckAt      time.Time  `json:"ack_at,omitzero"`
	ClosedBy   string     `json:"closed_by,omitempty"`
	ClosedAt   time.Time  `json:"closed_at,omitzero"`
	Resolution Resolution `json:"resolution,omitempty"`
	CloseNote  string     `json:"close_note,omitempty"`
	Reopened   int        `json:"reopened"`
	Actions    int        `json:"actions"` // timeline entries so far
	// DuressCancel: the worker "cancelled" the alarm from the device with
	// the Duress PIN. The device was told it is cancelled, so to the device
	// it stays closed; to operators it stays open.
	DuressCancel bool `json:"duress_cancel,omitempty"`
	// ResetAt is when the worker reset the alarm from the device with the
	// Safe PIN (CmdResetAlarm). The device was told it is cancelled, as for
	// the Duress PIN; the alarm stays open, at a lower urgency, until an
	// operator confirms the worker is safe and closes it.
	ResetAt time.Time `json:"reset_at,omitzero"`
	// CancelledAt is when the device was told the alarm is cancelled,
	// whichever PIN was entered (CmdResetAlarm); zero before the close
	// rule.
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	// Confirmation is how the operator confirmed the worker safe (or the
	// incident dealt with) when closing; empty for closes before the rule.
	Confirmation Confirmation `json:"confirmation,omitempty"`
	// ContactDueAt, while set, is when the escalation contact at index
	// ContactDue of the alarm's list (AlarmContacts) is due to be called:
	// the one before did not answer, or nobody was called after the
	// acknowledgement (escalation.go). ContactDue equal to the length of
	// the list means no contact is left. ContactOverdue: the time has
	// come and the reminder is shown. A contact entry or the close clears
	// all three.
	ContactDue     int       `json:"contact_due,omitempty"`
	ContactDueAt   time.Time `json:"contact_due_at,omitzero"`
	ContactOverdue bool      `json:"contact_overdue,omitempty"`
	// NoBriefingReason is why a genuine alarm was closed without an
	// escalation contact briefed (the close rule, RulesBriefing).
	NoBriefingReason string `json:"no_briefing_reason,omitempty"`
	// ListenAt is when an operator last asked the device to stream its
	// audio (CmdListenRequest), and ListenUntil until when; zero if never.
	// A device that connects before ListenUntil is asked again.
	ListenAt    time.Time `json:"listen_at,omitzero"`
	ListenUntil time.Time `json:"listen_until,omitzero"`
}

// Listening reports whether an operator's request that the device stream
// its audio still runs at now (CmdListenRequest).
func (a *Alarm) Listening(now time.Time) bool {
	return a.Status != StatusClosed && now.Before(a.ListenUntil)
}

// AwaitingConfirmation reports whether the worker has reset a still open
// alarm, which waits for an operator to confirm they are safe.
func (a *Alarm) AwaitingConfirmation() bool { return !a.ResetAt.IsZero() && a.Status != StatusClosed }

// CancelledOnDevice reports whether the device was told this alarm is
// cancelled (either PIN: the device cannot tell which), so that, to the
// device, it is over whatever the operators still do with it, a reopen
// included.
func (a *Alarm) CancelledOnDevice() bool {
	return a.DuressCancel || !a.ResetAt.IsZero() || !a.CancelledAt.IsZero()
}

// ActionKind is a kind of timeline entry.
type ActionKind string

// Timeline entry kinds.
const (
	ActionRaised       ActionKind = "raised"
	ActionAcknowledged ActionKind = "acknowledged"
	ActionCallWorker   ActionKind = "call_worker" // Outcome: answered_safe, answered_no_speech, no_answer
	ActionListenIn     ActionKind = "listen_in"
	ActionLocationOK   ActionKind = "location_verified"
	ActionPolice       ActionKind = "police"             // Force, Route (urn, 999, 101), Reference
	ActionContact      ActionKind = "escalation_contact" // Contact, Outcome (ContactOutcomes)
	ActionNote         ActionKind = "note"
	ActionDeviceCmd    ActionKind = "device_command"
	ActionClosed       ActionKind = "closed"
	ActionReopened     ActionKind = "reopened"
	ActionLinked       ActionKind = "linked" // joined to an incident
	// ActionWorkerReset: the worker reset the alarm with the Safe PIN; it
	// waits for an operator to confirm they are safe (CmdResetAlarm).
	ActionWorkerReset ActionKind = "worker_reset"
	// ActionContactDue: the system's reminder that the next escalation
	// contact is due (Contact names them; empty when none is left).
	ActionContactDue ActionKind = "contact_due"
)

// Outcomes of a call to an escalation contact (ActionContact), from
// logActionCmd's RulesContactOutcome on.
const (
	// ContactWelfareConfirmed: the contact confirmed the worker's welfare.
	ContactWelfareConfirmed = "welfare_confirmed"
	// ContactBriefed: the contact was told of the incident.
	ContactBriefed     = "briefed"
	ContactNoAnswer    = "no_answer"
	ContactLeftMessage = "left_message"
)

// ContactOutcomes lists the outcomes of a call to an escalation contact.
var ContactOutcomes = []string{ContactWelfareConfirmed, ContactBriefed, ContactNoAnswer, ContactLeftMessage}

// TimelineEntry is one action on an alarm.
type TimelineEntry struct {
	Index   uint64     `json:"index"` // the Raft index that wrote it
	AlarmID string     `json:"alarm_id"`
	Kind    ActionKind `json:"kind"`
	At      time.Time  `json:"at"`
	Actor   string     `json:"actor"` // operator, "device" or "system"
	Outcome string     `json:"outcome,omitempty"`
	Force   string     `json:"force,omitempty"`
	Route   string     `json:"route,omitempty"` // urn, 999 or 101
	// URN is the URN quoted on a police call by the URN route, filled in
	// from the organisation's (RulesURN and above).
	URN       string `json:"urn,omitempty"`
	Reference string `json:"reference,omitempty"`
	Contact   string `json:"contact,omitempty"`
	Text      string `json:"text,omitempty"`
	// Confirmation: how the worker's safety was confirmed (a close).
	Confirmation Confirmation `json:"confirmation,omitempty"`
}

// AuditRecord is one change, as the append-only audit log keeps it.
type AuditRecord struct {
	Index   uint64    `json:"index"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Node    string    `json:"node"`
	Command string    `json:"command"`
	Subject string    `json:"subject"` // "alarm/<id>", "worker/<id>"...
	Detail  string    `json:"detail,omitempty"`
}
