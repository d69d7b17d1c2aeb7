package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
)

// mustAPI makes an admin API token on n and returns n's API with it, for
// provisioning.
func mustAPI(t *testing.T, n *appliance.Node) sim.API {
	t.Helper()
	made, err := n.Service().CreateAPIToken(context.Background(), "sim-test-token", "test", "sim-test", monitoring.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return sim.API{URL: n.HTTPAddr(), Token: made.Secret}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

const testScenario = `
- at: 0s
  device: 2
  do: session_start
  duration: 45m
  update: "High-risk tenant, second floor, dog in the hall"
- at: 300ms
  device: 2
  do: checkin
- at: 100ms
  device: 1
  do: alarm
  type: red_alert
- at: 600ms
  device: 2
  do: session_end
  pin: duress
- at: 200ms
  device: 3
  do: heartbeat
`

func TestSimulator_ScenarioAgainstNode(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	creds, err := sim.ProvisionWith(ctx, mustAPI(t, n), "t", "r1", 3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.ParseScenario([]byte(testScenario), 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	// Devices 1 and 3 start on the dead broker and must fail over.
	cfg.Brokers = []string{deadAddr(t), n.BrokerAddr()}
	cfg.Credentials, cfg.Scenario, cfg.Run = creds, sc, "r1"
	cfg.HeartbeatInterval, cfg.LocationInterval = 200*time.Millisecond, 300*time.Millisecond
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the run did not end by itself once the scenario was acked")
	}

	// Every event acked exactly once, and answered ok.
	acked := map[string]int{}
	types := map[string]string{}
	for _, a := range s.History().Attempts() {
		k := a.Device + "/" + a.EventID
		types[k] = a.Type
		if a.Acked != nil {
			acked[k]++
			if a.Broker != n.BrokerAddr() {
				t.Errorf("%s acked by %s, which is dead", k, a.Broker)
			}
		}
		if a.Reply != "ok" {
			t.Errorf("%s (%s): reply %q, want ok", k, a.Type, a.Reply)
		}
	}
	if len(types) != 4 {
		t.Errorf("history has %d events, want 4 (alarm, session start, checkin, end): %v", len(types), types)
	}
	for k, typ := range types {
		if acked[k] != 1 {
			t.Errorf("%s (%s) acked %d times, want once", k, typ, acked[k])
		}
	}
	sum := s.Summary()
	if sum.Events != 4 || sum.Acked != 4 || sum.Pending != 0 || sum.Rejected != 0 {
		t.Errorf("summary %+v, want 4 events, 4 acked, none pending or rejected", sum)
	}
	if sum.Failovers < 2 {
		t.Errorf("failovers %d, want at least 2 (devices 1 and 3 start on a dead broker)", sum.Failovers)
	}
	var lines bytes.Buffer
	if err := s.History().WriteJSONLines(&lines); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(lines.String()), "\n") {
		var a sim.Attempt
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.EventID == "" {
			t.Errorf("history line %q: %v", l, err)
		}
	}

	// The red alert of device 1 and the silent duress alarm of device 2's
	// worker are in the open queue.
	open, err := n.Service().OpenAlarms()
	if err != nil {
		t.Fatal(err)
	}
	var red, duress bool
	for _, a := range open {
		red = red || (a.Type == monitoring.AlarmRedAlert && a.DeviceID == creds[0].DeviceID)
		duress = duress || (a.Type == monitoring.AlarmDuress && a.WorkerID == creds[1].WorkerID)
	}
	if !red || !duress {
		t.Errorf("open queue %+v: red alert of %s %v, duress of %s %v", open, creds[0].DeviceID, red, creds[1].WorkerID, duress)
	}
}

func TestSimulator_RandomRun(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	creds, err := sim.ProvisionWith(ctx, mustAPI(t, n), "r", "r1", 3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Brokers = []string{n.BrokerAddr()}
	cfg.Credentials, cfg.Duration = creds, 2*time.Second
	cfg.AlarmRate = 3600 // about one a second per device
	cfg.HeartbeatInterval, cfg.LocationInterval = 100*time.Millisecond, 150*time.Millisecond
	cfg.SessionGap, cfg.SessionLength, cfg.CheckInEvery = 200*time.Millisecond, 800*time.Millisecond, 200*time.Millisecond
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sum := s.Summary()
	if sum.Events == 0 || sum.Acked != sum.Events || sum.Retries != 0 || sum.Telemetry == 0 {
		t.Errorf("summary %+v: want events, all acked without retries, and telemetry", sum)
	}
	var alarms int
	for _, a := range s.History().Attempts() {
		if a.Type == "alarm" {
			alarms++
		}
		if a.Reply != "ok" && a.Reply != "" {
			t.Errorf("%s %s (%s): reply %q", a.Device, a.EventID, a.Type, a.Reply)
		}
	}
	open, err := n.Service().OpenAlarms()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != alarms {
		t.Errorf("%d alarms sent, %d open", alarms, len(open))
	}
}

// With ResetShare, the simulated workers reset their red alerts and
// man-down alarms with the Safe PIN: each stays open, waiting for an
// operator to confirm the worker safe, as a real centre's queue does.
func TestSimulator_WorkersResetAlarms(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	creds, err := sim.ProvisionWith(ctx, mustAPI(t, n), "x", "x1", 2, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Brokers = []string{n.BrokerAddr()}
	cfg.Credentials, cfg.Duration = creds, 3*time.Second
	cfg.AlarmRate, cfg.AlarmType = 3600, "red_alert"
	cfg.ResetShare, cfg.ResetAfter = 1, 200*time.Millisecond
	cfg.SessionGap = time.Hour // no sessions: only alarms and their resets
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var raised, cancels int
	for _, a := range s.History().Attempts() {
		switch {
		case a.Type == "alarm" && a.Reply == "ok":
			raised++
		case a.Type == "alarm/cancel":
			cancels++
			if a.Reply != "ok" {
				t.Errorf("%s %s: reply %q", a.Device, a.EventID, a.Reply)
			}
		}
	}
	open, err := n.Service().OpenAlarms()
	if err != nil {
		t.Fatal(err)
	}
	var reset int
	for _, a := range open {
		if a.AwaitingConfirmation() {
			reset++
		}
	}
	t.Logf("%d alarms raised, %d reset by the worker", raised, cancels)
	if raised == 0 || cancels == 0 || reset != cancels || len(open) != raised {
		t.Errorf("%d alarms raised, %d cancels sent; %d open, %d of them reset: want every alarm open and one reset per cancel",
			raised, cancels, len(open), reset)
	}
}

func TestParseScenario_Refusals(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"not a list", "at: 5s", "cannot decode"},
		{"no at", "- device: 1\n  do: alarm", "at: missing"},
		{"bad at", "- at: soon\n  device: 1\n  do: alarm", "at: \"soon\""},
		{"device 0", "- at: 1s\n  device: 0\n  do: alarm", "device: 0"},
		{"device too high", "- at: 1s\n  device: 4\n  do: alarm", "device: 4"},
		{"unknown do", "- at: 1s\n  device: 1\n  do: dance", "do: \"dance\""},
		{"no do", "- at: 1s\n  device: 1", "do: missing"},
		{"alarm type", "- at: 1s\n  device: 1\n  do: alarm\n  type: fire", "type: \"fire\""},
		{"extend without extend_by", "- at: 1s\n  device: 1\n  do: extend", "extend_by"},
		{"bad duration", "- at: 1s\n  device: 1\n  do: session_start\n  duration: long", "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.ParseScenario([]byte(tc.yaml), 3)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseScenario_Example(t *testing.T) {
	sc, err := sim.LoadScenario("../../docs/sim-scenario-example.yaml", 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(sc.Steps); i++ {
		if sc.Steps[i].At < sc.Steps[i-1].At {
			t.Fatalf("steps not in time order: %+v", sc.Steps)
		}
	}
}
