package main

// Failover under alarm load, side by side with etcd's: failoverConc
// devices of the simulator raise alarms back to back on the three brokers
// while the bench kills the Vigil leader (SIGKILL), measures the time until
// alarms are acknowledged again, restarts the node and waits until it has
// caught up; the same rounds follow on etcd under failoverConc clients
// (etcdload.go). A device whose broker dies moves to the next one, and
// resends an alarm that got no PUBACK, as the device protocol asks.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// recoveryPoll is how often the failover phase reads the simulator's
// history while it waits for alarms to be acknowledged again.
const recoveryPoll = 50 * time.Millisecond

// allRecoveredWait bounds the wait for every device or client to have a
// write acknowledged after a kill, once the first one has.
const allRecoveredWait = 15 * time.Second

// failoverReport holds the failover figures of Vigil and etcd.
type failoverReport struct {
	vigil, etcd           []peerRound
	vigilAlarms, vigilErr int // alarms PUBACKed during the phase, attempts not PUBACKed
	etcdErrors            int
	etcdVersion           string
}

// attemptsAsOps turns the simulator's history into write attempts by
// device.
func attemptsAsOps(attempts []sim.Attempt, index map[string]int) []op {
	ops := make([]op, 0, len(attempts))
	for _, a := range attempts {
		o := op{client: index[a.Device], sent: a.Sent, ok: a.Acked != nil}
		if a.Acked != nil {
			o.done = *a.Acked
		}
		ops = append(ops, o)
	}
	return ops
}

// runAlarmFailover kills c's leader rounds times under the simulator's
// alarm loop with failoverConc devices (creds), restarting it in between.
func runAlarmFailover(ctx context.Context, c *localCluster, creds []sim.Credential, rounds int, warmup time.Duration) ([]peerRound, int, int, error) {
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.mqttAddr)
	}
	creds = creds[:failoverConc]
	index := map[string]int{}
	for i, cr := range creds {
		index[cr.DeviceID] = i
	}
	l := gwLevel{tag: "failover", where: "the 3 nodes' brokers", devices: len(creds), brokers: all}
	a, err := startAlarmSim(ctx, l, creds, sim.DefaultPublishTimeout)
	if err != nil {
		return nil, 0, 0, err
	}
	finished := false
	defer func() {
		if !finished {
			_ = a.finish()
		}
	}()
	if err := sleep(ctx, warmup); err != nil {
		return nil, 0, 0, err
	}
	var out []peerRound
	for range rounds {
		leader, err := c.waitLeader(ctx, failoverTimeout)
		if err != nil {
			return out, 0, 0, err
		}
		r := peerRound{killed: leader.name}
		start := time.Now()
		leader.kill()
		deadline := start.Add(failoverTimeout)
		lastRead := time.Time{}
		var firstOK bool
		for {
			if r.leaderAfter == 0 {
				for _, n := range c.others(leader) {
					st, err := c.nodeStatus(ctx, n)
					if err == nil && st.LeaderID != "" && st.LeaderID != leader.name {
						r.leaderAfter, r.newLeader = time.Since(start), st.LeaderID
						break
					}
				}
			}
			if time.Since(lastRead) >= recoveryPoll {
				lastRead = time.Now()
				r.firstAfter, r.allAfter, firstOK, r.allOK = recovery(attemptsAsOps(a.s.History().Attempts(), index), len(creds), start)
			}
			if r.leaderAfter != 0 && firstOK && (r.allOK || time.Since(start) > r.firstAfter+allRecoveredWait) {
				break
			}
			if time.Now().After(deadline) {
				return out, 0, 0, fmt.Errorf("no alarm PUBACKed within %s of killing %s (new leader after %s)", failoverTimeout, leader.name, r.leaderAfter)
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return out, 0, 0, err
			}
		}
		out = append(out, r)
		for crashes := 0; ; crashes++ {
			if err := c.start(leader); err != nil {
				return out, 0, 0, err
			}
			err := c.waitCaughtUp(ctx, leader, failoverTimeout)
			if errors.Is(err, errExited) && crashes < maxRestartCrashes {
				progress("%s crashed while restarting (see %s); starting it again", leader.name, leader.logPath)
				continue
			}
			if err != nil {
				return out, 0, 0, fmt.Errorf("%s did not catch up after its restart: %w\n%s", leader.name, err, logTail(leader.logPath))
			}
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return out, 0, 0, err
		}
	}
	finished = true
	if err := a.finish(); err != nil {
		return out, 0, 0, err
	}
	acked, failed := 0, 0
	for _, at := range a.s.History().Attempts() {
		if at.Acked != nil {
			acked++
		} else {
			failed++
		}
	}
	return out, acked, failed, nil
}
