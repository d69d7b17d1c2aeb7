package uitest

// A seeded directory for the tests of the console and the API: realistic
// customers, workers, devices and operators, and hostile strings.

import (
	"context"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Passwords of the test operators.
const (
	OliviaPassword = "olivia's long passphrase"
	SamPassword    = "sam supervises the night shift"
)

// Hostile strings, in names and notes: each would run script or change
// the page if it were not escaped.
const (
	HostileName    = `Eve <script>window.pwned=1</script> "O'Neil" <img src=x onerror="window.pwned=2">`
	HostileMedical = `<img src=x onerror="window.pwned=3"> javascript:window.pwned=4 '; window.pwned=5; '`
	HostileURL     = `javascript:window.pwned=6`
	HostileStep    = `"><script>window.pwned=7</script>`
)

// Fixture is the seeded directory: three workers, each with a device and
// its secret.
type Fixture struct {
	Amira, Ben, Eve DeviceCred
}

// DeviceCred is a seeded worker's device and the secret it signs in with.
type DeviceCred struct{ Worker, Device, Secret string }

// MustSeed registers realistic organisations (North Care holds a valid
// Greater Manchester Police URN and an expired Lancashire one), workers,
// devices and operators (olivia, an operator, and sam, a supervisor)
// through svc. One organisation and one worker (Eve) carry hostile strings
// in every field a page shows, a URN included, so that a test can check
// that they render inert.
func MustSeed(t testing.TB, svc *monitoring.Service) Fixture {
	t.Helper()
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", what, err)
		}
	}
	steps := []monitoring.ProcedureStep{
		{Title: "Listen in and assess", Text: "Listen to the audio before calling: shouting, a threat, or no speech?"},
		{Title: "Call the worker", Text: "Unless DO NOT CALL. Answered without speech: ask them to tap twice if they need help."},
		{Title: "Police if there is a threat now", Text: "Evidence of a threat happening now: the force's lone-worker URN. Otherwise 999 or 101."},
		{Title: "Call the escalation contacts in order", Text: "Brief each one; go on until welfare is confirmed."},
		{Title: "Confirm welfare before closing"},
	}
	_, err := svc.PutOrganisation(ctx, "seed-org1", "admin", monitoring.Organisation{
		ID: "northcare", Name: "North Care Community Health", ProcedureSteps: steps,
		Contacts: []monitoring.Contact{
			{Name: "Priya Nair", Phone: "0161 496 0123", Relation: "duty manager"},
			{Name: "Tom Hughes", Phone: "07700 900461", Relation: "on-call team lead"},
		},
		URNs: []monitoring.PoliceURN{
			{Force: "Greater Manchester Police", URN: "GMP-LW-20931", Expiry: time.Now().AddDate(1, 0, 0)},
			{Force: "Lancashire Constabulary", URN: "LAN-LW-4410", Expiry: time.Now().AddDate(0, -1, 0)},
		},
	})
	must("org", err)
	_, err = svc.PutOrganisation(ctx, "seed-org2", "admin", monitoring.Organisation{
		ID: "housing", Name: `Salford Housing <i>"Repairs"</i>`,
		ProcedureSteps: []monitoring.ProcedureStep{{Title: HostileStep, Text: HostileMedical}},
		Contacts:       []monitoring.Contact{{Name: `<b onclick="window.pwned=8">Boss</b>`, Phone: HostileURL}},
		URNs:           []monitoring.PoliceURN{{Force: HostileStep, URN: HostileName, Expiry: time.Now().AddDate(1, 0, 0)}},
	})
	must("org2", err)
	workers := []monitoring.Worker{
		{ID: "w-amira", Name: "Amira Shah", Phone: "07700 900123", OrgID: "northcare", Team: "District nursing, Salford",
			Important: monitoring.ImportantInfo{Medical: "Type 1 diabetic: may need glucose if confused or drowsy.",
				SpecialHandling: "Hard of hearing in the left ear: speak slowly and clearly.", DuressWord: "blue folder"},
			// Kept from before URNs were held per organisation: shown, not used.
			URNs: []monitoring.PoliceURN{{Force: "Cheshire Constabulary", URN: "CHE-LW-0118", Expiry: time.Now().AddDate(1, 0, 0)}}},
		{ID: "w-ben", Name: "Ben Okafor", Phone: "07700 900456", OrgID: "northcare", Team: "Community mental health",
			Contacts: []monitoring.Contact{{Name: "Grace Okafor", Phone: "07700 900789", Relation: "next of kin"}}},
		{ID: "w-eve", Name: HostileName, Phone: HostileURL, OrgID: "housing", Team: HostileStep,
			Important: monitoring.ImportantInfo{Medical: HostileMedical, SpecialHandling: HostileURL}},
	}
	for _, w := range workers {
		_, err := svc.PutWorker(ctx, "seed-"+w.ID, "admin", w)
		must(w.ID, err)
		_, err = svc.SetPINs(ctx, "seed-pins-"+w.ID, "admin", w.ID, "1111", "9999")
		must("pins "+w.ID, err)
	}
	f := Fixture{
		Amira: DeviceCred{Worker: "w-amira", Device: "d-amira"},
		Ben:   DeviceCred{Worker: "w-ben", Device: "d-ben"},
		Eve:   DeviceCred{Worker: "w-eve", Device: "d-eve"},
	}
	for _, d := range []*DeviceCred{&f.Amira, &f.Ben, &f.Eve} {
		org := "northcare"
		if d.Worker == "w-eve" {
			org = "housing"
		}
		_, err := svc.PutDevice(ctx, "seed-"+d.Device, "admin", monitoring.Device{ID: d.Device, Kind: monitoring.DevicePhoneApp,
			Label: "Phone app", OrgID: org, WorkerID: d.Worker})
		must(d.Device, err)
		d.Secret, err = svc.SetDeviceSecret(ctx, "seed-secret-"+d.Device, "admin", d.Device)
		must("secret "+d.Device, err)
	}
	for _, o := range []monitoring.PutOperatorRequest{
		{ID: "olivia", Name: "Olivia Hart", Role: monitoring.RoleOperator, Password: OliviaPassword, Create: true},
		{ID: "sam", Name: "Sam Patel", Role: monitoring.RoleSupervisor, Password: SamPassword, Create: true},
	} {
		_, err := svc.PutOperator(ctx, "seed-op-"+o.ID, "setup", o)
		must("operator "+o.ID, err)
	}
	return f
}
