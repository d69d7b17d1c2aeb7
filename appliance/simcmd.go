package appliance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// simOptions are the flags of vigil sim.
type simOptions struct {
	brokers, api, scenario, history, credentials, prefix, logLevel string
	provision                                                      bool
	devices                                                        int
	duration                                                       time.Duration
	alarmRate                                                      float64
	seed                                                           uint64
}

func simFlags(out io.Writer) (*flag.FlagSet, *simOptions) {
	o := &simOptions{}
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.brokers, "brokers", sim.DefaultBroker, "comma-separated MQTT `host:port` list, tried in turn")
	fs.StringVar(&o.api, "api", DefaultAPIURL, "`URL` of a node's HTTP API, for --provision")
	fs.BoolVar(&o.provision, "provision", true, "create an organisation, workers with PINs, devices and their secrets through --api")
	fs.StringVar(&o.credentials, "credentials", "", "JSON `file` of device credentials: written after --provision, read without it")
	fs.StringVar(&o.prefix, "prefix", "sim", "`prefix` of the provisioned IDs (prefix-org, prefix-w001, prefix-d001...)")
	fs.IntVar(&o.devices, "devices", sim.DefaultDevices, "number of simulated `devices`")
	fs.DurationVar(&o.duration, "duration", 0, "how long to run; 0 runs until Ctrl-C (or, with --scenario, until its last step is acked)")
	fs.Float64Var(&o.alarmRate, "alarm-rate", sim.DefaultAlarmRate, "random alarms per device per `hour` (ignored with --scenario)")
	fs.StringVar(&o.scenario, "scenario", "", "YAML scenario `file` of timed steps (docs/sim.md), instead of random sessions and alarms")
	fs.Uint64Var(&o.seed, "seed", 1, "random `seed` of the devices' behaviour")
	fs.StringVar(&o.history, "history", "", "write every outbox attempt to `file` as JSON lines at the end")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil sim [flags]

Simulates lone workers' devices speaking device protocol v1 over MQTT 3.1.1
(docs/device-protocol.md): timed sessions with an Update message, check-ins
with the Safe PIN, heartbeats, location fixes and occasional alarms, or the
steps of a scenario file. Every alarm and session event is resent with the
same event_id until PUBACKed, failing over to the next broker in --brokers.
At the end (or Ctrl-C) it prints the events sent and acked, retries,
failovers and the publish-to-PUBACK latency. See docs/sim.md.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, o
}

func (c *cli) simCmd(ctx context.Context, args []string) error {
	fs, o := simFlags(c.stderr)
	pos, err := parseArgs(fs, args)
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
	}
	cfg := sim.DefaultConfig()
	cfg.Brokers = splitList(o.brokers)
	cfg.Duration, cfg.AlarmRate, cfg.Seed = o.duration, o.alarmRate, o.seed
	cfg.Run = strconv.FormatInt(time.Now().UnixMilli(), 36)
	cfg.Logger = newLogger(c.stderr, o.logLevel)
	if len(cfg.Brokers) == 0 {
		return usageErr(fs, "--brokers is empty")
	}
	if o.scenario != "" {
		if cfg.Scenario, err = sim.LoadScenario(o.scenario, o.devices); err != nil {
			return err
		}
	}
	if o.provision {
		rng := rand.New(rand.NewPCG(o.seed, 0))
		if cfg.Credentials, err = sim.Provision(ctx, o.api, o.prefix, cfg.Run, o.devices, rng); err != nil {
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
	fmt.Fprintf(c.stdout, "simulating %d devices against %v\n", o.devices, cfg.Brokers)
	if err := s.Run(ctx); err != nil {
		return err
	}
	sim.WriteSummary(c.stdout, s.Summary())
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
