package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/incident/incidenttest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// A supervisor puts the alarm's incident on legal hold from the alarm
// page, with a reason, and the page shows the hold; a hold without a reason
// is refused naming the field; an operator sees the hold but has no button,
// and a post of theirs is forbidden; the supervisor lifts it.
func TestConsole_LegalHoldFromTheAlarmPage(t *testing.T) {
	clk := incidenttest.NewClock(time.Now().Add(-72 * time.Hour).Truncate(time.Minute))
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	inc, err := incidenttest.Demo(context.Background(), n.Service, clk)
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Service.Alarm(inc.AlarmID)
	if err != nil {
		t.Fatal(err)
	}
	page := "/ui/alarms/" + a.ID
	post := func(s *uitest.Session, path string, form url.Values) (int, string) {
		form.Set("csrf", s.CSRF)
		resp, body := s.Do(http.MethodPost, path, form, nil)
		if resp.StatusCode == http.StatusSeeOther {
			resp, body = s.Do(http.MethodGet, resp.Header.Get("Location"), nil, nil)
		}
		return resp.StatusCode, body
	}
	sup := uitest.NewSession(t, srv.URL)
	if code := sup.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	op := uitest.NewSession(t, srv.URL)
	if code := op.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	if _, body := sup.Do(http.MethodGet, page, nil, nil); !strings.Contains(body, "Put on legal hold") || strings.Contains(body, `id="hold-status"`) {
		t.Fatal("the supervisor's alarm page has no hold button, or shows a hold before any")
	}
	if code, body := post(sup, page+"/hold", url.Values{"cmd_id": {"h0"}, "reason": {" "}}); code != http.StatusBadRequest && code != http.StatusUnprocessableEntity || !strings.Contains(body, "reason") {
		t.Fatalf("a hold without a reason: %d", code)
	}
	if h, _ := n.Service.Hold(a.IncidentID); h != nil {
		t.Fatalf("a refused hold was put: %+v", h)
	}
	code, body := post(sup, page+"/hold", url.Values{"cmd_id": {"h1"}, "reason": {"inquest, coroner's request"}})
	if code != http.StatusOK || !strings.Contains(body, `id="hold-status"`) || !strings.Contains(body, "inquest, coroner&#39;s request") ||
		!strings.Contains(body, "Lift the legal hold") {
		t.Fatalf("after the hold: %d", code)
	}
	if h, err := n.Service.Hold(a.IncidentID); err != nil || h == nil || h.By != "sam" {
		t.Fatalf("the hold in the state: %+v %v", h, err)
	}
	_, body = op.Do(http.MethodGet, page, nil, nil)
	if !strings.Contains(body, `id="hold-status"`) || strings.Contains(body, `id="hold-form"`) {
		t.Fatal("the operator's page does not show the hold, or shows its button")
	}
	if code, _ := post(op, page+"/release", url.Values{"cmd_id": {"r0"}, "reason": {"mine"}}); code != http.StatusForbidden {
		t.Fatalf("an operator's release: %d", code)
	}
	code, body = post(sup, page+"/release", url.Values{"cmd_id": {"r1"}, "reason": {"inquest closed"}})
	if code != http.StatusOK || strings.Contains(body, `id="hold-status"`) {
		t.Fatalf("after the release: %d", code)
	}
	if h, _ := n.Service.Hold(a.IncidentID); h != nil {
		t.Fatalf("the hold is still in the state: %+v", h)
	}
}

// A new organisation's page proposes the recommended retention; an
// administrator saves other periods, which the page then shows; a period
// out of bounds or not a number is refused naming it, and changes nothing.
func TestConsole_AdminOrgRetention(t *testing.T) {
	n, s := adaConsole(t)
	_, page := s.Do(http.MethodGet, "/ui/admin/organisations/new", nil, nil)
	for _, want := range []string{`name="retention_audio_days" value="90"`, `name="retention_alarm_days" value="730"`, `name="retention_outbox_days" value="30"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the new organisation's page does not propose %s", want)
		}
	}
	post := func(id string, fields url.Values) (int, string) {
		t.Helper()
		form := url.Values{"csrf": {s.CSRF}, "cmd_id": {id}, "new": {"1"}, "id": {"eastcare"}, "name": {"North Care"}}
		for k, v := range fields {
			form[k] = v
		}
		resp, body := s.Do(http.MethodPost, "/ui/admin/organisations", form, nil)
		return resp.StatusCode, body
	}
	for _, bad := range []struct{ field, value, want string }{
		{"retention_alarm_days", "10", "alarm_days"},
		{"retention_audio_days", "ninety", "Audio"},
	} {
		code, body := post("bad-"+bad.field, url.Values{bad.field: {bad.value}})
		if code == http.StatusSeeOther || !strings.Contains(body, bad.want) {
			t.Fatalf("%s=%s: %d, the page does not name %s", bad.field, bad.value, code, bad.want)
		}
		if _, err := n.Service.Organisation("eastcare"); err == nil {
			o, _ := n.Service.Organisation("eastcare")
			t.Fatalf("%s=%s: %d saved the organisation %+v", bad.field, bad.value, code, o)
		}
	}
	code, body := post("good", url.Values{"retention_audio_days": {"30"}, "retention_location_days": {"60"},
		"retention_alarm_days": {"365"}, "retention_outbox_days": {""}})
	if code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	o, err := n.Service.Organisation("eastcare")
	if err != nil {
		t.Fatal(err)
	}
	if want := (monitoring.Retention{AudioDays: 30, LocationDays: 60, AlarmDays: 365}); o.Retention != want {
		t.Fatalf("saved %+v, want %+v", o.Retention, want)
	}
	_, page = s.Do(http.MethodGet, "/ui/admin/organisations/eastcare", nil, nil)
	if !strings.Contains(page, `name="retention_alarm_days" value="365"`) || !strings.Contains(page, `name="retention_outbox_days" value="0"`) {
		t.Fatal("the page does not show the saved retention")
	}
}
