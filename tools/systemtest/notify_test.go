package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/tools/notifytest"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// TestCluster_NotificationSurvivesALeaderSIGKILL: three vigil processes
// configured with the site's relay (mailpit, STARTTLS and a password) and a
// webhook. A genuine close through the API enqueues its notice; the
// leader starts delivering it, and is SIGKILLed while the webhook's
// receiver holds its request, before any outcome is recorded. The new
// leader delivers it: the webhook gets it again with the same
// Idempotency-Key and signature secret, the mail is in mailpit with its
// Message-ID from the key, and the outbox shows both sent on the nodes
// left.
func TestCluster_NotificationSurvivesALeaderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and mailpit and runs three processes")
	}
	bin := mustBuildVigil(t)
	mp := notifytest.NewMailpit(t)
	mp.Start()

	const secret = "webhook secret of the system test"
	var mu sync.Mutex
	var keys []string
	var bad []string
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body,
			time.Now(), time.Minute)
		mu.Lock()
		if err != nil {
			bad = append(bad, err.Error())
		} else {
			keys = append(keys, r.Header.Get(notify.HeaderIdempotencyKey))
		}
		mu.Unlock()
		first := false
		once.Do(func() { first = true; close(arrived) })
		if first {
			<-release // the leader dies meanwhile
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	config := filepath.Join(t.TempDir(), "vigil.yaml")
	yaml := fmt.Sprintf(`notify:
  smtp:
    host: 127.0.0.1
    port: %d
    security: starttls
    insecure_skip_verify: true
    username: vigil
    password: relay-password
    from: vigil@trust.example
  webhooks:
    - name: oncall
      url: %s
      secret: %q
  console_url: https://vigil.trust.example
  min_backoff: 300ms
  max_backoff: 1s
  interval: 100ms
`, mp.SMTPPort, hook.URL, secret)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustStartCluster(t, bin, 3, "VIGIL_CONFIG="+config)
	leader := c.Leader()
	writer := (leader + 1) % 3 // a follower: its writes are forwarded
	mustWrite(t, c, writer, "/api/v1/organisations", vapi.OrganisationRequest{
		Command: vapi.Command{ID: "nt-org"},
		Org: vapi.OrganisationBody{ID: "nt", Name: "Notify Trust", Notify: monitoring.NotifyPolicy{
			Close: monitoring.Recipients{Emails: []string{"duty@trust.example"}, Webhooks: []string{"oncall"}}}},
	}, nil)
	mustWrite(t, c, writer, "/api/v1/workers", vapi.WorkerRequest{
		Command: vapi.Command{ID: "nt-worker"},
		Worker:  vapi.WorkerBody{ID: "w-nt", Name: "Ann Smith", OrgID: "nt"},
	}, nil)
	var a monitoring.Alarm
	mustWrite(t, c, writer, "/api/v1/alarms", vapi.RaiseAlarmBody{Command: vapi.Command{ID: "nt-alarm"},
		Type: monitoring.AlarmRedAlert, WorkerID: "w-nt"}, &a)
	mustWrite(t, c, writer, "/api/v1/alarms/"+a.ID+"/acknowledge", vapi.AcknowledgeRequest{Command: vapi.Command{ID: "nt-ack"}}, nil)
	mustWrite(t, c, writer, "/api/v1/alarms/"+a.ID+"/close", vapi.CloseRequest{Command: vapi.Command{ID: "nt-close"},
		Resolution: monitoring.ResolutionWorkerSafe, Confirmation: monitoring.ConfirmedByWorker, NoBriefingReason: "no contacts on file"}, nil)

	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not attempt the webhook")
	}
	c.Kill(leader) // SIGKILL, mid-attempt: nothing recorded
	close(release)
	newLeader := c.WaitForLeader()
	t.Logf("leader %s SIGKILLed mid-attempt; %s leads", c.nodes[leader].name, c.nodes[newLeader].name)

	var msgs vapi.NotificationsResponse
	clustertest.PollUntil(t, 60*time.Second, "both notifications sent", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if err := c.api.getJSON(ctx, "http://"+c.http[newLeader]+"/api/v1/alarms/"+a.ID+"/notifications", &msgs); err != nil {
			return false
		}
		sent := 0
		for _, m := range msgs.Notifications {
			if m.State == monitoring.OutboxSent {
				sent++
			}
		}
		return len(msgs.Notifications) == 2 && sent == 2
	})
	ids := map[string]string{}
	for _, m := range msgs.Notifications {
		ids[m.Channel] = m.ID
	}
	mu.Lock()
	gotKeys, gotBad := append([]string(nil), keys...), append([]string(nil), bad...)
	mu.Unlock()
	if len(gotBad) > 0 {
		t.Fatalf("webhooks that failed the signature check: %v", gotBad)
	}
	if len(gotKeys) < 2 {
		t.Fatalf("%d webhook deliveries, want the held one and the new leader's", len(gotKeys))
	}
	for i, k := range gotKeys {
		if k != ids[monitoring.ChannelWebhook] {
			t.Fatalf("delivery %d with key %q, want %q", i, k, ids[monitoring.ChannelWebhook])
		}
	}
	var mails []notifytest.Received
	clustertest.PollUntil(t, 10*time.Second, "the mail in mailpit", func() bool {
		mails = mp.Messages()
		return len(mails) > 0
	})
	for _, m := range mails {
		if m.MessageID != ids[monitoring.ChannelSMTP]+"@trust.example" {
			t.Fatalf("mail with Message-ID %q, want %s@trust.example", m.MessageID, ids[monitoring.ChannelSMTP])
		}
	}
	b, _ := json.Marshal(gotKeys)
	t.Logf("webhook deliveries %d (keys %s), mails %d (Message-ID %s)", len(gotKeys), b, len(mails), mails[0].MessageID)
}
