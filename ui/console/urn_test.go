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
	"github.com/vigilarc/vigil/ui/uitest"
)

// The police form offers the organisation's URN only for an alarm that is
// eligible (a red alert here), never an expired one; on a man-down it says
// why not and that 999 or 101 apply, and a URN call posted anyway is
// refused with the reason, as JSON for the script and on the page for a
// plain form. An accepted call shows the URN quoted on the timeline.
func TestConsole_PoliceFormOffersTheURNOnlyWhenEligible(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	red, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Amira.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	down, err := n.Service.RaiseAlarm(ctx, "r2", "device:"+f.Ben.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: f.Ben.Device})
	if err != nil || down.IncidentID == red.IncidentID {
		t.Fatalf("man-down %+v, %v: want an incident of its own", down, err)
	}
	post := func(id, action string, form url.Values, json bool) (int, string) {
		form.Set("csrf", s.CSRF)
		form.Set("cmd_id", action+"-"+id+form.Get("force")+form.Get("route"))
		h := map[string]string{}
		if json {
			h["Accept"] = "application/json"
		}
		resp, body := s.Do(http.MethodPost, "/ui/alarms/"+id+"/"+action, form, h)
		return resp.StatusCode, body
	}
	for _, id := range []string{red.ID, down.ID} {
		if code, body := post(id, "acknowledge", url.Values{}, true); code != http.StatusOK {
			t.Fatalf("acknowledge %s: %d %s", id, code, body)
		}
	}
	urnForm := `<input type="hidden" name="route" value="urn">`

	_, body := s.Do(http.MethodGet, "/ui/alarms/"+red.ID, nil, nil)
	police := section(t, body, `id="police"`)
	if !strings.Contains(police, `id="urn-eligible"`) || strings.Contains(police, `id="urn-not-eligible"`) {
		t.Errorf("the red alert's police section does not say a URN may be quoted:\n%s", police)
	}
	if !strings.Contains(police, "GMP-LW-20931") || !strings.Contains(police, "LAN-LW-4410") || !strings.Contains(police, "EXPIRED") {
		t.Errorf("the red alert's police section does not show both URNs, the Lancashire one expired:\n%s", police)
	}
	if got := strings.Count(police, urnForm); got != 1 || !strings.Contains(police, `name="force" value="Greater Manchester Police"`) {
		t.Errorf("the red alert offers %d URN calls; want one, Greater Manchester Police's (the Lancashire URN expired):\n%s", got, police)
	}
	if strings.Contains(police, "CHE-LW-0118") || !strings.Contains(police, `id="legacy-urns"`) {
		t.Errorf("the worker's own, older URN: want it not offered, and a word that it is not used")
	}

	_, body = s.Do(http.MethodGet, "/ui/alarms/"+down.ID, nil, nil)
	police = section(t, body, `id="police"`)
	if !strings.Contains(police, `id="urn-not-eligible"`) || !strings.Contains(police, "medical emergency") ||
		!strings.Contains(police, "Call 999 if life is at risk, otherwise 101") {
		t.Errorf("the man-down's police section does not say why no URN, nor 999 or 101:\n%s", police)
	}
	if strings.Contains(police, urnForm) || !strings.Contains(police, `value="999"`) || !strings.Contains(police, `value="101"`) {
		t.Errorf("the man-down's police section offers a URN call, or not 999 and 101:\n%s", police)
	}

	// A URN call posted anyway is refused, and nothing is logged.
	gmp := url.Values{"kind": {"police"}, "force": {"Greater Manchester Police"}, "route": {"urn"}}
	code, resp := post(down.ID, "actions", gmp, true)
	if code != http.StatusUnprocessableEntity || !strings.Contains(resp, `"field":"entry.route"`) || !strings.Contains(resp, "otherwise 101") {
		t.Fatalf("a URN call about the man-down: %d %s; want 422 on entry.route", code, resp)
	}
	code, resp = post(down.ID, "actions", url.Values{"kind": {"police"}, "force": {"Greater Manchester Police"}, "route": {"urn"}}, false)
	if code != http.StatusUnprocessableEntity || !strings.Contains(resp, `role="alert"`) || !strings.Contains(resp, "a man-down alarm is a medical emergency") {
		t.Fatalf("a URN call about the man-down from the plain form: %d; want the page with the refusal", code)
	}
	if tl, err := n.Service.Timeline(down.ID); err != nil || tl[len(tl)-1].Kind == monitoring.ActionPolice {
		t.Fatalf("a refused URN call was logged: %+v %v", tl, err)
	}
	code, resp = post(red.ID, "actions", url.Values{"kind": {"police"}, "force": {"Lancashire Constabulary"}, "route": {"urn"}}, true)
	if code != http.StatusUnprocessableEntity || !strings.Contains(resp, `"field":"entry.force"`) || !strings.Contains(resp, "expired on") {
		t.Fatalf("a URN call on the expired URN: %d %s; want 422 on entry.force", code, resp)
	}
	if code, resp := post(down.ID, "actions", url.Values{"kind": {"police"}, "force": {"Greater Manchester Police"}, "route": {"999"}}, true); code != http.StatusOK {
		t.Fatalf("999 about the man-down: %d %s", code, resp)
	}
	if code, resp := post(red.ID, "actions", gmp, true); code != http.StatusOK {
		t.Fatalf("the URN call about the red alert: %d %s", code, resp)
	}
	_, body = s.Do(http.MethodGet, "/ui/alarms/"+red.ID, nil, nil)
	if tl := section(t, body, `id="timeline"`); !strings.Contains(tl, "URN GMP-LW-20931") {
		t.Errorf("the timeline does not show the URN quoted:\n%s", tl)
	}
}

// section returns the element of body that opens with marker, up to its
// section's end.
func section(t *testing.T, body, marker string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no %s on the page", marker)
	}
	s := body[i:]
	if j := strings.Index(s, "</section>"); j >= 0 {
		s = s[:j]
	}
	return s
}

// The admin pages: the organisation's form edits its URNs (force, URN,
// expiry; a row without an expiry is refused, naming the row); the
// worker's form no longer does, and shows the worker's older URNs read
// only, with where to move them, keeping them on a save.
func TestConsole_AdminURNsOnTheOrganisation(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	if _, err := n.Service.PutOperator(context.Background(), "urn-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: adaPassword, Create: true}); err != nil {
		t.Fatal(err)
	}
	ada := uitest.NewSession(t, srv.URL)
	if code := ada.SignIn("ada", adaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	_, page := ada.Do(http.MethodGet, "/ui/admin/organisations/northcare", nil, nil)
	if !strings.Contains(page, `name="urn_code" value="GMP-LW-20931"`) || !strings.Contains(page, `name="urn_code" value="LAN-LW-4410"`) {
		t.Fatalf("the organisation's form does not show its URNs")
	}
	next := time.Now().AddDate(2, 0, 0).Format("2006-01-02")
	form := url.Values{"csrf": {ada.CSRF}, "cmd_id": {"org-urns"}, "id": {"northcare"}, "name": {"North Care Community Health"},
		"urn_force":  {"Greater Manchester Police", "Greater Manchester Police", "Merseyside Police"},
		"urn_code":   {"GMP-LW-20931", "GMP-LW-30001", "MER-7"},
		"urn_expiry": {time.Now().AddDate(1, 0, 0).Format("2006-01-02"), next, ""}}
	resp, page := ada.Do(http.MethodPost, "/ui/admin/organisations", form, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "URN 3 expiry") || !strings.Contains(page, `value="MER-7"`) {
		t.Fatalf("a URN without an expiry: %d; want refused, naming URN 3 expiry, the form as sent", resp.StatusCode)
	}
	form.Set("cmd_id", "org-urns-2")
	form["urn_expiry"][2] = next
	if resp, _ := ada.Do(http.MethodPost, "/ui/admin/organisations", form, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	o, err := n.Service.Organisation("northcare")
	if err != nil || len(o.URNs) != 3 || o.URNs[1].URN != "GMP-LW-30001" || o.URNs[2].Force != "Merseyside Police" ||
		o.URNs[1].Expiry.Format("2006-01-02") != next {
		t.Fatalf("saved %+v, %v", o.URNs, err)
	}

	_, page = ada.Do(http.MethodGet, "/ui/admin/workers/w-amira", nil, nil)
	if strings.Contains(page, `name="urn_code"`) || !strings.Contains(page, `id="legacy-urns"`) || !strings.Contains(page, "CHE-LW-0118") ||
		!strings.Contains(page, `href="/ui/admin/organisations/northcare"`) {
		t.Fatalf("the worker's form: want the older URN shown read only, with the organisation's page to move it to")
	}
	wf := url.Values{"csrf": {ada.CSRF}, "cmd_id": {"w-amira-save"}, "id": {"w-amira"}, "name": {"Amira Shah"}, "org_id": {"northcare"},
		"urn_force": {"Forged Police"}, "urn_code": {"FORGED"}, "urn_expiry": {next}}
	if resp, _ := ada.Do(http.MethodPost, "/ui/admin/workers", wf, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save the worker: %d", resp.StatusCode)
	}
	if w, err := n.Service.Worker("w-amira"); err != nil || len(w.URNs) != 1 || w.URNs[0].URN != "CHE-LW-0118" {
		t.Fatalf("the worker's URNs after a save: %+v, %v; want the older one kept, none from the form", w.URNs, err)
	}
}
