package main

// Alarm latency through the gateway: k devices of the simulator in
// ModeAlarms (appliance/sim), spread over the brokers, each publishing a
// test alarm QoS 1 and the next one as soon as the PUBACK arrives. The
// broker PUBACKs an alarm only once the cluster committed it
// (broker/DESIGN.md), so publish-to-PUBACK is what a worker waits for
// before the device can say "alarm received".
//
// Test alarms, because a device raising alarm after alarm is a repeat: each
// one joins the incident of the device's first open alarm (monitoring's
// incident linking, found by one index seek), and test alarms have no
// acknowledgement deadlines, so the leader's scheduler stays idle. Nor do
// they carry a location (the devices send no location fixes), so the
// nearby-alarm scan is skipped. A PUBACK counts only if the alarm's
// down/reply says ok; on Mosquitto, which sends no replies, the PUBACK
// alone counts.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

const (
	// connectsInFlight is how many bench devices connect at once.
	connectsInFlight = 16
	// deviceConnectTimeout bounds one CONNECT and one SUBSCRIBE. The
	// CONNECT checks the secret with argon2id, and thousands of devices
	// connect at once on two shared CPUs.
	deviceConnectTimeout = 30 * time.Second
	// publishTimeout bounds the wait for one PUBACK; the broker gives up
	// on a commit after 5 s.
	publishTimeout = 30 * time.Second
	// replyGrace is how long, after the measured time, the devices stay
	// connected for the PUBACK of their last alarm and the replies of the
	// alarms PUBACKed (the simulator's drain).
	replyGrace = 10 * time.Second
	// alarmKeepAlive is the MQTT keep-alive of the alarm-raising devices.
	alarmKeepAlive = 60 * time.Second
	// peerDrain is how long the devices stay connected after the measured
	// time on a peer broker: only for the last PUBACKs, as no reply comes.
	peerDrain = time.Second
)

// gwLoad is one level of the alarm latency measurement.
type gwLoad struct {
	loadResult // lat: publish to PUBACK of the alarms answered ok
	tag, where string
	refused    int // PUBACKed, but the reply was an error
	noReply    int // PUBACKed, but no reply arrived
	lost       int // no PUBACK: timed out or the connection dropped
}

// connectBudget is how long n devices may take to connect: generous, as
// each CONNECT costs the node an argon2id hash.
func connectBudget(n int) time.Duration {
	return 5*time.Minute + time.Duration(n)*50*time.Millisecond
}

// alarmSim is the simulator's closed alarm loop, running.
type alarmSim struct {
	s    *sim.Simulator
	stop context.CancelFunc
	ran  chan error // Run's result, once the devices have drained
}

// startAlarmSim starts the simulator's closed alarm loop with one device
// per credential, device i on l.brokers[i mod n], and returns once every
// device is connected and the loop has started.
func startAlarmSim(ctx context.Context, l gwLevel, creds []sim.Credential, publishWait time.Duration) (*alarmSim, error) {
	k := len(creds)
	cfg := sim.DefaultConfig()
	cfg.Mode, cfg.AlarmType = sim.ModeAlarms, "test"
	cfg.Brokers, cfg.Credentials = l.brokers, creds
	// Event IDs must differ from the earlier levels' (the same devices
	// raise them): a repeat would be de-duplicated.
	cfg.Run = l.tag + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	cfg.HeartbeatInterval, cfg.LocationInterval = 0, 0
	cfg.ConnectsInFlight, cfg.ConnectTimeout = connectsInFlight, deviceConnectTimeout
	cfg.PublishTimeout, cfg.KeepAlive, cfg.DrainTimeout = publishWait, alarmKeepAlive, replyGrace
	if l.peer {
		cfg.DrainTimeout = peerDrain // no replies to wait for
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	simCtx, stopSim := context.WithCancel(ctx)
	a := &alarmSim{s: s, stop: stopSim, ran: make(chan error, 1)}
	go func() { a.ran <- s.Run(simCtx) }()
	err = pollUntil(ctx, connectBudget(k), func() bool { return s.Status().Connected == int64(k) })
	if err != nil {
		stopSim()
		<-a.ran
		st := s.Status()
		return nil, fmt.Errorf("%d of %d devices connected to %s (%d failed attempts): %w", st.Connected, k, l.where, st.ConnectErrors, err)
	}
	return a, nil
}

// finish stops the loop and waits for the devices to drain and disconnect.
func (a *alarmSim) finish() error {
	a.stop()
	return <-a.ran
}

// newGwLoad returns an empty result for level l with k devices.
func newGwLoad(l gwLevel, k int, dur time.Duration) gwLoad {
	res := gwLoad{tag: l.tag, where: l.where}
	res.name = fmt.Sprintf("test alarm QoS 1, publish to PUBACK, devices on %s, %s", l.where, dur)
	res.conc, res.elapsed = k, dur
	return res
}

// runAlarmLoad runs the simulator's closed alarm loop with one device per
// credential, device i on l.brokers[i mod n]. Once every device is
// connected the loop starts; alarms whose PUBACK arrives after warmup and
// before warmup plus dur count. pids are the processes under test, whose
// CPU time is measured.
func runAlarmLoad(ctx context.Context, l gwLevel, creds []sim.Credential, warmup, dur time.Duration, pids []int) (gwLoad, error) {
	res := newGwLoad(l, len(creds), dur)
	a, err := startAlarmSim(ctx, l, creds, publishTimeout)
	if err != nil {
		return res, err
	}
	from := time.Now().Add(warmup)
	end := from.Add(dur)
	if l.profile != nil {
		go func() {
			if sleep(ctx, warmup) == nil {
				l.profile(ctx, dur)
			}
		}()
	}
	cpuWindow(ctx, pids, from, end, &res.cpu)
	if err := a.finish(); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.tally(a.s.History().Attempts(), from, end, !l.peer)
	return res, nil
}

// runAlarmLoadUntil runs the loop as runAlarmLoad does, but from when every
// device is connected (started is then closed) until ctx ends, and measures
// all of that time.
func runAlarmLoadUntil(ctx context.Context, l gwLevel, creds []sim.Credential, pids []int, started chan<- struct{}) (gwLoad, error) {
	res := newGwLoad(l, len(creds), 0)
	a, err := startAlarmSim(ctx, l, creds, publishTimeout)
	if err != nil {
		return res, err
	}
	from := time.Now()
	cpu0 := sampleCPU(pids)
	close(started)
	<-ctx.Done()
	end := time.Now()
	res.cpu = cpuBetween(cpu0, sampleCPU(pids))
	res.elapsed = end.Sub(from)
	res.name = fmt.Sprintf("test alarm QoS 1, publish to PUBACK, devices on %s, %s", l.where, res.elapsed.Round(100*time.Millisecond))
	if err := a.finish(); err != nil {
		return res, err
	}
	res.tally(a.s.History().Attempts(), from, end, !l.peer)
	return res, nil
}

// tally sorts a level's attempts: those PUBACKed between from and end give
// the latencies of the alarms answered ok, or count as refused or without
// reply; an attempt never PUBACKed counts as lost, even in the warm-up or
// the drain, as a device would have to resend it. Without replies (a peer
// broker), a PUBACK alone counts.
func (r *gwLoad) tally(attempts []sim.Attempt, from, end time.Time, replies bool) {
	for _, a := range attempts {
		switch {
		case a.Acked == nil:
			r.lost++
		case a.Acked.Before(from) || a.Acked.After(end):
		case a.Reply == "ok" || !replies:
			r.lat = append(r.lat, a.Acked.Sub(a.Sent))
		case a.Reply == "":
			r.noReply++
		default:
			r.refused++
		}
	}
	slices.Sort(r.lat)
	r.commits = len(r.lat)
	r.errors = r.refused + r.noReply + r.lost
}
