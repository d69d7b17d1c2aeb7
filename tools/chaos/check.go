package chaos

// The checker. Once every fault is healed and the load has stopped, it
// reads every node's whole state and compares it with what the devices and
// the operator were told:
//
//   - every event a device got a PUBACK and no refusal for was applied,
//     once, on every node: its command record is there (the Service keeps one per command
//     ID, in the same transaction as the change), and what it made is there
//     (the alarm, the session, the session ended);
//   - every alarm a device raised is the alarm of exactly one of its events:
//     an alarm no event's record names was raised twice;
//   - no alarm is closed that the operator did not close, and every close
//     the operator was answered for is there;
//   - every session let run out has exactly one missed-check-in alarm, and
//     its two deadlines (due, then grace) each fired once; a session ended
//     in time has none; acknowledgement deadlines fired at most once;
//   - all nodes have the same state hash at the same applied index, and the
//     same alarms.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

// maxProblems is how many problems a verdict lists in full.
const maxProblems = 50

// ackNoteSlack is how long after an alarm's last acknowledgement target an
// unacknowledged alarm must show the deadline's note.
const ackNoteSlack = 10 * time.Second

// nodeView is one node's state as the checker reads it.
type nodeView struct {
	name     string
	state    api.DiagStateResponse
	alarms   map[string]monitoring.DiagAlarm
	commands map[string]monitoring.DiagCommand // by command ID
	fires    []monitoring.AuditRecord          // deadline fires of sessions
	sessions map[string]*monitoring.Session    // the planned sessions it has
}

// checkInput is everything the checker judges.
type checkInput struct {
	attempts []sim.Attempt
	devices  map[string]bool // the simulated devices' IDs
	sessions []PlannedSession
	op       OperatorRecord
	views    []*nodeView
	now      time.Time // when the state was read
}

// Verdict is the checker's finding.
type Verdict struct {
	Events       int // distinct device events sent
	Acked        int // distinct device events PUBACKed
	AckedAlarms  int // of which alarms
	Lost         int // acked events (and answered closes) missing on a node
	Duplicated   int // events applied more than once
	Diverged     bool
	Rejected     int // acked events the state machine refused
	ClosedByOp   int // alarms closed, all by the operator
	Spurious     int // alarms closed that no operator closed
	Expired      int // sessions let run out, with their alarm, once
	DeadlineErrs int // deadlines that fired other than once
	Problems     []string
	problems     int // problems found, listed or not
}

// OK reports whether the verdict finds nothing wrong.
func (v *Verdict) OK() bool { return v.problems == 0 && !v.Diverged }

func (v *Verdict) problem(format string, a ...any) {
	v.problems++
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, a...))
	}
}

// sentEvent is one device event as the history tells it.
type sentEvent struct {
	device, id, typ string
	acked           bool
	reply           string
}

// eventKey is the part of a command ID that names a device event.
func eventKey(device, eventID string) string { return "dev/" + device + "/" + eventID }

// check judges in.
func check(in checkInput) *Verdict {
	v := &Verdict{}
	events := map[string]*sentEvent{}
	var order []string
	for _, a := range in.attempts {
		k := eventKey(a.Device, a.EventID)
		e := events[k]
		if e == nil {
			e = &sentEvent{device: a.Device, id: a.EventID, typ: a.Type}
			events[k] = e
			order = append(order, k)
		}
		e.acked = e.acked || a.Acked != nil
		if a.Reply != "" {
			e.reply = a.Reply
		}
	}
	v.Events = len(events)
	planned := map[string]bool{}
	for _, ps := range in.sessions {
		planned[ps.ID] = true
	}

	// The device events each node applied, by event key.
	byEvent := make([]map[string]monitoring.DiagCommand, len(in.views))
	for i, nv := range in.views {
		byEvent[i] = map[string]monitoring.DiagCommand{}
		for id, c := range nv.commands {
			_, key, ok := strings.Cut(id, "/")
			if !ok || !strings.HasPrefix(key, "dev/") {
				continue
			}
			if prev, dup := byEvent[i][key]; dup {
				v.Duplicated++
				v.problem("%s: device event %s applied as two commands, %s and %s", nv.name, key, prev.ID, id)
				continue
			}
			byEvent[i][key] = c
			if events[key] == nil {
				v.problem("%s: command %s is of an event the devices never sent", nv.name, id)
			}
		}
	}

	// Acked events: applied once everywhere, with their effect.
	lost := map[string]bool{}
	refusedDevices := map[string]int{} // refusals per device; only the first is listed
	for _, k := range order {
		e := events[k]
		if !e.acked {
			continue
		}
		v.Acked++
		if e.typ == "alarm" {
			v.AckedAlarms++
		}
		refused := e.reply != "" && e.reply != "ok"
		for i := range in.views {
			if c, ok := byEvent[i][k]; ok && c.Refused != "" {
				refused = true
				e.reply = c.Refused
			}
		}
		if refused {
			// PUBACKed, but answered with a refusal: the device was not
			// told it is saved, so it is not lost. No event of this load
			// should ever be refused: a refusal is a finding of its own.
			v.Rejected++
			if refusedDevices[e.device] == 0 {
				v.problem("event %s (%s), acked, was refused: %s", k, e.typ, e.reply)
			}
			refusedDevices[e.device]++
			continue
		}
		var firstAlarm string
		for i, nv := range in.views {
			c, ok := byEvent[i][k]
			if !ok {
				lost[k] = true
				v.problem("%s: acked %s event %s is missing", nv.name, e.typ, k)
				continue
			}
			switch e.typ {
			case "alarm":
				var a monitoring.Alarm
				if err := json.Unmarshal(c.Response, &a); err != nil || a.ID == "" {
					v.problem("%s: the record of alarm event %s names no alarm: %s", nv.name, k, c.Response)
					continue
				}
				if _, ok := nv.alarms[a.ID]; !ok {
					lost[k] = true
					v.problem("%s: alarm %s of acked event %s is missing", nv.name, a.ID, k)
				}
				if firstAlarm == "" {
					firstAlarm = a.ID
				} else if a.ID != firstAlarm {
					v.Diverged = true
					v.problem("%s: event %s raised alarm %s, another node says %s", nv.name, k, a.ID, firstAlarm)
				}
			case "session/start":
				var s monitoring.Session
				if json.Unmarshal(c.Response, &s) == nil && s.ID != "" && nv.sessions[s.ID] == nil && planned[s.ID] {
					lost[k] = true
					v.problem("%s: session %s of acked event %s is missing", nv.name, s.ID, k)
				}
			case "session/end":
				var r monitoring.SessionReply
				if json.Unmarshal(c.Response, &r) == nil && r.SessionID != "" && planned[r.SessionID] {
					if s := nv.sessions[r.SessionID]; s == nil || s.Status != monitoring.SessionEnded {
						lost[k] = true
						v.problem("%s: session %s, ended by acked event %s, is not ended", nv.name, r.SessionID, k)
					}
				}
			}
		}
	}
	v.Lost = len(lost)
	for _, dev := range slices.Sorted(maps.Keys(refusedDevices)) {
		if n := refusedDevices[dev]; n > 1 {
			v.problem("%s: %d more refusals after its first, as its sessions went on from the refused one", dev, n-1)
		}
	}

	// Alarms raised by devices: each the alarm of exactly one event.
	dupAlarms := map[string]bool{}
	for i, nv := range in.views {
		named := map[string]int{}
		for _, c := range byEvent[i] {
			var a monitoring.Alarm
			if c.Refused == "" && json.Unmarshal(c.Response, &a) == nil && a.ID != "" && a.Type != "" {
				named[a.ID]++
			}
		}
		for id, da := range nv.alarms {
			a := da.Alarm
			switch {
			case da.Raised != 1:
				dupAlarms[id] = true
				v.problem("%s: alarm %s was raised %d times", nv.name, id, da.Raised)
			case !in.devices[a.DeviceID] || !slices.Contains(deviceAlarmTypes, string(a.Type)):
			case named[id] == 0:
				dupAlarms[id] = true
				v.problem("%s: alarm %s (%s of %s, raised %s) is the alarm of no device event: an event applied twice",
					nv.name, id, a.Type, a.DeviceID, a.RaisedAt.Format(time.RFC3339Nano))
			case named[id] > 1:
				dupAlarms[id] = true
				v.problem("%s: alarm %s is the alarm of %d events", nv.name, id, named[id])
			}
		}
	}
	v.Duplicated += len(dupAlarms)

	checkCloses(v, in)
	checkSessions(v, in)
	checkAckDeadlines(v, in)
	checkSame(v, in)
	return v
}

func plannedSession(ps []PlannedSession, id string) bool {
	for _, s := range ps {
		if s.ID == id {
			return true
		}
	}
	return false
}

// checkCloses: every closed alarm was closed by the operator, and every
// close the operator was answered for is there.
func checkCloses(v *Verdict, in checkInput) {
	spurious := map[string]bool{}
	lostClose := map[string]bool{}
	for i, nv := range in.views {
		for id, da := range nv.alarms {
			a := da.Alarm
			if a.Status != monitoring.StatusClosed {
				if in.op.Closed[id] {
					lostClose[id] = true
					v.problem("%s: alarm %s, whose close the operator was answered for, is %s", nv.name, id, a.Status)
				}
				continue
			}
			if !in.op.Tried[id] || a.ClosedBy != OperatorActor {
				spurious[id] = true
				v.problem("%s: alarm %s is closed by %q with %q, but no operator closed it", nv.name, id, a.ClosedBy, a.Resolution)
			} else if i == 0 {
				v.ClosedByOp++
			}
		}
	}
	for id := range in.op.Closed {
		for _, nv := range in.views {
			if _, ok := nv.alarms[id]; !ok {
				lostClose[id] = true
				v.problem("%s: alarm %s, closed by the operator, is missing", nv.name, id)
			}
		}
	}
	v.Spurious = len(spurious)
	v.Lost += len(lostClose)
}

// fireSlack is how late a session's deadline may fire: the leader fires
// it, and a fault can leave the cluster without a leader, or a device
// unable to send, for some seconds. A session ended within this long after
// its timer (or its grace) ran out may or may not have fired that deadline
// before the end arrived, and either is right.
const fireSlack = 30 * time.Second

// sessionFate is what a session's deadlines must have done, judged by what
// the cluster recorded (when the session was due, when it ended), not by
// the plan: a device that could not send for a while starts and ends its
// sessions late, so a session planned to run out may be ended in time, and
// one planned to end in time may run out.
type sessionFate int

const (
	fateInTime  sessionFate = iota // ended before it was due, or not due yet: no deadline fired
	fateRanOut                     // ran out and stayed out: both deadlines fired, one alarm
	fateBetween                    // ended near a deadline: each fired at most once, in order
)

func fateOf(s *monitoring.Session, now time.Time) sessionFate {
	switch {
	case !s.EndedAt.IsZero() && !s.EndedAt.After(s.EndsAt):
		return fateInTime
	case s.EndedAt.IsZero() && now.Before(s.EndsAt):
		return fateInTime
	case s.EndedAt.IsZero() && now.After(s.EndsAt.Add(Grace+fireSlack)):
		return fateRanOut
	case !s.EndedAt.IsZero() && s.EndedAt.After(s.EndsAt.Add(Grace+fireSlack)):
		return fateRanOut
	}
	return fateBetween
}

// checkSessions: a session that ran out raised one missed-check-in alarm
// and fired each of its two deadlines once; a session ended in time raised
// none; no deadline fired twice.
func checkSessions(v *Verdict, in checkInput) {
	bad := map[string]bool{}
	ranOut := map[string]int{} // session ID -> nodes on which it ran out
	for _, nv := range in.views {
		missed := map[string][]string{} // session ID -> its missed-check-in alarms
		for id, da := range nv.alarms {
			if da.Alarm.Type == monitoring.AlarmMissedCheckIn {
				missed[da.Alarm.SessionID] = append(missed[da.Alarm.SessionID], id)
			}
		}
		due, grace := map[string]int{}, map[string]int{}
		for _, r := range nv.fires {
			id := strings.TrimPrefix(r.Subject, "session/")
			switch {
			case strings.HasPrefix(r.Detail, "due at"):
				due[id]++
			case strings.HasPrefix(r.Detail, "grace passed"):
				grace[id]++
			}
		}
		for _, ps := range in.sessions {
			s := nv.sessions[ps.ID]
			if s == nil {
				continue // never started
			}
			alarms, d, g := missed[ps.ID], due[ps.ID], grace[ps.ID]
			fate := fateOf(s, in.now)
			switch {
			case fate == fateInTime && (len(alarms) != 0 || d != 0 || g != 0):
				bad[ps.ID] = true
				v.problem("%s: session %s, ended in time or not yet due (status %s, due %s, ended %s), has %d missed-check-in alarms, due fired %d times, grace %d",
					nv.name, ps.ID, s.Status, stamp(s.EndsAt), stamp(s.EndedAt), len(alarms), d, g)
			case fate == fateRanOut && (len(alarms) != 1 || d != 1 || g != 1):
				bad[ps.ID] = true
				v.problem("%s: session %s ran out (status %s, due %s, ended %s): %d missed-check-in alarms %v, due fired %d times, grace %d; want 1, 1, 1",
					nv.name, ps.ID, s.Status, stamp(s.EndsAt), stamp(s.EndedAt), len(alarms), alarms, d, g)
			case fate == fateBetween && (d > 1 || g > d || len(alarms) != g):
				bad[ps.ID] = true
				v.problem("%s: session %s, ended near its deadlines (due %s, ended %s): %d missed-check-in alarms %v, due fired %d times, grace %d; want at most once each, grace after due, one alarm per grace",
					nv.name, ps.ID, stamp(s.EndsAt), stamp(s.EndedAt), len(alarms), alarms, d, g)
			case len(alarms) == 1 && s.AlarmID != alarms[0]:
				bad[ps.ID] = true
				v.problem("%s: session %s names alarm %q, its missed-check-in alarm is %s", nv.name, ps.ID, s.AlarmID, alarms[0])
			case fate == fateRanOut:
				ranOut[ps.ID]++
			}
		}
		for sid, alarms := range missed {
			if len(alarms) > 1 && !plannedSession(in.sessions, sid) {
				bad[sid] = true
				v.problem("%s: session %s has %d missed-check-in alarms", nv.name, sid, len(alarms))
			}
		}
	}
	for id, n := range ranOut {
		if n == len(in.views) && !bad[id] {
			v.Expired++
		}
	}
	v.DeadlineErrs += len(bad)
}

// stamp formats a time for a problem's text.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000")
}

// checkAckDeadlines: each acknowledgement deadline of an alarm left alone
// fired once, and none fired twice.
func checkAckDeadlines(v *Verdict, in checkInput) {
	bad := map[string]bool{}
	for _, nv := range in.views {
		for id, da := range nv.alarms {
			a := da.Alarm
			notes := [2]int{}
			for _, te := range da.Timeline {
				if te.Kind != monitoring.ActionNote || te.Actor != "system" {
					continue
				}
				for i, target := range []time.Duration{monitoring.AckTarget1, monitoring.AckTarget2} {
					if te.Text == fmt.Sprintf("not acknowledged within %d s", int(target/time.Second)) {
						notes[i]++
					}
				}
			}
			leftAlone := a.Type != monitoring.AlarmTest && a.AckAt.IsZero() && a.Status != monitoring.StatusClosed &&
				in.now.Sub(a.RaisedAt) > monitoring.AckTarget2+ackNoteSlack
			switch {
			case notes[0] > 1 || notes[1] > 1:
				bad[id] = true
				v.problem("%s: alarm %s: acknowledgement deadlines fired %d and %d times", nv.name, id, notes[0], notes[1])
			case leftAlone && (notes[0] != 1 || notes[1] != 1):
				bad[id] = true
				v.problem("%s: alarm %s, never acknowledged, raised %s: acknowledgement deadlines fired %d and %d times, want once each",
					nv.name, id, in.now.Sub(a.RaisedAt).Round(time.Second), notes[0], notes[1])
			}
		}
	}
	v.DeadlineErrs += len(bad)
}

// checkSame: every node has the same hash at the same index and the same
// alarms in the same states.
func checkSame(v *Verdict, in checkInput) {
	if len(in.views) == 0 {
		return
	}
	first := in.views[0]
	for _, nv := range in.views[1:] {
		if nv.state.AppliedIndex == first.state.AppliedIndex && nv.state.Hash != first.state.Hash {
			v.Diverged = true
			v.problem("%s and %s differ at applied index %d: state hash %.12s and %.12s",
				first.name, nv.name, nv.state.AppliedIndex, first.state.Hash, nv.state.Hash)
		}
		for id, da := range first.alarms {
			other, ok := nv.alarms[id]
			switch {
			case !ok:
				v.Diverged = true
				v.problem("alarm %s is on %s, not on %s", id, first.name, nv.name)
			case other.Alarm.Status != da.Alarm.Status || other.Alarm.ClosedBy != da.Alarm.ClosedBy:
				v.Diverged = true
				v.problem("alarm %s is %s on %s, %s on %s", id, da.Alarm.Status, first.name, other.Alarm.Status, nv.name)
			}
		}
		for id := range nv.alarms {
			if _, ok := first.alarms[id]; !ok {
				v.Diverged = true
				v.problem("alarm %s is on %s, not on %s", id, nv.name, first.name)
			}
		}
	}
}
