package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestDeliverer_ReportsReachTheirListOnACluster: on three nodes, each with
// its deliverer and one settable clock, a signed-off post-incident report
// reaches the organisation's reports webhook once, with the report's
// link; on the first of December, November's statistics arrive once, their
// figures in the data; the leader is killed and the new one sends none of
// them again; a day later, nothing more.
func TestDeliverer_ReportsReachTheirListOnACluster(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	got := map[string][]notify.Envelope{} // by kind
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte("quality-secret"), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature),
			body, clk.Now(), time.Hour); err != nil { // signed at the nodes' clock
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var env notify.Envelope
		if err := json.Unmarshal(body, &env); err != nil || env.ID != r.Header.Get(notify.HeaderIdempotencyKey) {
			http.Error(w, "bad envelope", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[env.Kind] = append(got[env.Kind], env)
		mu.Unlock()
	}))
	defer srv.Close()
	received := func(kind string) []notify.Envelope {
		mu.Lock()
		defer mu.Unlock()
		return append([]notify.Envelope(nil), got[kind]...)
	}
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	cfg := notify.Config{Webhooks: []notify.WebhookConfig{{Name: "quality", URL: srv.URL, Secret: "quality-secret"}},
		Interval: 50 * time.Millisecond, ConsoleURL: "https://vigil.example/ui"}
	for _, n := range c.Nodes() {
		d, err := notify.New(n.Service, n.Cluster.IsLeader, n.Service.Now, cfg, notify.Hooks{}, clustertest.Logger())
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
	}
	c.WaitForLeader()
	svc, ctx := c.Leader().Service, context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Notify: monitoring.NotifyPolicy{
		Reports: monitoring.Recipients{Webhooks: []string{"quality"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	// October had no alarm: its statistics, missed while the cluster was
	// not there, go at once.
	clustertest.PollUntil(t, 10*time.Second, "October's statistics", func() bool { return len(received(monitoring.NoticeMonthlyStats)) == 1 })

	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(6 * time.Second)
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	if _, err := svc.Close(ctx, "close", "olivia", a.ID, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "", "no contacts on file (test)"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ReportAction(ctx, "sign", "sam", a.ID, monitoring.ReportSignOff, "Pair staff for evening visits."); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 10*time.Second, "the report", func() bool { return len(received(monitoring.NoticeIncidentReport)) == 1 })
	env := received(monitoring.NoticeIncidentReport)[0]
	var rep monitoring.ReportNotice
	if err := json.Unmarshal(env.Data, &rep); err != nil || env.AlarmID != a.ID || rep.Report.SignedOffBy != "sam" ||
		rep.Worker.Name != "Ann" || env.Link != "https://vigil.example/ui/reports/incidents/"+a.ID {
		t.Fatalf("report notice %+v (%s), %v", env, env.Data, err)
	}

	clk.add(3*24*time.Hour - 9*time.Hour) // 1 December, 00:01
	clustertest.PollUntil(t, 10*time.Second, "November's statistics", func() bool { return len(received(monitoring.NoticeMonthlyStats)) == 2 })
	var st monitoring.MonthlyStats
	if err := json.Unmarshal(received(monitoring.NoticeMonthlyStats)[1].Data, &st); err != nil || st.Month != "2026-11" ||
		st.Total.Raised != 1 || st.Total.Genuine != 1 || st.KPIs.AckWithin10s != 1 {
		t.Fatalf("November: %+v, %v", st, err)
	}

	// Every outcome recorded, the leader dies: the new one finds them sent
	// and sends nothing again.
	clustertest.PollUntil(t, 10*time.Second, "the outcomes recorded", func() bool {
		msgs, err := c.Leader().Service.OrgOutbox("o1", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.State != monitoring.OutboxSent {
				return false
			}
		}
		return len(msgs) == 3
	})
	old := c.WaitForLeader()
	c.Kill(old)
	c.WaitForLeader()
	time.Sleep(500 * time.Millisecond) // several scans of the new leader
	clk.add(24 * time.Hour)
	time.Sleep(500 * time.Millisecond)
	ids := map[string]int{}
	for _, e := range append(received(monitoring.NoticeMonthlyStats), received(monitoring.NoticeIncidentReport)...) {
		ids[e.ID]++
	}
	if len(ids) != 3 {
		t.Fatalf("%d distinct messages received, want 3 (October, November, the report): %v", len(ids), ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("message %s received %d times", id, n)
		}
	}
	msgs, err := c.Leader().Service.OrgOutbox("o1", 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("the outbox: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if m.State != monitoring.OutboxSent {
			t.Errorf("message %s (%s) is %s", m.ID, m.Key, m.State)
		}
	}
}

// TestDeliverer_AttachmentsOverTheLimitBecomeANote: the leader attaches
// the hook's PDF to a notice's mail when it fits in an outbox message; one
// too large is left out, the mail's text saying so, and the notice still
// goes; a hook's error sends the notice without the file.
func TestDeliverer_AttachmentsOverTheLimitBecomeANote(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		fail   bool
		attach bool
		note   bool
	}{
		{"a small PDF", 10 << 10, false, true, false},
		{"a PDF over the limit", monitoring.MaxOutboxMessage, false, false, true},
		{"a hook's error", 0, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := monitoringtest.MustService(t, monitoringtest.Options{})
			hooks := notify.Hooks{Attachments: func(_ context.Context, nt *monitoring.Notification) ([]monitoring.Attachment, error) {
				if tc.fail {
					return nil, errors.New("cannot render")
				}
				return []monitoring.Attachment{{Name: "month.pdf", ContentType: "application/pdf", Data: make([]byte, tc.size)}}, nil
			}}
			d, err := notify.New(n.Service, n.Cluster.IsLeader, n.Service.Now, notify.Config{Interval: 50 * time.Millisecond}, hooks, clustertest.Logger())
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := n.Service.PutOrganisation(context.Background(), "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust",
				Notify: monitoring.NotifyPolicy{Reports: monitoring.Recipients{Emails: []string{"quality@trust.example"}}}}); err != nil {
				t.Fatal(err)
			}
			var m monitoring.OutboxMessage
			clustertest.PollUntil(t, 10*time.Second, "the month's notice", func() bool {
				msgs, err := n.Service.OrgOutbox("o1", 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(msgs) == 1 {
					m = msgs[0]
				}
				return len(msgs) == 1
			})
			var names []string
			for _, a := range m.Attachments {
				names = append(names, a.Name)
			}
			if got := slices.Contains(names, "month.pdf"); got != tc.attach {
				t.Errorf("attachments %v: the PDF attached %v, want %v", names, got, tc.attach)
			}
			if !slices.ContainsFunc(names, func(s string) bool { return strings.HasSuffix(s, ".csv") }) {
				t.Errorf("attachments %v: the CSV is missing", names)
			}
			if got := strings.Contains(m.Text, "too large to attach"); got != tc.note {
				t.Errorf("the note in the text: %v, want %v\n%s", got, tc.note, m.Text)
			}
		})
	}
}
