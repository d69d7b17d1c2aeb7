package monitoring

// The Service's session methods: start, check in, extend, end, and the
// active sessions query.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// StartSessionRequest is what a worker (or an operator for them) gives to
// start a session.
type StartSessionRequest struct {
	SessionID string // optional; the Service makes one when empty
	WorkerID  string
	DeviceID  string
	// Duration is the expected length; 0 takes the organisation's default
	// (DefaultSessionDuration if it has none).
	Duration time.Duration
	// CheckInInterval is 0 for the organisation's default (often none), or
	// 5 minutes to 24 hours.
	CheckInInterval time.Duration
	Location        *Location
	Update          string // the Update message: "high-risk tenant, second floor"
}

// StartSession starts a timed session and returns it. A pooled device is
// assigned to the worker; a device in another worker's session is refused
// with CodeConflict, as is a second session for the worker.
func (s *Service) StartSession(ctx context.Context, cmdID, actor string, req StartSessionRequest) (*Session, error) {
	if req.SessionID == "" {
		req.SessionID = s.NewID()
	}
	if err := validID("session_id", req.SessionID); err != nil {
		return nil, err
	}
	if err := validID("worker_id", req.WorkerID); err != nil {
		return nil, err
	}
	if err := validID("device_id", req.DeviceID); err != nil {
		return nil, err
	}
	switch {
	case req.Duration < 0:
		return nil, invalid("duration", "must not be negative")
	case req.Duration > MaxSessionDuration:
		return nil, invalid("duration", "%s is longer than %s", req.Duration, MaxSessionDuration)
	case req.CheckInInterval < 0:
		return nil, invalid("checkin_interval", "must not be negative")
	}
	if err := validCheckInInterval("checkin_interval", req.CheckInInterval); err != nil {
		return nil, err
	}
	if err := validText("update", req.Update); err != nil {
		return nil, err
	}
	if err := checkLocation(req.Location); err != nil {
		return nil, err
	}
	if req.Duration == 0 || req.CheckInInterval == 0 {
		var org *Organisation
		err := s.view(func(txn *badger.Txn) error {
			w, err := getWorker(txn, req.WorkerID)
			if err != nil {
				return err
			}
			org, err = getOrg(txn, w.OrgID)
			return err
		})
		if err != nil {
			return nil, err
		}
		if req.Duration == 0 {
			req.Duration = org.DefaultSession
			if req.Duration == 0 {
				req.Duration = DefaultSessionDuration
			}
		}
		if req.CheckInInterval == 0 {
			req.CheckInInterval = org.DefaultCheckIn
		}
	}
	cmd := startSessionCmd{
		Header: s.header(actor), SessionID: req.SessionID, WorkerID: req.WorkerID, DeviceID: req.DeviceID,
		Duration: req.Duration, CheckInInterval: req.CheckInInterval, Location: req.Location, Update: req.Update,
	}
	res, err := s.propose(ctx, cmdID, CmdStartSession, cmd)
	if err != nil {
		return nil, err
	}
	return decodeResponse[Session](res.Response)
}

// CheckIn records that the worker is safe and restarts the check-in timer.
// See sessionAction for the PIN.
func (s *Service) CheckIn(ctx context.Context, cmdID, actor, sessionID, pin string) (SessionReply, error) {
	return s.sessionAction(ctx, cmdID, actor, sessionID, pin, SessionCheckIn, 0)
}

// Extend moves the session's expected end by d (from now, if the end has
// passed), and counts as a check-in.
func (s *Service) Extend(ctx context.Context, cmdID, actor, sessionID, pin string, d time.Duration) (SessionReply, error) {
	if d <= 0 || d > MaxSessionDuration {
		return SessionReply{}, invalid("extend_by", "must be in (0, %s]", MaxSessionDuration)
	}
	return s.sessionAction(ctx, cmdID, actor, sessionID, pin, SessionExtend, d)
}

// EndSession ends the session.
func (s *Service) EndSession(ctx context.Context, cmdID, actor, sessionID, pin string) (SessionReply, error) {
	return s.sessionAction(ctx, cmdID, actor, sessionID, pin, SessionEnd, 0)
}

// sessionAction checks pin against both of the worker's PINs (always both:
// the time taken must not reveal which matched), then proposes the action
// with the outcome. A worker with a Safe PIN must give a PIN. The reply is
// identical for the Safe and the Duress PIN but for its audio reference, a
// fresh ID of one form either way (audioref.go); the Duress PIN also raises
// a silent duress alarm, whose ID that reference is. A wrong PIN returns a *RuleError with CodeWrongPIN
// and is counted; the session keeps running. CodeStalePIN means the PINs
// changed meanwhile: ask again, and retry with a new command ID.
func (s *Service) sessionAction(ctx context.Context, cmdID, actor, sessionID, pin string, action SessionActionKind, extend time.Duration) (SessionReply, error) {
	if err := validID("session_id", sessionID); err != nil {
		return SessionReply{}, err
	}
	if pin != "" {
		if err := validatePIN("pin", pin); err != nil {
			return SessionReply{}, err
		}
	}
	var w *Worker
	err := s.view(func(txn *badger.Txn) error {
		sess, err := getSession(txn, sessionID)
		if err != nil {
			return err
		}
		if sess.Status == SessionEnded {
			// A resend of the action that ended it gets its first reply
			// from propose (found by the chaos harness, seed 6).
			if resent, err := cluster.CommandApplied(txn, CmdSessionAction.String()+"/"+cmdID); err != nil || !resent {
				var ended error = ruleErr(CodeSessionEnded, "session_id", "session %q has ended", sessionID)
				return cmp.Or(err, ended)
			}
		}
		w, err = getWorker(txn, sess.WorkerID)
		return err
	})
	if err != nil {
		return SessionReply{}, err
	}
	outcome := pinNone // a worker without a Safe PIN needs none; one given is ignored
	switch {
	case w.SafePINHash == "":
	case pin != "":
		if outcome, err = s.checkWorkerPINs(ctx, w, pin); err != nil {
			return SessionReply{}, err
		}
	default:
		return SessionReply{}, invalid("pin", "a PIN is required")
	}
	cmd := sessionActionCmd{
		Header: s.header(actor), SessionID: sessionID, Action: action, ExtendBy: extend,
		PIN: outcome, PINVersion: w.PINVersion,
		AlarmID: s.NewID(), // always made, so the command looks the same whichever PIN
		Rules:   RulesSessionAudioRef,
	}
	res, err := s.propose(ctx, cmdID, CmdSessionAction, cmd)
	if err != nil {
		return SessionReply{}, err
	}
	r, err := decodeResponse[sessionActionResult](res.Response)
	if err != nil {
		return SessionReply{}, err
	}
	if r.WrongPIN {
		return SessionReply{}, ruleErr(CodeWrongPIN, "pin", "the PIN is wrong (%d wrong since the last right one)", r.WrongPINs)
	}
	return r.SessionReply, nil
}

// ActiveSession is a session not ended, with the time left on its timer.
type ActiveSession struct {
	Session
	// TimeLeft is until NextDue (while active) or GraceUntil (while
	// overdue); negative once passed. Zero once an alarm is raised.
	TimeLeft time.Duration `json:"time_left_ns"`
}

// ActiveSessions returns the sessions not ended, the soonest due first.
func (s *Service) ActiveSessions() ([]ActiveSession, error) {
	now := s.Now()
	out := []ActiveSession{}
	err := s.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pActive, false, func(key, _ []byte) (bool, error) {
			id := string(key[len(pActive):])
			sess, err := getSession(txn, id)
			if err != nil {
				return false, fmt.Errorf("index %s: %w", key, err)
			}
			a := ActiveSession{Session: *sess}
			switch sess.Status {
			case SessionActive:
				a.TimeLeft = sess.NextDue.Sub(now)
			case SessionOverdue:
				a.TimeLeft = sess.GraceUntil.Sub(now)
			}
			out = append(out, a)
			return true, nil
		})
	})
	slices.SortStableFunc(out, func(a, b ActiveSession) int {
		if c := a.NextDue.Compare(b.NextDue); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// Session returns one session.
func (s *Service) Session(id string) (*Session, error) {
	var sess *Session
	err := s.view(func(txn *badger.Txn) (err error) {
		sess, err = getSession(txn, id)
		return err
	})
	return sess, err
}
