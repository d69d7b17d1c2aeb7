package notifytest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestNotify_SignedOffReportArrivesWithItsPDF: an appliance whose relay is
// a real SMTP server (mailpit, STARTTLS, authentication) mails a signed-off
// post-incident report to the organisation's reports list once, with the
// report's PDF attached and its console link in the text; and the month
// before's statistics with their CSV and PDF.
func TestNotify_SignedOffReportArrivesWithItsPDF(t *testing.T) {
	if testing.Short() {
		t.Skip("mailpit")
	}
	mp := NewMailpit(t)
	mp.Start()
	cfg := appliancetest.Config(t)
	cfg.Notify = testConfig(mp, "http://127.0.0.1:1/")
	cfg.Notify.Webhooks = nil
	n := appliancetest.MustNode(t, &cfg)
	svc, ctx := n.Service(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust",
		Notify: monitoring.NotifyPolicy{Reports: monitoring.Recipients{Emails: []string{"quality@trust.example", "board@trust.example"}}}}); err != nil {
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
	if _, err := svc.ReportAction(ctx, "sign", "sam", a.ID, monitoring.ReportSignOff, "Pair staff for the evening visits."); err != nil {
		t.Fatal(err)
	}
	// Two recipients, two notices (the report, the month before).
	clustertest.PollUntil(t, 30*time.Second, "four mails", func() bool { return len(mp.Messages()) >= 4 })
	time.Sleep(500 * time.Millisecond) // more scans: nothing more is sent
	mails := mp.Messages()
	if len(mails) != 4 {
		t.Fatalf("%d mails, want 4", len(mails))
	}
	reports, months := 0, 0
	for _, m := range mails {
		files := map[string]string{}
		for _, at := range m.Attachments {
			if at.Size == 0 {
				t.Errorf("%s: attachment %s is empty", m.Subject, at.FileName)
			}
			files[at.FileName] = at.ContentType
		}
		switch {
		case strings.HasPrefix(m.Subject, "Post-incident report: red_alert alarm of Ann Shaw"):
			reports++
			if files["post-incident-report-"+a.ID+".pdf"] != "application/pdf" ||
				!strings.Contains(m.Text, "https://vigil.trust.example/reports/incidents/"+a.ID) ||
				!strings.Contains(m.Text, "Pair staff for the evening visits.") {
				t.Errorf("the report's mail: %+v", m)
			}
		case strings.HasPrefix(m.Subject, "Monthly statistics "):
			months++
			if len(files) != 2 {
				t.Errorf("the month's mail has %v", files)
			}
		default:
			t.Errorf("an unexpected mail %q", m.Subject)
		}
	}
	if reports != 2 || months != 2 {
		t.Fatalf("%d report mails and %d month mails, want 2 and 2", reports, months)
	}
}
