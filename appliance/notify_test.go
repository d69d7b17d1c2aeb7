package appliance_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// TestNode_DeliversNotifications: an appliance configured with a webhook
// (its secret in a file) delivers a genuine close's notice to it, signed
// with that secret, with a link to the node's own console; a secret file
// that is missing stops the node from starting, naming the setting.
func TestNode_DeliversNotifications(t *testing.T) {
	var mu sync.Mutex
	var got []notify.Envelope
	secret := "from-the-file"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body,
			time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var env notify.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, env)
		mu.Unlock()
	}))
	defer srv.Close()

	cfg := appliancetest.Config(t)
	secretFile := filepath.Join(t.TempDir(), "oncall.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.Webhooks = []notify.WebhookConfig{{Name: "oncall", URL: srv.URL, SecretFile: filepath.Join(t.TempDir(), "missing")}}
	if _, err := appliance.New(cfg); err == nil || !strings.Contains(err.Error(), "notify.webhooks[0].secret_file") {
		t.Fatalf("a missing secret file: %v", err)
	}
	cfg.Notify.Webhooks[0].SecretFile = secretFile
	cfg.Notify.Interval = 50 * time.Millisecond
	n := appliancetest.MustNode(t, &cfg)
	svc, ctx := n.Service(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust",
		Notify: monitoring.NotifyPolicy{Close: monitoring.Recipients{Webhooks: []string{"oncall"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Close(ctx, "close", "olivia", a.ID, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "",
		"none on file"); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 10*time.Second, "the notice delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	if env := got[0]; env.Kind != monitoring.NoticeAlarmClosed || env.Link != n.ConsoleURL()+"/alarms/"+a.ID {
		t.Fatalf("delivered %+v; want a link under %s", env, n.ConsoleURL())
	}
}
