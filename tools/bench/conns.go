package main

// Connections: the memory one process needs per connected device, on one
// Vigil node and on Mosquitto. All the devices connect to that one
// process (a Vigil node is restarted first and left idle past the Go
// runtime's two-minute forced collection, so that the baseline is a
// settled node holding the provisioned state); they send a heartbeat QoS 1
// on connecting and then every 30 to 60 s. The bench reads the process's
// RSS before, and while the devices settle: first with plan.devices
// devices (10,000), then, with plan.max, with as many as the process may
// hold under its open-file limit (20,000 here, less a margin for its own
// files).

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// mosquittoFileMargin is the open files Mosquitto keeps for itself beyond
// one socket per device.
const mosquittoFileMargin = 64

// idleTarget is a process whose memory is measured with idle devices.
type idleTarget struct {
	name    string // for the report: "Vigil node2 (follower)", "Mosquitto 2.0.11"
	pid     int
	broker  string // the MQTT address its devices connect to
	logPath string // its GODEBUG=gctrace=1 log; empty for none
	margin  uint64 // open files it keeps for itself
	exited  func() error
	// afterSettle, if set, is called once the devices of a step have
	// settled, before the next step.
	afterSettle func(devices int)
}

// connStep is one count of devices, settled.
type connStep struct {
	devices        int // connected when measured
	rss, anon      int64
	gc             gcTrace
	connectElapsed time.Duration
	hbRate         float64 // heartbeats PUBACKed per second while settling
	cpu            cpuUse  // of the process, while settling
	status         sim.Status
}

// connResult is one target's measurement.
type connResult struct {
	target             string
	baseline, baseAnon int64
	baseGC             gcTrace
	limit              uint64 // the process's open-file limit
	steps              []connStep
	children           int
	final              sim.Status // the children's counters once stopped
	plan               idlePlan
}

// kibPerDevice is step i's RSS growth per device.
func (r connResult) kibPerDevice(i int) float64 {
	s := r.steps[i]
	if s.devices == 0 {
		return 0
	}
	return float64(s.rss-r.baseline) / 1024 / float64(s.devices)
}

// liveKiBPerDevice is step i's growth of live heap and stacks per device,
// from the traced collections; ok is false without them.
func (r connResult) liveKiBPerDevice(i int) (float64, bool) {
	s := r.steps[i]
	if !s.gc.ok || !r.baseGC.ok || s.devices == 0 {
		return 0, false
	}
	grow := (s.gc.live + s.gc.stacks) - (r.baseGC.live + r.baseGC.stacks)
	return float64(grow) * 1024 / float64(s.devices), true
}

// mibPer10k is step i's RSS growth scaled to 10,000 devices, in MiB.
func (r connResult) mibPer10k(i int) float64 { return r.kibPerDevice(i) * 10000 / 1024 }

// readProcRSS returns the median of n readings of pid's RSS and anonymous
// RSS, every so often.
func readProcRSS(ctx context.Context, pid, n int, every time.Duration) (rss, anon int64, err error) {
	var samples [][]int64
	for i := range n {
		if i > 0 {
			if err := sleep(ctx, every); err != nil {
				return 0, 0, err
			}
		}
		r, a, err := readRSS(pid)
		if err != nil {
			return 0, 0, err
		}
		samples = append(samples, []int64{r, a})
	}
	m := medians(samples)
	return m[0], m[1], nil
}

// runConns measures t's memory: the baseline after baselineWait, then
// with plan.devices idle devices from creds, then (plan.max) with as many
// as t may hold, at most len(creds).
func runConns(ctx context.Context, t idleTarget, vigil, dir string, creds []sim.Credential, plan idlePlan, baselineWait time.Duration) (connResult, error) {
	res := connResult{target: t.name, plan: plan}
	limit, err := processFileLimit(t.pid)
	if err != nil {
		return res, err
	}
	res.limit = limit
	counts := []int{min(plan.devices, len(creds))}
	if most := min(int(limit-t.margin), len(creds)); plan.max && most > counts[0] {
		counts = append(counts, most)
	}
	if need := uint64(counts[len(counts)-1]) + t.margin; limit < need {
		return res, fmt.Errorf("%s may open %d files (ulimit -n), too few for %d devices and its own files", t.name, limit, counts[len(counts)-1])
	}

	progress("conns: %s: waiting %s before the baseline", t.name, baselineWait)
	if err := sleep(ctx, baselineWait); err != nil {
		return res, err
	}
	if res.baseline, res.baseAnon, err = readProcRSS(ctx, t.pid, baselineSamples, time.Second); err != nil {
		return res, err
	}
	if t.logPath != "" {
		res.baseGC = lastGC(t.logPath)
	}

	var children []*idleChild
	defer func() {
		for _, ch := range children {
			ch.stop()
		}
	}()
	connected := 0
	bound := connectBudget(counts[len(counts)-1]) + time.Duration(len(counts))*plan.settle + childSpare
	for _, count := range counts {
		t0 := time.Now()
		for from := connected; from < count; from += devicesPerChild {
			to := min(from+devicesPerChild, count)
			ch, err := startIdleChild(vigil, dir, from, creds[from:to], []string{t.broker}, plan, bound)
			if err != nil {
				return res, err
			}
			children = append(children, ch)
		}
		res.children = len(children)
		progress("conns: %s: connecting devices %d to %d", t.name, connected+1, count)
		lastProgress := time.Now()
		err := pollUntil(ctx, connectBudget(count-connected), func() bool {
			for _, ch := range children {
				if ch.exited() {
					return true
				}
			}
			s := sumStatus(children)
			if time.Since(lastProgress) >= 10*time.Second {
				lastProgress = time.Now()
				progress("conns: %s: %d of %d devices connected, %d failed attempts", t.name, s.Connected, count, s.ConnectErrors)
			}
			return s.Connected >= int64(count)
		})
		if err != nil {
			s := sumStatus(children)
			return res, fmt.Errorf("connecting %d idle devices to %s, %d connected, %d failed attempts: %w", count, t.name, s.Connected, s.ConnectErrors, err)
		}
		for _, ch := range children {
			if ch.exited() {
				return res, fmt.Errorf("an idle-device child (%s sim) exited early (%v); its error is above", vigil, ch.cmd.ProcessState)
			}
		}
		if err := t.exited(); err != nil {
			return res, err
		}
		step := connStep{connectElapsed: time.Since(t0)}
		s := sumStatus(children)
		progress("conns: %s: %d devices connected in %s; settling for %s", t.name, s.Connected, step.connectElapsed.Round(time.Second), plan.settle)

		a := sampleCPU([]int{t.pid})
		hb0 := s.TelemetryAcked
		settleStart := time.Now()
		var samples [][]int64
		for time.Since(settleStart) < plan.settle {
			if err := sleep(ctx, min(rssEvery, plan.settle-time.Since(settleStart))); err != nil {
				return res, err
			}
			r, an, err := readRSS(t.pid)
			if err != nil {
				return res, fmt.Errorf("%w; %v", err, t.exited())
			}
			samples = append(samples, []int64{r, an})
			progress("conns: %s: RSS %s MiB (anonymous %s)", t.name, mib(r), mib(an))
		}
		step.cpu = cpuBetween(a, sampleCPU([]int{t.pid}))
		m := medians(samples)
		step.rss, step.anon = m[0], m[1]
		if t.logPath != "" {
			step.gc = lastGC(t.logPath)
		}
		s = sumStatus(children)
		step.status = s
		step.hbRate = float64(s.TelemetryAcked-hb0) / time.Since(settleStart).Seconds()
		step.devices = int(s.Connected)
		res.steps = append(res.steps, step)
		connected = count
		if t.afterSettle != nil {
			t.afterSettle(step.devices)
		}
	}

	progress("conns: %s: disconnecting the idle devices", t.name)
	for _, ch := range children {
		ch.stop()
	}
	res.final = sumStatus(children)
	children = nil
	return res, nil
}

// peerCredentials returns n made-up credentials for a peer broker, which
// lets any client in.
func peerCredentials(n int) []sim.Credential {
	out := make([]sim.Credential, n)
	for i := range out {
		out[i] = sim.Credential{DeviceID: fmt.Sprintf("peer-d%05d", i+1), Secret: "unused"}
	}
	return out
}
