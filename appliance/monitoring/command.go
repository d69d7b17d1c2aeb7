package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CmdType is the first byte of every command.
//
// This enum is append-only: a value, once released, keeps its meaning
// forever, because old commands stay in the Raft log and in snapshots. Never
// renumber, reuse or remove a value; add new ones at the end.
type CmdType byte

// Command types. Append only; see CmdType.
const (
	// CmdDiagRecord appends a record to the diagnostic journal. Body: diagRecordCmd.
	CmdDiagRecord CmdType = 1
	// CmdPutOrganisation creates or replaces an organisation. Body: putOrganisationCmd.
	CmdPutOrganisation CmdType = 2
	// CmdPutWorker creates or updates a worker, keeping its PINs. Body: putWorkerCmd.
	CmdPutWorker CmdType = 3
	// CmdSetPINs sets a worker's Safe and Duress PIN hashes. Body: setPINsCmd.
	CmdSetPINs CmdType = 4
	// CmdPutDevice creates or updates a device. Body: putDeviceCmd.
	CmdPutDevice CmdType = 5
	// CmdStartSession starts a timed session. Body: startSessionCmd.
	CmdStartSession CmdType = 6
	// CmdSessionAction checks in, extends or ends a session, with the
	// outcome of the PIN check made before proposing. Body: sessionActionCmd.
	CmdSessionAction CmdType = 7
	// CmdFireDeadline acts on a deadline that has passed. Body: fireDeadlineCmd.
	CmdFireDeadline CmdType = 8
	// CmdRaiseAlarm raises an alarm. Body: RaiseAlarmCmd.
	CmdRaiseAlarm CmdType = 9
	// CmdAcknowledge claims an alarm for one operator. Body: AcknowledgeCmd.
	CmdAcknowledge CmdType = 10
	// CmdLogAction adds an action to an alarm's timeline. Body: logActionCmd.
	CmdLogAction CmdType = 11
	// CmdCloseAlarm closes an alarm with a resolution. Body: CloseAlarmCmd.
	CmdCloseAlarm CmdType = 12
	// CmdReopenAlarm reopens a closed alarm. Body: reopenAlarmCmd.
	CmdReopenAlarm CmdType = 13
	// CmdDeviceStatus records devices' battery, location and presence, many
	// at once (latest wins). Body: deviceStatusCmd.
	CmdDeviceStatus CmdType = 14
	// CmdCancelAlarm cancels an alarm from the worker's device, with the
	// outcome of the PIN check made before proposing. Body: cancelAlarmCmd.
	CmdCancelAlarm CmdType = 15
	// CmdSetDeviceSecret sets the hash of a device's MQTT secret. Body:
	// setDeviceSecretCmd.
	CmdSetDeviceSecret CmdType = 16
	// CmdAudioChunk stores one chunk of audio a device streams during an
	// alarm. Body: audioChunkCmd (audio.go).
	CmdAudioChunk CmdType = 17
	// CmdDevicePrompt records a prompt an operator sends to a device (such
	// as "tap twice if you need help"). Body: devicePromptCmd (prompt.go).
	CmdDevicePrompt CmdType = 18
	// CmdPromptAnswer records a device's answer to a prompt. Body:
	// promptAnswerCmd (prompt.go).
	CmdPromptAnswer CmdType = 19
	// CmdPostUpdate records an Update message a worker leaves from the
	// device. Body: postUpdateCmd (update.go).
	CmdPostUpdate CmdType = 20
	// CmdNodeDown marks the devices connected through a node that stopped
	// as disconnected. Body: nodeDownCmd (presence.go).
	CmdNodeDown CmdType = 21
	// CmdPutOperator creates or changes a console operator account. Body:
	// putOperatorCmd (operator.go).
	CmdPutOperator CmdType = 22
	// CmdOperatorLogin records a console sign-in attempt, with the outcome
	// of the password check made before proposing. Body: operatorLoginCmd
	// (operator.go).
	CmdOperatorLogin CmdType = 23
	// CmdOperatorLogout ends a console session. Body: operatorLogoutCmd
	// (operator.go).
	CmdOperatorLogout CmdType = 24
	// CmdIssueResumeTicket records a ticket that hands a console session
	// over to another node. Body: issueResumeTicketCmd (resume.go).
	CmdIssueResumeTicket CmdType = 25
	// CmdRedeemResumeTicket spends a hand-over ticket and makes a new
	// console session. Body: redeemResumeTicketCmd (resume.go).
	CmdRedeemResumeTicket CmdType = 26
	// CmdEndSessionFamily ends a console session and the sessions handed
	// over from or to it. Body: endSessionFamilyCmd (resume.go).
	CmdEndSessionFamily CmdType = 27
	// CmdPutConsoleNode records where a node serves its console and MQTT
	// listeners. Body: putConsoleNodeCmd (consolenode.go).
	CmdPutConsoleNode CmdType = 28
	// CmdCreateAPIToken makes a token for the REST API. Body:
	// createAPITokenCmd (apitoken.go).
	CmdCreateAPIToken CmdType = 29
	// CmdDisableAPIToken disables a token for the REST API. Body:
	// disableAPITokenCmd (apitoken.go).
	CmdDisableAPIToken CmdType = 30
	// CmdUseJoinToken counts one use of a join token by a joining
	// appliance. Body: useJoinTokenCmd (jointoken.go).
	CmdUseJoinToken CmdType = 31
	// CmdOperatorSignIn records a console sign-in attempt under the
	// back-off rules (wrong passwords slow down browsers the account does
	// not know; no lockout), with the outcome of the password check made
	// before proposing. Body: operatorSignInCmd (signin.go).
	CmdOperatorSignIn CmdType = 32
	// CmdDeviceFlooding records that a node refused a device's messages
	// for going over its rate limits, and raises one device-flooding alarm
	// for the operators (or notes a new flood on the one still open).
	// Body: deviceFloodingCmd (flood.go).
	CmdDeviceFlooding CmdType = 33
	// CmdResetAlarm is a worker's cancel of an alarm from the device under
	// the close rule: the Safe PIN leaves the alarm open, awaiting an
	// operator's confirmation that the worker is safe (unless within the
	// organisation's accidental-press window); the Duress PIN as under
	// CmdCancelAlarm, which the Service no longer proposes (its Safe PIN
	// closed the alarm with no operator). Body: cancelAlarmCmd (cancel.go).
	CmdResetAlarm CmdType = 34
	// CmdCloseAlarmConfirmed closes an alarm with a resolution and how the
	// worker's safety was confirmed, which is required; CmdCloseAlarm,
	// which the Service no longer proposes, needed none. Body:
	// CloseAlarmCmd.
	CmdCloseAlarmConfirmed CmdType = 35
	// CmdListenRequest records an operator's request that the device of an
	// alarm stream its audio for a while, without showing anything. Body:
	// listenRequestCmd (listen.go).
	CmdListenRequest CmdType = 38
	// CmdOutboxEnqueue adds notifications to the outbox, each only once
	// (by its idempotency key). Body: outboxEnqueueCmd (outbox.go).
	CmdOutboxEnqueue CmdType = 40
	// CmdOutboxOutcome records the outcome of an attempt to deliver a
	// notification: sent, failed or given up. Body: outboxOutcomeCmd
	// (outbox.go).
	CmdOutboxOutcome CmdType = 41
	// CmdCreateLinkKey makes the HMAC key that signs audio links, once.
	// Body: createLinkKeyCmd (audiolink.go).
	CmdCreateLinkKey CmdType = 45
	// CmdIssueAudioLink records a signed, expiring link to an alarm's
	// audio. Body: issueAudioLinkCmd (audiolink.go).
	CmdIssueAudioLink CmdType = 46
	// CmdRevokeAudioLink revokes an audio link. Body: revokeAudioLinkCmd
	// (audiolink.go).
	CmdRevokeAudioLink CmdType = 47
	// CmdAudioLinkDownload records a download by audio link, refused once
	// the link has expired or was revoked. Body: audioLinkDownloadCmd
	// (audiolink.go).
	CmdAudioLinkDownload CmdType = 48
	// CmdReportAction saves a post-incident report's recommendations or
	// signs it off. Body: reportActionCmd (postincident.go).
	CmdReportAction CmdType = 49
	// CmdPurge deletes, within a bound, what is past its organisation's
	// retention at the command's time. Body: purgeCmd (retention.go).
	CmdPurge CmdType = 50
	// CmdLegalHold puts a legal hold on an incident, or lifts it. Body:
	// legalHoldCmd (retention.go).
	CmdLegalHold CmdType = 51
)

var cmdNames = map[CmdType]string{
	CmdDiagRecord:          "CmdDiagRecord",
	CmdPutOrganisation:     "CmdPutOrganisation",
	CmdPutWorker:           "CmdPutWorker",
	CmdSetPINs:             "CmdSetPINs",
	CmdPutDevice:           "CmdPutDevice",
	CmdStartSession:        "CmdStartSession",
	CmdSessionAction:       "CmdSessionAction",
	CmdFireDeadline:        "CmdFireDeadline",
	CmdRaiseAlarm:          "CmdRaiseAlarm",
	CmdAcknowledge:         "CmdAcknowledge",
	CmdLogAction:           "CmdLogAction",
	CmdCloseAlarm:          "CmdCloseAlarm",
	CmdReopenAlarm:         "CmdReopenAlarm",
	CmdDeviceStatus:        "CmdDeviceStatus",
	CmdCancelAlarm:         "CmdCancelAlarm",
	CmdSetDeviceSecret:     "CmdSetDeviceSecret",
	CmdAudioChunk:          "CmdAudioChunk",
	CmdDevicePrompt:        "CmdDevicePrompt",
	CmdPromptAnswer:        "CmdPromptAnswer",
	CmdPostUpdate:          "CmdPostUpdate",
	CmdNodeDown:            "CmdNodeDown",
	CmdPutOperator:         "CmdPutOperator",
	CmdOperatorLogin:       "CmdOperatorLogin",
	CmdOperatorLogout:      "CmdOperatorLogout",
	CmdIssueResumeTicket:   "CmdIssueResumeTicket",
	CmdRedeemResumeTicket:  "CmdRedeemResumeTicket",
	CmdEndSessionFamily:    "CmdEndSessionFamily",
	CmdPutConsoleNode:      "CmdPutConsoleNode",
	CmdCreateAPIToken:      "CmdCreateAPIToken",
	CmdDisableAPIToken:     "CmdDisableAPIToken",
	CmdUseJoinToken:        "CmdUseJoinToken",
	CmdOperatorSignIn:      "CmdOperatorSignIn",
	CmdDeviceFlooding:      "CmdDeviceFlooding",
	CmdResetAlarm:          "CmdResetAlarm",
	CmdCloseAlarmConfirmed: "CmdCloseAlarmConfirmed",
	CmdListenRequest:       "CmdListenRequest",
	CmdOutboxEnqueue:       "CmdOutboxEnqueue",
	CmdOutboxOutcome:       "CmdOutboxOutcome",
	CmdCreateLinkKey:       "CmdCreateLinkKey",
	CmdIssueAudioLink:      "CmdIssueAudioLink",
	CmdRevokeAudioLink:     "CmdRevokeAudioLink",
	CmdAudioLinkDownload:   "CmdAudioLinkDownload",
	CmdReportAction:        "CmdReportAction",
	CmdPurge:               "CmdPurge",
	CmdLegalHold:           "CmdLegalHold",
}

// String returns the command type's name for messages.
func (t CmdType) String() string {
	if s, ok := cmdNames[t]; ok {
		return s
	}
	return fmt.Sprintf("CmdType(%d)", byte(t))
}

// Header is in every command body except CmdDiagRecord: who did it, when,
// and through which node. The state machine never reads a clock: At is the
// time of the change everywhere.
type Header struct {
	At    time.Time `json:"at"`
	Actor string    `json:"actor"` // an operator's name, "token:<name>", "device:<id>" or "system"
	Node  string    `json:"node"`  // the node that proposed the command
}

// putOrganisationCmd creates or replaces an organisation.
type putOrganisationCmd struct {
	Header
	Org Organisation `json:"org"`
}

// putWorkerCmd creates or updates a worker. The PIN fields of Worker are
// ignored: PINs change only through setPINsCmd.
type putWorkerCmd struct {
	Header
	Worker Worker `json:"worker"`
}

// setPINsCmd sets both PIN hashes (pin.go). Either may be empty to clear it.
type setPINsCmd struct {
	Header
	WorkerID      string `json:"worker_id"`
	SafePINHash   string `json:"safe_pin_hash"`
	DuressPINHash string `json:"duress_pin_hash"`
}

// putDeviceCmd creates or updates a device's registration (kind, label,
// organisation, assigned worker). Telemetry goes through deviceStatusCmd.
type putDeviceCmd struct {
	Header
	Device Device `json:"device"`
}

// startSessionCmd starts a timed session.
type startSessionCmd struct {
	Header
	SessionID       string        `json:"session_id"` // made by the proposer
	WorkerID        string        `json:"worker_id"`
	DeviceID        string        `json:"device_id"`
	Duration        time.Duration `json:"duration_ns"`
	CheckInInterval time.Duration `json:"checkin_interval_ns,omitempty"`
	Location        *Location     `json:"location,omitempty"`
	Update          string        `json:"update,omitempty"`
}

// SessionActionKind is what a worker does to a session.
type SessionActionKind string

// Session actions.
const (
	SessionCheckIn SessionActionKind = "checkin"
	SessionExtend  SessionActionKind = "extend"
	SessionEnd     SessionActionKind = "end"
)

// pinOutcome is the result of checking a PIN against a worker's hashes,
// made by the Service before proposing (hashing is slow; Apply must be
// fast and is the same on every node).
type pinOutcome string

// PIN outcomes.
const (
	pinNone   pinOutcome = ""       // no PIN was needed or given
	pinSafe   pinOutcome = "safe"   // the Safe PIN
	pinDuress pinOutcome = "duress" // the Duress PIN: act as safe, raise a silent alarm
	pinWrong  pinOutcome = "wrong"  // neither
)

// sessionActionCmd checks in, extends or ends a session.
type sessionActionCmd struct {
	Header
	SessionID  string            `json:"session_id"`
	Action     SessionActionKind `json:"action"`
	ExtendBy   time.Duration     `json:"extend_by_ns,omitempty"`
	PIN        pinOutcome        `json:"pin"`
	PINVersion uint64            `json:"pin_version"`        // the hashes checked; a change since is refused
	AlarmID    string            `json:"alarm_id,omitempty"` // for a duress alarm, made by the proposer
	// Rules is the version of the rules the command is applied under
	// (older logs replay as they were applied): RulesReleasePooled and
	// above release a pooled device from its worker when the session ends;
	// RulesSessionAudioRef and above record AlarmID as an audio reference
	// for every PIN and give it in the reply.
	Rules int `json:"rules,omitempty"`
}

// Versions of sessionActionCmd's rules.
const (
	// RulesReleasePooled: a pooled device is released when its session
	// ends, so that an alarm between sessions names no one rather than the
	// last worker.
	RulesReleasePooled = 1
	// RulesSessionAudioRef: every action that is not a wrong PIN records
	// AlarmID as an audio reference of the device (audioref.go), the
	// duress alarm's ID for the Duress PIN and an ID naming no alarm
	// otherwise, and the reply gives it as audio_ref.
	RulesSessionAudioRef = 2
)

// Deadline is a time at which the leader must act. It is stored in the
// state (ix/deadline/), so a new leader finds it.
type Deadline struct {
	ID        string    `json:"id"`   // unique, and stable: "session/<id>/<seq>/due"
	Kind      string    `json:"kind"` // DeadlineSessionDue, DeadlineSessionGrace...
	Due       time.Time `json:"due"`
	SessionID string    `json:"session_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	AlarmID   string    `json:"alarm_id,omitempty"`
}

// Deadline kinds.
const (
	DeadlineSessionDue    = "session_due"    // the timer ran out: send a reminder, start the grace period
	DeadlineSessionGrace  = "session_grace"  // the grace period passed: raise a missed-check-in alarm
	DeadlineDeviceOffline = "device_offline" // a device in a session has been away too long
	DeadlineAckOverdue    = "ack_overdue"    // an alarm is not acknowledged within a BS 8484 target
	DeadlineContactDue    = "contact_due"    // the next escalation contact is due (escalation.go)
)

// fireDeadlineCmd acts on a deadline. Its command ID is the deadline's ID,
// so it fires at most once.
type fireDeadlineCmd struct {
	Header
	DeadlineID string    `json:"deadline_id"`
	Due        time.Time `json:"due"`
	AlarmID    string    `json:"alarm_id"` // for an alarm it raises, made by the proposer
}

// RaiseAlarmCmd raises an alarm from a device, an operator (test) or the
// system.
type RaiseAlarmCmd struct {
	Header
	AlarmID    string    `json:"alarm_id"` // made by the proposer
	Type       AlarmType `json:"type"`
	DeviceID   string    `json:"device_id,omitempty"`
	WorkerID   string    `json:"worker_id,omitempty"` // else the device's worker
	SessionID  string    `json:"session_id,omitempty"`
	DeviceTime time.Time `json:"device_time,omitzero"`
	Location   *Location `json:"location,omitempty"`
}

// AcknowledgeCmd claims an alarm. Takeover lets a supervisor take an alarm
// that another operator holds.
type AcknowledgeCmd struct {
	Header
	AlarmID  string `json:"alarm_id"`
	Takeover bool   `json:"takeover,omitempty"`
	// Rules is the version of the rules the command is applied under
	// (older logs replay as applied): RulesContactReminder and above set
	// the escalation reminder at the first acknowledgement of an alarm of
	// a worker who may be in danger. The Service sets the newest.
	Rules int `json:"rules,omitempty"`
}

// Versions of AcknowledgeCmd's rules.
const (
	// RulesContactReminder: the first escalation contact is due the
	// organisation's ContactWait after the first acknowledgement of a
	// red_alert, duress, discreet_panic, man_down or missed_checkin alarm,
	// unless a contact entry or the close comes first.
	RulesContactReminder = 1
)

// logActionCmd adds an action to an alarm's timeline.
type logActionCmd struct {
	Header
	AlarmID string        `json:"alarm_id"`
	Entry   TimelineEntry `json:"entry"` // Kind and its fields; Index, At and Actor are filled in
	// Rules is the version of the rules the command is applied under, so
	// that a log written before a rule replays as it was applied:
	// RulesIncidentDoNotCall and above refuse a call to the worker when
	// any alarm of the incident is do-not-call; RulesURN and above refuse
	// a police call on the URN route unless the alarm is eligible and the
	// organisation holds an unexpired URN for the force (urn.go);
	// RulesContactOutcome and above check an escalation contact entry and
	// move the escalation on (escalation.go). The Service sets the newest.
	Rules int `json:"rules,omitempty"`
}

// Versions of logActionCmd's rules. Each check applies from its version
// on (rules >= version).
const (
	// RulesIncidentDoNotCall: do-not-call is a property of the incident.
	RulesIncidentDoNotCall = 1
	// RulesURN: a police call on a lone-worker URN only for an eligible
	// alarm (NPCC policy), quoting the organisation's URN for the force.
	RulesURN = 2
	// RulesContactOutcome: an escalation contact entry names a contact of
	// the alarm's list with one of ContactOutcomes; after no_answer or
	// left_message the next contact is due the organisation's ContactWait
	// later.
	RulesContactOutcome = 3
)

// CloseAlarmCmd closes an alarm.
type CloseAlarmCmd struct {
	Header
	AlarmID    string     `json:"alarm_id"`
	Resolution Resolution `json:"resolution"`
	Note       string     `json:"note,omitempty"`
	// Confirmation is required by CmdCloseAlarmConfirmed.
	Confirmation Confirmation `json:"confirmation,omitempty"`
	// NoBriefingReason is why no escalation contact was briefed, for a
	// genuine close without one (RulesBriefing).
	NoBriefingReason string `json:"no_briefing_reason,omitempty"`
	// Rules is the version of the rules the command is applied under
	// (older logs replay as applied): RulesBriefing and above refuse a
	// genuine close without an escalation contact briefed or a reason;
	// RulesPostIncidentReport and above make the post-incident report of
	// a genuine close (postincident.go); RulesNotify and above enqueue the
	// close notification. The Service sets the newest.
	Rules int `json:"rules,omitempty"`
}

// Versions of CloseAlarmCmd's rules.
const (
	// RulesBriefing: closing an alarm of a worker who may have been in
	// danger (BriefingRequired) as worker_safe or incident_handled needs
	// an escalation contact entry with outcome briefed or
	// welfare_confirmed, or NoBriefingReason.
	RulesBriefing = 1
	// RulesPostIncidentReport: closing such an alarm as worker_safe or
	// incident_handled makes its draft post-incident report, due
	// PostIncidentReportDue later, unless it has one.
	RulesPostIncidentReport = 2
	// RulesNotify: closing an alarm as worker_safe or incident_handled
	// enqueues, in the same entry, the close notification to the
	// organisation's recipients (Organisation.Notify.Close; outbox.go).
	RulesNotify = 3
)

// reopenAlarmCmd reopens a closed alarm.
type reopenAlarmCmd struct {
	Header
	AlarmID string `json:"alarm_id"`
	Reason  string `json:"reason"`
}

// cancelAlarmCmd cancels an alarm from the device that raised it: the
// worker says it was a false alarm and proves it with a PIN. The actor is
// "device:<id>" of the alarm's device.
type cancelAlarmCmd struct {
	Header
	AlarmID    string     `json:"alarm_id"`
	PIN        pinOutcome `json:"pin"`
	PINVersion uint64     `json:"pin_version"` // the hashes checked; a change since is refused
	// DuressAlarmID is the ID of the duress alarm the Duress PIN raises,
	// made by the proposer whichever PIN was entered.
	DuressAlarmID string `json:"duress_alarm_id"`
}

// DeviceStatus is one device's latest telemetry, and its presence.
//
// Presence is about one connection, named by the node holding it and the
// time it was made (ConnectedAt): a connect, or any message over the
// connection, says it is up; a disconnect says it is down. The newest
// connection wins, and a disconnect counts only for the connection the
// device is recorded on (presence.go). An entry without ConnectedAt sets
// Connected and Node as they are, when it is not older than what is stored.
type DeviceStatus struct {
	DeviceID    string    `json:"device_id"`
	Battery     *int      `json:"battery,omitempty"`
	Location    *Location `json:"location,omitempty"`
	Firmware    string    `json:"firmware,omitempty"`
	SeenAt      time.Time `json:"seen_at"`
	Connected   *bool     `json:"connected,omitempty"`
	Node        string    `json:"node,omitempty"`
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// Reason is why a connection ended (Connected false): one of the
	// Disconnect* constants.
	Reason string `json:"reason,omitempty"`
}

// deviceStatusCmd records many devices' telemetry at once.
type deviceStatusCmd struct {
	Header
	Devices []DeviceStatus `json:"devices"`
	// Rules is the version of the rules the command is applied under
	// (older logs replay as applied): RulesLowBattery and above raise a
	// low-battery alarm for a battery reported under its organisation's
	// level.
	Rules int `json:"rules,omitempty"`
}

// Versions of deviceStatusCmd's rules.
const (
	// RulesLowBattery: a reported battery under the organisation's level
	// raises one low-battery alarm per low spell.
	RulesLowBattery = 1
)

// encode returns a command: the type byte, then body as JSON.
func encode(t CmdType, body any) []byte {
	b, err := json.Marshal(body)
	if err != nil {
		// Bodies are plain structs of strings, numbers and times.
		panic(fmt.Sprintf("monitoring: cannot encode %s: %v", t, err))
	}
	return append([]byte{byte(t)}, b...)
}

// Encode returns the command of type t with body (one of the *Cmd types).
func Encode(t CmdType, body any) []byte { return encode(t, body) }

// decode splits a command into its type and JSON body.
func decode(data []byte) (CmdType, []byte, error) {
	if len(data) == 0 {
		return 0, nil, errors.New("empty command")
	}
	return CmdType(data[0]), data[1:], nil
}
