package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

// A device's view holds its open alarms whatever their age, its alarms
// raised since the time asked for (closed ones too), the time an alarm
// cancelled with the Duress PIN was cancelled, and its session not ended;
// nothing of another device's.
func TestService_DeviceView(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	now := t0
	svc := monitoringtest.MustService(t, monitoringtest.Options{
		Setup: func(svc *monitoring.Service) { svc.Now = func() time.Time { return now } },
	}).Service
	seedService(t, svc)
	ctx := context.Background()
	if _, err := svc.PutDevice(ctx, "d2", "admin", monitoring.Device{ID: "d2", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // name -> alarm ID
	names := map[string]string{}
	raise := func(name, device string) {
		t.Helper()
		a, err := svc.RaiseAlarm(ctx, "raise-"+name, "device:"+device, monitoring.RaiseAlarmRequest{
			Type: monitoring.AlarmRedAlert, DeviceID: device})
		if err != nil {
			t.Fatal(err)
		}
		ids[name], names[a.ID] = a.ID, name
	}
	closeAlarm := func(name string) {
		t.Helper()
		id := ids[name]
		if _, err := svc.Acknowledge(ctx, "ack-"+id, "op1", id, false); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Close(ctx, "close-"+id, "op1", id, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "", "no contacts on file (test)"); err != nil {
			t.Fatal(err)
		}
	}
	raise("old-open", "d1")
	raise("other", "d2")
	now = t0.Add(time.Minute)
	raise("old-closed", "d1")
	closeAlarm("old-closed")
	now = t0.Add(2 * time.Hour)
	raise("new-closed", "d1")
	closeAlarm("new-closed")
	now = t0.Add(3 * time.Hour)
	raise("cancelled", "d1")
	cancelAt := t0.Add(3*time.Hour + time.Minute)
	now = cancelAt
	if _, err := svc.CancelAlarm(ctx, "cancel", "device:d1", ids["cancelled"], "2222"); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(4 * time.Hour)
	if _, err := svc.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{
		SessionID: "visit", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}

	v, err := svc.DeviceView("d1", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range v.Alarms {
		got = append(got, names[a.ID])
		if names[a.ID] == "cancelled" && (!a.DuressCancel || !a.CancelledAt.Equal(cancelAt)) {
			t.Errorf("alarm cancelled with the Duress PIN: duress_cancel %v, cancelled at %s, want %s", a.DuressCancel, a.CancelledAt, cancelAt)
		}
	}
	// The duress alarm the cancel raised is the device's too (raised at
	// the cancel); which of them the device may see is the gateway's rule.
	if len(got) != 4 || got[0] != "old-open" || got[1] != "new-closed" || got[2] != "cancelled" {
		t.Fatalf("alarms %v, want old-open, new-closed, cancelled and the duress alarm", got)
	}
	if v.Alarms[3].Type != monitoring.AlarmDuress {
		t.Fatalf("last alarm %+v, want the duress alarm", v.Alarms[3])
	}
	if v.Session == nil || v.Session.ID != "visit" || v.Applied == 0 {
		t.Fatalf("session %+v, applied %d", v.Session, v.Applied)
	}
	if v, err := svc.DeviceView("d2", t0.Add(time.Hour)); err != nil || len(v.Alarms) != 1 || v.Alarms[0].ID != ids["other"] || v.Session != nil {
		t.Fatalf("d2's view %+v, %v: want its open alarm, no session", v, err)
	}
}
