package appliance_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestNode_ReportNoticesCarryTheirPDF: an appliance's leader enqueues the
// notice of a signed-off post-incident report with the report's PDF
// attached to the mail, and the month before's statistics with their CSV
// and PDF; pdftotext reads the recommendations and the figures back.
func TestNode_ReportNoticesCarryTheirPDF(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext is not installed: make deps installs poppler-utils")
	}
	cfg := appliancetest.Config(t)
	cfg.Notify.Interval = 50 * time.Millisecond
	n := appliancetest.MustNode(t, &cfg)
	svc, ctx := n.Service(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Calder Trust",
		Notify: monitoring.NotifyPolicy{Reports: monitoring.Recipients{Emails: []string{"quality@calder.example"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann Shaw", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Close(ctx, "close", "olivia", a.ID, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "", "none on file"); err != nil {
		t.Fatal(err)
	}
	recs := "Pair staff for the evening visits to Mill Lane."
	if _, err := svc.ReportAction(ctx, "sign", "sam", a.ID, monitoring.ReportSignOff, recs); err != nil {
		t.Fatal(err)
	}
	// The node has no relay: the mails stay pending, with their files.
	files := map[string][]byte{}
	clustertest.PollUntil(t, 10*time.Second, "the notices enqueued", func() bool {
		due, err := svc.DueOutbox(time.Now().Add(24*time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range due {
			for _, at := range m.Attachments {
				files[m.Kind+"/"+at.Name] = at.Data
			}
		}
		return len(files) == 3
	})
	prev := time.Date(time.Now().UTC().Year(), time.Now().UTC().Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0).Format("2006-01")
	text := func(name string) string {
		t.Helper()
		data, ok := files[name]
		if !ok {
			t.Fatalf("no attachment %s among %d", name, len(files))
		}
		p := filepath.Join(t.TempDir(), "f.pdf")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("pdftotext", "-layout", p, "-").CombinedOutput()
		if err != nil {
			t.Fatalf("pdftotext %s: %v: %s", name, err, out)
		}
		return string(out)
	}
	if txt := text(monitoring.NoticeIncidentReport + "/post-incident-report-" + a.ID + ".pdf"); !strings.Contains(txt, recs) ||
		!strings.Contains(txt, "Ann Shaw") {
		t.Errorf("the report's PDF lacks the recommendations or the worker:\n%s", txt)
	}
	if txt := text(monitoring.NoticeMonthlyStats + "/vigil-o1-" + prev + ".pdf"); !strings.Contains(txt, "Monthly statistics "+prev+": Calder Trust") {
		t.Errorf("the month's PDF:\n%s", txt)
	}
	if csv := string(files[monitoring.NoticeMonthlyStats+"/vigil-o1-"+prev+".csv"]); !strings.HasPrefix(csv, "section,item,value\n") {
		t.Errorf("the month's CSV: %q", csv)
	}
}
