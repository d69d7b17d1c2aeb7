package monitoring

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// mustURNEnv is mustAlarmEnv with o1 holding URNs: Greater Manchester
// Police (valid a year), Merseyside Police (expired the day before t0),
// West Yorkshire Police (an expired URN and its renewal), and Cheshire
// Police expiring exactly at t0. Worker w1 keeps a URN of its own from
// before URNs moved to the organisation.
func mustURNEnv(t *testing.T) *alarmEnv {
	t.Helper()
	e := mustAlarmEnv(t)
	e.put(pOrg+"o1", Organisation{ID: "o1", Name: "Trust One", URNs: []PoliceURN{
		{Force: "Greater Manchester Police", URN: "GMP-LW-1", Expiry: t0.AddDate(1, 0, 0)},
		{Force: "Merseyside Police", URN: "MER-OLD", Expiry: t0.AddDate(0, 0, -1)},
		{Force: "West Yorkshire Police", URN: "WYP-2025", Expiry: t0.AddDate(0, -1, 0)},
		{Force: "West Yorkshire Police", URN: "WYP-2026", Expiry: t0.AddDate(0, 11, 0)},
		{Force: "Cheshire Police", URN: "CHE-1", Expiry: t0},
	}})
	e.put(pWorker+"w1", Worker{ID: "w1", Name: "Ann", OrgID: "o1",
		URNs: []PoliceURN{{Force: "Legacy Constabulary", URN: "LEG-1", Expiry: t0.AddDate(1, 0, 0)}}})
	return e
}

// lastEntry returns the newest timeline entry of alarm id.
func (e *alarmEnv) lastEntry(id string) TimelineEntry {
	e.t.Helper()
	var tl []TimelineEntry
	if err := e.db.View(func(txn *badger.Txn) (err error) {
		tl, err = AlarmTimeline(txn, id)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return tl[len(tl)-1]
}

// The URN rule, table by table: which alarms are eligible (by type, or by
// an open eligible alarm of the incident), which forces have a valid URN,
// the URN quoted, 999 and 101 always, and the older rules as they were.
// Every refusal leaves the state hash unchanged (alarmEnv.apply).
func TestURN_Rules(t *testing.T) {
	raise := func(id string, typ AlarmType, dev string) step {
		return step{CmdRaiseAlarm, func(e *alarmEnv) any {
			return RaiseAlarmCmd{Header: e.hdr("device:" + dev), AlarmID: id, Type: typ, DeviceID: dev}
		}}
	}
	ack := func(id string) step {
		return step{CmdAcknowledge, func(e *alarmEnv) any { return AcknowledgeCmd{Header: e.hdr("olivia"), AlarmID: id} }}
	}
	closeS := func(id string) step {
		return step{CmdCloseAlarmConfirmed, func(e *alarmEnv) any {
			return CloseAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Resolution: ResolutionIncidentHandled, Confirmation: ConfirmedByPolice}
		}}
	}
	const gmp = "Greater Manchester Police"
	police := func(id, force, route string, rules int) logActionCmd {
		return logActionCmd{AlarmID: id, Entry: TimelineEntry{Kind: ActionPolice, Force: force, Route: route, Reference: "ref"}, Rules: rules}
	}
	acked := func(typ AlarmType) []step { return []step{raise("a1", typ, "d1"), ack("a1")} }
	const alt = "call 999 if life is at risk, otherwise 101"

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			setup []step
			cmd   logActionCmd
			field string
			msg   []string
		}{
			{"man down", acked(AlarmManDown), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"medical emergency", "999 for an ambulance", alt}},
			{"missed check-in", acked(AlarmMissedCheckIn), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"overdue or missing worker", alt}},
			{"device offline", acked(AlarmDeviceOffline), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"offline", alt}},
			{"low battery", acked(AlarmLowBattery), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"low_battery alarm is technical", alt}},
			{"device flooding", acked(AlarmDeviceFlooding), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"device_flooding alarm is technical", alt}},
			{"test", acked(AlarmTest), police("a1", gmp, RouteURN, RulesURN), "entry.route", []string{"test alarm", alt}},
			{"a man down linked to a closed red alert",
				[]step{raise("a1", AlarmRedAlert, "d1"), raise("a2", AlarmManDown, "d1"), ack("a1"), closeS("a1"), ack("a2")},
				police("a2", gmp, RouteURN, RulesURN), "entry.route", []string{"medical emergency", alt}},
			{"a missed check-in of another incident than a red alert",
				[]step{raise("a1", AlarmRedAlert, "d1"), raise("a2", AlarmMissedCheckIn, "d2"), ack("a2")},
				police("a2", gmp, RouteURN, RulesURN), "entry.route", []string{"missed check-in", alt}},
			{"a force without a URN", acked(AlarmRedAlert), police("a1", "Thames Valley Police", RouteURN, RulesURN),
				"entry.force", []string{`no URN for the force "Thames Valley Police"`, alt}},
			{"only the worker's own, older URN", acked(AlarmRedAlert), police("a1", "Legacy Constabulary", RouteURN, RulesURN),
				"entry.force", []string{`no URN for the force "Legacy Constabulary"`, alt}},
			{"an expired URN", acked(AlarmDuress), police("a1", "merseyside police ", RouteURN, RulesURN),
				"entry.force", []string{`URN for the force "Merseyside Police" expired on 1 Mar 2026`, alt}},
			{"a URN expiring now", acked(AlarmRedAlert), police("a1", "Cheshire Police", RouteURN, RulesURN),
				"entry.force", []string{"expired on 2 Mar 2026", alt}},
			{"an organisation without URNs", []step{raise("a1", AlarmRedAlert, "d3"), ack("a1")}, police("a1", gmp, RouteURN, RulesURN),
				"entry.force", []string{"no URN", alt}},
			{"not eligible comes before the force", acked(AlarmTest), police("a1", "Thames Valley Police", RouteURN, RulesURN),
				"entry.route", []string{"test alarm"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := mustURNEnv(t)
				for _, s := range tc.setup {
					if _, err := e.apply(s.t, s.body(e)); err != nil {
						t.Fatalf("setup %s: %v", s.t, err)
					}
				}
				tc.cmd.Header = e.hdr("olivia")
				before := e.hash()
				_, err := e.apply(CmdLogAction, tc.cmd)
				re := asRuleError(t, err)
				if re.Code != CodeURNRefused || re.Field != tc.field {
					t.Fatalf("refusal %v: want %s on %s", err, CodeURNRefused, tc.field)
				}
				for _, m := range tc.msg {
					if !strings.Contains(re.Msg, m) {
						t.Errorf("refusal %q does not say %q", re.Msg, m)
					}
				}
				if string(before) != string(e.hash()) {
					t.Fatal("the refusal changed the state")
				}
			})
		}
	})

	t.Run("accepted", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			setup []step
			cmd   logActionCmd
			urn   string // the URN quoted on the entry
		}{
			{"red alert", acked(AlarmRedAlert), police("a1", gmp, RouteURN, RulesURN), "GMP-LW-1"},
			{"discreet panic", acked(AlarmDiscreetPanic), police("a1", gmp, RouteURN, RulesURN), "GMP-LW-1"},
			{"duress", acked(AlarmDuress), police("a1", gmp, RouteURN, RulesURN), "GMP-LW-1"},
			{"the force in other letters", acked(AlarmRedAlert), police("a1", " greater manchester POLICE", RouteURN, RulesURN), "GMP-LW-1"},
			{"the renewal, not the expired URN", acked(AlarmRedAlert), police("a1", "West Yorkshire Police", RouteURN, RulesURN), "WYP-2026"},
			{"a man down linked to an open red alert",
				[]step{raise("a1", AlarmRedAlert, "d1"), raise("a2", AlarmManDown, "d1"), ack("a2")},
				police("a2", gmp, RouteURN, RulesURN), "GMP-LW-1"},
			{"a missed check-in linked to an open discreet panic",
				[]step{raise("a1", AlarmDiscreetPanic, "d1"), raise("a2", AlarmMissedCheckIn, "d1"), ack("a2")},
				police("a2", gmp, RouteURN, RulesURN), "GMP-LW-1"},
			{"999 about a man down", acked(AlarmManDown), police("a1", gmp, Route999, RulesURN), ""},
			{"101 about a test", acked(AlarmTest), police("a1", "Thames Valley Police", Route101, RulesURN), ""},
			{"999 for a force whose URN expired", acked(AlarmRedAlert), police("a1", "Merseyside Police", Route999, RulesURN), ""},
			{"999 in an organisation without URNs", []step{raise("a1", AlarmMissedCheckIn, "d3"), ack("a1")}, police("a1", "Any", Route999, RulesURN), ""},
			// Older logs replay as they were applied: any alarm, any force,
			// and no URN written.
			{"rules 0: a test on an unknown force", acked(AlarmTest), police("a1", "Thames Valley Police", RouteURN, 0), ""},
			{"rules 1: a missed check-in on an expired URN", acked(AlarmMissedCheckIn), police("a1", "Merseyside Police", RouteURN, RulesIncidentDoNotCall), ""},
			{"rules 1: a red alert", acked(AlarmRedAlert), police("a1", gmp, RouteURN, RulesIncidentDoNotCall), ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := mustURNEnv(t)
				for _, s := range tc.setup {
					if _, err := e.apply(s.t, s.body(e)); err != nil {
						t.Fatalf("setup %s: %v", s.t, err)
					}
				}
				tc.cmd.Header = e.hdr("olivia")
				// Whatever a client puts there, the URN is the state
				// machine's to fill in.
				tc.cmd.Entry.URN = "FORGED"
				a := e.must(CmdLogAction, tc.cmd)
				if a.Status != StatusInProgress {
					t.Errorf("status %s", a.Status)
				}
				got := e.lastEntry(tc.cmd.AlarmID)
				if got.Kind != ActionPolice || got.Force != tc.cmd.Entry.Force || got.Route != tc.cmd.Entry.Route || got.URN != tc.urn {
					t.Fatalf("entry %+v: want the police call with URN %q", got, tc.urn)
				}
			})
		}
	})
}

// asRuleError returns err as a *RuleError, or fails.
func asRuleError(t *testing.T, err error) *RuleError {
	t.Helper()
	re, ok := err.(*RuleError)
	if !ok {
		t.Fatalf("got %v (%T), want a *RuleError", err, err)
	}
	return re
}

// The choice of a force's URN: the valid one lasting longest, else the
// one that expired last; expired from its expiry on.
func TestURN_ForceURN(t *testing.T) {
	us := []PoliceURN{
		{Force: "A", URN: "a-old", Expiry: t0.Add(-2 * time.Hour)},
		{Force: "A", URN: "a-older", Expiry: t0.Add(-3 * time.Hour)},
		{Force: "B", URN: "b-short", Expiry: t0.Add(time.Hour)},
		{Force: "B", URN: "b-long", Expiry: t0.Add(2 * time.Hour)},
		{Force: "B", URN: "b-gone", Expiry: t0.Add(-time.Hour)},
	}
	for _, tc := range []struct {
		force        string
		now          time.Time
		urn          string
		found, valid bool
	}{
		{"A", t0, "a-old", true, false},
		{"b", t0, "b-long", true, true},
		{"B", t0.Add(90 * time.Minute), "b-long", true, true},
		{"B", t0.Add(2 * time.Hour), "b-long", true, false},
		{"C", t0, "", false, false},
	} {
		u, found, valid := forceURN(us, tc.force, tc.now)
		if u.URN != tc.urn || found != tc.found || valid != tc.valid {
			t.Errorf("forceURN(%s, %s) = %q %v %v; want %q %v %v", tc.force, tc.now, u.URN, found, valid, tc.urn, tc.found, tc.valid)
		}
	}
}

// An organisation's URNs need a force, a URN and an expiry, all safe to
// show; more than one per force is fine. A worker's older URNs are checked
// as they always were (no expiry needed). Each refusal changes nothing.
func TestURN_OrganisationValidation(t *testing.T) {
	exp := t0.AddDate(1, 0, 0)
	put := func(e *alarmEnv, us []PoliceURN) error {
		_, err := e.apply(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr("admin"),
			Org: Organisation{ID: "o9", Name: "Nine", URNs: us}})
		return err
	}
	for _, tc := range []struct {
		name  string
		urns  []PoliceURN
		field string
	}{
		{"no force", []PoliceURN{{URN: "X", Expiry: exp}}, "org.urns[0].force"},
		{"no URN", []PoliceURN{{Force: "GMP", URN: " ", Expiry: exp}}, "org.urns[0].urn"},
		{"no expiry", []PoliceURN{{Force: "GMP", URN: "X"}}, "org.urns[0].expiry"},
		{"a hidden character in the URN", []PoliceURN{{Force: "GMP", URN: "X", Expiry: exp}, {Force: "GMP", URN: "Y\u202e1", Expiry: exp}}, "org.urns[1].urn"},
		{"a hidden character in the force", []PoliceURN{{Force: "G\u200bMP", URN: "X", Expiry: exp}}, "org.urns[0].force"},
		{"a URN too long", []PoliceURN{{Force: "GMP", URN: strings.Repeat("x", MaxNameLen+1), Expiry: exp}}, "org.urns[0].urn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustAlarmEnv(t)
			re := asRuleError(t, put(e, tc.urns))
			if re.Code != CodeInvalid || re.Field != tc.field {
				t.Fatalf("refusal %v: want invalid %s", re, tc.field)
			}
		})
	}
	e := mustAlarmEnv(t)
	us := []PoliceURN{{Force: "GMP", URN: "X-1", Expiry: exp}, {Force: "GMP", URN: "X-2", Expiry: exp.AddDate(1, 0, 0)}}
	if err := put(e, us); err != nil {
		t.Fatalf("two URNs of one force: %v", err)
	}
	var o Organisation
	if err := e.db.View(func(txn *badger.Txn) error {
		org, err := getOrg(txn, "o9")
		if err == nil {
			o = *org
		}
		return err
	}); err != nil || len(o.URNs) != 2 || o.URNs[1].URN != "X-2" {
		t.Fatalf("stored %+v, %v", o, err)
	}
	// A worker's URN without an expiry, as before.
	if _, err := e.apply(CmdPutWorker, putWorkerCmd{Header: e.hdr("admin"),
		Worker: Worker{ID: "w9", Name: "Nia", OrgID: "o1", URNs: []PoliceURN{{Force: "GMP", URN: "W-1"}}}}); err != nil {
		t.Fatalf("a worker's URN without an expiry: %v", err)
	}
	// Organisations and workers stored before URNs moved still decode.
	var old Organisation
	if err := json.Unmarshal([]byte(`{"id":"o1","name":"Trust","updated_at":"2026-01-01T00:00:00Z"}`), &old); err != nil || old.URNs != nil {
		t.Fatalf("an older organisation: %+v %v", old, err)
	}
}
