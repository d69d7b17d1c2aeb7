package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// An alarm a device raises during a session carries the session's ID,
// though the device did not give it; after the session, none.
func TestService_AlarmCarriesTheSession(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := mustSingle(t, now)
	seedService(t, n.Service)
	sess, err := n.Service.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{WorkerID: "w1", DeviceID: "d1", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Service.RaiseAlarm(ctx, "raise", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.SessionID != sess.ID {
		t.Fatalf("alarm during session %s carries session %q", sess.ID, a.SessionID)
	}
	if _, err := n.Service.EndSession(ctx, "end", "device:d1", sess.ID, "1111"); err != nil {
		t.Fatal(err)
	}
	b, err := n.Service.RaiseAlarm(ctx, "raise-2", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if b.SessionID != "" {
		t.Fatalf("alarm after the session carries session %q", b.SessionID)
	}
}
