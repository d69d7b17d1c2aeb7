package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// A period with no alarms shows a dash for its shares, means and medians,
// not "0.0 s" or a 100 % target "met" by nothing.
func TestReports_NoAlarmsShowNoFigures(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	s := uitest.NewSession(t, srv.URL)
	if code := s.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	resp, body := s.Do(http.MethodGet, "/ui/reports?from=2020-01-01&to=2020-01-07", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reports: %d", resp.StatusCode)
	}
	kpis := body[strings.Index(body, `id="kpis"`):]
	kpis = kpis[:strings.Index(kpis, "</section>")]
	for _, bad := range []string{"0.0 s", "100.0%", "card-ok", "NOT MET", ">met<"} {
		if strings.Contains(kpis, bad) {
			t.Errorf("the figures of an empty period show %q:\n%s", bad, kpis)
		}
	}
	if strings.Count(kpis, "—") != 5 || strings.Count(kpis, "no alarms to count") != 2 {
		t.Errorf("want 5 dashes (two shares, two medians, a mean) and \"no alarms to count\" twice:\n%s", kpis)
	}
}
