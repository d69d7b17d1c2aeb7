package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// mustCommandsFixture makes organisation trust, worker w1 and its phone d1
// through the Service.
func mustCommandsFixture(t *testing.T, n *apiNode) {
	t.Helper()
	svc, ctx := n.svc(), context.Background()
	if _, err := svc.PutOrganisation(ctx, "f-org", "admin", monitoring.Organisation{ID: "trust", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "f-w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "trust"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "f-d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DevicePhoneApp, OrgID: "trust", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
}

func TestAPICommands_Prompt(t *testing.T) {
	n := mustServe(t)
	mustCommandsFixture(t, n)

	for _, tc := range []struct {
		name   string
		path   string
		body   obj
		status int
		field  string
	}{
		{"no kind", "/api/v1/devices/d1/prompt", obj{}, 400, "kind"},
		{"unknown kind", "/api/v1/devices/d1/prompt", obj{"kind": "sing"}, 400, "kind"},
		{"message without text", "/api/v1/devices/d1/prompt", obj{"kind": "message"}, 400, "text"},
		{"bad expiry", "/api/v1/devices/d1/prompt", obj{"kind": "call_back", "expires_in": "soon"}, 400, "expires_in"},
		{"expiry too long", "/api/v1/devices/d1/prompt", obj{"kind": "call_back", "expires_in": "3h"}, 400, "expires_in"},
		{"unknown device", "/api/v1/devices/ghost/prompt", obj{"kind": "call_back"}, 404, "device_id"},
		{"unknown alarm", "/api/v1/devices/d1/prompt", obj{"kind": "call_back", "alarm_id": "nope"}, 404, "alarm_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := obj{"id": "bad-" + tc.name, "actor": "olivia"}
			for k, v := range tc.body {
				body[k] = v
			}
			var e api.ErrorResponse
			if code, raw := send(t, n, "POST", tc.path, body, &e); code != tc.status || e.Field != tc.field {
				t.Fatalf("%d %s; want %d naming %s", code, raw, tc.status, tc.field)
			}
		})
	}

	var p monitoring.DevicePrompt
	mustSend(t, n, 201, "POST", "/api/v1/devices/d1/prompt", obj{"id": "c-p1", "actor": "olivia", "kind": "message",
		"text": "Help is on the way", "expires_in": "2m"}, &p)
	if p.DeviceID != "d1" || p.SentBy != "token:test-admin" || p.ExpiresAt.Sub(p.SentAt) != 2*time.Minute || p.Text != "Help is on the way" {
		t.Fatalf("prompt = %+v", p)
	}
	var read monitoring.DevicePrompt
	mustSend(t, n, 200, "GET", "/api/v1/prompts/"+p.ID, nil, &read)
	if read.ID != p.ID || read.Kind != monitoring.PromptMessage {
		t.Fatalf("read back %+v", read)
	}
	mustSend(t, n, 404, "GET", "/api/v1/prompts/ghost", nil, nil)

	// A duress alarm holds prompts back unless overridden.
	if _, err := n.svc().RaiseAlarm(context.Background(), "duress", "device:d1", monitoring.RaiseAlarmRequest{
		Type: monitoring.AlarmDuress, DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	var e api.ErrorResponse
	if code, raw := send(t, n, "POST", "/api/v1/devices/d1/prompt", obj{"id": "c-p2", "actor": "olivia", "kind": "tap_twice"}, &e); code != http.StatusConflict ||
		e.Field != "override_silent" || e.Code != string(monitoring.CodeConflict) {
		t.Fatalf("prompt under duress: %d %s", code, raw)
	}
	mustSend(t, n, 201, "POST", "/api/v1/devices/d1/prompt", obj{"id": "c-p3", "actor": "olivia", "kind": "tap_twice",
		"override_silent": true}, &p)
	if p.SilentAlarmID == "" {
		t.Fatalf("prompt %+v does not record the override", p)
	}
}

func TestAPICommands_SessionUpdate(t *testing.T) {
	n := mustServe(t)
	mustCommandsFixture(t, n)
	var sess monitoring.Session
	mustSend(t, n, 201, "POST", "/api/v1/sessions", obj{"id": "c-s1", "actor": "w1", "worker_id": "w1", "device_id": "d1",
		"duration": "45m", "update": "second floor"}, &sess)
	path := "/api/v1/sessions/" + sess.ID + "/update"

	var e api.ErrorResponse
	if code, raw := send(t, n, "POST", path, obj{"id": "c-u0", "actor": "w1", "update": " "}, &e); code != 400 || e.Field != "update" {
		t.Fatalf("empty Update: %d %s", code, raw)
	}
	if code, raw := send(t, n, "POST", "/api/v1/sessions/ghost/update", obj{"id": "c-u1", "actor": "w1", "update": "x"}, &e); code != 404 || e.Field != "session_id" {
		t.Fatalf("unknown session: %d %s", code, raw)
	}
	var rec monitoring.UpdateRecord
	mustSend(t, n, 200, "POST", path, obj{"id": "c-u2", "actor": "w1", "update": "client agitated, call me at 15:30"}, &rec)
	if rec.SessionID != sess.ID || rec.WorkerID != "w1" {
		t.Fatalf("record = %+v", rec)
	}
	var got monitoring.Session
	mustSend(t, n, 200, "GET", "/api/v1/sessions/"+sess.ID, nil, &got)
	if got.Update != "client agitated, call me at 15:30" {
		t.Fatalf("session Update %q", got.Update)
	}
	var hist api.UpdatesResponse
	mustSend(t, n, 200, "GET", "/api/v1/workers/w1/updates", nil, &hist)
	if len(hist.Updates) != 1 || hist.Updates[0].Text != "client agitated, call me at 15:30" || hist.Updates[0].SessionID != sess.ID {
		t.Fatalf("worker's Updates %+v", hist.Updates)
	}
}
