package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A Service proposes a command under the newest rules every member knows:
// lowered when a member knows only older ones (its other fields kept),
// unchanged otherwise, and commands without versions are never touched.
func TestRulesFloor_ProposesWhatEveryMemberKnows(t *testing.T) {
	s := &Service{logger: slog.New(slog.DiscardHandler)}
	cmd := logActionCmd{Header: Header{Actor: "olivia"}, AlarmID: "a1",
		Entry: TimelineEntry{Kind: ActionContact, Contact: "Sam Patel", Outcome: ContactBriefed}, Rules: RulesContactOutcome}
	enc := encode(CmdLogAction, cmd)
	if got := s.agreedRules(context.Background(), CmdLogAction, enc); !bytes.Equal(got, enc) {
		t.Fatalf("with no floor set the command changed: %s", got[1:])
	}
	var asked []string
	floor := 0
	s.SetRulesFloor(func(name string, newest, baseline int) (int, bool) {
		asked = append(asked, name)
		if newest != rulesKnown[CmdLogAction] || baseline != rulesBaseline[CmdLogAction] {
			t.Errorf("asked with newest %d and baseline %d", newest, baseline)
		}
		return floor, true
	})
	for _, tc := range []struct {
		floor, want int
	}{{3, 3}, {4, 3}, {2, 2}, {1, 1}, {0, 0}} {
		floor = tc.floor
		got := s.agreedRules(context.Background(), CmdLogAction, enc)
		typ, body, err := decode(got)
		if err != nil || typ != CmdLogAction {
			t.Fatalf("floor %d: %v %v", tc.floor, typ, err)
		}
		var back logActionCmd
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatal(err)
		}
		if back.Rules != tc.want {
			t.Errorf("floor %d: proposed under rules %d, want %d", tc.floor, back.Rules, tc.want)
		}
		back.Rules = cmd.Rules
		if back.AlarmID != cmd.AlarmID || back.Entry != cmd.Entry || back.Actor != cmd.Actor {
			t.Errorf("floor %d: the command changed beyond its rules: %+v", tc.floor, back)
		}
		if tc.floor == 0 && bytes.Contains(body, rulesKey) {
			t.Errorf("floor 0: the rules field is still there: %s", body)
		}
	}
	if len(asked) == 0 || asked[0] != RulesFeatureName(CmdLogAction) {
		t.Errorf("asked about %v, want %s", asked, RulesFeatureName(CmdLogAction))
	}
	asked = nil
	raw := encode(CmdRaiseAlarm, RaiseAlarmCmd{AlarmID: "a2", Type: AlarmRedAlert})
	if got := s.agreedRules(context.Background(), CmdRaiseAlarm, raw); !bytes.Equal(got, raw) || len(asked) != 0 {
		t.Errorf("a command without versions was changed or asked about: %s %v", got[1:], asked)
	}
}

// What a build reports it knows is its table; the baseline, what builds
// that report nothing know, never exceeds it.
func TestRulesFloor_FeaturesAndBaseline(t *testing.T) {
	f := RulesFeatures()
	if len(f) != len(rulesKnown)+len(handlers)+len(fieldFeatures) {
		t.Fatalf("%d features for %d versioned types, %d types and %d fields", len(f), len(rulesKnown), len(handlers), len(fieldFeatures))
	}
	for _, name := range fieldFeatures {
		if f[name] != 1 {
			t.Errorf("field %s is not reported as known", name)
		}
	}
	for typ := range handlers {
		if f[typeFeatureName(typ)] != 1 {
			t.Errorf("%s is not reported as known", typ)
		}
	}
	for typ, v := range rulesKnown {
		if f[RulesFeatureName(typ)] != v {
			t.Errorf("%s: reported %d, knows %d", typ, f[RulesFeatureName(typ)], v)
		}
		if b, ok := rulesBaseline[typ]; !ok || b > v {
			t.Errorf("%s: baseline %d (present %v), above the %d known or missing", typ, b, ok, v)
		}
	}
}

// A command type that a member does not know (its build is older) is
// refused before it is proposed, saying an upgrade is under way; the
// types every build knows go through.
func TestRulesFloor_NewTypesWaitForEveryMember(t *testing.T) {
	s := &Service{logger: slog.New(slog.DiscardHandler)}
	if err := s.typeAgreed(context.Background(), CmdListenRequest+5); err != nil {
		t.Fatalf("with no floor set: %v", err)
	}
	known := map[string]int{} // what the older member reports
	s.SetRulesFloor(func(name string, newest, baseline int) (int, bool) {
		if v, ok := known[name]; ok {
			return min(newest, v), true
		}
		return min(newest, baseline), true // the older member reports nothing
	})
	for _, typ := range []CmdType{CmdRaiseAlarm, CmdCloseAlarmConfirmed, CmdListenRequest} {
		if err := s.typeAgreed(context.Background(), typ); err != nil {
			t.Errorf("%s, known to every build: %v", typ, err)
		}
	}
	newType := typesBaseline + 2
	err := s.typeAgreed(context.Background(), newType)
	var re *RuleError
	if !errors.As(err, &re) || re.Code != CodeUpgrading || !strings.Contains(re.Msg, "once every node is upgraded") {
		t.Fatalf("a type newer than the older member knows: %v", err)
	}
	known[typeFeatureName(newType)] = 1
	if err := s.typeAgreed(context.Background(), newType); err != nil {
		t.Errorf("once every member reports the type: %v", err)
	}
}
