package chaos

// The deadlines' promises: a session let run out raises one
// missed-check-in alarm, its due and grace deadlines fire once each, and
// an alarm left alone shows each acknowledgement deadline once.

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// ackNoteSlack is how long after an alarm's last acknowledgement target an
// unacknowledged alarm must show the deadline's note.
const ackNoteSlack = 10 * time.Second

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

// checkSessions checks that a session that ran out raised one
// missed-check-in alarm and fired each of its two deadlines once; a
// session ended in time raised none; no deadline fired twice.
func checkSessions(v *Verdict, in checkInput, ix *checkIndex) {
	bad := map[string]bool{}
	ranOut := map[string]int{} // session ID -> nodes on which it ran out
	for _, nv := range in.views {
		missed := missedCheckIns(nv)
		due, grace := deadlineFires(nv)
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
			if len(alarms) > 1 && !ix.planned[sid] {
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

// missedCheckIns returns nv's missed-check-in alarms, by session ID.
func missedCheckIns(nv *nodeView) map[string][]string {
	missed := map[string][]string{}
	for id, da := range nv.alarms {
		if da.Alarm.Type == monitoring.AlarmMissedCheckIn {
			missed[da.Alarm.SessionID] = append(missed[da.Alarm.SessionID], id)
		}
	}
	return missed
}

// deadlineFires counts, by session ID, how many times nv fired each
// session's due deadline and its grace deadline.
func deadlineFires(nv *nodeView) (due, grace map[string]int) {
	due, grace = map[string]int{}, map[string]int{}
	for _, r := range nv.fires {
		id := strings.TrimPrefix(r.Subject, "session/")
		switch {
		case strings.HasPrefix(r.Detail, "due at"):
			due[id]++
		case strings.HasPrefix(r.Detail, "grace passed"):
			grace[id]++
		}
	}
	return due, grace
}

// stamp formats a time for a problem's text.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000")
}

// checkAckDeadlines checks that each acknowledgement deadline of an alarm
// left alone fired once, and none fired twice.
func checkAckDeadlines(v *Verdict, in checkInput, _ *checkIndex) {
	bad := map[string]bool{}
	for _, nv := range in.views {
		for id, da := range nv.alarms {
			a := da.Alarm
			notes := ackNotes(da)
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

// ackNotes counts the notes in da's timeline of its first and of its
// second acknowledgement deadline.
func ackNotes(da monitoring.DiagAlarm) [2]int {
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
	return notes
}
