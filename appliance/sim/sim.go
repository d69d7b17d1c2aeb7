package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
)

// Config configures a Simulator.
type Config struct {
	// Brokers are the MQTT host:port addresses, tried in turn.
	Brokers []string
	// Credentials are the devices' IDs, secrets and PINs, one per device.
	Credentials []Credential
	// Duration ends the run; 0 runs until the context ends (or, with a
	// scenario, until its last step is acked).
	Duration time.Duration
	// AlarmRate is the mean number of random alarms per device per hour.
	AlarmRate float64
	// Scenario, if set, replaces random sessions and alarms by its steps.
	Scenario *Scenario
	// Seed seeds the random behaviour; runs with the same seed make the same
	// choices (event IDs still differ: they carry Run).
	Seed uint64
	// Run tells this run's event and session IDs apart from other runs';
	// empty for one made from the clock.
	Run string
	// HeartbeatInterval and LocationInterval space telemetry.
	HeartbeatInterval, LocationInterval time.Duration
	// SessionGap is the mean idle time between random sessions,
	// SessionLength their mean real length, CheckInEvery the time between
	// their check-ins.
	SessionGap, SessionLength, CheckInEvery time.Duration
	// PublishTimeout is how long an outbox event waits for its PUBACK
	// before the device drops the connection and fails over.
	PublishTimeout time.Duration
	// ReplyWait is how long, after an event's PUBACK, the device waits for
	// its down/reply before sending the next event. The PUBACK alone acks
	// the event; the reply is only recorded in the history.
	ReplyWait time.Duration
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout time.Duration
	// DrainTimeout is how long, once the run ends, the devices keep trying
	// to get their outbox acked.
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
		ReplyWait:         DefaultReplyWait,
		DrainTimeout:      DefaultDrainTimeout,
	}
}

// Validate checks the configuration and names the field at fault.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("brokers: at least one address is needed")
	case len(c.Credentials) == 0:
		return errors.New("credentials: no devices to simulate")
	case c.Duration < 0:
		return errors.New("duration: must not be negative")
	case c.AlarmRate < 0:
		return errors.New("alarm_rate: must not be negative")
	case c.HeartbeatInterval <= 0, c.LocationInterval <= 0:
		return errors.New("heartbeat and location intervals must be positive")
	case c.SessionGap <= 0, c.SessionLength <= 0, c.CheckInEvery <= 0:
		return errors.New("session gap, length and check-in times must be positive")
	case c.PublishTimeout <= 0, c.ConnectTimeout <= 0:
		return errors.New("publish and connect timeouts must be positive")
	}
	for _, s := range scenarioSteps(c.Scenario) {
		if s.Device > len(c.Credentials) {
			return fmt.Errorf("scenario: device %d, but only %d devices", s.Device, len(c.Credentials))
		}
	}
	return nil
}

func scenarioSteps(s *Scenario) []Step {
	if s == nil {
		return nil
	}
	return s.Steps
}

// Simulator runs simulated devices.
type Simulator struct {
	cfg       Config
	log       *slog.Logger
	history   *History
	failovers atomic.Int64
	telemetry atomic.Int64
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
	return &Simulator{cfg: cfg, log: log.With("system", "sim"), history: newHistory()}, nil
}

// History returns the record of every outbox event's attempts.
func (s *Simulator) History() *History { return s.history }

// Summary sums up the run so far.
func (s *Simulator) Summary() Summary {
	sum := summarise(s.history.Attempts())
	sum.Devices = len(s.cfg.Credentials)
	sum.Failovers = int(s.failovers.Load())
	sum.Telemetry = int(s.telemetry.Load())
	return sum
}

// Run runs the devices until ctx ends, Duration passes, or, with a scenario
// and no Duration, every step has been acked. Then each device keeps
// resending its outbox for up to DrainTimeout, and disconnects.
func (s *Simulator) Run(ctx context.Context) error {
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
	var wg sync.WaitGroup
	for i, cred := range s.cfg.Credentials {
		d := newDevice(s, i, cred, start)
		wg.Go(func() { d.run(runCtx, stopCtx, done) })
	}
	wg.Wait()
	return nil
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
