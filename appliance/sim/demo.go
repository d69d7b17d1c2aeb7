package sim

// The live demo (vigil devcluster --demo): three invented customers, one
// per kind of lone worker the simulator plays (community nursing, housing,
// social care), with named workers, what an operator must know about them
// first, and their devices. Everything here is made up; the telephone
// numbers are in Ofcom's ranges for drama.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// DemoPrefix starts the IDs of everything the demo provisions.
const DemoPrefix = "demo"

// Defaults of the demo's simulator: livelier than DefaultConfig, so that
// something happens while someone watches.
const (
	DefaultDemoDevices = 6
	// DefaultDemoAlarmRate: about nine alarms an hour from six devices,
	// most of them reset by the worker within a minute (DemoResetShare):
	// lively enough to watch, few enough to work.
	DefaultDemoAlarmRate  = 1.5 // alarms per device per hour
	DemoResetShare        = 0.6
	DemoResetAfter        = 40 * time.Second
	DefaultDemoSessionGap = 40 * time.Second
	DefaultDemoSessionLen = 3 * time.Minute
	DefaultDemoDrain      = 3 * time.Second
)

// demoOrg is one customer of the demo; its index matches roles.
type demoOrg struct {
	id, name, procedure, session, checkin string
	steps                                 []map[string]string
	contact                               map[string]string
	urns                                  []demoURN
}

// demoURN is a police lone-worker URN of a demo customer, expiring
// expires (years; negative: already expired) from the day it is provisioned.
type demoURN struct {
	force, urn string
	expires    int
}

var demoOrgs = []demoOrg{
	{
		id: DemoPrefix + "-health", name: "Severn Vale Community Health (demo)", session: "1h", checkin: "30m",
		procedure: "Listen in before calling. If the worker answers but cannot talk, ask for two taps. " +
			"Evidence of a threat: police through the URN. Medical emergency: 999. Then the duty manager.",
		steps: []map[string]string{
			{"title": "Listen in", "text": "Open the audio first; note what you hear in the timeline."},
			{"title": "Call the nurse", "text": "No answer or no speech: ask for two taps."},
			{"title": "Escalate", "text": "Threat: URN. Collapse: 999 with the last location."},
			{"title": "Duty manager", "text": "Brief the district nursing duty manager before closing."},
		},
		contact: map[string]string{"name": "District nursing duty manager", "phone": "+44 1632 960101", "relation": "manager"},
		urns:    []demoURN{{"Gloucestershire Constabulary", "GLOS-LW-0412", 1}},
	},
	{
		id: DemoPrefix + "-homes", name: "Northgate Homes (demo)", session: "45m", checkin: "15m",
		procedure: "Call the officer. Aggressive tenant with no imminent threat: 101, then the area manager. " +
			"Imminent threat: police through the URN. Record the address in the timeline.",
		steps: []map[string]string{
			{"title": "Call the officer", "text": "Use the duress word check if they answer."},
			{"title": "Police", "text": "Imminent threat: URN. Otherwise 101."},
			{"title": "Area manager", "text": "Always, before closing."},
		},
		contact: map[string]string{"name": "Housing area manager (on call)", "phone": "+44 1632 960202", "relation": "manager"},
		// Last year's URN, expired, beside its renewal.
		urns: []demoURN{{"West Midlands Police", "WMP-LW-1187", -1}, {"West Midlands Police", "WMP-LW-2291", 1}},
	},
	{
		id: DemoPrefix + "-care", name: "Brackley District Council Adult Social Care (demo)", session: "1h", checkin: "20m",
		procedure: "Listen in; do not ring the worker's phone on a discreet alarm. Safeguarding visits: " +
			"police through the URN on any sign of a threat. Then the team leader.",
		steps: []map[string]string{
			{"title": "Listen in", "text": "Discreet alarm: do not call the worker."},
			{"title": "Police", "text": "Any sign of a threat on a safeguarding visit: URN."},
			{"title": "Team leader", "text": "Brief the social work team leader."},
		},
		contact: map[string]string{"name": "Social work team leader", "phone": "+44 1632 960303", "relation": "manager"},
		urns:    []demoURN{{"Northamptonshire Police", "NHANTS-LW-0077", 1}},
	},
}

// demoWorker is a hand-written worker; the first devices get these.
type demoWorker struct {
	name, team, medical, handling, duressWord string
}

// demoWorkers are in roles order: nursing, housing, social care, again.
var demoWorkers = []demoWorker{
	{"Ruth Okafor", "District nursing, Stroud", "Type 1 diabetic; glucose tablets in the front pocket of her bag", "", "bluebell"},
	{"Callum Price", "Tenancy enforcement", "", "Hard of hearing in the left ear: speak slowly, text if no answer", "lighthouse"},
	{"Mared Jenkins", "Adult safeguarding", "", "Works with an interpreter on Tuesdays", "harvest"},
	{"Sunil Varma", "Out-of-hours nursing", "Severe nut allergy; carries an adrenaline pen", "", "kingfisher"},
	{"Bethan Cole", "Voids and repairs surveying", "", "Often in empty properties with no signal indoors", "meadow"},
	{"Joseph Adeyemi", "Mental health outreach", "Asthma; inhaler in the car", "Prefers to be called Joe", "lantern"},
}

// ProvisionDemo creates, through the HTTP API, the demo's three
// organisations with their police URNs (one valid per force; Northgate
// Homes also keeps last year's, expired), n workers with PINs spread over them, and a device for
// each, and issues each device a new secret. IDs start with DemoPrefix
// and their command IDs are fixed, so a second run reuses them; PINs and
// secrets are issued anew under run, which must differ between runs.
func ProvisionDemo(ctx context.Context, a API, run string, n int, rng *rand.Rand) ([]Credential, error) {
	if n < 1 {
		return nil, fmt.Errorf("demo devices: %d, want at least 1", n)
	}
	api := newAPIClient(a)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, o := range demoOrgs {
		urns := make([]map[string]any, len(o.urns))
		for i, u := range o.urns {
			urns[i] = map[string]any{"force": u.force, "urn": u.urn, "expiry": today.AddDate(u.expires, 0, 0)}
		}
		err := api.create(ctx, "/api/v1/organisations", "organisation "+o.id, map[string]any{
			"id": "c-" + o.id,
			"org": map[string]any{"id": o.id, "name": o.name, "procedure": o.procedure, "procedure_steps": o.steps,
				"contacts": []map[string]string{o.contact}, "default_session": o.session, "default_checkin": o.checkin,
				"urns": urns},
		})
		if err != nil {
			return nil, err
		}
	}
	creds := make([]Credential, n)
	for i := range creds {
		c := &creds[i]
		org := demoOrgs[i%len(demoOrgs)]
		w := demoWorker{name: personName(i), team: roles[i%len(roles)].team}
		if i < len(demoWorkers) {
			w = demoWorkers[i]
		}
		c.WorkerID, c.DeviceID = fmt.Sprintf("%s-w%02d", DemoPrefix, i+1), fmt.Sprintf("%s-d%02d", DemoPrefix, i+1)
		c.Name, c.Team = w.name, w.team
		worker := map[string]any{"id": c.WorkerID, "name": c.Name, "org_id": org.id, "team": c.Team,
			"phone":     fmt.Sprintf("+44 7700 900%03d", (i+100)%1000),
			"important": map[string]string{"medical": w.medical, "special_handling": w.handling, "duress_word": w.duressWord}}
		kind, label := "phone_app", "Phone of "+c.Name
		if i%2 == 1 {
			kind, label = "dedicated", fmt.Sprintf("Pendant %02d (%s)", i+1, c.Name)
		}
		device := map[string]any{"id": c.DeviceID, "kind": kind, "label": label, "org_id": org.id, "worker_id": c.WorkerID}
		if err := api.provisionDevice(ctx, c, "c-", run, worker, device, rng); err != nil {
			return nil, err
		}
	}
	return creds, nil
}

// DemoConfig returns the simulator configuration of the live demo for
// creds against brokers: sessions every 40 s or so per device, about three
// minutes long, check-ins every 45 s, and alarmRate random alarms per
// device per hour, of which DemoResetShare of the red alerts and man-down
// alarms are reset by the worker about DemoResetAfter later.
func DemoConfig(brokers []string, creds []Credential, alarmRate float64) Config {
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Credentials, cfg.AlarmRate = brokers, creds, alarmRate
	cfg.SessionGap, cfg.SessionLength = DefaultDemoSessionGap, DefaultDemoSessionLen
	cfg.DrainTimeout = DefaultDemoDrain
	cfg.ResetShare, cfg.ResetAfter = DemoResetShare, DemoResetAfter
	return cfg
}
