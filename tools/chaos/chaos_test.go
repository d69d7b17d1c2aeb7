package chaos

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

func TestPlan_SameSeedSameScheduleEveryKind(t *testing.T) {
	a, b := Plan(7, 23, nil), Plan(7, 23, nil)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans of seed 7 differ")
	}
	if reflect.DeepEqual(a, Plan(8, 23, nil)) {
		t.Error("seeds 7 and 8 give the same plan")
	}
	count := map[Kind]int{}
	for i, f := range a {
		count[f.Kind]++
		if f.N != i+1 || f.Hold < minHold || f.Hold >= maxHold || f.Quiet < minQuiet || f.Quiet >= maxQuiet {
			t.Errorf("fault %d = %+v", i, f)
		}
		switch {
		case f.Kind == KindIsolateLeader && f.Role != RoleLeader,
			(f.Kind == KindSplit || f.Kind == KindWipe) && f.Role != RoleAny,
			(f.Kind == KindKill || f.Kind == KindPause) && f.Role == RoleAny:
			t.Errorf("fault %d: %s of role %s", f.N, f.Kind, f.Role)
		}
		if i%len(Kinds) == len(Kinds)-1 {
			for _, k := range Kinds {
				if count[k] != (i+1)/len(Kinds) {
					t.Fatalf("after %d faults, %d of kind %s", i+1, count[k], k)
				}
			}
		}
	}
	for _, f := range Plan(3, 10, []Kind{KindSplit}) {
		if f.Kind != KindSplit {
			t.Fatalf("a plan of splits has a %s", f.Kind)
		}
	}
}

func TestParseKinds(t *testing.T) {
	got, err := ParseKinds("kill, wipe")
	if err != nil || !slices.Equal(got, []Kind{KindKill, KindWipe}) {
		t.Errorf("ParseKinds = %v, %v", got, err)
	}
	if _, err := ParseKinds("kill,reboot"); err == nil || !strings.Contains(err.Error(), "reboot") {
		t.Errorf("an unknown kind: %v", err)
	}
}

func TestPlanLoad_SessionsFollowEachOther(t *testing.T) {
	l := planLoad(5, "cx", 8, 2*time.Second, 10*time.Minute)
	if !reflect.DeepEqual(l, planLoad(5, "cx", 8, 2*time.Second, 10*time.Minute)) {
		t.Fatal("two loads of seed 5 differ")
	}
	if l.AlarmDevices != 6 {
		t.Errorf("%d alarm devices of 8, want 6", l.AlarmDevices)
	}
	if !slices.IsSortedFunc(l.Scenario.Steps, func(a, b sim.Step) int { return int(a.At - b.At) }) {
		t.Error("steps out of order")
	}
	ends := map[string]time.Duration{}
	starts := map[string]time.Duration{}
	for _, st := range l.Scenario.Steps {
		switch st.Do {
		case sim.DoAlarm:
			if st.Device > l.AlarmDevices || !slices.Contains(deviceAlarmTypes, st.Type) {
				t.Fatalf("alarm step %+v", st)
			}
		case sim.DoSessionStart:
			starts[st.Session] = st.At
		case sim.DoSessionEnd:
			ends[st.Session] = st.At
		}
	}
	var expiring int
	last := map[string]time.Duration{} // device -> end of its last session
	for _, s := range l.Sessions {
		if s.Start != starts[s.ID] || ends[s.ID] <= s.Start {
			t.Fatalf("session %s: starts %s, ends %s", s.ID, starts[s.ID], ends[s.ID])
		}
		if s.Start <= last[s.Device] {
			t.Errorf("session %s of %s starts at %s, before the last ended at %s", s.ID, s.Device, s.Start, last[s.Device])
		}
		last[s.Device] = ends[s.ID]
		if s.Expires {
			expiring++
			if ends[s.ID]-s.Start < ExpiringSession+Grace+expiryMargin || s.Duration != ExpiringSession {
				t.Errorf("session %s is let run out, but ends %s after its start", s.ID, ends[s.ID]-s.Start)
			}
		} else if ends[s.ID]-s.Start > time.Minute || s.Duration != normalSession {
			t.Errorf("session %s is ended in time, but lasts %s of %s", s.ID, ends[s.ID]-s.Start, s.Duration)
		}
	}
	if expiring == 0 || expiring == len(l.Sessions) {
		t.Errorf("%d of %d sessions run out", expiring, len(l.Sessions))
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s ...float64) []alarmAck {
		var out []alarmAck
		for _, x := range s {
			out = append(out, alarmAck{acked: t0.Add(time.Duration(x * float64(time.Second)))})
		}
		return out
	}
	sec := func(x float64) time.Time { return t0.Add(time.Duration(x * float64(time.Second))) }
	for _, tc := range []struct {
		name     string
		acks     []alarmAck
		from, to float64
		want     time.Duration
	}{
		{"inside", at(0, 1, 2, 5, 6, 7), 1.5, 5.5, 3 * time.Second},
		{"reaches back before the window", at(0, 4, 5), 1, 4.5, 4 * time.Second},
		{"reaches past the window", at(0, 1, 9), 0, 2, 8 * time.Second},
		{"no ack after", at(0, 1), 0, 3, 2 * time.Second},
		{"no ack at all", nil, 0, 3, 3 * time.Second},
		{"outside gaps do not count", at(0, 10, 11, 12, 30), 10.5, 11.5, time.Second},
	} {
		if got := longestGap(tc.acks, sec(tc.from), sec(tc.to)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestMeasureAndByKind(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(x float64) time.Time { return t0.Add(time.Duration(x * float64(time.Second))) }
	acks := []alarmAck{{s(0), s(1)}, {s(1), s(2)}, {s(6.5), s(7)}, {s(2.5), s(9)}, {s(9), s(9.5)}, {s(20), s(21)}}
	recs := []FaultRecord{
		{Fault: Fault{Kind: KindKill}, Injected: s(3), Healed: s(5), Recovered: s(6)},
		{Fault: Fault{Kind: KindKill}, Injected: s(19), Healed: s(20), Recovered: s(20.5)},
	}
	measure(recs, acks)
	// The first fault's window is 3 s to 8 s; the second's 19 s to 22.5 s.
	if r := recs[0]; r.Gap != 5*time.Second || r.MaxDelay != 6500*time.Millisecond || r.Acked != 1 {
		t.Errorf("first fault: gap %s, delay %s, %d acks; want 5s, 6.5s, 1", r.Gap, r.MaxDelay, r.Acked)
	}
	if r := recs[1]; r.Gap != 11500*time.Millisecond || r.MaxDelay != time.Second || r.Acked != 1 {
		t.Errorf("second fault: gap %s, delay %s, %d acks; want 11.5s, 1s, 1", r.Gap, r.MaxDelay, r.Acked)
	}
	k := byKind(recs)
	if len(k) != 1 || k[0].Faults != 2 || k[0].MaxGap != recs[1].Gap || k[0].MaxRecovery != time.Second {
		t.Errorf("by kind %+v", k)
	}
}

func TestResult_Line(t *testing.T) {
	r := &Result{Seed: 42, Faults: make([]FaultRecord, 3), MaxUnavailable: 1234567 * time.Microsecond,
		Verdict: &Verdict{Acked: 900, Lost: 1, Duplicated: 2, Diverged: true}}
	want := "chaos: seed=42 faults=3 acked=900 lost=1 duplicated=2 diverged=1 max_unavailable_ms=1234"
	if got := r.Line(); got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	var sb strings.Builder
	r.WriteReport(&sb)
	if !strings.HasSuffix(sb.String(), want+"\n") {
		t.Errorf("the report does not end with the line:\n%s", sb.String())
	}
}

func TestParseRegressions(t *testing.T) {
	got, err := parseRegressions("# header\n\n17 12  # lost an alarm\n99 200\n")
	want := []Regression{{17, 12, "lost an alarm"}, {99, 200, ""}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parse = %+v, %v", got, err)
	}
	for _, bad := range []string{"17", "x 3", "17 0", "17 3 4"} {
		if _, err := parseRegressions(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := Regressions(); err != nil {
		t.Errorf("regressions.txt: %v", err)
	}
}

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
	cmd := func(id string, v any) monitoring.DiagCommand {
		b, _ := json.Marshal(v)
		return monitoring.DiagCommand{ID: id, Index: 1, Response: b}
	}
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
				"CmdRaiseAlarm/dev/cx-d001/o-1":    cmd("CmdRaiseAlarm/dev/cx-d001/o-1", a1),
				"CmdRaiseAlarm/dev/cx-d001/o-2":    cmd("CmdRaiseAlarm/dev/cx-d001/o-2", a2),
				"CmdStartSession/dev/cx-d002/o-1":  cmd("CmdStartSession/dev/cx-d002/o-1", monitoring.Session{ID: "s-exp"}),
				"CmdSessionAction/dev/cx-d002/o-2": cmd("CmdSessionAction/dev/cx-d002/o-2", monitoring.SessionReply{SessionID: "s-exp"}),
				"CmdStartSession/dev/cx-d002/o-3":  cmd("CmdStartSession/dev/cx-d002/o-3", monitoring.Session{ID: "s-end"}),
				"CmdSessionAction/dev/cx-d002/o-4": cmd("CmdSessionAction/dev/cx-d002/o-4", monitoring.SessionReply{SessionID: "s-end"}),
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
	}{
		{"an acked alarm missing on one node", func(w *checkWorld) { delete(w.in.views[1].alarms, "a2") },
			func(v *Verdict) bool { return v.Lost == 1 }, "n2: alarm a2 of acked event"},
		{"an acked event's record missing", func(w *checkWorld) { delete(w.in.views[2].commands, "CmdRaiseAlarm/dev/cx-d001/o-2") },
			func(v *Verdict) bool { return v.Lost == 1 }, "n3: acked alarm event dev/cx-d001/o-2 is missing"},
		{"an acked session end not applied", func(w *checkWorld) { w.in.views[0].sessions["s-end"].Status = monitoring.SessionActive },
			func(v *Verdict) bool { return v.Lost == 1 }, "session s-end, ended by acked event"},
		{"an alarm raised twice", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.alarms["a9"] = monitoring.DiagAlarm{Alarm: monitoring.Alarm{ID: "a9", Type: monitoring.AlarmRedAlert, DeviceID: "cx-d001", Status: monitoring.StatusRaised}, Raised: 1}
			}
		}, func(v *Verdict) bool { return v.Duplicated == 1 }, "is the alarm of no device event"},
		{"an alarm closed by nobody", func(w *checkWorld) {
			for _, nv := range w.in.views {
				a := nv.alarms["a2"]
				a.Alarm.Status, a.Alarm.ClosedBy = monitoring.StatusClosed, "system"
				nv.alarms["a2"] = a
			}
		}, func(v *Verdict) bool { return v.Spurious == 1 && v.Lost == 0 }, "no operator closed it"},
		{"an answered close lost", func(w *checkWorld) {
			a := w.in.views[0].alarms["a1"]
			a.Alarm.Status = monitoring.StatusAcknowledged
			w.in.views[0].alarms["a1"] = a
		}, func(v *Verdict) bool { return v.Lost == 1 && v.Diverged }, "whose close the operator was answered for"},
		{"a deadline that did not fire", func(w *checkWorld) {
			for _, nv := range w.in.views {
				delete(nv.alarms, "a3")
				nv.fires = nv.fires[:1]
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 && v.Expired == 0 }, "session s-exp ran out"},
		{"a session ended in time with an alarm", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].EndedAt = nv.sessions["s-exp"].EndsAt.Add(-time.Second)
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "session s-exp, ended in time"},
		{"a grace deadline without its alarm", func(w *checkWorld) {
			for _, nv := range w.in.views {
				nv.sessions["s-exp"].EndedAt = nv.sessions["s-exp"].EndsAt.Add(Grace + time.Second)
				delete(nv.alarms, "a3")
			}
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "ended near its deadlines"},
		{"a deadline that fired twice", func(w *checkWorld) {
			w.in.views[1].fires = append(w.in.views[1].fires, w.in.views[1].fires[1])
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "grace 2;"},
		{"an acknowledgement deadline that fired twice", func(w *checkWorld) {
			a := w.in.views[0].alarms["a2"]
			a.Timeline = append(a.Timeline, a.Timeline[1])
			w.in.views[0].alarms["a2"] = a
		}, func(v *Verdict) bool { return v.DeadlineErrs == 1 }, "fired 2 and 1 times"},
		{"different hashes at one index", func(w *checkWorld) { w.in.views[2].state.Hash = "def" },
			func(v *Verdict) bool { return v.Diverged }, "differ at applied index 100"},
		{"a refused event", func(w *checkWorld) {
			w.in.attempts[4].Reply = "conflict"
		}, func(v *Verdict) bool { return v.Rejected == 1 && v.Lost == 0 }, "was refused: conflict"},
		{"an event refused before it was proposed", func(w *checkWorld) {
			w.in.attempts[7].Reply = "not_found" // the session end, which then has no record
			for _, nv := range w.in.views {
				delete(nv.commands, "CmdSessionAction/dev/cx-d002/o-4")
				nv.sessions["s-end"].Status = monitoring.SessionActive
			}
		}, func(v *Verdict) bool { return v.Rejected == 1 && v.Lost == 0 }, "was refused: not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld()
			tc.spoil(w)
			v := check(w.in)
			if v.OK() || !tc.want(v) || !strings.Contains(strings.Join(v.Problems, "\n"), tc.text) {
				t.Errorf("verdict %+v\nproblems:\n%s\nwant one saying %q", v, strings.Join(v.Problems, "\n"), tc.text)
			}
		})
	}
}
