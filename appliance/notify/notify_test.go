package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

func TestBackoff_DoublesUpToTheMaximum(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {6, 320 * time.Second}, {7, 10 * time.Minute}, {40, 10 * time.Minute}} {
		if got := notify.Backoff(tc.attempt, notify.DefaultMinBackoff, notify.DefaultMaxBackoff); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestVerify_RefusesATamperedOrOldWebhook(t *testing.T) {
	secret, body, now := []byte("k"), []byte(`{"id":"x"}`), time.Unix(1_800_000_000, 0)
	sig := notify.Sign(secret, now.Unix(), body)
	ts := "1800000000"
	if err := notify.Verify(secret, ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good signature refused: %v", err)
	}
	for name, err := range map[string]error{
		"tampered body":  notify.Verify(secret, ts, sig, []byte(`{"id":"y"}`), now, 5*time.Minute),
		"other secret":   notify.Verify([]byte("j"), ts, sig, body, now, 5*time.Minute),
		"old timestamp":  notify.Verify(secret, ts, sig, body, now.Add(6*time.Minute), 5*time.Minute),
		"timestamp swap": notify.Verify(secret, "1800000001", sig, body, now, 5*time.Minute),
		"no timestamp":   notify.Verify(secret, "", sig, body, now, 5*time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	ok := notify.Config{SMTP: notify.SMTPConfig{Host: "relay", From: "vigil@x.example"},
		Webhooks: []notify.WebhookConfig{{Name: "oncall", URL: "https://hooks.x.example/v", Secret: "s"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(c *notify.Config)
	}{
		{"notify.smtp.security", func(c *notify.Config) { c.SMTP.Security = "ssl" }},
		{"notify.smtp.from", func(c *notify.Config) { c.SMTP.From = "" }},
		{"notify.smtp.port", func(c *notify.Config) { c.SMTP.Port = 70000 }},
		{"notify.smtp.password_file", func(c *notify.Config) { c.SMTP.Password, c.SMTP.PasswordFile = "p", "/f" }},
		{"notify.webhooks[0].url", func(c *notify.Config) { c.Webhooks[0].URL = "ftp://x" }},
		{"notify.webhooks[0].secret", func(c *notify.Config) { c.Webhooks[0].Secret = "" }},
		{"notify.webhooks[1].name", func(c *notify.Config) { c.Webhooks = append(c.Webhooks, c.Webhooks[0]) }},
		{"notify.webhooks[0].name", func(c *notify.Config) { c.Webhooks[0].Name = "On Call" }},
		{"notify.min_backoff", func(c *notify.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Minute }},
		{"notify.console_url", func(c *notify.Config) { c.ConsoleURL = "vigil" }},
	} {
		c := ok
		c.Webhooks = append([]notify.WebhookConfig(nil), ok.Webhooks...)
		tc.edit(&c)
		var fe *notify.FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
}

// TestDeliverer_GivesUpAfterItsTime: a webhook that answers 500 is tried
// with back-off until the message's time is up, then given up, each
// failure recorded; a webhook the configuration lacks fails with a reason
// that says so.
func TestDeliverer_GivesUpAfterItsTime(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		http.Error(w, "gateway broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	d, err := notify.New(n.Service, n.Cluster.IsLeader, n.Service.Now, notify.Config{
		Webhooks:   []notify.WebhookConfig{{Name: "sms-gateway", URL: srv.URL, Secret: "s"}},
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, GiveUpAfter: 1500 * time.Millisecond,
		Interval: 50 * time.Millisecond}, notify.Hooks{}, clustertest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := n.Service.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	res, err := n.Service.EnqueueNotification(ctx, "system", monitoring.Notification{Key: "k1", Kind: "test_notice", OrgID: "o1",
		Webhooks: []string{"sms-gateway", "missing"}, Subject: "Test", Text: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var m *monitoring.OutboxMessage
	clustertest.PollUntil(t, 10*time.Second, "the message given up", func() bool {
		if m, err = n.Service.OutboxMessage(res.IDs[0]); err != nil {
			t.Fatal(err)
		}
		return m.State == monitoring.OutboxGaveUp
	})
	if m.Attempts < 3 || int(calls.Load()) != m.Attempts || !strings.Contains(m.LastError, "HTTP 500: gateway broken") || m.GaveUpAt.IsZero() {
		t.Fatalf("given up: %+v after %d calls", m, calls.Load())
	}
	missing, err := n.Service.OutboxMessage(res.IDs[1])
	if err != nil || missing.Attempts == 0 || !strings.Contains(missing.LastError, `no webhook "missing"`) {
		t.Fatalf("the missing webhook's message: %+v, %v", missing, err)
	}
	t.Logf("gave up after %d attempts", m.Attempts)
}

// clock is a settable clock for the Service and the Deliverer.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestDeliverer_DuressAndEscalationReachTheirLists: a duress alarm's notice
// reaches the managers' webhook at once, signed; left unacknowledged, the
// supervisors' webhook gets the 10 s escalation, then the 40 s one; the
// managers get nothing more, and the close list nothing.
func TestDeliverer_DuressAndEscalationReachTheirLists(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]notify.Envelope{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte("s-"+r.URL.Path[1:]), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature),
			body, time.Now(), time.Hour); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var env notify.Envelope
		if err := json.Unmarshal(body, &env); err != nil || env.ID != r.Header.Get(notify.HeaderIdempotencyKey) {
			http.Error(w, "bad envelope", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[r.URL.Path[1:]] = append(got[r.URL.Path[1:]], env)
		mu.Unlock()
	}))
	defer srv.Close()
	received := func(hook string) []notify.Envelope {
		mu.Lock()
		defer mu.Unlock()
		return append([]notify.Envelope(nil), got[hook]...)
	}
	clk := &clock{now: time.Now().UTC()}
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	var hooks []notify.WebhookConfig
	for _, name := range []string{"managers", "supervisors", "close"} {
		hooks = append(hooks, notify.WebhookConfig{Name: name, URL: srv.URL + "/" + name, Secret: "s-" + name})
	}
	d, err := notify.New(n.Service, n.Cluster.IsLeader, n.Service.Now, notify.Config{Webhooks: hooks, Interval: 50 * time.Millisecond},
		notify.Hooks{}, clustertest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc, ctx := n.Service, context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Notify: monitoring.NotifyPolicy{
		Close:      monitoring.Recipients{Webhooks: []string{"close"}},
		Duress:     monitoring.Recipients{Webhooks: []string{"managers"}},
		Escalation: monitoring.Recipients{Webhooks: []string{"supervisors"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 5*time.Second, "the managers told", func() bool { return len(received("managers")) == 1 })
	if env := received("managers")[0]; env.Kind != monitoring.NoticeDuress || env.AlarmID != a.ID || !strings.Contains(env.Subject, "do not call") {
		t.Fatalf("duress notice %+v", env)
	}
	if n := len(received("supervisors")); n != 0 {
		t.Fatalf("supervisors told before the target: %d", n)
	}
	for stage, after := range []time.Duration{10 * time.Second, 30 * time.Second} {
		clk.add(after)
		clustertest.PollUntil(t, 5*time.Second, "an escalation", func() bool { return len(received("supervisors")) == stage+1 })
		var data monitoring.AlarmNotice
		env := received("supervisors")[stage]
		if err := json.Unmarshal(env.Data, &data); err != nil || env.Kind != monitoring.NoticeEscalation || data.Alarm.Stage != stage+1 {
			t.Fatalf("escalation %d: %+v %s", stage+1, env, env.Data)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few more scans: nothing more is sent
	if m, s, c := len(received("managers")), len(received("supervisors")), len(received("close")); m != 1 || s != 2 || c != 0 {
		t.Fatalf("received: managers %d, supervisors %d, close %d; want 1, 2, 0", m, s, c)
	}
}
