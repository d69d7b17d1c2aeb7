package monitoring

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigilarc/vigil/cluster"
)

// The cluster's errors that reach the Service's callers, aliased so that the
// broker and the HTTP surface can tell them apart without importing the
// cluster (ARCHITECTURE.md: they reach it only through the Service).
var (
	// ErrNoLeader: no leader was known in time (no quorum, or an election).
	ErrNoLeader = cluster.ErrNoLeader
	// ErrNotLeader: this node is not the leader and could not forward.
	ErrNotLeader = cluster.ErrNotLeader
	// ErrUnknownOutcome: the command may or may not have been committed;
	// retrying with the same command ID is safe.
	ErrUnknownOutcome = cluster.ErrUnknownOutcome
	// ErrClusterClosed: this node's cluster member has been closed.
	ErrClusterClosed = cluster.ErrClosed
	// ErrCommandTooLarge: the command is larger than the cluster carries.
	ErrCommandTooLarge = cluster.ErrCommandTooLarge
	// ErrDiskFull: a node's disk is nearly full and writes are refused
	// until space is freed; nothing was written.
	ErrDiskFull = cluster.ErrDiskFull
)

// Sentinel errors of the monitoring package. Compare with errors.Is; a
// *RuleError matches the sentinel of its Code.
var (
	// ErrMalformedCommand refuses a command whose body cannot be decoded.
	ErrMalformedCommand = errors.New("malformed command")
	// ErrBusy refuses a password, PIN or secret check for a caller not yet
	// authenticated when the node's hash pool is full (hashpool.go): try
	// again in a moment.
	ErrBusy = errors.New("too many password checks at once on this node")
	// ErrBadDeviceSecret refuses a device whose ID is unknown or whose
	// secret is wrong; the two are not told apart.
	ErrBadDeviceSecret = errors.New("unknown device or wrong secret")

	ErrNotFound       = &RuleError{Code: CodeNotFound}       // no such organisation, worker, device, session or alarm
	ErrInvalid        = &RuleError{Code: CodeInvalid}        // a field is missing or wrong
	ErrConflict       = &RuleError{Code: CodeConflict}       // the change contradicts the current state
	ErrAlarmClosed    = &RuleError{Code: CodeAlarmClosed}    // the alarm is closed
	ErrNeedResolution = &RuleError{Code: CodeNeedResolution} // closing needs a resolution
	// ErrNeedConfirmation: closing needs how the worker's safety was
	// confirmed.
	ErrNeedConfirmation = &RuleError{Code: CodeNeedConfirmation}
	ErrWrongPIN         = &RuleError{Code: CodeWrongPIN}     // the PIN matched neither PIN
	ErrStalePIN         = &RuleError{Code: CodeStalePIN}     // the PINs changed since they were checked
	ErrSessionEnded     = &RuleError{Code: CodeSessionEnded} // the session has ended
	// ErrURNRefused: no police call on a lone-worker URN for this alarm
	// or force; 999 or 101 instead.
	ErrURNRefused = &RuleError{Code: CodeURNRefused}
	// ErrNeedBriefing: a genuine close needs an escalation contact briefed,
	// or why not.
	ErrNeedBriefing = &RuleError{Code: CodeNeedBriefing}
)

// Code names a rule that refused a command. The codes are part of the API:
// append only.
type Code string

// Refusal codes.
const (
	CodeNotFound       Code = "not_found"
	CodeInvalid        Code = "invalid"
	CodeConflict       Code = "conflict"
	CodeAlarmClosed    Code = "alarm_closed"
	CodeNeedResolution Code = "resolution_required"
	CodeWrongPIN       Code = "wrong_pin"
	CodeStalePIN       Code = "stale_pin"
	CodeSessionEnded   Code = "session_ended"
	// CodeNeedConfirmation: a close without how the worker's safety was
	// confirmed.
	CodeNeedConfirmation Code = "confirmation_required"
	// CodeURNRefused: a police call on a lone-worker URN for an alarm that
	// is not eligible, or a force the organisation holds no valid URN for.
	CodeURNRefused Code = "urn_refused"
	// CodeNeedBriefing: a genuine close with no escalation contact briefed
	// (or confirming the worker's welfare) and no reason why not.
	CodeNeedBriefing Code = "briefing_required"
	// CodeUpgrading: a command of a type that a member of the cluster,
	// running an older version during an upgrade, does not know yet
	// (rulesfloor.go). Try again once every node is upgraded.
	CodeUpgrading Code = "upgrade_in_progress"
)

// RuleError is a refusal by a rule of the domain. The state machine returns
// it to refuse a command (deterministically, on every node); the Service
// returns it before proposing when it can tell early. Its text, "code
// (field): message", crosses the cluster as a refusal and is parsed back by
// ParseRefusal.
type RuleError struct {
	Code  Code
	Field string // the field at fault, when one is
	Msg   string
}

func (e *RuleError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

// Is matches a sentinel RuleError with the same code.
func (e *RuleError) Is(target error) bool {
	t, ok := target.(*RuleError)
	return ok && t.Msg == "" && t.Code == e.Code
}

// ParseRefusal turns a refusal's text back into a *RuleError. Text that is
// not one becomes a RuleError with code conflict and the text as message.
func ParseRefusal(s string) *RuleError {
	code, rest, ok := strings.Cut(s, " ")
	if ok && strings.HasSuffix(code, ":") {
		return &RuleError{Code: Code(strings.TrimSuffix(code, ":")), Msg: rest}
	}
	if ok && strings.HasPrefix(rest, "(") {
		if field, msg, ok := strings.Cut(rest[1:], "): "); ok {
			return &RuleError{Code: Code(code), Field: field, Msg: msg}
		}
	}
	return &RuleError{Code: CodeConflict, Msg: s}
}

func ruleErr(code Code, field, format string, a ...any) *RuleError {
	return &RuleError{Code: code, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// invalid is a RuleError naming a field that is missing or wrong.
func invalid(field, format string, a ...any) *RuleError {
	return ruleErr(CodeInvalid, field, format, a...)
}

// FieldError refuses a command because one of its fields is invalid. The
// message names the field, so it can be shown to the user as it is.
type FieldError struct {
	Field  string // the field's name in the command's JSON body, such as "key"
	Reason string // what is wrong, such as "must not be empty"
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

func fieldErrorf(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}
