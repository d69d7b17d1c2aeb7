package monitoring_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

// Helpers of the tests of the Service on real cluster nodes
// (monitoringtest).

// mustSingle starts a one-node cluster without a scheduler, with the Service
// clock fixed at now.
func mustSingle(t *testing.T, now time.Time) *monitoringtest.Node {
	t.Helper()
	return monitoringtest.MustService(t, monitoringtest.Options{
		Setup: func(svc *monitoring.Service) { svc.Now = func() time.Time { return now } },
	})
}

// seedService makes organisation o1, worker w1 with PINs 1111 (safe) and
// 2222 (duress), and w1's dedicated device d1.
func seedService(t *testing.T, svc *monitoring.Service) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust", Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if v, err := svc.SetPINs(ctx, "pins", "admin", "w1", "1111", "2222"); err != nil || v != 1 {
		t.Fatalf("SetPINs = %d, %v", v, err)
	}
	if _, err := svc.PutDevice(ctx, "d1", "admin", monitoring.Device{ID: "d1", Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
}
