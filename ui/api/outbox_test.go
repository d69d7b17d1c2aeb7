package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// TestAPI_NotifyPolicy: an organisation's notification policy is written
// with the organisation and read back; a bad address is refused naming it.
func TestAPI_NotifyPolicy(t *testing.T) {
	n := mustServe(t)
	body := `{"id": "p1", "org": {"id": "o1", "name": "Trust", "notify": {"close": {"emails": ["duty@trust.example"], "webhooks": ["oncall"]},
		"duress": {"emails": ["managers@trust.example"]}, "escalation": {"webhooks": ["sms-gateway"]}}}}`
	var o monitoring.Organisation
	if code := call(t, n, "POST", "/api/v1/organisations", body, &o); code != http.StatusCreated ||
		o.Notify.Close.Webhooks[0] != "oncall" || o.Notify.Duress.Emails[0] != "managers@trust.example" {
		t.Fatalf("POST = %d %+v", code, o)
	}
	if code := call(t, n, "GET", "/api/v1/organisations/o1", "", &o); code != http.StatusOK || o.Notify.Escalation.Webhooks[0] != "sms-gateway" {
		t.Fatalf("GET = %d %+v", code, o.Notify)
	}
	var e api.ErrorResponse
	bad := `{"id": "p2", "org": {"id": "o1", "name": "Trust", "notify": {"duress": {"emails": ["managers"]}}}}`
	if code := call(t, n, "POST", "/api/v1/organisations", bad, &e); code != http.StatusBadRequest || e.Field != "org.notify.duress.emails[0]" {
		t.Fatalf("a bad address: %d %+v", code, e)
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
