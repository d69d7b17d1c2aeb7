package console_test

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/incident"
	"github.com/vigilarc/vigil/ui/incident/incidenttest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// An operator makes a download link on the alarm's page, choosing how
// long it works; the page shows it with its URL, which downloads the audio
// without a sign-in; revoked from the page, it is listed as revoked and
// refused. The supervisor's list shows the report due (overdue here), the
// report page has every section and the trail drawn, a sign-off without
// recommendations is refused naming the field, and once signed off the
// report leaves the list of those due. An operator may not see reports.
func TestConsole_AudioLinksAndPostIncidentReport(t *testing.T) {
	start := time.Now().Add(-72 * time.Hour).Truncate(time.Minute) // the report is overdue, the demo's link still works
	clk := incidenttest.NewClock(start)
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	inc, err := incidenttest.Demo(context.Background(), n.Service, clk)
	if err != nil {
		t.Fatal(err)
	}
	id := inc.AlarmID
	op := uitest.NewSession(t, srv.URL)
	if code := op.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	post := func(s *uitest.Session, path string, form url.Values) (int, string) {
		form.Set("csrf", s.CSRF)
		resp, body := s.Do(http.MethodPost, path, form, nil)
		if resp.StatusCode == http.StatusSeeOther { // follow it, as a browser does
			resp, body = s.Do(http.MethodGet, resp.Header.Get("Location"), nil, nil)
		}
		return resp.StatusCode, body
	}

	// The link: made for 3 days, shown, working, revoked.
	code, page := post(op, "/ui/alarms/"+id+"/audio-links", url.Values{"cmd_id": {"mk1"}, "days": {"3"}, "note": {"for the duty manager"}})
	if code != http.StatusOK || !strings.Contains(page, "for the duty manager") {
		t.Fatalf("make a link: %d", code)
	}
	urls := regexp.MustCompile(`value="(http://[^"]+/audio/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(urls) != 2 { // the demo's own link and this one
		t.Fatalf("%d link URLs on the page, want 2", len(urls))
	}
	link := strings.ReplaceAll(urls[1][1], "&amp;", "&")
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("the link: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	links, _ := n.Service.AudioLinks(id)
	if len(links) != 2 || links[1].Expires.Sub(links[1].CreatedAt).Hours() != 72 || links[1].Downloads != 1 {
		t.Fatalf("links %+v", links)
	}
	if code, _ := post(op, "/ui/alarms/"+id+"/audio-links", url.Values{"cmd_id": {"mk2"}, "days": {"400"}}); code != http.StatusUnprocessableEntity {
		t.Fatalf("a link of 400 days: %d", code)
	}
	code, page = post(op, "/ui/alarms/"+id+"/audio-links/"+links[1].ID+"/revoke", url.Values{"cmd_id": {"rv1"}})
	if code != http.StatusOK || !strings.Contains(page, "revoked by olivia") {
		t.Fatalf("revoke: %d", code)
	}
	if resp, err := http.Get(link); err != nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("the revoked link: %v %v", resp, err)
	}

	// Reports are for supervisors.
	if resp, _ := op.Do(http.MethodGet, "/ui/reports/incidents", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an operator sees the reports: %d", resp.StatusCode)
	}
	sup := uitest.NewSession(t, srv.URL)
	if code := sup.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	_, list := sup.Do(http.MethodGet, "/ui/reports/incidents", nil, nil)
	if !strings.Contains(list, `href="/ui/reports/incidents/`+id+`"`) || !strings.Contains(list, "1 overdue") ||
		!strings.Contains(list, start.Add(31*time.Minute+17*time.Minute).Add(48*time.Hour).UTC().Format("2006-01-02 15:04")) {
		t.Fatalf("the list of reports due lacks the demo's, overdue, with its due time:\n%s", list)
	}
	_, rep := sup.Do(http.MethodGet, "/ui/reports/incidents/"+id, nil, nil)
	for _, h := range incident.Sections {
		if !strings.Contains(rep, "<h2>"+template.HTMLEscapeString(h)) {
			t.Errorf("the report page has no section %q", h)
		}
	}
	for _, want := range []string{"Rachel Oduya", "WYP-1117-0642", "Dana Whitfield", "within the 10 s target", "Closed 17 min 0 s after the raise", "20.0 s of audio", `class="plot-trail"`, "two-person visit"} {
		if !strings.Contains(rep, want) {
			t.Errorf("the report page lacks %q", want)
		}
	}
	code, rep = post(sup, "/ui/reports/incidents/"+id, url.Values{"cmd_id": {"so0"}, "action": {"sign_off"}, "recommendations": {" "}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(rep, `aria-invalid="true"`) {
		t.Fatalf("a sign-off without recommendations: %d", code)
	}
	code, rep = post(sup, "/ui/reports/incidents/"+id, url.Values{"cmd_id": {"so1"}, "action": {"sign_off"},
		"recommendations": {"Two-person visits to 14 Hollin Lane."}})
	if code != http.StatusOK || !strings.Contains(rep, "Signed off by <strong>sam</strong>") {
		t.Fatalf("sign-off: %d", code)
	}
	_, list = sup.Do(http.MethodGet, "/ui/reports/incidents", nil, nil)
	if !strings.Contains(list, "No report is due.") || !strings.Contains(list, "/ui/reports/incidents/"+id+"/report.pdf") {
		t.Fatalf("after the sign-off the list is:\n%s", list)
	}
	resp, body := sup.Do(http.MethodGet, "/ui/reports/incidents/"+id+"/report.pdf", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "%PDF-") {
		t.Fatalf("PDF: %d", resp.StatusCode)
	}
}
