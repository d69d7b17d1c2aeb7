package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

func TestUpdateService_PostAndHistory(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	seedService(t, n.Service)
	ctx := context.Background()
	if _, err := n.Service.PostUpdate(ctx, "u0", "device:d1", monitoring.PostUpdateRequest{DeviceID: "d1", Text: ""}); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := n.Service.PostUpdate(ctx, "u0", "device:d1", monitoring.PostUpdateRequest{Text: "x"}); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("nobody: %v", err)
	}
	if _, err := n.Service.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	r, err := n.Service.PostUpdate(ctx, "u1", "device:d1", monitoring.PostUpdateRequest{DeviceID: "d1", Text: "gate code 1234", DeviceTime: now})
	if err != nil || r.SessionID != "s1" {
		t.Fatalf("PostUpdate = %+v, %v", r, err)
	}
	s, err := n.Service.Session("s1")
	if err != nil || s.Update != "gate code 1234" {
		t.Fatalf("session %+v, %v", s, err)
	}
	hist, err := n.Service.Updates("w1")
	if err != nil || len(hist) != 1 || hist[0].Text != "gate code 1234" || !hist[0].DeviceTime.Equal(now) {
		t.Fatalf("history %+v, %v", hist, err)
	}
}
