package monitoring_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

// seedMonth raises, acknowledges and closes alarms of organisation o1 in
// November 2026 (and one on either side of it), and starts a session in
// it. It returns the genuine red alert acknowledged within 10 s.
func seedMonth(t *testing.T, svc *monitoring.Service, clk *clock) string {
	t.Helper()
	ctx := context.Background()
	type seed struct {
		at       time.Time
		typ      monitoring.AlarmType
		ackAfter time.Duration // 0: not acknowledged
		res      monitoring.Resolution
	}
	nov := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	seeds := []seed{
		{time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC), monitoring.AlarmRedAlert, 5 * time.Second, monitoring.ResolutionFalseAlarm},
		{nov(3, 10), monitoring.AlarmRedAlert, 5 * time.Second, monitoring.ResolutionWorkerSafe},
		{nov(5, 11), monitoring.AlarmManDown, 25 * time.Second, monitoring.ResolutionFalseAlarm},
		{nov(10, 12), monitoring.AlarmRedAlert, 60 * time.Second, monitoring.ResolutionIncidentHandled},
		{nov(12, 13), monitoring.AlarmTest, 3 * time.Second, monitoring.ResolutionTest},
		{nov(20, 14), monitoring.AlarmMissedCheckIn, 8 * time.Second, monitoring.ResolutionWorkerSafe},
		{nov(30, 23).Add(59*time.Minute + 59*time.Second), monitoring.AlarmManDown, 0, ""}, // open at the end
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), monitoring.AlarmRedAlert, 4 * time.Second, monitoring.ResolutionWorkerSafe},
	}
	var first string
	for i, s := range seeds {
		clk.Set(s.at)
		id := "a" + string(rune('0'+i))
		a, err := svc.RaiseAlarm(ctx, "raise-"+id, "device:d1", monitoring.RaiseAlarmRequest{Type: s.typ, DeviceID: "d1"})
		if err != nil {
			t.Fatalf("raise %d: %v", i, err)
		}
		if i == 1 {
			first = a.ID
		}
		if s.ackAfter == 0 {
			continue
		}
		clk.Set(s.at.Add(s.ackAfter))
		if _, err := svc.Acknowledge(ctx, "ack-"+id, "olivia", a.ID, false); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
		clk.Set(s.at.Add(s.ackAfter + time.Minute))
		if _, err := svc.Close(ctx, "close-"+id, "olivia", a.ID, s.res, monitoring.ConfirmedByWorker, "", "no contacts on file (test)"); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	clk.Set(nov(4, 9))
	if _, err := svc.StartSession(ctx, "s1", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return first
}

// TestMonthlyStats_SeededMonth: the figures of a seeded November count its
// alarms by type and by how they ended, the acknowledgements within 10 s
// and 40 s, the session and the missed check-in, and nothing of October
// or December; the CSV parses back to the same figures.
func TestMonthlyStats_SeededMonth(t *testing.T) {
	clk := &clock{now: time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)}
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(svc *monitoring.Service) { svc.Now = clk.Now }})
	svc := n.Service
	seedService(t, svc)
	seedMonth(t, svc, clk)
	clk.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))

	st, err := svc.MonthlyStats("o1", "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	by := map[monitoring.AlarmType]monitoring.TypeCount{}
	for _, tc := range st.ByType {
		by[tc.Type] = tc
	}
	want := map[monitoring.AlarmType]monitoring.TypeCount{
		monitoring.AlarmRedAlert:      {Type: monitoring.AlarmRedAlert, Raised: 2, Genuine: 2},
		monitoring.AlarmManDown:       {Type: monitoring.AlarmManDown, Raised: 2, False: 1, Open: 1},
		monitoring.AlarmTest:          {Type: monitoring.AlarmTest, Raised: 1, Test: 1},
		monitoring.AlarmMissedCheckIn: {Type: monitoring.AlarmMissedCheckIn, Raised: 1, Genuine: 1},
		monitoring.AlarmDuress:        {Type: monitoring.AlarmDuress},
	}
	for typ, w := range want {
		if by[typ] != w {
			t.Errorf("%s: %+v, want %+v", typ, by[typ], w)
		}
	}
	if st.Total.Raised != 6 || st.Total.Genuine != 3 || st.Total.False != 1 || st.Total.Test != 1 || st.Total.Open != 1 {
		t.Errorf("total: %+v", st.Total)
	}
	k := st.KPIs
	// Acknowledged after 5 s, 25 s, 60 s and 8 s; the open one, raised
	// five minutes before the figures, has missed 40 s.
	if k.TargetBase != 5 || k.Missed != 2 || k.AckWithin10s != 2.0/5 || k.AckWithin40s != 3.0/5 || k.Target1Met || k.Target2Met {
		t.Errorf("kpis: %+v", k)
	}
	if st.Sessions != 1 || st.MissedCheckIns != 1 || st.Month != "2026-11" || st.OrgName != "Trust" {
		t.Errorf("stats: %+v", st)
	}

	rows, err := csv.NewReader(bytes.NewReader(st.CSV())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]+"/"+r[1]] = r[2]
	}
	for key, v := range map[string]string{
		"alarms.red_alert/genuine": "2", "alarms.man_down/false": "1", "alarms.man_down/open": "1",
		"alarms.total/raised": "6", "response/ack_within_10s_percent": "40.0", "response/ack_within_40s_percent": "60.0",
		"response/missed_40s": "2", "sessions/started": "1", "sessions/missed_checkins": "1", "month/month": "2026-11",
	} {
		if got[key] != v {
			t.Errorf("csv %s = %q, want %q", key, got[key], v)
		}
	}
	if !strings.Contains(st.Text(), "Acknowledged within 10 s: 40.0% (target 80%: NOT met)") {
		t.Errorf("text:\n%s", st.Text())
	}
	// October holds the alarm of its last second only.
	oct, err := svc.MonthlyStats("o1", "2026-10")
	if err != nil || oct.Total.Raised != 1 || oct.Total.False != 1 {
		t.Fatalf("october: %+v, %v", oct, err)
	}
	if _, err := svc.MonthlyStats("o1", "2026-13"); !isRuleField(err, "month") {
		t.Fatalf("a bad month: %v", err)
	}
}

// TestMonthlyStats_ReportNotices: with reports recipients, the leader's scan
// finds the month before's statistics on the first of the month, and a
// signed-off post-incident report, each once: enqueued, they are pending no
// more; the messages carry the fixed keys, the CSV and the report's link.
func TestMonthlyStats_ReportNotices(t *testing.T) {
	clk := &clock{now: time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)}
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(svc *monitoring.Service) { svc.Now = clk.Now }})
	svc, ctx := n.Service, context.Background()
	seedService(t, svc)
	red := seedMonth(t, svc, clk)
	pending := func(kind string) []monitoring.Notification {
		t.Helper()
		ns, err := svc.PendingNotices(clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		var out []monitoring.Notification
		for _, n := range ns {
			if n.Kind == kind {
				out = append(out, n)
			}
		}
		return out
	}
	// No recipients: nothing.
	clk.Set(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	if _, err := svc.ReportAction(ctx, "sign", "sam", red, monitoring.ReportSignOff, "Pair staff for evening visits."); err != nil {
		t.Fatal(err)
	}
	if ns := pending(monitoring.NoticeIncidentReport); len(ns) != 0 {
		t.Fatalf("pending without recipients: %+v", ns)
	}
	org := monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute, Notify: monitoring.NotifyPolicy{
		Reports: monitoring.Recipients{Emails: []string{"quality@trust.example", "board@trust.example"}, Webhooks: []string{"intranet"}},
	}}
	if _, err := svc.PutOrganisation(ctx, "org-reports", "admin", org); err != nil {
		t.Fatal(err)
	}
	ns := pending(monitoring.NoticeIncidentReport)
	if len(ns) != 1 || ns[0].Key != "report/"+red+"/signed-off" || ns[0].AlarmID != red || len(ns[0].Emails) != 2 ||
		ns[0].Link != "/reports/incidents/"+red || !strings.Contains(ns[0].Text, "Pair staff for evening visits.") {
		t.Fatalf("report notice: %+v", ns)
	}
	res, err := svc.EnqueueNotification(ctx, "system", ns[0])
	if err != nil || res.New != 3 {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	// A second leader's enqueue of the same notice adds nothing (the
	// organisation's outbox below holds each message once).
	if _, err := svc.EnqueueNotification(ctx, "system", ns[0]); err != nil {
		t.Fatalf("enqueue again: %v", err)
	}
	if ns := pending(monitoring.NoticeIncidentReport); len(ns) != 0 {
		t.Fatalf("pending after the enqueue: %+v", ns)
	}

	// On the first of December, November's figures.
	clk.Set(time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC))
	ms := pending(monitoring.NoticeMonthlyStats)
	if len(ms) != 1 || ms[0].Key != "monthly/o1/2026-11" || len(ms[0].Attachments) != 1 ||
		ms[0].Attachments[0].ContentType != "text/csv" || !strings.Contains(ms[0].Text, "Sessions started: 1") {
		t.Fatalf("monthly notice: %+v", ms)
	}
	if res, err := svc.EnqueueNotification(ctx, "system", ms[0]); err != nil || res.New != 3 {
		t.Fatalf("enqueue the month: %+v, %v", res, err)
	}
	if ms := pending(monitoring.NoticeMonthlyStats); len(ms) != 0 {
		t.Fatalf("pending after the month's enqueue: %+v", ms)
	}
	msgs, err := svc.OrgOutbox("o1", 0)
	if err != nil || len(msgs) != 6 {
		t.Fatalf("org outbox: %d, %v", len(msgs), err)
	}
	// A week after the sign-off, the report is not sent to new recipients.
	org.Notify.Reports.Emails = append(org.Notify.Reports.Emails, "late@trust.example")
	if _, err := svc.PutOrganisation(ctx, "org-late", "admin", org); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	if ns := pending(monitoring.NoticeIncidentReport); len(ns) != 0 {
		t.Fatalf("pending past the look-back: %+v", ns)
	}
}

func isRuleField(err error, field string) bool {
	var re *monitoring.RuleError
	return errors.As(err, &re) && re.Field == field
}

// TestRulesFloor_NewFieldsWaitForEveryMember: while a member of the cluster
// runs a build that does not know the reports list or a contact's email (it
// would drop them), the Service refuses to write them, naming the field and
// changing nothing; once every member knows them, they are written.
func TestRulesFloor_NewFieldsWaitForEveryMember(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	svc, ctx := n.Service, context.Background()
	seedService(t, svc)
	known := map[string]int{}
	svc.SetRulesFloor(func(name string, newest, baseline int) (int, bool) {
		if v, ok := known[name]; ok {
			return min(newest, v), true
		}
		if strings.HasPrefix(name, "field/") {
			return min(newest, baseline), true // the older member reports nothing
		}
		return newest, true
	})
	org := monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute,
		Notify: monitoring.NotifyPolicy{Reports: monitoring.Recipients{Emails: []string{"quality@trust.example"}}}}
	worker := monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1",
		Contacts: []monitoring.Contact{{Name: "Kim", Phone: "0161 496 0001"}, {Name: "Lee", Phone: "0161 496 0002", Email: "lee@home.example"}}}
	check := func(err error, field string) {
		t.Helper()
		var re *monitoring.RuleError
		if !errors.As(err, &re) || re.Code != monitoring.CodeUpgrading || re.Field != field {
			t.Fatalf("want a refusal naming %s while upgrading: %v", field, err)
		}
	}
	_, err := svc.PutOrganisation(ctx, "org-r", "admin", org)
	check(err, "org.notify.reports")
	_, err = svc.PutWorker(ctx, "w1-c", "admin", worker)
	check(err, "worker.contacts[1].email")
	if o, _ := svc.Organisation("o1"); len(o.Notify.Reports.Emails) != 0 {
		t.Fatalf("the refused list was written: %+v", o.Notify)
	}
	if w, _ := svc.Worker("w1"); len(w.Contacts) != 0 {
		t.Fatalf("the refused contacts were written: %+v", w.Contacts)
	}
	known["field/org.notify.reports"], known["field/contact.email"] = 1, 1
	if _, err := svc.PutOrganisation(ctx, "org-r2", "admin", org); err != nil {
		t.Fatal(err)
	}
	if w, err := svc.PutWorker(ctx, "w1-c2", "admin", worker); err != nil || w.Contacts[1].Email != "lee@home.example" {
		t.Fatalf("once every member knows: %+v, %v", w, err)
	}
}
