package monitoring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// TestDeviceFlooding_OneAlarmPerFlood: a flood raises one device-flooding
// alarm beside the worker's own; later floods while it is open are lines on
// its timeline, a retry changes nothing, and once it is closed the next
// flood raises a new one. Every report is in the audit log.
func TestDeviceFlooding_OneAlarmPerFlood(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := mustSingle(t, now)
	svc := n.Service
	seedService(t, svc)
	red, err := svc.RaiseAlarm(ctx, "dev/d1/a-1", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	req := monitoring.DeviceFloodingRequest{DeviceID: "d1", Limit: monitoring.FloodLimitAlarms, Since: now, Refused: 1}
	first, err := svc.ReportDeviceFlooding(ctx, "flood/d1/n1/1", "system", req)
	if err != nil || !first.Raised {
		t.Fatalf("first flood: %+v, %v", first, err)
	}
	again, err := svc.ReportDeviceFlooding(ctx, "flood/d1/n1/1", "system", req)
	if err != nil || *again != *first {
		t.Fatalf("retry: %+v, %v; want %+v", again, err, first)
	}
	req.Since, req.Refused, req.Limit = now.Add(time.Hour), 7, monitoring.FloodLimitMessages
	second, err := svc.ReportDeviceFlooding(ctx, "flood/d1/n2/2", "system", req)
	if err != nil || second.Raised || second.AlarmID != first.AlarmID {
		t.Fatalf("second flood while the first is open: %+v, %v", second, err)
	}

	q, _ := svc.OpenAlarms()
	if len(q) != 2 || q[0].ID != red.ID || q[1].ID != first.AlarmID {
		t.Fatalf("queue %+v: want the red alert first, then one flooding alarm", q)
	}
	fl := q[1]
	if fl.Type != monitoring.AlarmDeviceFlooding || fl.DeviceID != "d1" || fl.WorkerID != "w1" || fl.Priority <= red.Priority {
		t.Fatalf("flooding alarm %+v", fl)
	}
	if fl.IncidentID != red.IncidentID {
		t.Fatalf("flooding alarm in incident %s, not the worker's %s", fl.IncidentID, red.IncidentID)
	}
	if r, _ := svc.Alarm(red.ID); r.Status != monitoring.StatusRaised || r.Type != monitoring.AlarmRedAlert {
		t.Fatalf("the worker's alarm changed: %+v", r)
	}
	tl, _ := svc.Timeline(fl.ID)
	var floods []string
	for _, e := range tl {
		if e.Kind == monitoring.ActionFlooding {
			floods = append(floods, e.Text)
		}
	}
	if len(floods) != 2 || !strings.Contains(floods[0], "refused 1 since 2026-03-02T09:00:00Z") ||
		!strings.Contains(floods[1], "refused 7 since 2026-03-02T10:00:00Z") {
		t.Fatalf("timeline floods %q", floods)
	}
	au, _ := svc.AuditFor("device/d1")
	var floodAudit []monitoring.AuditRecord
	for _, r := range au {
		if r.Command == "CmdDeviceFlooding" {
			floodAudit = append(floodAudit, r)
		}
	}
	if len(floodAudit) != 2 || floodAudit[0].Actor != "system" || !strings.HasSuffix(floodAudit[1].Detail, "noted on alarm "+fl.ID) {
		t.Fatalf("audit of the floods %+v", floodAudit)
	}

	// The device cannot cancel it, even with the worker's Safe PIN.
	_, err = svc.CancelAlarm(ctx, "dev/d1/c-1", "device:d1", fl.ID, "1111")
	var re *monitoring.RuleError
	if !errors.As(err, &re) || re.Code != monitoring.CodeConflict {
		t.Fatalf("device cancels the flooding alarm: %v, want conflict", err)
	}

	if _, err := svc.Acknowledge(ctx, "ack", "olivia", fl.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Close(ctx, "close", "olivia", fl.ID, monitoring.ResolutionIncidentHandled, monitoring.ConfirmedByWorker, "new secret issued", "no contacts on file (test)"); err != nil {
		t.Fatal(err)
	}
	third, err := svc.ReportDeviceFlooding(ctx, "flood/d1/n1/3", "system", req)
	if err != nil || !third.Raised || third.AlarmID == first.AlarmID {
		t.Fatalf("flood after the alarm was closed: %+v, %v", third, err)
	}
}

func TestDeviceFlooding_Refusals(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	seedService(t, n.Service)
	ok := monitoring.DeviceFloodingRequest{DeviceID: "d1", Limit: monitoring.FloodLimitAlarms, Since: now, Refused: 1}
	for _, tc := range []struct {
		name  string
		edit  func(*monitoring.DeviceFloodingRequest)
		code  monitoring.Code
		field string
	}{
		{"no device", func(r *monitoring.DeviceFloodingRequest) { r.DeviceID = "" }, monitoring.CodeInvalid, "device_id"},
		{"unknown device", func(r *monitoring.DeviceFloodingRequest) { r.DeviceID = "d9" }, monitoring.CodeNotFound, "device_id"},
		{"unknown limit", func(r *monitoring.DeviceFloodingRequest) { r.Limit = "bytes" }, monitoring.CodeInvalid, "limit"},
		{"no time", func(r *monitoring.DeviceFloodingRequest) { r.Since = time.Time{} }, monitoring.CodeInvalid, "since"},
		{"none refused", func(r *monitoring.DeviceFloodingRequest) { r.Refused = 0 }, monitoring.CodeInvalid, "refused"},
	} {
		req := ok
		tc.edit(&req)
		_, err := n.Service.ReportDeviceFlooding(context.Background(), "f-"+tc.name, "system", req)
		var re *monitoring.RuleError
		if !errors.As(err, &re) || re.Code != tc.code || re.Field != tc.field {
			t.Fatalf("%s: got %v, want %s (%s)", tc.name, err, tc.code, tc.field)
		}
	}
	if q, _ := n.Service.OpenAlarms(); len(q) != 0 {
		t.Fatalf("refused reports raised %+v", q)
	}
}
