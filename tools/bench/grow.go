package main

// How cost grows: alarm latency as the fleet and the alarm rate grow. For
// each fleet size, the devices connect (spread over the three brokers):
// up to growAlarmDevices of them are the bench's own devices, which raise
// test alarms at a set total rate, open loop (the k-th alarm is due at
// k/rate seconds, whatever happened to the earlier ones, on device k mod
// n); the rest are idle devices of the simulator (vigil sim --mode idle
// child processes), each sending a heartbeat every 30 to 60 s. At each rate
// the bench measures publish-to-PUBACK latency and the rate of PUBACKs; the
// rate at which PUBACKs stop keeping up with the alarms sent, or latency
// leaps, is where it bends.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

const (
	// growAlarmDevices is the most devices that raise the alarms.
	growAlarmDevices = 1000
	// growInflightPerDevice bounds the alarms awaiting their PUBACK, per
	// alarm device: past it the bench holds back (and the PUBACK rate, not
	// the offered rate, is what the cluster sustains).
	growInflightPerDevice = 2
	// growSettle is how long a fleet runs before its first rate.
	growSettle = 5 * time.Second
	// growDrain bounds the wait for the PUBACKs still due after a rate.
	growDrain = 30 * time.Second
	// growKeepsUp is the share of the offered rate that PUBACKs must reach
	// for a rate to count as sustained.
	growKeepsUp = 0.95
	// growGaveUp is the share of the offered rate below which the fleet is
	// past its bend for good: the higher rates of the same fleet are not
	// run (each would hold the in-flight bound and drain for growDrain).
	growGaveUp = 0.5
)

// growCell is one fleet size at one rate.
type growCell struct {
	devices      int     // connected devices
	alarmDevices int     // of which raising alarms
	offered      float64 // alarms per second asked for
	sentRate     float64 // alarms published per second in the window
	ackRate      float64 // PUBACKs per second in the window
	lat          []time.Duration
	lost         int // no PUBACK within publishTimeout
	refused      int // replies with an error code
	cpu          cpuUse
	heldBack     bool // the in-flight bound was reached
	// skipped is set for a rate not run, as a lower one of the same fleet
	// was PUBACKed at less than growGaveUp of its rate.
	skipped bool
}

// sustained reports whether the PUBACKs kept up with the offered rate.
func (g growCell) sustained() bool { return g.ackRate >= growKeepsUp*g.offered && g.lost == 0 }

// growReport holds the cost-growth grid.
type growReport struct {
	cells []growCell
	dur   time.Duration
	// crash is set when a node died during the grid, which then stopped:
	// the node's own account of it (its panic), for the report.
	crash string
}

// pacedFleet is the bench's alarm-raising devices.
type pacedFleet struct {
	devs    []*benchDevice
	lost    atomic.Int64
	refused atomic.Int64
}

// connectFleet connects one bench device per credential, device i on
// brokers[i mod n], connectsInFlight at a time.
func connectFleet(ctx context.Context, creds []sim.Credential, brokers []string) (*pacedFleet, error) {
	f := &pacedFleet{devs: make([]*benchDevice, len(creds))}
	err := forEach(ctx, len(creds), connectsInFlight, func(i int) error {
		d, err := connectDevice(ctx, brokers[i%len(brokers)], nil, creds[i], true, &f.lost, func(r deviceReply) {
			if !r.OK {
				f.refused.Add(1)
			}
		})
		f.devs[i] = d
		return err
	})
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *pacedFleet) close() {
	for _, d := range f.devs {
		if d != nil {
			d.disconnect()
		}
	}
}

// runPaced raises alarms at rate per second over f's devices for warmup
// plus dur, open loop, and measures the alarms sent after warmup.
func runPaced(ctx context.Context, f *pacedFleet, rate float64, warmup, dur time.Duration, pids []int) growCell {
	cell := growCell{alarmDevices: len(f.devs), offered: rate}
	start := time.Now()
	from, end := start.Add(warmup), start.Add(warmup+dur)
	interval := time.Duration(float64(time.Second) / rate)
	limit := growInflightPerDevice * len(f.devs)
	slots := make(chan struct{}, limit)
	refused0 := f.refused.Load()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var sent, acked int
	run := fmt.Sprintf("b-grow-%d", time.Now().UnixMilli())
	wg.Go(func() { cpuWindow(ctx, pids, from, end, &cell.cpu) })
	for k := 0; ctx.Err() == nil; k++ {
		due := start.Add(time.Duration(k) * interval)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			if sleep(ctx, d) != nil {
				break
			}
		}
		if len(slots) == limit {
			cell.heldBack = true
		}
		if !acquire(ctx, slots, end) {
			break
		}
		d := f.devs[k%len(f.devs)]
		t0 := time.Now()
		tok := d.publishAlarm(fmt.Sprintf("%s-%d", run, k))
		inWindow := !t0.Before(from) && t0.Before(end)
		if inWindow {
			sent++
		}
		wg.Go(func() {
			defer func() { <-slots }()
			err := waitToken(ctx, tok, publishTimeout)
			t1 := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if !t1.Before(from) && !t1.After(end) && err == nil {
				acked++
			}
			if !inWindow {
				return
			}
			if err != nil {
				if ctx.Err() == nil {
					cell.lost++
				}
				return
			}
			cell.lat = append(cell.lat, t1.Sub(t0))
		})
	}
	// The PUBACKs still due: wait for them, within growDrain.
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(growDrain):
		progress("grow: PUBACKs still missing %s after the level; counting them as lost", growDrain)
		mu.Lock()
		cell.lost += len(slots)
		mu.Unlock()
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	cell.sentRate = float64(sent) / dur.Seconds()
	cell.ackRate = float64(acked) / dur.Seconds()
	cell.refused = int(f.refused.Load() - refused0)
	slices.Sort(cell.lat)
	cell.lat = slices.Clone(cell.lat) // late PUBACKs may still append to the original
	return cell
}

// acquire takes a slot, waiting until end at most; it reports whether it
// got one.
func acquire(ctx context.Context, slots chan struct{}, end time.Time) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// runGrow measures the grid on c: for each fleet size in plan.growDevices,
// each rate in plan.growRates. creds holds at least the largest fleet.
func runGrow(ctx context.Context, c *localCluster, vigil, dir string, creds []sim.Credential, plan gatewayPlan) (*growReport, error) {
	rep := &growReport{dur: plan.growDur}
	var brokers []string
	for _, n := range c.nodes {
		brokers = append(brokers, n.mqttAddr)
	}
	maxFleet := slices.Max(plan.growDevices)
	if maxFleet > len(creds) {
		return nil, fmt.Errorf("a fleet of %d devices wanted, %d provisioned", maxFleet, len(creds))
	}
	alarmN := min(growAlarmDevices, slices.Min(plan.growDevices))
	progress("grow: connecting %d alarm devices", alarmN)
	fleet, err := connectFleet(ctx, creds[:alarmN], brokers)
	if err != nil {
		return nil, err
	}
	defer fleet.close()

	idlePlan := plan.idle
	var children []*idleChild
	defer func() {
		for _, ch := range children {
			ch.stop()
		}
	}()
	connected := alarmN
	for _, size := range plan.growDevices {
		// Idle devices from creds[connected:size], in children of at most
		// devicesPerChild, device i on node i mod 3 as everywhere.
		budget := connectBudget(size - connected)
		bound := budget + childSpare + time.Duration(len(plan.growRates))*(plan.growDur+growDrain)*time.Duration(len(plan.growDevices))
		var added []*idleChild
		for from := connected; from < size; from += devicesPerChild {
			to := min(from+devicesPerChild, size)
			ch, err := startIdleChild(vigil, dir, from, creds[from:to], brokers, idlePlan, bound)
			if err != nil {
				return rep, err
			}
			children, added = append(children, ch), append(added, ch)
		}
		if len(added) > 0 {
			progress("grow: connecting %d idle devices (%d child processes)", size-connected, len(added))
			want := int64(size - alarmN)
			err := pollUntil(ctx, budget, func() bool {
				for _, ch := range children {
					if ch.exited() {
						return true
					}
				}
				return sumStatus(children).Connected >= want
			})
			if err != nil {
				return rep, fmt.Errorf("connecting the idle devices: %w", err)
			}
			for _, ch := range children {
				if ch.exited() {
					return rep, fmt.Errorf("an idle-device child (%s sim) exited early (%v)", vigil, ch.cmd.ProcessState)
				}
			}
		}
		connected = size
		if err := sleep(ctx, growSettle); err != nil {
			return rep, err
		}
		past := false // a lower rate fell below growGaveUp
		for _, rate := range plan.growRates {
			if past {
				rep.cells = append(rep.cells, growCell{devices: size, alarmDevices: alarmN, offered: rate, skipped: true})
				continue
			}
			progress("grow: %d devices connected, %d raising %.0f alarms/s for %s", size, alarmN, rate, plan.growDur)
			cell := runPaced(ctx, fleet, rate, plan.warmup, plan.growDur, c.pids())
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			cell.devices = size
			rep.cells = append(rep.cells, cell)
			past = cell.ackRate < growGaveUp*rate
			if err := c.exited(); err != nil {
				// A crash under load is a finding: report it with the
				// figures so far rather than lose them.
				progress("grow: %v", err)
				rep.crash = err.Error()
				return rep, nil
			}
		}
	}
	return rep, nil
}
