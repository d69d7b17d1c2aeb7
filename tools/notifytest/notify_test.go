package notifytest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

const webhookSecret = "s3cret-for-the-test"

// receiver is a real HTTP receiver of webhooks: it checks each one's
// signature and keeps it; while hold is set, it holds the first request
// until release is closed.
type receiver struct {
	mu       sync.Mutex
	got      []notify.Envelope
	keys     []string
	bad      []string
	hold     bool
	arrived  chan struct{}
	release  chan struct{}
	holdOnce sync.Once
}

func newReceiver(hold bool) *receiver {
	return &receiver{hold: hold, arrived: make(chan struct{}), release: make(chan struct{})}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env notify.Envelope
	err := notify.Verify([]byte(webhookSecret), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body,
		time.Now(), 5*time.Minute)
	if err == nil {
		err = json.Unmarshal(body, &env)
	}
	rc.mu.Lock()
	if err != nil {
		rc.bad = append(rc.bad, err.Error())
	} else {
		rc.got = append(rc.got, env)
		rc.keys = append(rc.keys, r.Header.Get(notify.HeaderIdempotencyKey))
	}
	rc.mu.Unlock()
	if rc.hold {
		first := false
		rc.holdOnce.Do(func() { first = true; close(rc.arrived) })
		if first {
			<-rc.release
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() ([]notify.Envelope, []string, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notify.Envelope(nil), rc.got...), append([]string(nil), rc.keys...), append([]string(nil), rc.bad...)
}

func testConfig(mp *Mailpit, hookURL string) notify.Config {
	return notify.Config{
		SMTP: notify.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, Security: notify.SecuritySTARTTLS,
			Username: "vigil", Password: "relay-password", From: "vigil@trust.example", InsecureSkipVerify: true},
		Webhooks:   []notify.WebhookConfig{{Name: "oncall", URL: hookURL, Secret: webhookSecret}},
		ConsoleURL: "https://vigil.trust.example",
		MinBackoff: 300 * time.Millisecond, MaxBackoff: time.Second, GiveUpAfter: time.Hour,
		Interval: 100 * time.Millisecond, AttemptTimeout: 10 * time.Second,
	}
}

func openDeliverer(t *testing.T, n *monitoringtest.Node, cfg notify.Config) *notify.Deliverer {
	t.Helper()
	hooks := notify.Hooks{AudioLink: func(_ context.Context, alarmID string) (string, error) {
		return "https://vigil.trust.example/audio/" + alarmID + "?sig=test", nil
	}}
	d, err := notify.New(n.Service, n.Cluster.IsLeader, n.Service.Now, cfg, hooks, clustertest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestNotify_GenuineCloseArrivesThroughALeaderKill: a genuine close on a
// three-node cluster enqueues its notice to a mail address and a webhook;
// the leader starts sending and is killed (no leadership transfer) while
// the webhook's receiver holds the request, so the attempt is never
// recorded. The new leader sends again: the mail arrives through the real
// SMTP server (STARTTLS, authentication) and the webhook again, with the
// same idempotency key each time, and the outbox records them sent.
func TestNotify_GenuineCloseArrivesThroughALeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("mailpit and a three-node cluster")
	}
	mp := NewMailpit(t)
	mp.Start()
	rc := newReceiver(true)
	hook := httptest.NewServer(rc)
	defer hook.Close()
	defer func() {
		select {
		case <-rc.release:
		default:
			close(rc.release)
		}
	}()
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{})
	cfg := testConfig(mp, hook.URL)
	dels := map[int]*notify.Deliverer{}
	for i, n := range c.Nodes() {
		dels[i] = openDeliverer(t, n, cfg)
	}
	defer func() {
		for _, d := range dels {
			d.Close()
		}
	}()

	ctx := context.Background()
	leader := c.WaitForLeader()
	svc := c.Node((leader + 1) % 3).Service // a follower: writes are forwarded
	org := monitoring.Organisation{ID: "o1", Name: "Trust", Notify: monitoring.NotifyPolicy{
		Close: monitoring.Recipients{Emails: []string{"duty@trust.example"}, Webhooks: []string{"oncall"}}}}
	if _, err := svc.PutOrganisation(ctx, "org", "admin", org); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann Lee", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LogAction(ctx, "police", "olivia", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionPolice,
		Force: "GMP", Route: monitoring.Route999, Reference: "GMP-2026-0042"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Close(ctx, "close", "olivia", a.ID, monitoring.ResolutionIncidentHandled, monitoring.ConfirmedByPolice,
		"police attended", "no contacts on file"); err != nil {
		t.Fatal(err)
	}

	// The leader's webhook attempt is in flight and held: kill the leader.
	select {
	case <-rc.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was not attempted")
	}
	c.Kill(leader)
	close(rc.release) // the dead leader's attempt ends; it cannot record it
	dels[leader].Close()
	delete(dels, leader)
	newLeader := c.WaitForLeader()
	t.Logf("leader %d killed mid-attempt; node %d leads", leader, newLeader)

	survivor := c.Node(newLeader).Service
	var msgs []monitoring.OutboxMessage
	clustertest.PollUntil(t, 30*time.Second, "both messages sent", func() bool {
		msgs, err = survivor.AlarmOutbox(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, m := range msgs {
			if m.State == monitoring.OutboxSent {
				sent++
			}
		}
		return len(msgs) == 2 && sent == 2
	})
	ids := map[string]string{}
	for _, m := range msgs {
		ids[m.Channel] = m.ID
	}

	// The webhook: received at least twice (the held attempt and the new
	// leader's), every time with the same key, signed.
	got, keys, bad := rc.snapshot()
	if len(bad) > 0 {
		t.Fatalf("webhooks that failed their check: %v", bad)
	}
	if len(got) < 2 {
		t.Fatalf("%d webhook deliveries, want the held one and the new leader's", len(got))
	}
	for i, env := range got {
		if keys[i] != ids[monitoring.ChannelWebhook] || env.ID != keys[i] {
			t.Fatalf("delivery %d: key %q, body id %q, want %q", i, keys[i], env.ID, ids[monitoring.ChannelWebhook])
		}
		if env.Kind != monitoring.NoticeAlarmClosed || env.AlarmID != a.ID || env.Link != "https://vigil.trust.example/alarms/"+a.ID ||
			!strings.Contains(env.AudioURL, a.ID) {
			t.Fatalf("delivery %d: %+v", i, env)
		}
		var d monitoring.AlarmNotice
		if err := json.Unmarshal(env.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Worker.Name != "Ann Lee" || d.Alarm.Resolution != "incident_handled" || len(d.Alarm.PoliceReferences) != 1 {
			t.Fatalf("delivery %d data: %s", i, env.Data)
		}
	}
	t.Logf("webhook delivered %d times, key %s", len(got), keys[0])

	// The mail: in mailpit, each copy with the same Message-ID and key.
	var mails []Received
	clustertest.PollUntil(t, 10*time.Second, "the mail in mailpit", func() bool {
		mails = mp.Messages()
		return len(mails) > 0
	})
	for _, m := range mails {
		key := ids[monitoring.ChannelSMTP]
		if m.MessageID != key+"@trust.example" || len(m.Headers[notify.HeaderMailIdempotencyKey]) != 1 ||
			m.Headers[notify.HeaderMailIdempotencyKey][0] != key {
			t.Fatalf("mail %q: Message-ID %q, key %v, want %s", m.Subject, m.MessageID, m.Headers[notify.HeaderMailIdempotencyKey], key)
		}
		if len(m.To) != 1 || m.To[0].Address != "duty@trust.example" || !strings.Contains(m.Subject, "Alarm closed") {
			t.Fatalf("mail to %v, subject %q", m.To, m.Subject)
		}
		for _, want := range []string{"Ann Lee", "Trust", "incident_handled", "police_attended", "GMP-2026-0042",
			"https://vigil.trust.example/alarms/" + a.ID, "https://vigil.trust.example/audio/" + a.ID} {
			if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
				t.Fatalf("the mail does not say %q:\n%s", want, m.Text)
			}
		}
	}
	t.Logf("mail delivered %d times, Message-ID %s", len(mails), mails[0].MessageID)
}

// TestNotify_MailServerDownThenBack: a notification enqueued through the
// Service API (with an attachment) while the SMTP server is down fails,
// each failure recorded with its reason and the next attempt backed off;
// once the server is up the mail arrives, attachment included, and the
// record keeps the failures, as the console shows them.
func TestNotify_MailServerDownThenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("mailpit")
	}
	mp := NewMailpit(t) // not started: the relay is down
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	cfg := testConfig(mp, "http://127.0.0.1:1/")
	d := openDeliverer(t, n, cfg)
	defer d.Close()
	ctx := context.Background()
	svc := n.Service
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.4\n% a report\n")
	res, err := svc.EnqueueNotification(ctx, "system", monitoring.Notification{
		Key: "report/a1/1", Kind: "incident_report", OrgID: "o1", Emails: []string{"duty@trust.example"},
		Subject: "Post-incident report", Text: "The report is attached.",
		Attachments: []monitoring.Attachment{{Name: "report.pdf", ContentType: "application/pdf", Data: pdf}}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.IDs[0]
	var m *monitoring.OutboxMessage
	clustertest.PollUntil(t, 20*time.Second, "three failures recorded", func() bool {
		if m, err = svc.OutboxMessage(id); err != nil {
			t.Fatal(err)
		}
		return len(m.Failures) >= 3
	})
	if m.State != monitoring.OutboxFailed || m.LastError == "" || !m.NextAt.After(m.LastAttemptAt) {
		t.Fatalf("while down: %+v", m)
	}
	// The waits grow: the third after the second is longer than the
	// second after the first (back-off from 300 ms doubling).
	if g1, g2 := m.Failures[1].At.Sub(m.Failures[0].At), m.Failures[2].At.Sub(m.Failures[1].At); g2 <= g1 {
		t.Fatalf("waits %s then %s: no back-off", g1, g2)
	}
	t.Logf("while down: %d failures, last %q", len(m.Failures), m.LastError)

	mp.Start()
	clustertest.PollUntil(t, 20*time.Second, "the message sent", func() bool {
		if m, err = svc.OutboxMessage(id); err != nil {
			t.Fatal(err)
		}
		return m.State == monitoring.OutboxSent
	})
	if len(m.Failures) < 3 || m.Attempts != len(m.Failures)+1 {
		t.Fatalf("after delivery: %d failures, %d attempts", len(m.Failures), m.Attempts)
	}
	mails := mp.Messages()
	if len(mails) != 1 || mails[0].MessageID != id+"@trust.example" || len(mails[0].Attachments) != 1 ||
		mails[0].Attachments[0].FileName != "report.pdf" || mails[0].Attachments[0].Size != len(pdf) {
		t.Fatalf("mails %+v", mails)
	}
	list, err := svc.OrgOutbox("o1", 0)
	if err != nil || len(list) != 1 || len(list[0].Failures) != len(m.Failures) {
		t.Fatalf("the organisation's outbox: %+v, %v", list, err)
	}
	t.Logf("delivered after %d attempts", m.Attempts)
}
