package api_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// TestAPI_NotifyPolicy: an organisation's notification policy is written
// with the organisation and read back; a bad address is refused naming it.
func TestAPI_NotifyPolicy(t *testing.T) {
	n := mustServe(t)
	body := `{"id": "p1", "org": {"id": "o1", "name": "Trust", "notify": {"close": {"emails": ["duty@trust.example"], "webhooks": ["oncall"]},
		"duress": {"emails": ["managers@trust.example"]}, "escalation": {"webhooks": ["sms-gateway"]},
		"reports": {"emails": ["quality@trust.example"], "webhooks": ["intranet"]}}}}`
	var o monitoring.Organisation
	if code := call(t, n, "POST", "/api/v1/organisations", body, &o); code != http.StatusCreated ||
		o.Notify.Close.Webhooks[0] != "oncall" || o.Notify.Duress.Emails[0] != "managers@trust.example" {
		t.Fatalf("POST = %d %+v", code, o)
	}
	if code := call(t, n, "GET", "/api/v1/organisations/o1", "", &o); code != http.StatusOK || o.Notify.Escalation.Webhooks[0] != "sms-gateway" ||
		o.Notify.Reports.Emails[0] != "quality@trust.example" || o.Notify.Reports.Webhooks[0] != "intranet" {
		t.Fatalf("GET = %d %+v", code, o.Notify)
	}
	var e api.ErrorResponse
	bad := `{"id": "p2", "org": {"id": "o1", "name": "Trust", "notify": {"duress": {"emails": ["managers"]}}}}`
	if code := call(t, n, "POST", "/api/v1/organisations", bad, &e); code != http.StatusBadRequest || e.Field != "org.notify.duress.emails[0]" {
		t.Fatalf("a bad address: %d %+v", code, e)
	}
	bad = `{"id": "p3", "org": {"id": "o1", "name": "Trust", "notify": {"reports": {"webhooks": ["Quality Team"]}}}}`
	if code := call(t, n, "POST", "/api/v1/organisations", bad, &e); code != http.StatusBadRequest || e.Field != "org.notify.reports.webhooks[0]" {
		t.Fatalf("a bad webhook name: %d %+v", code, e)
	}
}

// TestAPI_Notifications: an alarm's and an organisation's outbox, and one
// message, as JSON; the organisation's failures first; unknown IDs 404 and
// a bad limit 400 naming the field.
func TestAPI_Notifications(t *testing.T) {
	n := mustServe(t)
	svc, ctx := n.svc(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := svc.EnqueueNotification(ctx, "system", monitoring.Notification{Key: "k1", Kind: "test_notice", OrgID: "o1", AlarmID: a.ID,
		Emails: []string{"duty@trust.example"}, Subject: "One", Text: "one",
		Attachments: []monitoring.Attachment{{Name: "r.pdf", ContentType: "application/pdf", Data: []byte("%PDF")}}})
	if err != nil {
		t.Fatal(err)
	}
	failing, err := svc.EnqueueNotification(ctx, "system", monitoring.Notification{Key: "k2", Kind: "test_notice", OrgID: "o1",
		Webhooks: []string{"oncall"}, Subject: "Two"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordOutboxOutcome(ctx, sent.IDs[0], 1, true, "", svc.Now(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordOutboxOutcome(ctx, failing.IDs[0], 1, false, "HTTP 502", svc.Now().Add(10e9), false); err != nil {
		t.Fatal(err)
	}

	var list api.NotificationsResponse
	if code := call(t, n, "GET", "/api/v1/alarms/"+a.ID+"/notifications", "", &list); code != http.StatusOK ||
		len(list.Notifications) != 1 || list.Notifications[0].State != monitoring.OutboxSent ||
		list.Notifications[0].Attachments[0].Data != nil {
		t.Fatalf("alarm's = %d %+v", code, list)
	}
	if code := call(t, n, "GET", "/api/v1/organisations/o1/notifications", "", &list); code != http.StatusOK ||
		len(list.Notifications) != 2 || list.Notifications[0].State != monitoring.OutboxFailed ||
		list.Notifications[0].LastError != "HTTP 502" {
		t.Fatalf("organisation's = %d %+v", code, list)
	}
	var one monitoring.OutboxMessage
	if code := call(t, n, "GET", "/api/v1/notifications/"+failing.IDs[0], "", &one); code != http.StatusOK || one.Attempts != 1 {
		t.Fatalf("one = %d %+v", code, one)
	}
	for _, tc := range []struct {
		path  string
		code  int
		field string
	}{
		{"/api/v1/alarms/nope/notifications", 404, "alarm_id"},
		{"/api/v1/organisations/nope/notifications", 404, "organisation_id"},
		{"/api/v1/notifications/nope", 404, "id"},
		{"/api/v1/organisations/o1/notifications?limit=0", 400, "limit"},
	} {
		var e api.ErrorResponse
		if code := call(t, n, "GET", tc.path, "", &e); code != tc.code || e.Field != tc.field {
			t.Errorf("GET %s = %d %+v, want %d naming %q", tc.path, code, e, tc.code, tc.field)
		}
	}
}

// TestAPI_MonthlyStatistics: an organisation's month as JSON and as CSV,
// counting the alarm raised in it; a bad month or format is refused naming
// the field, an unknown organisation is 404.
func TestAPI_MonthlyStatistics(t *testing.T) {
	n := mustServe(t)
	svc, ctx := n.svc(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	month := a.RaisedAt.UTC().Format("2006-01")
	var st monitoring.MonthlyStats
	if code := call(t, n, "GET", "/api/v1/organisations/o1/statistics/"+month, "", &st); code != http.StatusOK ||
		st.Month != month || st.Total.Raised != 1 || st.Total.Open != 1 {
		t.Fatalf("GET = %d %+v", code, st)
	}
	req, _ := http.NewRequest("GET", n.URL+"/api/v1/organisations/o1/statistics/"+month+"?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || len(rows) < 10 || rows[0][0] != "section" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV = %d %v %v", resp.StatusCode, err, rows)
	}
	for _, r := range rows {
		if r[0] == "alarms.man_down" && r[1] == "raised" && r[2] != "1" {
			t.Errorf("CSV man_down raised = %s", r[2])
		}
	}
	var e api.ErrorResponse
	for path, want := range map[string]string{
		"/api/v1/organisations/o1/statistics/2026-13":                  "month",
		"/api/v1/organisations/o1/statistics/" + month + "?format=pdf": "format",
	} {
		if code := call(t, n, "GET", path, "", &e); code != http.StatusBadRequest || e.Field != want {
			t.Errorf("%s = %d %+v, want 400 naming %s", path, code, e, want)
		}
	}
	if code := call(t, n, "GET", "/api/v1/organisations/nobody/statistics/"+month, "", &e); code != http.StatusNotFound {
		t.Errorf("unknown organisation = %d %+v", code, e)
	}
}

// TestAPI_Briefing: the briefing goes to the contacts with an email, once;
// an alarm without one is refused naming alarm_id.
func TestAPI_Briefing(t *testing.T) {
	n := mustServe(t)
	svc, ctx := n.svc(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust",
		Contacts: []monitoring.Contact{{Name: "Kim", Phone: "0161 496 0001", Email: "kim@trust.example"}, {Name: "Lee", Phone: "0161 496 0002"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOrganisation(ctx, "org2", "admin", monitoring.Organisation{ID: "o2", Name: "Two"}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []monitoring.Worker{{ID: "w1", Name: "Ann", OrgID: "o1"}, {ID: "w2", Name: "Bo", OrgID: "o2"}} {
		if _, err := svc.PutWorker(ctx, w.ID, "admin", w); err != nil {
			t.Fatal(err)
		}
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	var res monitoring.EnqueueResult
	if code := call(t, n, "POST", "/api/v1/alarms/"+a.ID+"/briefing", `{"id": "b1"}`, &res); code != http.StatusOK || res.New != 1 {
		t.Fatalf("briefing = %d %+v", code, res)
	}
	if code := call(t, n, "POST", "/api/v1/alarms/"+a.ID+"/briefing", `{"id": "b2"}`, &res); code != http.StatusOK || res.New != 0 {
		t.Fatalf("again = %d %+v", code, res)
	}
	b, err := svc.RaiseAlarm(ctx, "ev2", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w2"})
	if err != nil {
		t.Fatal(err)
	}
	var e api.ErrorResponse
	if code := call(t, n, "POST", "/api/v1/alarms/"+b.ID+"/briefing", `{"id": "b3"}`, &e); code != http.StatusBadRequest || e.Field != "alarm_id" {
		t.Fatalf("no address = %d %+v", code, e)
	}
}
