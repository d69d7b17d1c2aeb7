package monitoring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// URNFor tells the console, before the operator acts, what the state
// machine will decide: eligibility and why, and the organisation's URN of
// each force with its expiry. LogAction through the Service quotes the
// URN, and refuses what URNFor says is refused.
func TestURNService_URNForAndLogAction(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	seedService(t, n.Service)
	ctx := context.Background()
	svc := n.Service
	if _, err := svc.PutOrganisation(ctx, "org-urns", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute,
		URNs: []monitoring.PoliceURN{
			{Force: "Greater Manchester Police", URN: "GMP-2025", Expiry: now.AddDate(0, -2, 0)},
			{Force: "Greater Manchester Police", URN: "GMP-2026", Expiry: now.AddDate(0, 10, 0)},
			{Force: "Merseyside Police", URN: "MER-1", Expiry: now.AddDate(0, 0, -3)},
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d2", "admin", monitoring.Device{ID: "d2", Kind: monitoring.DevicePhoneApp, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	red, err := svc.RaiseAlarm(ctx, "r1", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	// Another device, no location: an incident of its own.
	missed, err := svc.RaiseAlarm(ctx, "r2", "device:d2", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmMissedCheckIn, DeviceID: "d2"})
	if err != nil || missed.IncidentID == red.IncidentID {
		t.Fatalf("missed %+v, %v: want an incident of its own", missed, err)
	}

	chk, err := svc.URNFor(red.ID)
	if err != nil || !chk.Eligible || !strings.Contains(chk.Why, "red_alert") {
		t.Fatalf("URNFor(red) = %+v, %v; want eligible", chk, err)
	}
	want := []monitoring.ForceURN{
		{Force: "Greater Manchester Police", URN: "GMP-2026", Expiry: now.AddDate(0, 10, 0)},
		{Force: "Merseyside Police", URN: "MER-1", Expiry: now.AddDate(0, 0, -3), Expired: true},
	}
	if len(chk.URNs) != len(want) {
		t.Fatalf("URNs %+v, want %+v", chk.URNs, want)
	}
	for i := range want {
		if g := chk.URNs[i]; g.Force != want[i].Force || g.URN != want[i].URN || !g.Expiry.Equal(want[i].Expiry) || g.Expired != want[i].Expired {
			t.Errorf("URN %d = %+v, want %+v", i, g, want[i])
		}
	}
	chk, err = svc.URNFor(missed.ID)
	if err != nil || chk.Eligible || !strings.Contains(chk.Why, "missed check-in") || len(chk.URNs) != 2 {
		t.Fatalf("URNFor(missed) = %+v, %v; want not eligible, the URNs still listed", chk, err)
	}
	if _, err := svc.URNFor("nope"); !errors.Is(err, monitoring.ErrNotFound) {
		t.Fatalf("URNFor(unknown) = %v, want not found", err)
	}

	for _, id := range []string{red.ID, missed.ID} {
		if _, err := svc.Acknowledge(ctx, "ack-"+id, "olivia", id, false); err != nil {
			t.Fatal(err)
		}
	}
	urnCall := func(id, force string) error {
		_, err := svc.LogAction(ctx, "police-"+id+force, "olivia", id,
			monitoring.TimelineEntry{Kind: monitoring.ActionPolice, Force: force, Route: monitoring.RouteURN})
		return err
	}
	if err := urnCall(missed.ID, "Greater Manchester Police"); !errors.Is(err, monitoring.ErrURNRefused) || !strings.Contains(err.Error(), "(entry.route)") {
		t.Fatalf("a URN call about a missed check-in: %v; want refused on entry.route", err)
	}
	if err := urnCall(red.ID, "Merseyside Police"); !errors.Is(err, monitoring.ErrURNRefused) || !strings.Contains(err.Error(), "expired on 27 Feb 2026") {
		t.Fatalf("a URN call on an expired URN: %v; want refused", err)
	}
	if err := urnCall(red.ID, "Greater Manchester Police"); err != nil {
		t.Fatal(err)
	}
	tl, err := svc.Timeline(red.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != monitoring.ActionPolice || last.URN != "GMP-2026" {
		t.Fatalf("the police entry %+v: want URN GMP-2026 quoted", last)
	}
	// 999 about the missed check-in is fine.
	if _, err := svc.LogAction(ctx, "police-999", "olivia", missed.ID,
		monitoring.TimelineEntry{Kind: monitoring.ActionPolice, Force: "Greater Manchester Police", Route: monitoring.Route999}); err != nil {
		t.Fatal(err)
	}
}
