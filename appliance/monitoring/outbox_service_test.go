package monitoring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

// TestOutbox_PendingNotices: the leader's scan finds a duress alarm's notice
// to the managers at once, and an unacknowledged alarm's escalation to the
// supervisors past 10 s, then only the 40 s one past 40 s; each once
// enqueued is not pending again, and an acknowledged alarm has none.
func TestOutbox_PendingNotices(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{now: start}
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(svc *monitoring.Service) { svc.Now = clk.Now }})
	svc, ctx := n.Service, context.Background()
	seedService(t, svc)
	org := monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute, Notify: monitoring.NotifyPolicy{
		Duress:     monitoring.Recipients{Emails: []string{"managers@trust.example"}, Webhooks: []string{"sms-gateway"}},
		Escalation: monitoring.Recipients{Emails: []string{"supervisors@trust.example"}},
	}}
	if _, err := svc.PutOrganisation(ctx, "org2", "admin", org); err != nil {
		t.Fatal(err)
	}
	duress, err := svc.RaiseAlarm(ctx, "ev1", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDuress, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	pending := func() []monitoring.Notification {
		t.Helper()
		ns, err := svc.PendingNotices(clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	ns := pending()
	if len(ns) != 1 || ns[0].Kind != monitoring.NoticeDuress || ns[0].AlarmID != duress.ID ||
		len(ns[0].Emails) != 1 || ns[0].Emails[0] != "managers@trust.example" || len(ns[0].Webhooks) != 1 {
		t.Fatalf("pending at once: %+v", ns)
	}
	if !strings.Contains(ns[0].Subject, "do not call") || !strings.Contains(ns[0].Text, "Ann") {
		t.Fatalf("duress notice: %q\n%s", ns[0].Subject, ns[0].Text)
	}
	res, err := svc.EnqueueNotification(ctx, "system", ns[0])
	if err != nil || res.New != 2 {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	if ns := pending(); len(ns) != 0 {
		t.Fatalf("pending after the enqueue: %+v", ns)
	}

	clk.Set(start.Add(11 * time.Second))
	ns = pending()
	if len(ns) != 1 || ns[0].Kind != monitoring.NoticeEscalation || ns[0].Key != "alarm/"+duress.ID+"/ack/1" ||
		ns[0].Emails[0] != "supervisors@trust.example" || !strings.Contains(ns[0].Subject, "10 s") {
		t.Fatalf("pending at 11 s: %+v", ns)
	}
	if _, err := svc.EnqueueNotification(ctx, "system", ns[0]); err != nil {
		t.Fatal(err)
	}
	clk.Set(start.Add(41 * time.Second))
	ns = pending()
	if len(ns) != 1 || ns[0].Key != "alarm/"+duress.ID+"/ack/2" || !strings.Contains(ns[0].Subject, "40 s") {
		t.Fatalf("pending at 41 s: %+v", ns)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", duress.ID, false); err != nil {
		t.Fatal(err)
	}
	if ns := pending(); len(ns) != 0 {
		t.Fatalf("pending after the acknowledgement: %+v", ns)
	}
	// The outbox of the alarm: the duress notice's two messages and the
	// first escalation's one.
	msgs, err := svc.AlarmOutbox(duress.ID)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("alarm outbox: %d, %v", len(msgs), err)
	}
	// Past the look-back, an alarm raised long ago sends no duress notice.
	clk.Set(start.Add(monitoring.DuressNoticeLookback + time.Minute))
	if ns := pending(); len(ns) != 0 {
		t.Fatalf("pending after the look-back: %+v", ns)
	}
}

// TestOutbox_EnqueueNotificationChecksBeforeProposing: the Service API of
// the outbox refuses bad input naming the field, and a retry of the same
// key changes nothing.
func TestOutbox_EnqueueNotificationChecksBeforeProposing(t *testing.T) {
	n := mustSingle(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	svc, ctx := n.Service, context.Background()
	seedService(t, svc)
	ok := monitoring.Notification{Key: "report/a1/1", Kind: "incident_report", OrgID: "o1",
		Emails: []string{"duty@trust.example"}, Webhooks: []string{"oncall"}, Subject: "Report", Text: "see attached",
		Attachments: []monitoring.Attachment{{Name: "report.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4")}}}
	for _, tc := range []struct {
		name  string
		edit  func(n *monitoring.Notification)
		field string
	}{
		{"no recipients", func(n *monitoring.Notification) { n.Emails, n.Webhooks = nil, nil }, "emails"},
		{"a bad address", func(n *monitoring.Notification) { n.Emails = []string{"duty"} }, "messages[0].to"},
		{"a webhook's URL for its name", func(n *monitoring.Notification) { n.Webhooks = []string{"https://x.example/"} }, "messages[1].to"},
		{"no key", func(n *monitoring.Notification) { n.Key = "" }, "messages[0].key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := ok
			tc.edit(&bad)
			_, err := svc.EnqueueNotification(ctx, "system", bad)
			var re *monitoring.RuleError
			if !errors.As(err, &re) || re.Field != tc.field {
				t.Fatalf("got %v, want a refusal naming %s", err, tc.field)
			}
		})
	}
	ok.Webhooks = nil
	first, err := svc.EnqueueNotification(ctx, "system", ok)
	if err != nil || first.New != 1 {
		t.Fatalf("enqueue: %+v, %v", first, err)
	}
	again, err := svc.EnqueueNotification(ctx, "system", ok)
	if err != nil || again.IDs[0] != first.IDs[0] {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	msgs, err := svc.OrgOutbox("o1", 0)
	if err != nil || len(msgs) != 1 || msgs[0].Attachments[0].Name != "report.pdf" || msgs[0].Attachments[0].Data != nil {
		t.Fatalf("org outbox: %+v, %v", msgs, err)
	}
	due, err := svc.DueOutbox(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), 10)
	if err != nil || len(due) != 1 || string(due[0].Attachments[0].Data) != "%PDF-1.4" {
		t.Fatalf("due: %+v, %v", due, err)
	}
}

// TestOutbox_LongNamesMakeAnAcceptedNotice: a duress notice of a worker and
// an organisation with the longest names has a subject cut to the bound,
// so that the leader's enqueue is not refused.
func TestOutbox_LongNamesMakeAnAcceptedNotice(t *testing.T) {
	n := mustSingle(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	svc, ctx := n.Service, context.Background()
	long := strings.Repeat("é", 100) // 200 bytes, the longest name
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: long,
		Notify: monitoring.NotifyPolicy{Duress: monitoring.Recipients{Emails: []string{"managers@trust.example"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: long, OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDuress, WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	ns, err := svc.PendingNotices(time.Date(2026, 3, 2, 9, 0, 1, 0, time.UTC))
	if err != nil || len(ns) != 1 {
		t.Fatalf("pending: %d, %v", len(ns), err)
	}
	if s := ns[0].Subject; len(s) > 300 || !strings.HasSuffix(s, "…") || !utf8.ValidString(s) {
		t.Fatalf("subject of %d bytes: %q", len(s), s)
	}
	if _, err := svc.EnqueueNotification(ctx, "system", ns[0]); err != nil {
		t.Fatalf("enqueue refused: %v", err)
	}
}
