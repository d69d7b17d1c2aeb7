// Command chaos runs Vigil's fault-injection harness (package
// tools/chaos): three vigil processes in their own network namespaces,
// simulated devices, a seeded schedule of faults, then the check. It needs
// root. make chaos runs it:
//
//	(cd tools && go run ./chaos/cmd/chaos -vigil ../bin/vigil -seed 42 -faults 10)
//
// It exits 0 when the run found nothing wrong, 1 when it found a loss, a
// duplicate, a divergence or another broken promise, and 2 when it could
// not run. Its last line is
//
//	chaos: seed=S faults=F acked=A lost=L duplicated=D diverged=0|1 max_unavailable_ms=M
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/tools/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		o           chaos.Options
		seed        = flag.Uint64("seed", 0, "seed of the schedule and the load (default: from the clock, printed)")
		kinds       = flag.String("kinds", "", "comma-separated fault kinds to draw from (default all: kill, pause, isolate-leader, split, wipe, powercut, powercut-all)")
		regressions = flag.Bool("regressions", false, "run every seed of tools/chaos/regressions.txt instead")
	)
	flag.StringVar(&o.Vigil, "vigil", "bin/vigil", "the vigil `executable` the nodes run (make build)")
	flag.IntVar(&o.Faults, "faults", chaos.DefaultFaults, "number of faults")
	flag.IntVar(&o.Devices, "devices", chaos.DefaultDevices, "number of simulated devices")
	flag.DurationVar(&o.AlarmEvery, "alarm-every", chaos.DefaultAlarmEvery, "mean time between two alarms of one alarm device")
	flag.StringVar(&o.Subnet, "subnet", chaos.DefaultSubnet, "first three octets of the run's /24")
	flag.StringVar(&o.Dir, "dir", "", "directory for the nodes' data and logs and the history (default a new temporary one)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the directory after a run that passed (a failed run always keeps it)")
	flag.Parse()
	o.Out = os.Stdout

	var err error
	if o.Kinds, err = chaos.ParseKinds(*kinds); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	runs := []chaos.Options{o}
	if *regressions {
		regs, err := chaos.Regressions()
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		runs = nil
		for _, r := range regs {
			ro := o
			ro.Seed, ro.Faults, ro.Kinds = r.Seed, r.Faults, r.Kinds
			fmt.Printf("regression: seed %d, %d faults: %s\n", r.Seed, r.Faults, r.Note)
			runs = append(runs, ro)
		}
	} else {
		runs[0].Seed = *seed
		if !isFlagSet("seed") {
			runs[0].Seed = uint64(time.Now().UnixNano()) % 1_000_000_000
		}
	}
	code := 0
	for _, ro := range runs {
		res, err := chaos.Run(ctx, ro)
		if res != nil && res.Verdict != nil {
			res.WriteReport(os.Stdout)
		}
		switch {
		case errors.Is(err, context.Canceled):
			fmt.Fprintln(os.Stderr, "chaos: interrupted; the network and the nodes are gone")
			return 2
		case err != nil:
			fmt.Fprintf(os.Stderr, "chaos: seed %d: %v\n", ro.Seed, err)
			return 2
		case res.Verdict == nil:
			res.WriteReport(os.Stdout)
			code = 1
		case !res.OK():
			code = 1
		}
	}
	return code
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
