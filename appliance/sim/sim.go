package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultBroker            = "127.0.0.1:1883"
	DefaultDevices           = 10
	DefaultAlarmRate         = 1.0 // alarms per device per hour
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultLocationInterval  = 20 * time.Second
	DefaultSessionGap        = time.Minute // mean idle time between sessions
	DefaultSessionLength     = 2 * time.Minute
	DefaultCheckInEvery      = 45 * time.Second
	DefaultPublishTimeout    = 10 * time.Second // longer than the broker's 5 s commit timeout
	DefaultConnectTimeout    = 5 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	DefaultReplyWait         = time.Second
	DefaultKeepAlive         = 30 * time.Second
	// DefaultConnectsInFlight bounds the connection attempts under way at
	// once: each CONNECT costs the node an argon2id hash of 4 MiB, and a
	// thousand devices dialling at once would time out on it.
	DefaultConnectsInFlight = 16
)

// Modes of a run (Config.Mode).
const (
	// ModeRandom: timed sessions with check-ins, random alarms and
	// telemetry, or the steps of a scenario.
	ModeRandom = "random"
	// ModeIdle: devices connect and stay connected, sending only
	// telemetry (heartbeats, and location fixes if LocationInterval is
	// set): the load of a fleet at rest.
	ModeIdle = "idle"
	// ModeAlarms: a closed loop. Once every device is connected, each
	// raises an alarm, waits for its PUBACK and at once raises the next,
	// until the run ends: the most alarms the devices can get committed.
	ModeAlarms = "alarms"
)

// modes are the values Config.Mode may take.
var modes = []string{ModeRandom, ModeIdle, ModeAlarms}

// Modes returns the values Config.Mode may take.
func Modes() []string { return slices.Clone(modes) }

// Config configures a Simulator.
type Config struct {
	// Mode is what the devices do: ModeRandom (the default when empty),
	// ModeIdle or ModeAlarms.
	Mode string
	// Brokers are the MQTT host:port addresses. Device i starts on broker
	// i mod len(Brokers) and moves to the next one when it fails.
	Brokers []string
	// Credentials are the devices' IDs, secrets and PINs, one per device.
	Credentials []Credential
	// Duration ends the run; 0 runs until the context ends (or, with a
	// scenario, until its last step is acked).
	Duration time.Duration
	// AlarmRate is the mean number of random alarms per device per hour
	// (ModeRandom).
	AlarmRate float64
	// AlarmType is the type of every alarm the devices raise on their own:
	// empty for a mix (mostly red_alert) in ModeRandom and for test in
	// ModeAlarms, where a loop of real alarms would set acknowledgement
	// deadlines and fill the operators' queue.
	AlarmType string
	// ResetShare is the share (0 to 1) of random red alerts and man-down
	// alarms that the worker resets with the Safe PIN, ResetAfter after
	// the raise on average (at least half of it): the pocket presses and
	// the situations that calmed down that make up most of a real
	// centre's alarms. Each stays in the queue until an operator confirms
	// the worker safe.
	ResetShare float64
	ResetAfter time.Duration
	// Scenario, if set, replaces random sessions and alarms by its steps
	// (ModeRandom only).
	Scenario *Scenario
	// Seed seeds the random behaviour; runs with the same seed make the same
	// choices (event IDs still differ: they carry Run).
	Seed uint64
	// Run tells this run's event and session IDs apart from other runs';
	// empty for one made from the clock.
	Run string
	// HeartbeatInterval and LocationInterval space telemetry; 0 sends
	// none. A device sends a heartbeat as soon as it has connected, then
	// every HeartbeatInterval plus a random part of up to HeartbeatJitter.
	// A device with no LocationInterval has no position: its alarms and
	// sessions carry none either.
	HeartbeatInterval, HeartbeatJitter, LocationInterval time.Duration
	// TelemetryQoS is the QoS of heartbeats and location fixes, 0 or 1. At
	// QoS 1 their PUBACKs are counted in Status.
	TelemetryQoS byte
	// SessionGap is the mean idle time between random sessions,
	// SessionLength their mean real length, CheckInEvery the time between
	// their check-ins.
	SessionGap, SessionLength, CheckInEvery time.Duration
	// PublishTimeout is how long an outbox event waits for its PUBACK
	// before the device drops the connection and fails over.
	PublishTimeout time.Duration
	// ReplyWait is how long, after an event's PUBACK, the device waits for
	// its down/reply before sending the next event. The PUBACK alone acks
	// the event; the reply is only recorded in the history. ModeAlarms
	// never waits: the loop would stall on a missing reply.
	ReplyWait time.Duration
	// ConnectTimeout bounds one connection attempt, ConnectsInFlight the
	// attempts under way at once (0: no bound).
	ConnectTimeout   time.Duration
	ConnectsInFlight int
	// KeepAlive is the devices' MQTT keep-alive.
	KeepAlive time.Duration
	// DrainTimeout is how long, once the run ends, the devices keep trying
	// to get their outbox acked and stay connected for the replies of
	// events already acked.
	DrainTimeout time.Duration
	// Logger receives connection and error events.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the defaults and no credentials.
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{DefaultBroker},
		AlarmRate:         DefaultAlarmRate,
		HeartbeatInterval: DefaultHeartbeatInterval,
		LocationInterval:  DefaultLocationInterval,
		SessionGap:        DefaultSessionGap,
		SessionLength:     DefaultSessionLength,
		CheckInEvery:      DefaultCheckInEvery,
		PublishTimeout:    DefaultPublishTimeout,
		ConnectTimeout:    DefaultConnectTimeout,
		ConnectsInFlight:  DefaultConnectsInFlight,
		KeepAlive:         DefaultKeepAlive,
		ReplyWait:         DefaultReplyWait,
		DrainTimeout:      DefaultDrainTimeout,
	}
}

// Validate checks the configuration and names the field at fault.
func (c Config) Validate() error {
	switch {
	case c.Mode != "" && !slices.Contains(modes, c.Mode):
		return fmt.Errorf("mode: %q is not one of %v", c.Mode, modes)
	case c.Scenario != nil && c.mode() != ModeRandom:
		return fmt.Errorf("scenario: only in mode %s, not %s", ModeRandom, c.Mode)
	case len(c.Brokers) == 0:
		return errors.New("brokers: at least one address is needed")
	case len(c.Credentials) == 0:
		return errors.New("credentials: no devices to simulate")
	case c.Duration < 0:
		return errors.New("duration: must not be negative")
	case c.AlarmRate < 0:
		return errors.New("alarm_rate: must not be negative")
	case c.AlarmType != "" && !slices.Contains(alarmTypes, c.AlarmType):
		return fmt.Errorf("alarm_type: %q is not one of %v", c.AlarmType, alarmTypes)
	case c.HeartbeatInterval < 0, c.HeartbeatJitter < 0, c.LocationInterval < 0:
		return errors.New("heartbeat and location intervals and the heartbeat jitter must not be negative")
	case c.TelemetryQoS > 1:
		return fmt.Errorf("telemetry_qos: %d, want 0 or 1", c.TelemetryQoS)
	case c.SessionGap <= 0, c.SessionLength <= 0, c.CheckInEvery <= 0:
		return errors.New("session gap, length and check-in times must be positive")
	case c.PublishTimeout <= 0, c.ConnectTimeout <= 0, c.KeepAlive <= 0:
		return errors.New("publish and connect timeouts and the keep-alive must be positive")
	case c.ConnectsInFlight < 0:
		return errors.New("connects_in_flight: must not be negative")
	case c.ReplyWait < 0, c.DrainTimeout < 0:
		return errors.New("reply wait and drain timeout must not be negative")
	case c.ResetShare < 0 || c.ResetShare > 1:
		return fmt.Errorf("reset_share: %g, want 0 to 1", c.ResetShare)
	case c.ResetShare > 0 && c.ResetAfter <= 0:
		return errors.New("reset_after: must be positive when reset_share is set")
	case c.ResetShare > 0 && c.ReplyWait == 0:
		return errors.New("reset_share needs a reply wait: a reset needs the alarm's ID from its reply")
	}
	for _, s := range scenarioSteps(c.Scenario) {
		if s.Device > len(c.Credentials) {
			return fmt.Errorf("scenario: device %d, but only %d devices", s.Device, len(c.Credentials))
		}
	}
	return nil
}

// mode is Mode with its default.
func (c Config) mode() string {
	if c.Mode == "" {
		return ModeRandom
	}
	return c.Mode
}

// alarmType is the type of the next alarm a device raises on its own.
func (c Config) alarmType(rng *rand.Rand) string {
	switch {
	case c.AlarmType != "":
		return c.AlarmType
	case c.mode() == ModeAlarms:
		return "test"
	}
	return randomAlarmType(rng)
}

func scenarioSteps(s *Scenario) []Step {
	if s == nil {
		return nil
	}
	return s.Steps
}

// Simulator runs simulated devices.
type Simulator struct {
	cfg     Config
	log     *slog.Logger
	history *History
	ctr     counters
	// connectSlots holds a token per connection attempt under way; nil
	// when ConnectsInFlight is 0.
	connectSlots chan struct{}
	// allConnected is closed once every device has connected once: the
	// start of ModeAlarms' loop.
	allConnected  chan struct{}
	firstConnects atomic.Int64
	// pubacks are the goroutines counting telemetry PUBACKs (QoS 1).
	pubacks sync.WaitGroup
}

// New returns a Simulator for cfg; it does no I/O.
func New(cfg Config) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Run == "" {
		cfg.Run = strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Simulator{cfg: cfg, log: log.With("system", "sim"), history: newHistory(),
		allConnected: make(chan struct{})}
	s.ctr.connected = make([]atomic.Int64, len(cfg.Brokers))
	if cfg.ConnectsInFlight > 0 {
		s.connectSlots = make(chan struct{}, cfg.ConnectsInFlight)
	}
	return s, nil
}

// History returns the record of every outbox event's attempts.
func (s *Simulator) History() *History { return s.history }

// Summary sums up the run so far.
func (s *Simulator) Summary() Summary {
	sum := summarise(s.history.Attempts())
	sum.Devices = len(s.cfg.Credentials)
	sum.Failovers = int(s.ctr.failovers.Load())
	sum.Telemetry = int(s.ctr.heartbeats.Load() + s.ctr.locations.Load())
	return sum
}

// Run runs the devices until ctx ends, Duration passes, or, with a scenario
// and no Duration, every step has been acked. Then each device keeps
// resending its outbox, and all stay connected until the replies of the
// acked events have arrived, for up to DrainTimeout; then they disconnect.
// It returns an error, before any device connects, if this process may
// not open a socket per device.
func (s *Simulator) Run(ctx context.Context) error {
	if err := checkOpenFiles(len(s.cfg.Credentials)); err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, s.cfg.Duration)
		defer cancel()
	}
	// stopCtx ends the drain; it outlives ctx by DrainTimeout.
	stopCtx, cancelStop := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStop()
	go func() {
		<-runCtx.Done()
		t := time.NewTimer(s.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelStop()
		case <-stopCtx.Done():
		}
	}()

	var remaining atomic.Int64 // devices with scenario steps left
	remaining.Store(int64(len(s.cfg.Credentials)))
	done := func() {
		if remaining.Add(-1) == 0 && s.cfg.Scenario != nil && s.cfg.Duration == 0 {
			cancelRun()
		}
	}
	start := time.Now()
	// The devices stay connected after their run until release: the
	// replies of their last events may still be on the way.
	var running, held sync.WaitGroup
	release := make(chan struct{})
	for i, cred := range s.cfg.Credentials {
		d := newDevice(s, i, cred, start)
		running.Add(1)
		held.Go(func() {
			d.run(runCtx, stopCtx, done)
			running.Done()
			<-release
			d.disconnect()
		})
	}
	running.Wait()
	s.history.awaitReplies(stopCtx)
	close(release)
	held.Wait()
	s.pubacks.Wait()
	s.ctr.done.Store(true)
	return nil
}

// noteConnect counts a device's connection to broker b, its first if
// first; the first ones of all devices open ModeAlarms' loop.
func (s *Simulator) noteConnect(b int, first bool) {
	s.ctr.connects.Add(1)
	s.ctr.connected[b].Add(1)
	if !first {
		s.ctr.reconnects.Add(1)
	} else if s.firstConnects.Add(1) == int64(len(s.cfg.Credentials)) {
		close(s.allConnected)
	}
}

// WriteSummary prints sum for people.
func WriteSummary(w io.Writer, sum Summary) {
	fmt.Fprintf(w, "devices %d: events sent %d, acked %d, pending %d, retries %d, failovers %d, rejected %d, telemetry %d\n",
		sum.Devices, sum.Events, sum.Acked, sum.Pending, sum.Retries, sum.Failovers, sum.Rejected, sum.Telemetry)
	fmt.Fprintf(w, "publish-to-PUBACK: p50 %s, p99 %s\n", sum.P50.Round(time.Microsecond), sum.P99.Round(time.Microsecond))
}

// rngFor returns device i's random source.
func rngFor(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(i)+1))
}
