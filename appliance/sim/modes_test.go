package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"

	"github.com/vigilarc/vigil/cluster/clustertest"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
)

// proxy is a second address of a broker: it forwards each TCP connection
// to the broker, and cut drops those open now, as a failing network would.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func mustProxy(t *testing.T, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// run starts s.Run and returns a function that ends it and returns its
// error.
func run(t *testing.T, s *sim.Simulator) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return within 30 s of the end of its context")
		}
	}
}

func TestSimulator_IdleDevicesSpreadHeartbeatAndReconnect(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Provision without an API takes the token from $VIGIL_API_TOKEN.
	t.Setenv(sim.TokenEnv, mustAPI(t, n).Token)
	creds, err := sim.Provision(ctx, n.HTTPAddr(), "i", "r1", 6, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	p := mustProxy(t, n.BrokerAddr())
	direct := n.BrokerAddr()
	cfg := sim.DefaultConfig()
	cfg.Mode = sim.ModeIdle
	cfg.Brokers = []string{direct, p.addr()}
	cfg.Credentials = creds
	cfg.HeartbeatInterval, cfg.HeartbeatJitter, cfg.LocationInterval = 150*time.Millisecond, 100*time.Millisecond, 0
	cfg.TelemetryQoS = 1
	cfg.ConnectsInFlight = 2
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)

	// Device i on broker i mod 2.
	clustertest.PollUntil(t, 20*time.Second, "3 devices on each address", func() bool {
		st := s.Status()
		return st.Connected == 6 && st.ByBroker[direct] == 3 && st.ByBroker[p.addr()] == 3
	})
	clustertest.PollUntil(t, 20*time.Second, "heartbeats PUBACKed and answered ok", func() bool {
		st := s.Status()
		return st.TelemetryAcked >= 12 && st.TelemetryOK >= 12
	})
	// The heartbeats reach the cluster's state (battery and firmware).
	clustertest.PollUntil(t, 10*time.Second, "device status written", func() bool {
		d, err := n.Service().Device(creds[0].DeviceID)
		return err == nil && d.Firmware == "sim-1.0" && d.Battery > 0 && d.Connected
	})

	// A failing network: the devices behind the proxy lose their
	// connection and reconnect, failing over to the direct address.
	p.cut()
	clustertest.PollUntil(t, 20*time.Second, "3 lost, 3 reconnected, all 6 on the direct address", func() bool {
		st := s.Status()
		return st.Lost == 3 && st.Reconnects == 3 && st.Connected == 6 && st.ByBroker[direct] == 6
	})
	hb := s.Status().Heartbeats
	clustertest.PollUntil(t, 10*time.Second, "heartbeats go on after reconnecting", func() bool { return s.Status().Heartbeats >= hb+6 })

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if !st.Done || st.Connected != 0 {
		t.Errorf("after Run: done %v, connected %d; want done and none connected", st.Done, st.Connected)
	}
	if st.Locations != 0 || st.Sent != 0 || st.TelemetryRefused != 0 || st.Connects != 9 {
		t.Errorf("status %+v: want no locations, no events, no refusals, 9 connects", st)
	}
	if sum := s.Summary(); sum.Events != 0 || sum.Telemetry != int(st.Heartbeats) {
		t.Errorf("summary %+v: want no events and the heartbeats as telemetry (%d)", sum, st.Heartbeats)
	}
}

func TestSimulator_AlarmLoop(t *testing.T) {
	// The loop raises alarms back to back, as the bench's load does, far
	// faster than the per-device limits let a device.
	nc := appliancetest.Config(t)
	appliancetest.UnlimitedDevices(&nc)
	n := appliancetest.MustNode(t, &nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	creds, err := sim.ProvisionWith(ctx, mustAPI(t, n), "a", "r1", 3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Mode = sim.ModeAlarms
	// Devices 1 and 3 start on a dead broker: they connect only after a
	// failed attempt and a 100 ms back-off, and device 2 must wait for
	// them before its first alarm.
	cfg.Brokers = []string{deadAddr(t), n.BrokerAddr()}
	cfg.Credentials, cfg.Run, cfg.Duration = creds, "r1", time.Second
	cfg.HeartbeatInterval, cfg.LocationInterval = 0, 0
	// The loop must not wait for replies, however long ReplyWait is.
	cfg.ReplyWait = time.Hour
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 15*time.Second {
		t.Errorf("the run took %s, want about its 1 s and the connections", took)
	}

	attempts := s.History().Attempts()
	byDevice := map[string][]sim.Attempt{}
	for _, a := range attempts {
		byDevice[a.Device] = append(byDevice[a.Device], a)
		if a.Type != "alarm" || a.Acked == nil || a.Reply != "ok" || a.Attempt != 1 {
			t.Errorf("attempt %+v: want an alarm acked on the first attempt with reply ok", a)
		}
		if a.Sent.Before(t0.Add(100 * time.Millisecond)) {
			t.Errorf("%s sent %s at %s, before every device was connected (after %s)", a.Device, a.EventID, a.Sent, t0.Add(100*time.Millisecond))
		}
	}
	for _, c := range creds {
		as := byDevice[c.DeviceID]
		if len(as) < 3 {
			t.Errorf("%s raised %d alarms in a second, want back to back", c.DeviceID, len(as))
		}
		// A closed loop: each alarm is sent once the previous one is acked.
		for i := 1; i < len(as); i++ {
			if as[i].Sent.Before(*as[i-1].Acked) {
				t.Errorf("%s: %s sent at %s, before %s was acked at %s", c.DeviceID, as[i].EventID, as[i].Sent, as[i-1].EventID, *as[i-1].Acked)
			}
		}
	}
	st := s.Status()
	if st.Sent != int64(len(attempts)) || st.Acked != st.Sent || st.Heartbeats+st.Locations != 0 || st.ConnectErrors < 2 {
		t.Errorf("status %+v: want %d sent and acked, no telemetry, at least 2 failed connects", st, len(attempts))
	}

	// Test alarms with no location, as configured.
	open, err := n.Service().OpenAlarms()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != len(attempts) {
		t.Errorf("%d alarms sent, %d open", len(attempts), len(open))
	}
	for _, a := range open {
		if a.Type != monitoring.AlarmTest || a.Location != nil {
			t.Errorf("open alarm %s: type %s, location %v; want test alarms without a location", a.ID, a.Type, a.Location)
			break
		}
	}
}

func TestSimulator_StatusJSON(t *testing.T) {
	// The field names are what vigil sim --status-json prints and the bench
	// reads.
	b, err := json.Marshal(sim.Status{ByBroker: map[string]int64{"127.0.0.1:1883": 2}, Connected: 2, TelemetryAcked: 5, Done: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"connected":2`, `"by_broker":{"127.0.0.1:1883":2}`, `"telemetry_acked":5`, `"done":true`, `"reconnects":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON %s lacks %s", b, want)
		}
	}
}

func TestConfig_Refusals(t *testing.T) {
	sc, err := sim.ParseScenario([]byte(testScenario), 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*sim.Config)
		want string
	}{
		{"unknown mode", func(c *sim.Config) { c.Mode = "sleepy" }, "mode"},
		{"scenario when idle", func(c *sim.Config) { c.Mode, c.Scenario = sim.ModeIdle, sc }, "scenario"},
		{"unknown alarm type", func(c *sim.Config) { c.AlarmType = "fire" }, "alarm_type"},
		{"telemetry QoS 2", func(c *sim.Config) { c.TelemetryQoS = 2 }, "telemetry_qos"},
		{"negative heartbeat", func(c *sim.Config) { c.HeartbeatInterval = -time.Second }, "heartbeat"},
		{"negative jitter", func(c *sim.Config) { c.HeartbeatJitter = -time.Second }, "jitter"},
		{"no keep-alive", func(c *sim.Config) { c.KeepAlive = 0 }, "keep-alive"},
		{"negative connects in flight", func(c *sim.Config) { c.ConnectsInFlight = -1 }, "connects_in_flight"},
		{"negative reply wait", func(c *sim.Config) { c.ReplyWait = -time.Second }, "reply wait"},
		{"reset share over 1", func(c *sim.Config) { c.ResetShare, c.ResetAfter = 1.5, time.Second }, "reset_share"},
		{"resets with no delay", func(c *sim.Config) { c.ResetShare = 0.5 }, "reset_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Credentials = make([]sim.Credential, 3)
			tc.set(&cfg)
			if _, err := sim.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// No telemetry at all is a valid idle fleet.
	cfg := sim.DefaultConfig()
	cfg.Mode, cfg.Credentials = sim.ModeIdle, make([]sim.Credential, 1)
	cfg.HeartbeatInterval, cfg.LocationInterval = 0, 0
	if _, err := sim.New(cfg); err != nil {
		t.Errorf("New of an idle fleet with no telemetry: %v", err)
	}
}
