package monitoring

import (
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func (e *alarmEnv) report(id string) (*Report, error) {
	e.t.Helper()
	var r *Report
	var err error
	e.view(func(txn *badger.Txn) error { r, err = getReport(txn, id); return nil })
	return r, err
}

func (e *alarmEnv) closeWith(id string, res Resolution, rules int) {
	e.t.Helper()
	e.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Resolution: res,
		Confirmation: ConfirmedByWorker, NoBriefingReason: "worker asked us not to", Rules: rules})
}

// A genuine close of an alarm of a worker in danger makes a draft report
// due 48 h later, under RulesPostIncidentReport only; a false alarm, a
// test alarm's close and an older log's close make none; a reopened
// alarm closed again keeps its first report.
func TestReport_MadeByAGenuineClose(t *testing.T) {
	e := mustAlarmEnv(t)
	for _, tc := range []struct {
		id    string
		typ   AlarmType
		res   Resolution
		rules int
		want  bool
	}{
		{"red", AlarmRedAlert, ResolutionWorkerSafe, RulesPostIncidentReport, true},
		{"duress", AlarmDuress, ResolutionIncidentHandled, RulesPostIncidentReport, true},
		{"false", AlarmRedAlert, ResolutionFalseAlarm, RulesPostIncidentReport, false},
		{"test", AlarmTest, ResolutionWorkerSafe, RulesPostIncidentReport, false},
		{"battery", AlarmLowBattery, ResolutionWorkerSafe, RulesPostIncidentReport, false},
		{"older", AlarmRedAlert, ResolutionWorkerSafe, RulesBriefing, false},
	} {
		e.raise(tc.id, tc.typ, "d1")
		e.ack(tc.id, "olivia")
		e.tick(time.Minute)
		e.closeWith(tc.id, tc.res, tc.rules)
		r, err := e.report(tc.id)
		if got := err == nil; got != tc.want {
			t.Fatalf("%s: report %v (%v), want one %v", tc.id, r, err, tc.want)
		}
		if tc.want && (r.State != ReportDraft || !r.DueAt.Equal(e.now.Add(48*time.Hour)) || !r.ClosedAt.Equal(e.now) ||
			r.OrgID != "o1" || r.WorkerID != "w1") {
			t.Fatalf("%s: report %+v", tc.id, r)
		}
	}
	var due []string
	e.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pReportDue, false, func(k, _ []byte) (bool, error) {
			due = append(due, lastSegment(k))
			return true, nil
		})
	})
	if strings.Join(due, ",") != "red,duress" {
		t.Fatalf("reports due %v, want red then duress", due)
	}

	first, _ := e.report("red")
	e.tick(time.Hour)
	e.must(CmdReopenAlarm, reopenAlarmCmd{Header: e.hdr("sam"), AlarmID: "red", Reason: "worker rang back"})
	e.closeWith("red", ResolutionIncidentHandled, RulesPostIncidentReport)
	if again, _ := e.report("red"); *again != *first {
		t.Fatalf("closed again, the report became %+v, was %+v", again, first)
	}
}

// A draft's recommendations are saved and the report signed off once;
// every refusal names its field and leaves the state hash unchanged.
func TestReport_ActionRules(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	e.ack("a1", "olivia")
	e.closeWith("a1", ResolutionWorkerSafe, RulesPostIncidentReport)
	e.events()
	act := func(actor string, a ReportActionKind, text string) reportActionCmd {
		return reportActionCmd{Header: e.hdr(actor), AlarmID: "a1", Action: a, Recommendations: text}
	}
	for _, tc := range []struct {
		name  string
		cmd   reportActionCmd
		code  Code
		field string
	}{
		{"unknown action", act("sam", "publish", "x"), CodeInvalid, "action"},
		{"sign-off without recommendations", act("sam", ReportSignOff, "  "), CodeInvalid, "recommendations"},
		{"too long", act("sam", ReportSaveRecommendations, strings.Repeat("x", MaxTextLen+1)), CodeInvalid, "recommendations"},
		{"no report", reportActionCmd{Header: e.hdr("sam"), AlarmID: "a9", Action: ReportSaveRecommendations}, CodeNotFound, "alarm_id"},
	} {
		t.Run(tc.name, func(t *testing.T) { e.refusedAs(CmdReportAction, tc.cmd, tc.code, tc.field) })
	}
	e.tick(time.Hour)
	e.must2(CmdReportAction, act("sam", ReportSaveRecommendations, "Pair staff for evening visits."))
	r, _ := e.report("a1")
	if r.State != ReportDraft || r.Recommendations != "Pair staff for evening visits." || r.UpdatedBy != "sam" {
		t.Fatalf("saved draft %+v", r)
	}
	e.tick(time.Hour)
	e.must2(CmdReportAction, act("sam", ReportSignOff, "Pair staff for evening visits.\nBrief the site's reception."))
	r, _ = e.report("a1")
	if r.State != ReportSignedOff || r.SignedOffBy != "sam" || !r.SignedOffAt.Equal(e.now) || !strings.Contains(r.Recommendations, "reception") {
		t.Fatalf("signed-off report %+v", r)
	}
	e.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pReportDue, false, func(k, _ []byte) (bool, error) {
			t.Fatalf("a signed-off report is still due: %s", k)
			return false, nil
		})
	})
	e.refusedAs(CmdReportAction, act("ray", ReportSaveRecommendations, "later"), CodeConflict, "alarm_id")
	var types []EventType
	for _, ev := range e.events() {
		types = append(types, ev.Type)
	}
	if len(types) != 2 || types[0] != EventReportUpdated || types[1] != EventReportSignedOff {
		t.Fatalf("events %v", types)
	}
	audit := strings.Join(e.auditDetails("report/a1"), "\n")
	if !strings.Contains(audit, "post-incident report due") || !strings.Contains(audit, "CmdReportAction: signed off") {
		t.Fatalf("audit of the report:\n%s", audit)
	}
}
