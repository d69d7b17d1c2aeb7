package main

// The etcd side of the comparison: one put per alarm through
// go.etcd.io/etcd/client/v3, the client i sending to member i mod 3 as
// device i connects to node i mod 3's broker, each waiting for its put's
// answer before the next, as a device waits for its PUBACK.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// etcdPutTimeout bounds one put; after it the client counts an error
	// (or, in the failover phase, tries again).
	etcdPutTimeout = 10 * time.Second
	// etcdFailoverPutTimeout bounds one put while the leader is killed:
	// a put stuck at a member that lost its leader is given up and sent
	// again, as the devices resend an alarm that got no PUBACK.
	etcdFailoverPutTimeout = 2 * time.Second
	// etcdDialsInFlight is how many clients are created at once.
	etcdDialsInFlight = 32
)

// alarmValue returns what the bench stores per alarm in etcd: the JSON a
// device publishes for a test alarm (device protocol v1), about 90 bytes.
func alarmValue(device string, n uint64) string {
	return fmt.Sprintf(`{"event_id":"o-bench-%s-%06d","ts":"%s","alarm_type":"test"}`,
		device, n, time.Now().UTC().Format(time.RFC3339))
}

// etcdClients creates n clients, client i on endpoint i mod len(eps), or
// on every endpoint starting with that one when all is set.
func etcdClients(ctx context.Context, eps []string, n int, all bool) ([]*clientv3.Client, error) {
	clients := make([]*clientv3.Client, n)
	err := forEach(ctx, n, etcdDialsInFlight, func(i int) error {
		use := []string{eps[i%len(eps)]}
		if all {
			use = nil
			for j := range eps {
				use = append(use, eps[(i+j)%len(eps)])
			}
		}
		c, err := newEtcdClient(use)
		if err != nil {
			return fmt.Errorf("cannot create etcd client %d: %w", i, err)
		}
		clients[i] = c
		return nil
	})
	if err != nil {
		closeEtcdClients(clients)
		return nil, err
	}
	return clients, nil
}

func closeEtcdClients(clients []*clientv3.Client) {
	for _, c := range clients {
		if c != nil {
			c.Close()
		}
	}
}

// runEtcdLoad runs conc clients putting one alarm at a time, each as soon
// as the previous put is answered, client i on eps[i mod n] (where says
// which), and measures the puts answered after warmup and before warmup
// plus dur, as runLoad does.
func runEtcdLoad(ctx context.Context, c *etcdCluster, eps []string, where string, conc int, warmup, dur time.Duration) (loadResult, error) {
	res := loadResult{name: fmt.Sprintf("etcd put, clients on %s, %s", where, dur), conc: conc, elapsed: dur}
	clients, err := etcdClients(ctx, eps, conc, false)
	if err != nil {
		return res, err
	}
	defer closeEtcdClients(clients)
	return closedLoop(ctx, res, warmup, c.pids(), func(ctx context.Context, w int, n uint64) error {
		dev := "d" + strconv.Itoa(w+1)
		pctx, cancel := context.WithTimeout(ctx, etcdPutTimeout)
		defer cancel()
		_, err := clients[w].Put(pctx, fmt.Sprintf("bench/alarms/c%d/%s/%d", conc, dev, n), alarmValue(dev, n))
		return err
	})
}

// opLog records every write attempt of a failover phase: when it was
// sent, when it was answered, and whether it succeeded, by client.
type opLog struct {
	mu  sync.Mutex
	ops []op
}

type op struct {
	client     int
	sent, done time.Time
	ok         bool
}

func (l *opLog) add(o op) {
	l.mu.Lock()
	l.ops = append(l.ops, o)
	l.mu.Unlock()
}

func (l *opLog) snapshot() []op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// recovery returns, for a kill at t, the time from t until the first
// write sent after t succeeded, and until every client had one succeed
// (ok false for either if it has not happened).
func recovery(ops []op, clients int, t time.Time) (first, all time.Duration, firstOK, allOK bool) {
	firstAt := map[int]time.Time{}
	var earliest time.Time
	for _, o := range ops {
		if !o.ok || !o.sent.After(t) {
			continue
		}
		if f, seen := firstAt[o.client]; !seen || o.done.Before(f) {
			firstAt[o.client] = o.done
		}
		if earliest.IsZero() || o.done.Before(earliest) {
			earliest = o.done
		}
	}
	if !earliest.IsZero() {
		first, firstOK = earliest.Sub(t), true
	}
	if len(firstAt) == clients {
		var last time.Time
		for _, f := range firstAt {
			if f.After(last) {
				last = f
			}
		}
		all, allOK = last.Sub(t), true
	}
	return first, all, firstOK, allOK
}

// peerRound is one SIGKILL of a leader under load, Vigil's or etcd's.
type peerRound struct {
	killed, newLeader string
	leaderAfter       time.Duration // until a survivor named a new leader
	firstAfter        time.Duration // until the first write sent after the kill was acknowledged
	allAfter          time.Duration // until every client or device had one acknowledged
	allOK             bool
}

// runEtcdFailover runs failoverConc clients, each on all three members,
// putting alarms one at a time and retrying at once after an error or
// etcdFailoverPutTimeout; under that load it kills the leader rounds
// times, restarting it in between.
func runEtcdFailover(ctx context.Context, c *etcdCluster, rounds int, warmup time.Duration) ([]peerRound, int, error) {
	clients, err := etcdClients(ctx, c.endpoints(), failoverConc, true)
	if err != nil {
		return nil, 0, err
	}
	defer closeEtcdClients(clients)
	log := &opLog{}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for i, cli := range clients {
		wg.Go(func() {
			dev := "f" + strconv.Itoa(i+1)
			for lctx.Err() == nil {
				n := seq.Add(1)
				t0 := time.Now()
				pctx, cancelPut := context.WithTimeout(lctx, etcdFailoverPutTimeout)
				_, err := cli.Put(pctx, fmt.Sprintf("bench/failover/%s/%d", dev, n), alarmValue(dev, n))
				cancelPut()
				if lctx.Err() != nil {
					return
				}
				log.add(op{client: i, sent: t0, done: time.Now(), ok: err == nil})
				if err != nil {
					_ = sleep(lctx, retryPause)
				}
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	if err := sleep(ctx, warmup); err != nil {
		return nil, 0, err
	}
	var out []peerRound
	for range rounds {
		leader, err := c.waitLeader(ctx, failoverTimeout)
		if err != nil {
			return out, 0, err
		}
		r := peerRound{killed: leader.name}
		start := time.Now()
		leader.p.kill()
		cli, err := newEtcdClient(c.endpoints())
		if err != nil {
			return out, 0, err
		}
		err = pollUntil(ctx, failoverTimeout, func() bool {
			if r.leaderAfter == 0 {
				for _, m := range c.others(leader) {
					sctx, cancelStatus := context.WithTimeout(ctx, 500*time.Millisecond)
					st, err := cli.Status(sctx, m.clientURL)
					cancelStatus()
					if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
						r.leaderAfter, r.newLeader = time.Since(start), m.name
					}
				}
			}
			var ok bool
			r.firstAfter, r.allAfter, ok, r.allOK = recovery(log.snapshot(), len(clients), start)
			return r.leaderAfter != 0 && ok && (r.allOK || time.Since(start) > 15*time.Second)
		})
		cli.Close()
		if err != nil {
			return out, 0, fmt.Errorf("no etcd put succeeded after killing %s: %w", leader.name, err)
		}
		out = append(out, r)
		if err := c.start(leader); err != nil {
			return out, 0, err
		}
		if _, err := c.waitLeader(ctx, failoverTimeout); err != nil {
			return out, 0, err
		}
		if err := sleep(ctx, time.Second); err != nil { // let the restarted member catch up
			return out, 0, err
		}
	}
	ops := log.snapshot()
	errs := 0
	for _, o := range ops {
		if !o.ok {
			errs++
		}
	}
	return out, errs, nil
}
