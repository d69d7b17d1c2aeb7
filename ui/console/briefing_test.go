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

// TestConsole_SendTheBriefing: the alarm page of a worker whose contacts
// include one with an email offers "Send the briefing"; pressed twice, it
// enqueues one mail to that contact, listed under the alarm's
// notifications; a worker whose contacts have no email gets no button, and
// a post for one is refused saying so.
func TestConsole_SendTheBriefing(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	svc, ctx := n.Service, context.Background()
	ben, err := svc.Worker("w-ben")
	if err != nil {
		t.Fatal(err)
	}
	ben.Contacts = append(ben.Contacts, monitoring.Contact{Name: "Priya Nair", Phone: "0161 496 0123", Relation: "team lead",
		Email: "priya.nair@northcare.example"})
	if _, err := svc.PutWorker(ctx, "ben-email", "admin", *ben); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w-ben"})
	if err != nil {
		t.Fatal(err)
	}
	op := uitest.NewSession(t, srv.URL)
	if code := op.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	_, page := op.Do(http.MethodGet, "/ui/alarms/"+a.ID, nil, nil)
	if !strings.Contains(page, `id="send-briefing"`) || !strings.Contains(page, "to 1 contact with an email") {
		t.Fatalf("no briefing button on the alarm page")
	}
	for i := range 2 {
		form := url.Values{"csrf": {op.CSRF}, "cmd_id": {"brief-" + time.Now().Format(time.RFC3339Nano)}}
		if resp, body := op.Do(http.MethodPost, "/ui/alarms/"+a.ID+"/briefing", form, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("press %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	msgs, err := svc.AlarmOutbox(a.ID)
	if err != nil || len(msgs) != 1 || msgs[0].To != "priya.nair@northcare.example" || msgs[0].Kind != monitoring.NoticeBriefing ||
		!strings.Contains(msgs[0].Text, "Dear Priya Nair") {
		t.Fatalf("outbox after two presses: %+v, %v", msgs, err)
	}
	_, page = op.Do(http.MethodGet, "/ui/alarms/"+a.ID, nil, nil)
	if !strings.Contains(page, "Contacts&#39; briefing") && !strings.Contains(page, "Contacts' briefing") {
		t.Errorf("the alarm's notifications do not list the briefing")
	}

	b, err := svc.RaiseAlarm(ctx, "ev2", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w-amira"})
	if err != nil {
		t.Fatal(err)
	}
	if _, page := op.Do(http.MethodGet, "/ui/alarms/"+b.ID, nil, nil); strings.Contains(page, `id="send-briefing"`) {
		t.Errorf("a briefing button for contacts without an email")
	}
	form := url.Values{"csrf": {op.CSRF}, "cmd_id": {"brief-b"}}
	resp, body := op.Do(http.MethodPost, "/ui/alarms/"+b.ID+"/briefing", form, nil)
	if resp.StatusCode < 400 || !strings.Contains(html.UnescapeString(body), "has an email address") {
		t.Errorf("a briefing without addresses: %d", resp.StatusCode)
	}
}
