package console_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// TestConsole_MonthlyStatistics: a supervisor picks an organisation and a
// month and sees its alarms by type and how they ended, with the CSV and
// the PDF of the same figures; another month shows none of them; an
// operator is refused; a bad month is refused naming it.
func TestConsole_MonthlyStatistics(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	svc, ctx := n.Service, context.Background()
	for i, res := range []monitoring.Resolution{monitoring.ResolutionFalseAlarm, monitoring.ResolutionWorkerSafe} {
		a, err := svc.RaiseAlarm(ctx, "ev"+string(rune('0'+i)), "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w-amira"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Acknowledge(ctx, "ack"+a.ID, "olivia", a.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Close(ctx, "close"+a.ID, "olivia", a.ID, res, monitoring.ConfirmedByWorker, "", "no contacts on file (test)"); err != nil {
			t.Fatal(err)
		}
	}
	month := time.Now().UTC().Format("2006-01")

	op := uitest.NewSession(t, srv.URL)
	if code := op.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	if resp, _ := op.Do(http.MethodGet, "/ui/reports/monthly?org=northcare&month="+month, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an operator gets the monthly page: %d", resp.StatusCode)
	}
	sup := uitest.NewSession(t, srv.URL)
	if code := sup.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	resp, page := sup.Do(http.MethodGet, "/ui/reports/monthly?org=northcare&month="+month, nil, nil)
	row := `<tr id="type-red_alert"><td>red_alert</td><td>2</td><td>1</td><td>1</td><td>0</td><td>0</td></tr>`
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, row) || !strings.Contains(page, `value="`+month+`"`) {
		t.Fatalf("monthly page: %d, want the row %s\n%s", resp.StatusCode, row, page)
	}
	_, other := sup.Do(http.MethodGet, "/ui/reports/monthly?org=northcare&month=2019-01", nil, nil)
	if strings.Contains(other, `id="type-red_alert"`) {
		t.Errorf("January 2019 shows this month's alarms")
	}
	resp, body := sup.Do(http.MethodGet, "/ui/reports/monthly.csv?org=northcare&month="+month, nil, nil)
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("CSV: %d %v", resp.StatusCode, err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]+"/"+r[1]] = r[2]
	}
	if got["alarms.red_alert/raised"] != "2" || got["alarms.red_alert/genuine"] != "1" || got["alarms.total/false"] != "1" {
		t.Errorf("CSV figures: %v", got)
	}
	resp, pdf := sup.Do(http.MethodGet, "/ui/reports/monthly.pdf?org=northcare&month="+month, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(pdf, "%PDF-") || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("PDF: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, page = sup.Do(http.MethodGet, "/ui/reports/monthly?org=northcare&month=2026-13", nil, nil)
	if resp.StatusCode < 400 || !strings.Contains(page, "is not a month") {
		t.Errorf("a bad month: %d", resp.StatusCode)
	}
}
