// Package simcmd is the vigil sim command: the device simulator of
// package sim driven from the command line, to commission an installation
// by sending simulated alarms through the real appliances, to give a demo
// or a benchmark its load, and to check a scenario file.
//
// It is a package of its own, not part of sim, because sim is a library
// that the live demo (vigil devcluster), the benchmarks and the
// fault-injection harness drive directly through sim.Config: the flags,
// their refusals and the printing of the counters are this one caller's
// concern. The conventions it shares with the other vigil commands (how
// flags are parsed, how a command-line mistake is reported, the loggers)
// come from the command line through Env, so that vigil sim behaves as they
// do.
package simcmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// Env is what vigil sim needs from the vigil command line.
type Env struct {
	// Stdout and Stderr are the command's outputs.
	Stdout, Stderr io.Writer
	// LookupEnv reads an environment variable (sim.TokenEnv).
	LookupEnv func(string) (string, bool)
	// ParseArgs parses the flags of fs in args, before, between or after
	// the positional arguments, and returns the positional ones. Its error
	// for a bad flag is the one UsageError returns; for -h, flag.ErrHelp.
	ParseArgs func(fs *flag.FlagSet, args []string) ([]string, error)
	// UsageError prints a command-line mistake and the usage of fs to fs's
	// output, and returns the error on which vigil exits with status 2.
	UsageError func(fs *flag.FlagSet, format string, a ...any) error
	// SplitList splits a comma-separated list, dropping blanks.
	SplitList func(string) []string
	// NewLogger returns a text logger on w at the named level.
	NewLogger func(w io.Writer, level string) *slog.Logger
	// DefaultAPIURL is the default of --api: the HTTP API of a node on
	// this machine.
	DefaultAPIURL string
}

// Usage prints the help of vigil sim, its flags and their defaults, to w.
func Usage(w io.Writer, env Env) {
	fs, _ := simFlags(w, env.DefaultAPIURL)
	fs.Usage()
}

// simOptions are the flags of vigil sim.
type simOptions struct {
	brokers, api, token, scenario, history, credentials, prefix, logLevel string
	mode, alarmType                                                       string
	provision, statusJSON                                                 bool
	devices, connectsInFlight, telemetryQoS                               int
	duration, heartbeat, jitter, location, keepAlive                      time.Duration
	connectTimeout, statusEvery                                           time.Duration
	alarmRate                                                             float64
	seed                                                                  uint64
}

func simFlags(out io.Writer, defaultAPIURL string) (*flag.FlagSet, *simOptions) {
	o := &simOptions{}
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", sim.ModeRandom, "what the devices do, a `mode`: random (sessions, check-ins, random alarms), "+
		"idle (connect and send only telemetry) or alarms (a closed loop: each raises its next alarm as soon as the last is PUBACKed)")
	fs.StringVar(&o.brokers, "brokers", sim.DefaultBroker, "comma-separated MQTT `host:port` list; device i starts on the i mod n-th, and fails over to the next")
	fs.StringVar(&o.api, "api", defaultAPIURL, "`URL` of a node's HTTP API, for --provision")
	fs.StringVar(&o.token, "token", "", "admin API `token` for --provision (vigil token create --role admin; default $"+sim.TokenEnv+")")
	fs.BoolVar(&o.provision, "provision", true, "create an organisation, workers with PINs, devices and their secrets through --api (needs --token)")
	fs.StringVar(&o.credentials, "credentials", "", "JSON `file` of device credentials: written after --provision, read without it")
	fs.StringVar(&o.prefix, "prefix", "sim", "`prefix` of the provisioned IDs (prefix-org, prefix-w001, prefix-d001...)")
	fs.IntVar(&o.devices, "devices", sim.DefaultDevices, "number of simulated `devices`")
	fs.DurationVar(&o.duration, "duration", 0, "how long to run; 0 runs until Ctrl-C (or, with --scenario, until its last step is acked)")
	fs.Float64Var(&o.alarmRate, "alarm-rate", sim.DefaultAlarmRate, "random alarms per device per `hour` (mode random, without --scenario)")
	fs.StringVar(&o.alarmType, "alarm-type", "", "`type` of the devices' own alarms: red_alert, discreet_panic, man_down, low_battery or test "+
		"(default a mix in mode random, test in mode alarms)")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", sim.DefaultHeartbeatInterval, "`time` between a device's heartbeats, the first on connecting; 0 sends none")
	fs.DurationVar(&o.jitter, "heartbeat-jitter", 0, "add up to this random `time` to each heartbeat interval")
	fs.DurationVar(&o.location, "location-interval", sim.DefaultLocationInterval, "`time` between location fixes; 0 sends none, and alarms and sessions carry no location")
	fs.IntVar(&o.telemetryQoS, "telemetry-qos", 0, "MQTT `QoS` of heartbeats and location fixes, 0 or 1 (1 counts their PUBACKs)")
	fs.DurationVar(&o.keepAlive, "keepalive", sim.DefaultKeepAlive, "the devices' MQTT keep-alive `time`")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", sim.DefaultConnectTimeout, "`time` one connection attempt (CONNECT and SUBSCRIBE) may take")
	fs.IntVar(&o.connectsInFlight, "connects-in-flight", sim.DefaultConnectsInFlight, "`number` of connection attempts under way at once (0: no bound); "+
		"each costs the node an argon2id hash")
	fs.DurationVar(&o.statusEvery, "status-every", 0, "print the live counters (connected, telemetry, events, errors) every `time`, and at the end; 0 prints none")
	fs.BoolVar(&o.statusJSON, "status-json", false, "print the counters as one JSON object per line, and the other output to stderr")
	fs.StringVar(&o.scenario, "scenario", "", "YAML scenario `file` of timed steps (docs/sim.md), instead of random sessions and alarms")
	fs.Uint64Var(&o.seed, "seed", 1, "random `seed` of the devices' behaviour")
	fs.StringVar(&o.history, "history", "", "write every outbox attempt to `file` as JSON lines at the end")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil sim [flags]

Simulates lone workers' devices speaking device protocol v1 over MQTT 3.1.1
(docs/device-protocol.md): timed sessions with an Update message, check-ins
with the Safe PIN, heartbeats, location fixes and occasional alarms, or the
steps of a scenario file (--mode random); devices that only send heartbeats
(--mode idle); or alarms back to back (--mode alarms). Every alarm and
session event is resent with the same event_id until PUBACKed, failing over
to the next broker in --brokers. At the end (or Ctrl-C) it prints the events
sent and acked, retries, failovers and the publish-to-PUBACK latency. See
docs/sim.md. Provisioning through --api needs an admin API token (--token,
or $VIGIL_API_TOKEN; vigil token create --name sim --role admin makes one).

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, o
}

// Command runs vigil sim with args (after "sim") until the run ends or ctx
// does, and returns what the vigil command line reports: an error from
// env.UsageError or env.ParseArgs for a command-line mistake, flag.ErrHelp
// after -h, or why the simulator could not run.
func Command(ctx context.Context, args []string, env Env) error {
	fs, o := simFlags(env.Stderr, env.DefaultAPIURL)
	usageErr := env.UsageError
	pos, err := env.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageErr(fs, "unexpected argument %q", pos[0])
	case o.devices < 1:
		return usageErr(fs, "--devices must be at least 1")
	case o.duration < 0:
		return usageErr(fs, "--duration must not be negative")
	case o.alarmRate < 0:
		return usageErr(fs, "--alarm-rate must not be negative")
	case !o.provision && o.credentials == "":
		return usageErr(fs, "--provision=false needs --credentials")
	case !slices.Contains(sim.Modes(), o.mode):
		return usageErr(fs, "--mode %q: want one of %v", o.mode, sim.Modes())
	case o.alarmType != "" && !slices.Contains(sim.AlarmTypes(), o.alarmType):
		return usageErr(fs, "--alarm-type %q: want one of %v", o.alarmType, sim.AlarmTypes())
	case o.scenario != "" && o.mode != sim.ModeRandom:
		return usageErr(fs, "--scenario needs --mode %s", sim.ModeRandom)
	case o.heartbeat < 0, o.jitter < 0, o.location < 0:
		return usageErr(fs, "--heartbeat-interval, --heartbeat-jitter and --location-interval must not be negative")
	case o.keepAlive <= 0, o.connectTimeout <= 0, o.connectsInFlight < 0:
		return usageErr(fs, "--keepalive and --connect-timeout must be positive, --connects-in-flight not negative")
	case o.telemetryQoS != 0 && o.telemetryQoS != 1:
		return usageErr(fs, "--telemetry-qos must be 0 or 1")
	case o.statusEvery < 0:
		return usageErr(fs, "--status-every must not be negative")
	}
	cfg := sim.DefaultConfig()
	cfg.Mode, cfg.AlarmType = o.mode, o.alarmType
	cfg.Brokers = env.SplitList(o.brokers)
	cfg.Duration, cfg.AlarmRate, cfg.Seed = o.duration, o.alarmRate, o.seed
	cfg.HeartbeatInterval, cfg.HeartbeatJitter, cfg.LocationInterval = o.heartbeat, o.jitter, o.location
	cfg.TelemetryQoS, cfg.KeepAlive = byte(o.telemetryQoS), o.keepAlive
	cfg.ConnectTimeout, cfg.ConnectsInFlight = o.connectTimeout, o.connectsInFlight
	cfg.Run = strconv.FormatInt(time.Now().UnixMilli(), 36)
	cfg.Logger = env.NewLogger(env.Stderr, o.logLevel)
	if len(cfg.Brokers) == 0 {
		return usageErr(fs, "--brokers is empty")
	}
	// With --status-json, stdout carries only the counters, for scripts.
	info := env.Stdout
	if o.statusJSON {
		info = env.Stderr
	}
	if o.scenario != "" {
		if cfg.Scenario, err = sim.LoadScenario(o.scenario, o.devices); err != nil {
			return err
		}
	}
	if o.provision {
		if o.token == "" {
			o.token, _ = env.LookupEnv(sim.TokenEnv)
		}
		rng := rand.New(rand.NewPCG(o.seed, 0))
		api := sim.API{URL: o.api, Token: strings.TrimSpace(o.token)}
		if cfg.Credentials, err = sim.ProvisionWith(ctx, api, o.prefix, cfg.Run, o.devices, rng); err != nil {
			return err
		}
		if o.credentials != "" {
			if err := sim.WriteCredentials(o.credentials, cfg.Credentials); err != nil {
				return err
			}
		}
	} else {
		if cfg.Credentials, err = sim.ReadCredentials(o.credentials); err != nil {
			return err
		}
		if len(cfg.Credentials) < o.devices {
			return fmt.Errorf("%s holds %d devices, fewer than --devices %d", o.credentials, len(cfg.Credentials), o.devices)
		}
		cfg.Credentials = cfg.Credentials[:o.devices]
	}
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(info, "simulating %d devices (mode %s) against %v\n", o.devices, cfg.Mode, cfg.Brokers)
	stopStatus := printStatus(env.Stdout, s, o)
	err = s.Run(ctx)
	stopStatus()
	if err != nil {
		return err
	}
	sim.WriteSummary(info, s.Summary())
	if o.history != "" {
		f, err := os.Create(o.history)
		if err != nil {
			return fmt.Errorf("cannot write history: %w", err)
		}
		if err := s.History().WriteJSONLines(f); err != nil {
			f.Close()
			return fmt.Errorf("cannot write history: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot write history: %w", err)
		}
	}
	return nil
}

// printStatus prints s's counters to w every --status-every until the
// returned function is called, which prints them a last time.
func printStatus(w io.Writer, s *sim.Simulator, o *simOptions) (stop func()) {
	if o.statusEvery <= 0 {
		return func() {}
	}
	enc := json.NewEncoder(w)
	show := func() {
		if o.statusJSON {
			_ = enc.Encode(s.Status())
			return
		}
		sim.WriteStatus(w, s.Status())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(o.statusEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				show()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		show()
	}
}
