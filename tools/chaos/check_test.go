package chaos

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

// checkWorld is a small consistent world for the checker's tests: three
// nodes that agree, two acked alarm events, a session let run out, a
// session ended in time, and an alarm the operator closed.
type checkWorld struct {
	in  checkInput
	now time.Time
}

func newCheckWorld() *checkWorld {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { t := t0.Add(time.Duration(s) * time.Second); return &t }
	w := &checkWorld{now: t0.Add(10 * time.Minute)}
	w.in = checkInput{
		devices: map[string]bool{"cx-d001": true, "cx-d002": true},
		sessions: []PlannedSession{
			{ID: "s-exp", Device: "cx-d002", Expires: true, Duration: ExpiringSession},
			{ID: "s-end", Device: "cx-d002", Duration: normalSession},
		},
		op:  OperatorRecord{Tried: map[string]bool{"a1": true}, Closed: map[string]bool{"a1": true}},
		now: w.now,
		attempts: []sim.Attempt{
			{Device: "cx-d001", EventID: "o-1", Type: "alarm", Attempt: 1, Sent: *at(0), Error: "no PUBACK in time"},
			{Device: "cx-d001", EventID: "o-1", Type: "alarm", Attempt: 2, Sent: *at(10), Acked: at(11), Reply: "ok"},
			{Device: "cx-d001", EventID: "o-2", Type: "alarm", Attempt: 1, Sent: *at(12), Acked: at(12), Reply: "ok"},
			{Device: "cx-d001", EventID: "o-3", Type: "alarm", Attempt: 1, Sent: *at(13), Error: "connection lost"},
			{Device: "cx-d002", EventID: "o-1", Type: "session/start", Attempt: 1, Sent: *at(1), Acked: at(1), Reply: "ok"},
			{Device: "cx-d002", EventID: "o-2", Type: "session/end", Attempt: 1, Sent: *at(70), Acked: at(70), Reply: "ok"},
			{Device: "cx-d002", EventID: "o-3", Type: "session/start", Attempt: 1, Sent: *at(80), Acked: at(80), Reply: "ok"},
			{Device: "cx-d002", EventID: "o-4", Type: "session/end", Attempt: 1, Sent: *at(90), Acked: at(90), Reply: "ok"},
		},
	}
	alarm := func(id, dev string, typ monitoring.AlarmType, raised int) monitoring.Alarm {
		return monitoring.Alarm{ID: id, Type: typ, DeviceID: dev, RaisedAt: *at(raised), Status: monitoring.StatusRaised}
	}
	notes := func(n int) []monitoring.TimelineEntry {
		tl := []monitoring.TimelineEntry{{Kind: monitoring.ActionRaised}}
		for _, s := range []int{10, 40}[:n] {
			tl = append(tl, monitoring.TimelineEntry{Kind: monitoring.ActionNote, Actor: "system", Text: fmt.Sprintf("not acknowledged within %d s", s)})
		}
		return tl
	}
	a1 := alarm("a1", "cx-d001", monitoring.AlarmRedAlert, 11)
	a1.Status, a1.ClosedBy, a1.AckAt = monitoring.StatusClosed, OperatorActor, *at(15)
	a2 := alarm("a2", "cx-d001", monitoring.AlarmManDown, 12)
	a3 := alarm("a3", "cx-d002", monitoring.AlarmMissedCheckIn, 21)
	a3.SessionID = "s-exp"
	for _, name := range []string{"n1", "n2", "n3"} {
		w.in.views = append(w.in.views, &nodeView{
			name:  name,
			state: api.DiagStateResponse{AppliedIndex: 100, Hash: "abc"},
			alarms: map[string]monitoring.DiagAlarm{
				"a1": {Alarm: a1, Timeline: notes(0), Raised: 1},
				"a2": {Alarm: a2, Timeline: notes(2), Raised: 1},
				"a3": {Alarm: a3, Timeline: notes(2), Raised: 1},
			},
			commands: map[string]monitoring.DiagCommand{
				"CmdRaiseAlarm/dev/cx-d001/o-1":    diagCommand("CmdRaiseAlarm/dev/cx-d001/o-1", a1),
				"CmdRaiseAlarm/dev/cx-d001/o-2":    diagCommand("CmdRaiseAlarm/dev/cx-d001/o-2", a2),
				"CmdStartSession/dev/cx-d002/o-1":  diagCommand("CmdStartSession/dev/cx-d002/o-1", monitoring.Session{ID: "s-exp"}),
				"CmdSessionAction/dev/cx-d002/o-2": diagCommand("CmdSessionAction/dev/cx-d002/o-2", monitoring.SessionReply{SessionID: "s-exp"}),
				"CmdStartSession/dev/cx-d002/o-3":  diagCommand("CmdStartSession/dev/cx-d002/o-3", monitoring.Session{ID: "s-end"}),
				"CmdSessionAction/dev/cx-d002/o-4": diagCommand("CmdSessionAction/dev/cx-d002/o-4", monitoring.SessionReply{SessionID: "s-end"}),
			},
			fires: []monitoring.AuditRecord{
				{Subject: "session/s-exp", Command: "CmdFireDeadline", Detail: "due at ..."},
				{Subject: "session/s-exp", Command: "CmdFireDeadline", Detail: "grace passed at ..."},
			},
			sessions: map[string]*monitoring.Session{
				"s-exp": {ID: "s-exp", Status: monitoring.SessionEnded, AlarmID: "a3", StartedAt: *at(1), EndsAt: *at(16), EndedAt: *at(70)},
				"s-end": {ID: "s-end", Status: monitoring.SessionEnded, StartedAt: *at(80), EndsAt: at(80).Add(normalSession), EndedAt: *at(90)},
			},
		})
	}
	return w
}

// diagCommand is a node's record of command id, which returned v.
func diagCommand(id string, v any) monitoring.DiagCommand {
	b, _ := json.Marshal(v)
	return monitoring.DiagCommand{ID: id, Index: 1, Response: b}
}

// editAlarm changes alarm id of nv.
func editAlarm(nv *nodeView, id string, edit func(da *monitoring.DiagAlarm)) {
	da := nv.alarms[id]
	edit(&da)
	nv.alarms[id] = da
}

// promise is one of the checks check makes.
type promise func(v *Verdict, in checkInput, ix *checkIndex)

func TestCheck_ConsistentWorldPasses(t *testing.T) {
	v := check(newCheckWorld().in)
	if !v.OK() || v.Events != 7 || v.Acked != 6 || v.AckedAlarms != 2 || v.Expired != 1 || v.ClosedByOp != 1 {
		t.Fatalf("verdict %+v", v)
	}
}

// The deadlines are judged by what the cluster recorded, not by the plan:
// a device held up by a fault starts and ends its sessions late.
func TestCheck_SessionsJudgedByTheirRecordedTimes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(w *checkWorld)
	}{
		{"planned to run out, ended before it was due", func(w *checkWorld) {
			for _, nv := range w.in.views {
				s := nv.sessions["s-exp"]
				s.EndedAt, s.AlarmID = s.EndsAt.Add(-time.Second), ""
				delete(nv.alarms, "a3")
				nv.fires = nil
			}
		}},
		{"planned to run out, ended in its grace after the due fired", func(w *checkWorld) {
			for _, nv := range w.in.views {
				s := nv.sessions["s-exp"]
				s.EndedAt, s.AlarmID = s.EndsAt.Add(3*time.Second), ""
				delete(nv.alarms, "a3")
				nv.fires = nv.fires[:1]
			}
		}},
		{"ended late, after the alarm a late deadline raised", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].EndedAt = nv.sessions["s-exp"].EndsAt.Add(Grace + time.Second)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld()
			tc.spoil(w)
			if v := check(w.in); !v.OK() {
				t.Errorf("verdict %+v\nproblems:\n%s", v, strings.Join(v.Problems, "\n"))
			}
		})
	}
}

func TestCheck_FindsBrokenPromises(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(w *checkWorld)
		want  func(v *Verdict) bool
		text  string
		by    promise // the check that finds it on its own
	}{
		{"an acked alarm missing on one node", func(w *checkWorld) { delete(w.in.views[1].alarms, "a2") },
			func(v *Verdict) bool { return v.Lost == 1 }, "n2: alarm a2 of acked event", checkAcked},
		{"an acked event's record missing", func(w *checkWorld) { delete(w.in.views[2].commands, "CmdRaiseAlarm/dev/cx-d001/o-2") },
			func(v *Verdict) bool { return v.Lost == 1 }, "n3: acked alarm event dev/cx-d001/o-2 is missing", checkAcked},
		{"an acked session end not applied", func(w *checkWorld) { w.in.views[0].sessions["s-end"].Status = monitoring.SessionActive },
			func(v *Verdict) bool { return v.Lost == 1 }, "session s-end, ended by acked event", checkAcked},
		{"an alarm raised twice", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.alarms["a9"] = monitoring.DiagAlarm{Alarm: monitoring.Alarm{ID: "a9", Type: monitoring.AlarmRedAlert, DeviceID: "cx-d001", Status: monitoring.StatusRaised}, Raised: 1}
			}
		}, func(v *Verdict) bool { return v.Duplicated == 1 }, "is the alarm of no device event", checkAlarmsOnce},
		{"an alarm closed by nobody", func(w *checkWorld) {
			for _, nv := range w.in.views {
				a := nv.alarms["a2"]
				a.Alarm.Status, a.Alarm.ClosedBy = monitoring.StatusClosed, "system"
				nv.alarms["a2"] = a
			}
		}, func(v *Verdict) bool { return v.Spurious == 1 && v.Lost == 0 }, "no operator closed it", checkCloses},
		{"an answered close lost", func(w *checkWorld) {
			a := w.in.views[0].alarms["a1"]
			a.Alarm.Status = monitoring.StatusAcknowledged
			w.in.views[0].alarms["a1"] = a
		}, func(v *Verdict) bool { return v.Lost == 1 && v.Diverged }, "whose close the operator was answered for", checkCloses},
		{"a deadline that did not fire", func(w *checkWorld) {
			for _, nv := range w.in.views {
				delete(nv.alarms, "a3")
				nv.fires = nv.fires[:1]
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 && v.Expired == 0 }, "session s-exp ran out", checkSessions},
		{"a session ended in time with an alarm", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].EndedAt = nv.sessions["s-exp"].EndsAt.Add(-time.Second)
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "session s-exp, ended in time", checkSessions},
		{"a grace deadline without its alarm", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].EndedAt = nv.sessions["s-exp"].EndsAt.Add(Grace + time.Second)
				delete(nv.alarms, "a3")
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "ended near its deadlines", checkSessions},
		{"a deadline that fired twice", func(w *checkWorld) {
			w.in.views[1].fires = append(w.in.views[1].fires, w.in.views[1].fires[1])
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "grace 2;", checkSessions},
		{"an acknowledgement deadline that fired twice", func(w *checkWorld) {
			a := w.in.views[0].alarms["a2"]
			a.Timeline = append(a.Timeline, a.Timeline[1])
			w.in.views[0].alarms["a2"] = a
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "fired 2 and 1 times", checkAckDeadlines},
		{"different hashes at one index", func(w *checkWorld) { w.in.views[2].state.Hash = "def" },
			func(v *Verdict) bool { return v.Diverged }, "differ at applied index 100", checkSame},
		{"a refused event", func(w *checkWorld) {
			w.in.attempts[4].Reply = "conflict"
		}, func(v *Verdict) bool { return v.Rejected == 1 && v.Lost == 0 }, "was refused: conflict", checkAcked},
		{"an event refused before it was proposed", func(w *checkWorld) {
			w.in.attempts[7].Reply = "not_found" // the session end, which then has no record
			for _, nv := range w.in.views {
				delete(nv.commands, "CmdSessionAction/dev/cx-d002/o-4")
				nv.sessions["s-end"].Status = monitoring.SessionActive
			}
		}, func(v *Verdict) bool { return v.Rejected == 1 && v.Lost == 0 }, "was refused: not_found", checkAcked},
		{"an acked event its records refuse", func(w *checkWorld) {
			for _, nv := range w.in.views {
				c := nv.commands["CmdRaiseAlarm/dev/cx-d001/o-2"]
				c.Refused, c.Response = "conflict", nil
				nv.commands[c.ID] = c
				delete(nv.alarms, "a2")
			}
		}, func(v *Verdict) bool { return v.Rejected == 1 && v.Lost == 0 && v.Duplicated == 0 && !v.Diverged },
			"event dev/cx-d001/o-2 (alarm), acked, was refused: conflict", checkAcked},
		{"a device refused again after its first refusal", func(w *checkWorld) {
			w.in.attempts[4].Reply = "conflict"
			w.in.attempts[6].Reply = "conflict"
		}, func(v *Verdict) bool { return v.Rejected == 2 && v.Lost == 0 }, "cx-d002: 1 more refusals after its first", checkAcked},
		{"an acked session start whose session is missing", func(w *checkWorld) { delete(w.in.views[0].sessions, "s-end") },
			func(v *Verdict) bool { return v.Lost == 2 }, "n1: session s-end of acked event dev/cx-d002/o-3 is missing", checkAcked},
		{"an alarm event's record naming no alarm", func(w *checkWorld) {
			w.in.views[1].commands["CmdRaiseAlarm/dev/cx-d001/o-2"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-2", struct{}{})
		}, func(v *Verdict) bool { return v.Lost == 0 && v.Duplicated == 1 }, "n2: the record of alarm event dev/cx-d001/o-2 names no alarm: {}", checkAcked},
		{"an event that raised different alarms on two nodes", func(w *checkWorld) {
			nv := w.in.views[2]
			nv.commands["CmdRaiseAlarm/dev/cx-d001/o-2"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-2", nv.alarms["a1"].Alarm)
		}, func(v *Verdict) bool { return v.Diverged }, "n3: event dev/cx-d001/o-2 raised alarm a1, another node says a2", checkAcked},
		{"a device event applied as two commands", func(w *checkWorld) {
			nv := w.in.views[0]
			nv.commands["CmdStartSession/dev/cx-d001/o-2"] = diagCommand("CmdStartSession/dev/cx-d001/o-2", nv.alarms["a2"].Alarm)
		}, func(v *Verdict) bool { return v.Duplicated == 1 && v.Lost == 0 }, "n1: device event dev/cx-d001/o-2 applied as two commands", checkRecords},
		{"a command of an event no device sent", func(w *checkWorld) {
			w.in.views[1].commands["CmdRaiseAlarm/dev/cx-d001/o-9"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-9", struct{}{})
		}, func(v *Verdict) bool { return v.Lost == 0 && v.Duplicated == 0 },
			"n2: command CmdRaiseAlarm/dev/cx-d001/o-9 is of an event the devices never sent", checkRecords},
		{"an alarm with two raise records", func(w *checkWorld) {
			editAlarm(w.in.views[2], "a2", func(da *monitoring.DiagAlarm) { da.Raised = 2 })
		}, func(v *Verdict) bool { return v.Duplicated == 1 }, "n3: alarm a2 was raised 2 times", checkAlarmsOnce},
		{"an alarm that is the alarm of two events", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.commands["CmdRaiseAlarm/dev/cx-d001/o-1"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-1", nv.alarms["a2"].Alarm)
			}
		}, func(v *Verdict) bool { return v.Duplicated == 2 && !v.Diverged }, "alarm a2 is the alarm of 2 events", checkAlarmsOnce},
		{"a close by the operator missing everywhere", func(w *checkWorld) { w.in.op.Tried["a0"], w.in.op.Closed["a0"] = true, true },
			func(v *Verdict) bool { return v.Lost == 1 && v.Spurious == 0 }, "n3: alarm a0, closed by the operator, is missing", checkCloses},
		{"an alarm closed as by the operator that no operator closed", func(w *checkWorld) { w.in.op = OperatorRecord{} },
			func(v *Verdict) bool { return v.Spurious == 1 && v.ClosedByOp == 0 },
			fmt.Sprintf("n1: alarm a1 is closed by %q with \"\", but no operator closed it", OperatorActor), checkCloses},
		{"a session naming another alarm than its missed check-in", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].AlarmID = "a9"
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 && v.Expired == 0 }, `session s-exp names alarm "a9", its missed-check-in alarm is a3`, checkSessions},
		{"a session nobody planned with two missed-check-in alarms", func(w *checkWorld) {
			for _, nv := range w.in.views {
				for _, id := range []string{"x1", "x2"} {
					da := nv.alarms["a3"]
					da.Alarm.ID, da.Alarm.SessionID = id, "s-x"
					nv.alarms[id] = da
				}
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 && v.Expired == 1 }, "n1: session s-x has 2 missed-check-in alarms", checkSessions},
		{"an alarm left alone whose second acknowledgement deadline never fired", func(w *checkWorld) {
			for _, nv := range w.in.views {
				editAlarm(nv, "a2", func(da *monitoring.DiagAlarm) { da.Timeline = da.Timeline[:2] })
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "acknowledgement deadlines fired 1 and 0 times, want once each", checkAckDeadlines},
		{"an alarm on one node only", func(w *checkWorld) {
			w.in.views[1].alarms["t1"] = monitoring.DiagAlarm{Raised: 1,
				Alarm: monitoring.Alarm{ID: "t1", Type: monitoring.AlarmTest, DeviceID: "console", Status: monitoring.StatusRaised}}
		}, func(v *Verdict) bool { return v.Diverged && v.Duplicated == 0 }, "alarm t1 is on n2, not on n1", checkSame},
		{"an alarm in different states on two nodes", func(w *checkWorld) {
			editAlarm(w.in.views[2], "a2", func(da *monitoring.DiagAlarm) { da.Alarm.Status = monitoring.StatusAcknowledged })
		}, func(v *Verdict) bool { return v.Diverged && v.Lost == 0 }, "alarm a2 is raised on n1, acknowledged on n3", checkSame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld()
			tc.spoil(w)
			v := check(w.in)
			if v.OK() || !tc.want(v) || !strings.Contains(strings.Join(v.Problems, "\n"), tc.text) {
				t.Errorf("verdict %+v\nproblems:\n%s\nwant one saying %q", v, strings.Join(v.Problems, "\n"), tc.text)
			}
			alone := &Verdict{}
			tc.by(alone, w.in, newCheckIndex(w.in))
			if !strings.Contains(strings.Join(alone.Problems, "\n"), tc.text) {
				t.Errorf("on its own, its check finds:\n%s\nwant one saying %q", strings.Join(alone.Problems, "\n"), tc.text)
			}
		})
	}
}

func TestCheck_KeptPromisesPass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(w *checkWorld)
	}{
		{"an event applied though never acked", func(w *checkWorld) {
			for _, nv := range w.in.views {
				da := nv.alarms["a2"]
				da.Alarm.ID = "a4"
				nv.alarms["a4"] = da
				nv.commands["CmdRaiseAlarm/dev/cx-d001/o-3"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-3", da.Alarm)
			}
		}},
		{"an alarm no simulated device raised, of no event", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.alarms["t1"] = monitoring.DiagAlarm{Raised: 1,
					Alarm: monitoring.Alarm{ID: "t1", Type: monitoring.AlarmTest, DeviceID: "console", Status: monitoring.StatusRaised}}
			}
		}},
		{"a session not due yet, its end never acked", func(w *checkWorld) {
			w.in.attempts[7].Acked, w.in.attempts[7].Reply = nil, ""
			for _, nv := range w.in.views {
				delete(nv.commands, "CmdSessionAction/dev/cx-d002/o-4")
				s := nv.sessions["s-end"]
				s.Status, s.EndedAt = monitoring.SessionActive, time.Time{}
			}
		}},
		{"an acked session start of a session not in the plan", func(w *checkWorld) {
			w.in.sessions = w.in.sessions[:1]
			for _, nv := range w.in.views {
				delete(nv.sessions, "s-end")
			}
		}},
		{"an alarm acknowledged before its deadlines", func(w *checkWorld) {
			for _, nv := range w.in.views {
				editAlarm(nv, "a2", func(da *monitoring.DiagAlarm) {
					da.Alarm.Status, da.Alarm.AckAt, da.Timeline = monitoring.StatusAcknowledged, da.Alarm.RaisedAt.Add(time.Second), da.Timeline[:1]
				})
			}
		}},
		{"an alarm too recent for its deadlines", func(w *checkWorld) {
			for _, nv := range w.in.views {
				editAlarm(nv, "a2", func(da *monitoring.DiagAlarm) {
					da.Alarm.RaisedAt, da.Timeline = w.now.Add(-30*time.Second), da.Timeline[:1]
				})
			}
		}},
		{"nodes at different applied indexes with different hashes", func(w *checkWorld) {
			w.in.views[1].state = api.DiagStateResponse{AppliedIndex: 101, Hash: "def"}
		}},
		{"a close sent, not answered, not applied", func(w *checkWorld) { w.in.op.Tried["a2"] = true }},
		{"a close sent, not answered, applied", func(w *checkWorld) {
			w.in.op.Tried["a2"] = true
			for _, nv := range w.in.views {
				editAlarm(nv, "a2", func(da *monitoring.DiagAlarm) {
					da.Alarm.Status, da.Alarm.ClosedBy = monitoring.StatusClosed, OperatorActor
				})
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld()
			tc.spoil(w)
			if v := check(w.in); !v.OK() {
				t.Errorf("verdict %+v\nproblems:\n%s", v, strings.Join(v.Problems, "\n"))
			}
		})
	}
}

// The report lists the findings promise by promise, in a fixed order.
func TestCheck_ListsFindingsInOrder(t *testing.T) {
	w := newCheckWorld()
	n1, n2, n3 := w.in.views[0], w.in.views[1], w.in.views[2]
	n1.commands["CmdRaiseAlarm/dev/cx-d001/o-9"] = diagCommand("CmdRaiseAlarm/dev/cx-d001/o-9", struct{}{})
	w.in.attempts[4].Reply = "conflict"
	n2.sessions["s-end"].Status = monitoring.SessionActive
	editAlarm(n3, "a2", func(da *monitoring.DiagAlarm) { da.Raised = 2 })
	w.in.op.Tried["a0"], w.in.op.Closed["a0"] = true, true
	n1.sessions["s-exp"].AlarmID = "a9"
	editAlarm(n2, "a2", func(da *monitoring.DiagAlarm) { da.Timeline = append(da.Timeline, da.Timeline[1]) })
	n3.state.Hash = "def"

	v := check(w.in)
	want := []string{
		"n1: command CmdRaiseAlarm/dev/cx-d001/o-9 is of an event the devices never sent",
		"event dev/cx-d002/o-1 (session/start), acked, was refused: conflict",
		"n2: session s-end, ended by acked event dev/cx-d002/o-4, is not ended",
		"n3: alarm a2 was raised 2 times",
		"n1: alarm a0, closed by the operator, is missing",
		"n2: alarm a0, closed by the operator, is missing",
		"n3: alarm a0, closed by the operator, is missing",
		`n1: session s-exp names alarm "a9", its missed-check-in alarm is a3`,
		"n2: alarm a2: acknowledgement deadlines fired 2 and 1 times",
		"n1 and n3 differ at applied index 100: state hash abc and def",
	}
	if !slices.Equal(v.Problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(v.Problems, "\n"), strings.Join(want, "\n"))
	}
	if v.Lost != 2 || v.Duplicated != 1 || !v.Diverged || v.Rejected != 1 || v.DeadlineErrs != 2 || v.Expired != 0 {
		t.Errorf("verdict %+v", v)
	}
}
