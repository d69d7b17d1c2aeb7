package monitoring

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// The escalation policy (escalation.go) on one replica's state machine.

const escWait = 2 * time.Minute

// escEnv is a dirEnv with escalation contacts: worker w1 (o1) has Alex
// Smith then Sam Patel; worker w2 (o1) has none, so o1's Olu Ade; worker x1
// (o2) has none and o2 none. o1 waits escWait for an answer, o2 the
// default.
func escEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.putOrg(Organisation{ID: "o1", Name: "Trust", ContactWait: escWait,
		Contacts: []Contact{{Name: "Olu Ade", Phone: "0161 496 0000", Relation: "duty manager"}}})
	e.putOrg(Organisation{ID: "o2", Name: "Council"})
	e.must(CmdPutWorker, putWorkerCmd{Header: e.hdr(), Worker: Worker{ID: "w1", Name: "Ann", OrgID: "o1", Contacts: []Contact{
		{Name: "Alex Smith", Phone: "07700 900001", Relation: "manager"},
		{Name: "Sam Patel", Phone: "07700 900123", Relation: "next of kin"},
	}}})
	e.putWorker("w2", "o1")
	e.putWorker("x1", "o2")
	e.putDevice("d1", DeviceDedicated, "o1", "w1")
	e.putDevice("d2", DevicePhoneApp, "o1", "w2")
	e.putDevice("d3", DevicePhoneApp, "o2", "x1")
	return e
}

func (e *dirEnv) escRaise(id string, typ AlarmType, dev string, ackRules int) {
	e.t.Helper()
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: id, Type: typ, DeviceID: dev})
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: id, Rules: ackRules})
}

func contactCmd(e *dirEnv, id, contact, outcome string, rules int) logActionCmd {
	return logActionCmd{Header: e.hdr(), AlarmID: id, Rules: rules,
		Entry: TimelineEntry{Kind: ActionContact, Contact: contact, Outcome: outcome}}
}

func closeCmd(e *dirEnv, id string, res Resolution, reason string, rules int) CloseAlarmCmd {
	return CloseAlarmCmd{Header: e.hdr(), AlarmID: id, Resolution: res, Confirmation: ConfirmedByWorker,
		NoBriefingReason: reason, Rules: rules}
}

func (e *dirEnv) contactDeadlines() []Deadline {
	e.t.Helper()
	var out []Deadline
	for _, d := range e.deadlines() {
		if d.Kind == DeadlineContactDue {
			out = append(out, d)
		}
	}
	return out
}

// wantDue checks that alarm id has one contact deadline, for contact next
// at due, mirrored on the alarm and not yet overdue.
func (e *dirEnv) wantDue(id string, next int, due time.Time) Deadline {
	e.t.Helper()
	ds := e.contactDeadlines()
	a := e.alarm(id)
	if len(ds) != 1 || ds[0].AlarmID != id || !ds[0].Due.Equal(due) {
		e.t.Fatalf("contact deadlines %+v, want one for %s at %s", ds, id, due)
	}
	if a.ContactDue != next || !a.ContactDueAt.Equal(due) || a.ContactOverdue {
		e.t.Fatalf("alarm: contact due %d at %s overdue %v, want %d at %s", a.ContactDue, a.ContactDueAt, a.ContactOverdue, next, due)
	}
	return ds[0]
}

// wantNoneDue checks that alarm id has no contact deadline.
func (e *dirEnv) wantNoneDue(id string) {
	e.t.Helper()
	if ds := e.contactDeadlines(); len(ds) != 0 {
		e.t.Fatalf("contact deadlines left %+v", ds)
	}
	if got := e.keys(pDeadlineOf + "alarm/" + id + "/" + DeadlineContactDue); len(got) != 0 {
		e.t.Fatalf("index left %v", got)
	}
	if a := e.alarm(id); a.ContactDue != 0 || !a.ContactDueAt.IsZero() || a.ContactOverdue {
		e.t.Fatalf("alarm still marks a contact due: %d %s %v", a.ContactDue, a.ContactDueAt, a.ContactOverdue)
	}
}

func TestEscalation_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *dirEnv)
		cmd   func(e *dirEnv) (CmdType, any)
		code  Code
		field string
		msg   []string
	}{
		{"a contact not on the alarm's list", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d1", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdLogAction, contactCmd(e, "a1", "Olu Ade", ContactBriefed, RulesContactOutcome)
			}, CodeInvalid, "entry.contact", []string{`"Olu Ade"`, "Alex Smith, Sam Patel"}},
		{"the organisation's list for a worker without contacts", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d2", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactBriefed, RulesContactOutcome)
			}, CodeInvalid, "entry.contact", []string{"one of Olu Ade"}},
		{"no contacts at all", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d3", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdLogAction, contactCmd(e, "a1", "Anyone", ContactBriefed, RulesContactOutcome)
			}, CodeInvalid, "entry.contact", []string{"neither the worker nor the organisation has any"}},
		{"an outcome that is not one of the four", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d1", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdLogAction, contactCmd(e, "a1", "Alex Smith", "reached", RulesContactOutcome)
			}, CodeInvalid, "entry.outcome", []string{`"reached"`, "welfare_confirmed, briefed, no_answer, left_message"}},
		{"a call to the worker's outcome", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d1", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdLogAction, contactCmd(e, "a1", "Alex Smith", CallAnsweredSafe, RulesContactOutcome)
			}, CodeInvalid, "entry.outcome", []string{CallAnsweredSafe}},
		{"a genuine close without a briefing", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d1", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
			}, CodeNeedBriefing, "no_briefing_reason", []string{"call Alex Smith (manager), 07700 900001 next"}},
		{"incident handled without a briefing, after no answer", func(e *dirEnv) {
			e.escRaise("a1", AlarmManDown, "d1", 1)
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactNoAnswer, RulesContactOutcome))
		}, func(e *dirEnv) (CmdType, any) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionIncidentHandled, "  ", RulesBriefing)
		}, CodeNeedBriefing, "no_briefing_reason", []string{"call Sam Patel (next of kin), 07700 900123 next"}},
		{"a genuine close with only a message left", func(e *dirEnv) {
			e.escRaise("a1", AlarmDuress, "d1", 1)
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactLeftMessage, RulesContactOutcome))
			e.must(CmdLogAction, contactCmd(e, "a1", "Sam Patel", ContactNoAnswer, RulesContactOutcome))
		}, func(e *dirEnv) (CmdType, any) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
		}, CodeNeedBriefing, "no_briefing_reason", []string{"call Alex Smith"}},
		{"a genuine close with no contacts on file", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d3", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
			}, CodeNeedBriefing, "no_briefing_reason", []string{"no escalation contacts on file"}},
		{"a reason too long", func(e *dirEnv) { e.escRaise("a1", AlarmRedAlert, "d1", 1) },
			func(e *dirEnv) (CmdType, any) {
				return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionFalseAlarm, strings.Repeat("x", MaxTextLen+1), RulesBriefing)
			}, CodeInvalid, "no_briefing_reason", []string{"longer than"}},
		{"a wait under a minute", func(*dirEnv) {}, func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three", ContactWait: 30 * time.Second}}
		}, CodeInvalid, "org.contact_wait_ns", []string{"1m0s..1h0m0s"}},
		{"a wait over an hour", func(*dirEnv) {}, func(e *dirEnv) (CmdType, any) {
			return CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o3", Name: "Three", ContactWait: 2 * time.Hour}}
		}, CodeInvalid, "org.contact_wait_ns", []string{"outside"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := escEnv(t)
			tc.setup(e)
			typ, body := tc.cmd(e)
			// refused checks that the refusal left the state as it was.
			re := e.refused(typ, body, tc.code, tc.field)
			for _, m := range tc.msg {
				if !strings.Contains(re.Msg, m) {
					t.Fatalf("refusal %q does not say %q", re.Msg, m)
				}
			}
			if back := ParseRefusal(re.Error()); *back != *re {
				t.Fatalf("ParseRefusal(%q) = %+v", re, back)
			}
		})
	}
}

func TestEscalation_NoAnswerMovesOnToTheNextContact(t *testing.T) {
	e := escEnv(t)
	e.escRaise("a1", AlarmRedAlert, "d1", 0) // no reminder at the acknowledgement: the older rules
	e.wantNoneDue("a1")

	// Any case and spaces name the contact; the entry keeps the list's.
	e.now = e.now.Add(time.Minute)
	e.must(CmdLogAction, contactCmd(e, "a1", " alex smith ", ContactNoAnswer, RulesContactOutcome))
	if tl := e.timeline("a1"); tl[len(tl)-1].Contact != "Alex Smith" {
		t.Fatalf("entry names %q", tl[len(tl)-1].Contact)
	}
	first := e.wantDue("a1", 1, e.now.Add(escWait))

	// Before it is due, nothing shows; when it fires, the reminder does.
	e.events = nil
	e.now = first.Due.Add(time.Second)
	if r := e.fireResult(first); r.Outcome != "fired" || r.Kind != DeadlineContactDue || r.AlarmID != "a1" {
		t.Fatalf("fire: %+v", r)
	}
	a := e.alarm("a1")
	if !a.ContactOverdue || a.ContactDue != 1 {
		t.Fatalf("after firing: overdue %v, due %d", a.ContactOverdue, a.ContactDue)
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventContactDue}) {
		t.Fatalf("events %v", got)
	}
	tl := e.timeline("a1")
	last := tl[len(tl)-1]
	if last.Kind != ActionContactDue || last.Actor != "system" || last.Contact != "Sam Patel" ||
		last.Text != "contact Sam Patel (next of kin), 07700 900123 due" {
		t.Fatalf("reminder entry %+v", last)
	}
	if ds := e.contactDeadlines(); len(ds) != 0 {
		t.Fatalf("fired deadline left: %+v", ds)
	}
	// Fired twice: stale, nothing written.
	before := e.dump()
	if r := e.fireResult(first); r.Outcome != "stale" {
		t.Fatalf("again: %+v", r)
	}
	if e.dump() != before {
		t.Fatal("a stale contact deadline wrote to the state")
	}

	// The next contact leaves a message: the list is then exhausted.
	e.now = e.now.Add(time.Minute)
	e.must(CmdLogAction, contactCmd(e, "a1", "Sam Patel", ContactLeftMessage, RulesContactOutcome))
	second := e.wantDue("a1", 2, e.now.Add(escWait))
	e.now = second.Due
	if r := e.fireResult(second); r.Outcome != "fired" {
		t.Fatalf("fire: %+v", r)
	}
	tl = e.timeline("a1")
	if last := tl[len(tl)-1]; last.Kind != ActionContactDue || last.Contact != "" ||
		!strings.Contains(last.Text, "no escalation contact left to call: tell the supervisor") {
		t.Fatalf("exhausted entry %+v", last)
	}
	if a := e.alarm("a1"); !a.ContactOverdue || a.ContactDue != 2 {
		t.Fatalf("exhausted: %+v", a)
	}

	// A briefing clears the reminder, and the genuine close is allowed.
	e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactBriefed, RulesContactOutcome))
	e.wantNoneDue("a1")
	var closed Alarm
	if err := json.Unmarshal(e.must(CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)), &closed); err != nil {
		t.Fatal(err)
	}
	if closed.Status != StatusClosed || closed.NoBriefingReason != "" {
		t.Fatalf("closed %+v", closed)
	}
}

func TestEscalation_NextEntryOrCloseClearsTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(e *dirEnv)
	}{
		{"the next contact confirms the worker's welfare", func(e *dirEnv) {
			e.must(CmdLogAction, contactCmd(e, "a1", "Sam Patel", ContactWelfareConfirmed, RulesContactOutcome))
		}},
		{"the same contact calls back, briefed", func(e *dirEnv) {
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactBriefed, RulesContactOutcome))
		}},
		{"closed as a false alarm, no briefing needed", func(e *dirEnv) {
			e.must(CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionFalseAlarm, "", RulesBriefing))
		}},
		{"closed under the older rules", func(e *dirEnv) {
			e.must(CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionWorkerSafe})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := escEnv(t)
			e.escRaise("a1", AlarmRedAlert, "d1", 0)
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactNoAnswer, RulesContactOutcome))
			pending := e.wantDue("a1", 1, e.now.Add(escWait))
			e.now = e.now.Add(30 * time.Second)
			tc.do(e)
			e.wantNoneDue("a1")
			// One read by the scheduler before the change is stale.
			e.now = pending.Due.Add(time.Second)
			before := e.dump()
			if r := e.fireResult(pending); r.Outcome != "stale" {
				t.Fatalf("outcome %+v", r)
			}
			if e.dump() != before {
				t.Fatal("a stale contact deadline wrote to the state")
			}
		})
	}
}

func TestEscalation_ReminderAfterAcknowledgement(t *testing.T) {
	t.Run("a worker's alarm, first acknowledgement", func(t *testing.T) {
		e := escEnv(t)
		e.escRaise("a1", AlarmMissedCheckIn, "d2", RulesContactReminder)
		ackAt := e.now
		d := e.wantDue("a1", 0, ackAt.Add(escWait))
		// A takeover is no new acknowledgement: the reminder stays.
		e.now = e.now.Add(time.Minute)
		e.must(CmdAcknowledge, AcknowledgeCmd{Header: Header{At: e.now, Actor: "sup", Node: "n1"}, AlarmID: "a1", Takeover: true, Rules: RulesContactReminder})
		e.wantDue("a1", 0, ackAt.Add(escWait))
		e.now = d.Due
		if r := e.fireResult(d); r.Outcome != "fired" {
			t.Fatalf("fire %+v", r)
		}
		tl := e.timeline("a1")
		if last := tl[len(tl)-1]; last.Contact != "Olu Ade" || !strings.Contains(last.Text, "contact Olu Ade (duty manager)") {
			t.Fatalf("reminder %+v", last)
		}
	})
	t.Run("no contacts on file", func(t *testing.T) {
		e := escEnv(t)
		e.escRaise("a1", AlarmRedAlert, "d3", RulesContactReminder)
		d := e.wantDue("a1", 0, e.now.Add(DefaultContactWait))
		e.now = d.Due
		e.fireResult(d)
		tl := e.timeline("a1")
		if last := tl[len(tl)-1]; last.Text != "no escalation contacts on file: tell the supervisor" {
			t.Fatalf("reminder %+v", last)
		}
	})
	for _, tc := range []struct {
		name  string
		typ   AlarmType
		rules int
	}{
		{"the older rules", AlarmRedAlert, 0},
		{"a test alarm", AlarmTest, RulesContactReminder},
		{"a low battery", AlarmLowBattery, RulesContactReminder},
		{"a device offline", AlarmDeviceOffline, RulesContactReminder},
	} {
		t.Run("none for "+tc.name, func(t *testing.T) {
			e := escEnv(t)
			e.escRaise("a1", tc.typ, "d1", tc.rules)
			e.wantNoneDue("a1")
		})
	}
}

func TestEscalation_GenuineCloseNeedsABriefing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    AlarmType
		before func(e *dirEnv)
		close  func(e *dirEnv) (CmdType, CloseAlarmCmd)
		reason string // kept on the alarm
	}{
		{"briefed", AlarmRedAlert, func(e *dirEnv) {
			e.must(CmdLogAction, contactCmd(e, "a1", "Sam Patel", ContactBriefed, RulesContactOutcome))
		}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionIncidentHandled, "", RulesBriefing)
		}, ""},
		{"welfare confirmed", AlarmManDown, func(e *dirEnv) {
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactWelfareConfirmed, RulesContactOutcome))
		}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
		}, ""},
		{"reached, logged before the outcomes were fixed", AlarmManDown, func(e *dirEnv) {
			e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", "reached", RulesIncidentDoNotCall))
		}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
		}, ""},
		{"with the reason why not", AlarmRedAlert, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "  worker asked us not to ", RulesBriefing)
		}, "worker asked us not to"},
		{"a false alarm", AlarmRedAlert, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionFalseAlarm, "", RulesBriefing)
		}, ""},
		{"a test", AlarmRedAlert, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionTest, "", RulesBriefing)
		}, ""},
		{"a test alarm closed as worker safe", AlarmTest, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "", RulesBriefing)
		}, ""},
		{"a low battery dealt with", AlarmLowBattery, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionIncidentHandled, "", RulesBriefing)
		}, ""},
		{"the older rules, confirmed", AlarmRedAlert, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarmConfirmed, closeCmd(e, "a1", ResolutionWorkerSafe, "ignored", 0)
		}, ""},
		{"the older rules, unconfirmed", AlarmRedAlert, func(*dirEnv) {}, func(e *dirEnv) (CmdType, CloseAlarmCmd) {
			return CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionIncidentHandled}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := escEnv(t)
			e.escRaise("a1", tc.typ, "d1", RulesContactReminder)
			tc.before(e)
			typ, body := tc.close(e)
			var a Alarm
			if err := json.Unmarshal(e.must(typ, body), &a); err != nil {
				t.Fatal(err)
			}
			if a.Status != StatusClosed || a.NoBriefingReason != tc.reason {
				t.Fatalf("closed %s, reason %q, want %q", a.Status, a.NoBriefingReason, tc.reason)
			}
			e.wantNoneDue("a1")
			if tc.reason != "" && !strings.Contains(e.dump(), "no briefing: "+tc.reason) {
				t.Fatal("the reason is not in the audit")
			}
		})
	}
}

func TestEscalation_OlderRulesReplayAsApplied(t *testing.T) {
	for _, rules := range []int{0, RulesIncidentDoNotCall} {
		e := escEnv(t)
		e.escRaise("a1", AlarmRedAlert, "d1", 0)
		// Anyone, any outcome: as before; nothing moves on.
		e.must(CmdLogAction, contactCmd(e, "a1", "the neighbour", "no reply", rules))
		e.must(CmdLogAction, contactCmd(e, "a1", "Alex Smith", ContactNoAnswer, rules))
		e.wantNoneDue("a1")
		tl := e.timeline("a1")
		if last := tl[len(tl)-1]; last.Contact != "Alex Smith" || last.Outcome != ContactNoAnswer {
			t.Fatalf("rules %d: entry %+v", rules, last)
		}
	}
}

// TestEscalation_AccidentalPressUnaffected: a reset within the
// organisation's accidental-press window still closes the alarm by itself
// (no operator, no briefing), and leaves no contact deadline.
func TestEscalation_AccidentalPressUnaffected(t *testing.T) {
	e := cancelEnv(t)
	o := Organisation{ID: "o1", Name: "Trust", AccidentalPressWindow: 30 * time.Second,
		Contacts: []Contact{{Name: "Olu Ade", Phone: "0161 496 0000"}}}
	e.putOrg(o)
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a9", Type: AlarmRedAlert, DeviceID: "d1"})
	e.now = e.now.Add(5 * time.Second)
	if _, err := e.reset("a9", pinSafe); err != nil {
		t.Fatal(err)
	}
	a := e.alarm("a9")
	if a.Status != StatusClosed || a.Confirmation != ConfirmedAccidentalPress || a.NoBriefingReason != "" {
		t.Fatalf("after the reset: %s %s", a.Status, a.Confirmation)
	}
	e.wantNoneDue("a9")
}
