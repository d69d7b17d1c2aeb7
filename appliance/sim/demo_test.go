package sim_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/uitest"
)

// The demo's customers hold their police URNs, one valid per force, and
// Northgate Homes also last year's, expired, beside its renewal.
func TestProvisionDemo_OrganisationsHoldURNs(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	made, err := n.Service.CreateAPIToken(context.Background(), "demo-token", "test", "demo", monitoring.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.ProvisionDemo(context.Background(), sim.API{URL: srv.URL, Token: made.Secret}, "run1", 3, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		org            string
		valid, expired int
	}{{"demo-health", 1, 0}, {"demo-homes", 1, 1}, {"demo-care", 1, 0}} {
		o, err := n.Service.Organisation(tc.org)
		if err != nil {
			t.Fatal(err)
		}
		valid, expired := 0, 0
		for _, u := range o.URNs {
			if now.Before(u.Expiry) {
				valid++
			} else {
				expired++
			}
		}
		if valid != tc.valid || expired != tc.expired {
			t.Errorf("%s URNs %+v: %d valid, %d expired; want %d and %d", tc.org, o.URNs, valid, expired, tc.valid, tc.expired)
		}
	}
}
