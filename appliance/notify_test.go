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
	if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DevicePhoneApp, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]byte, 1600) // 0.1 s of 8 kHz mono silence
	if _, err := svc.AppendAudio(ctx, "au0", "device:d1", monitoring.AudioChunkRequest{AlarmID: a.ID, DeviceID: "d1", Seq: 0,
		Codec: monitoring.CodecPCM, SampleRate: 8000, Channels: 1, Data: pcm}); err != nil {
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
	// The notice carries a signed link to the alarm's audio, which works
	// without a sign-in.
	audio := got[0].AudioURL
	if !strings.Contains(audio, "/audio/"+a.ID+"/") || !strings.Contains(audio, "sig=") {
		t.Fatalf("the notice's audio link: %q", audio)
	}
	resp, err := http.Get(audio)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) < len(pcm) {
		t.Fatalf("GET the audio link: %d, %d bytes", resp.StatusCode, len(body))
	}
}
