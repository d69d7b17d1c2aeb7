package chaos

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
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
			f.Kind == KindPowercutAll && f.Role != RoleAll,
			(f.Kind == KindKill || f.Kind == KindPause || f.Kind == KindPowercut) && f.Role != RoleLeader && f.Role != RoleFollower:
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
	got, err := parseRegressions("# header\n\n17 12  # lost an alarm\n99 200\n5 3 powercut,kill # x\n6 2 all\n")
	want := []Regression{{Seed: 17, Faults: 12, Kinds: FirstKinds, Note: "lost an alarm"}, {Seed: 99, Faults: 200, Kinds: FirstKinds},
		{Seed: 5, Faults: 3, Kinds: []Kind{KindPowercut, KindKill}, Note: "x"}, {Seed: 6, Faults: 2, Kinds: Kinds}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parse = %+v, %v", got, err)
	}
	for _, bad := range []string{"17", "x 3", "17 0", "17 3 4", "17 3 reboot", "17 3 all 4"} {
		if _, err := parseRegressions(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := Regressions(); err != nil {
		t.Errorf("regressions.txt: %v", err)
	}
}
