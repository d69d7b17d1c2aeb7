package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// The outbox in the console: the alarm page lists what was sent about the
// alarm, to whom, its state and failures; the notifications page lists an
// organisation's, failures first, to supervisors only; an administrator
// sets the policy on the organisation's page, and a bad address is refused
// naming it.
func TestConsole_Notifications(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	svc, ctx := n.Service, context.Background()
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w-amira"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := svc.EnqueueNotification(ctx, "system", monitoring.Notification{Key: "k-sent", Kind: monitoring.NoticeAlarmClosed,
		OrgID: "northcare", AlarmID: a.ID, Emails: []string{"duty@northcare.example"}, Subject: "Closed", Text: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	failing, err := svc.EnqueueNotification(ctx, "system", monitoring.Notification{Key: "k-failing", Kind: monitoring.NoticeDuress,
		OrgID: "northcare", AlarmID: a.ID, Webhooks: []string{"sms-gateway"}, Subject: "Duress"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordOutboxOutcome(ctx, sent.IDs[0], 1, true, "", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	for i, reason := range []string{"dial tcp 10.0.0.9:443: connection refused", "HTTP 502: <bad gateway>"} {
		if _, err := svc.RecordOutboxOutcome(ctx, failing.IDs[0], i+1, false, reason, svc.Now().Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
	}

	op := uitest.NewSession(t, srv.URL)
	if code := op.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	_, page := op.Do(http.MethodGet, "/ui/alarms/"+a.ID, nil, nil)
	i := strings.Index(page, `id="notifications"`)
	if i < 0 {
		t.Fatal("the alarm page has no notifications section")
	}
	section := page[i:]
	section = section[:strings.Index(section, "</section>")]
	for _, want := range []string{"Genuine alarm closed", "duty@northcare.example", "sent", "Duress or discreet alarm",
		"sms-gateway", "failing", "HTTP 502: &lt;bad gateway&gt;", "2 failures", "connection refused"} {
		if !strings.Contains(section, want) {
			t.Errorf("the alarm's notifications do not show %q:\n%s", want, section)
		}
	}
	if resp, _ := op.Do(http.MethodGet, "/ui/reports/notifications?org=northcare", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an operator gets the notifications page: %d", resp.StatusCode)
	}

	sup := uitest.NewSession(t, srv.URL)
	if code := sup.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	resp, page := sup.Do(http.MethodGet, "/ui/reports/notifications?org=northcare", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "1 failing or given up") {
		t.Fatalf("notifications page: %d\n%s", resp.StatusCode, page)
	}
	if f, s := strings.Index(page, "sms-gateway"), strings.Index(page, "duty@northcare.example"); f < 0 || s < 0 || f > s {
		t.Errorf("the failing message is not listed before the sent one (%d, %d)", f, s)
	}
	if resp, _ := sup.Do(http.MethodGet, "/ui/reports/notifications?org=nope", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown organisation: %d", resp.StatusCode)
	}

	// The policy, set by an administrator.
	if _, err := svc.PutOperator(ctx, "op-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: "ada administers the appliance", Create: true}); err != nil {
		t.Fatal(err)
	}
	adm := uitest.NewSession(t, srv.URL)
	if code := adm.SignIn("ada", "ada administers the appliance"); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	post := func(fields url.Values) (int, string) {
		form := url.Values{"csrf": {adm.CSRF}, "cmd_id": {"org-" + time.Now().Format(time.RFC3339Nano)},
			"id": {"northcare"}, "name": {"North Care Community Health"}}
		for k, v := range fields {
			form[k] = v
		}
		resp, body := adm.Do(http.MethodPost, "/ui/admin/organisations", form, nil)
		return resp.StatusCode, body
	}
	if code, body := post(url.Values{"notify_close_emails": {"duty@northcare.example, safety@northcare.example"},
		"notify_duress_emails": {"managers@northcare.example"}, "notify_escalation_webhooks": {"oncall"},
		"notify_reports_emails": {"quality@northcare.example"}, "notify_reports_webhooks": {"intranet"}}); code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	o, err := svc.Organisation("northcare")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Notify.Close.Emails) != 2 || o.Notify.Duress.Emails[0] != "managers@northcare.example" || o.Notify.Escalation.Webhooks[0] != "oncall" ||
		len(o.Notify.Reports.Emails) != 1 || o.Notify.Reports.Emails[0] != "quality@northcare.example" || o.Notify.Reports.Webhooks[0] != "intranet" {
		t.Fatalf("saved policy %+v", o.Notify)
	}
	_, page = adm.Do(http.MethodGet, "/ui/admin/organisations/northcare", nil, nil)
	if !strings.Contains(page, `value="duty@northcare.example, safety@northcare.example"`) || !strings.Contains(page, `value="quality@northcare.example"`) {
		t.Errorf("the organisation's page does not show the policy")
	}
	code, body := post(url.Values{"notify_duress_emails": {"managers"}})
	if code < 400 || !strings.Contains(html.UnescapeString(body), `"managers" is not a mail address`) {
		t.Errorf("a bad address: %d, want a refusal naming it", code)
	}
	if now, _ := svc.Organisation("northcare"); now.Notify.Duress.Emails[0] != "managers@northcare.example" {
		t.Errorf("a refused policy changed the organisation: %+v", now.Notify)
	}
}
