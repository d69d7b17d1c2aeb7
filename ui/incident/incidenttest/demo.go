// Package incidenttest makes a realistic closed incident for the tests of
// the post-incident report (ui/incident, ui/console, ui/api) and for the
// example in docs/examples.
package incidenttest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/incident"
)

// Start is when the demo's session begins in the example.
var Start = time.Date(2026, 11, 17, 19, 2, 0, 0, time.UTC)

// Clock is a settable clock for a Service's Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// IDs returns a source of readable IDs for a Service's NewID, so that the
// example's alarm has the same ID every time: CV-1117-001, -002...
func IDs() func() string {
	var mu sync.Mutex
	n := 0
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("CV-1117-%03d", n)
	}
}

// Incident is what Demo made.
type Incident struct {
	AlarmID string
	Trail   []incident.Fix // the fixes a console would have kept of the device
	Link    *monitoring.IssuedAudioLink
}

// Demo records, through svc whose clock is clk, from the clock's time on,
// a home visit that turned
// into a genuine red alert: the organisation, the worker and her device,
// a session with its Update message, the alarm with 20 s of audio, the
// operator's actions (listen-in, 999 call, the manager briefed), the close
// as incident_handled, an audio link, and the recommendations saved.
func Demo(ctx context.Context, svc *monitoring.Service, clk *Clock) (*Incident, error) {
	start := clk.Now()
	at := func(d time.Duration) { clk.Set(start.Add(d)) }
	org := monitoring.Organisation{ID: "calder-cmht", Name: "Calder Valley Community Mental Health Team",
		Procedure: "Listen in first. Call 999 if a threat is heard; brief the duty manager."}
	if _, err := svc.PutOrganisation(ctx, "demo-org", "admin", org); err != nil {
		return nil, err
	}
	w := monitoring.Worker{ID: "w-rachel", Name: "Rachel Oduya", Phone: "07700 900412", OrgID: org.ID, Team: "Community nursing, east",
		Contacts: []monitoring.Contact{{Name: "Dana Whitfield", Phone: "07700 900733", Relation: "duty manager"}}}
	if _, err := svc.PutWorker(ctx, "demo-worker", "admin", w); err != nil {
		return nil, err
	}
	home := monitoring.Location{Lat: 53.72412, Lon: -1.86338, Accuracy: 12, Source: "gps", At: start}
	d := monitoring.Device{ID: "dev-rachel", Kind: monitoring.DevicePhoneApp, OrgID: org.ID, WorkerID: w.ID, Location: &home}
	if _, err := svc.PutDevice(ctx, "demo-device", "admin", d); err != nil {
		return nil, err
	}
	s, err := svc.StartSession(ctx, "demo-session", "device:"+d.ID, monitoring.StartSessionRequest{WorkerID: w.ID, DeviceID: d.ID,
		Duration: 90 * time.Minute, Location: &home,
		Update: "Evening visit to a client at 14 Hollin Lane, ground floor flat. The client's brother may be there; he was hostile at the last visit."})
	if err != nil {
		return nil, err
	}
	// The walk from the car to the door, then inside.
	var trail []incident.Fix
	for i, p := range [][2]float64{{53.72441, -1.86402}, {53.72433, -1.86381}, {53.72424, -1.86362}, {53.72417, -1.86347}, {53.72413, -1.86340}} {
		trail = append(trail, incident.Fix{Loc: monitoring.Location{Lat: p[0], Lon: p[1], Accuracy: float64(9 + i*2), Source: "gps"},
			At: start.Add(time.Duration(i) * 40 * time.Second)})
	}
	at(31 * time.Minute)
	raised := clk.Now()
	loc := monitoring.Location{Lat: 53.72411, Lon: -1.86336, Accuracy: 18, Source: "gps", At: raised}
	trail = append(trail, incident.Fix{Loc: loc, At: raised.Add(20 * time.Second)})
	a, err := svc.RaiseAlarm(ctx, "demo-raise", "device:"+d.ID, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert,
		DeviceID: d.ID, SessionID: s.ID, DeviceTime: raised.Add(-2 * time.Second), Location: &loc})
	if err != nil {
		return nil, err
	}
	for seq := range 10 { // 20 s of 8 kHz mono PCM
		at(31*time.Minute + time.Duration(2*seq+2)*time.Second)
		_, err := svc.AppendAudio(ctx, fmt.Sprintf("demo-audio-%d", seq), "device:"+d.ID, monitoring.AudioChunkRequest{
			AlarmID: a.ID, DeviceID: d.ID, Seq: uint64(seq), Codec: monitoring.CodecPCM, SampleRate: 8000, Channels: 1,
			Data: make([]byte, 32000)})
		if err != nil {
			return nil, err
		}
	}
	steps := []struct {
		after time.Duration
		do    func() error
	}{
		{7 * time.Second, func() error { _, err := svc.Acknowledge(ctx, "demo-ack", "olivia.barnes", a.ID, false); return err }},
		{25 * time.Second, func() error {
			_, err := svc.LogAction(ctx, "demo-listen", "olivia.barnes", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionListenIn,
				Text: "Raised male voice, the worker asking him to step back from the door. Threat to harm heard."})
			return err
		}},
		{70 * time.Second, func() error {
			_, err := svc.LogAction(ctx, "demo-police", "olivia.barnes", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionPolice,
				Force: "West Yorkshire Police", Route: monitoring.Route999, Reference: "WYP-1117-0642",
				Text: "Address, floor and the Update message passed on; units dispatched."})
			return err
		}},
		{9 * time.Minute, func() error {
			_, err := svc.LogAction(ctx, "demo-note", "olivia.barnes", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionNote,
				Text: "Police on scene. The worker left the flat with an officer; the brother was detained."})
			return err
		}},
		{12 * time.Minute, func() error {
			_, err := svc.LogAction(ctx, "demo-call", "olivia.barnes", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionCallWorker,
				Outcome: monitoring.CallAnsweredSafe, Text: "Rachel is in her car, unhurt, and going back to the base."})
			return err
		}},
		{15 * time.Minute, func() error {
			_, err := svc.LogAction(ctx, "demo-brief", "olivia.barnes", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionContact,
				Contact: "Dana Whitfield", Outcome: monitoring.ContactBriefed, Text: "Briefed; she will meet Rachel at the base."})
			return err
		}},
		{17 * time.Minute, func() error {
			_, err := svc.Close(ctx, "demo-close", "olivia.barnes", a.ID, monitoring.ResolutionIncidentHandled,
				monitoring.ConfirmedByPolice, "Police attended; worker safe and debriefed by her manager.", "")
			return err
		}},
	}
	for i, st := range steps {
		at(31*time.Minute + st.after)
		if err := st.do(); err != nil {
			return nil, fmt.Errorf("demo step %d: %w", i, err)
		}
	}
	at(31*time.Minute + 20*time.Minute)
	link, err := svc.IssueAudioLink(ctx, "demo-link", "olivia.barnes", a.ID, 0, "close notification")
	if err != nil {
		return nil, err
	}
	at(20 * time.Hour)
	if _, err := svc.ReportAction(ctx, "demo-recommend", "sam.hale", a.ID, monitoring.ReportSaveRecommendations,
		"1. Flag 14 Hollin Lane as a two-person visit until the risk assessment is reviewed.\n"+
			"2. Share the brother's presence with the care coordinator before any visit is booked.\n"+
			"3. The alarm worked as intended: acknowledged in 7 s, police called within 70 s of the raise. No change to the alarm procedure."); err != nil {
		return nil, err
	}
	return &Incident{AlarmID: a.ID, Trail: trail, Link: link}, nil
}
