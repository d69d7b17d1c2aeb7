package main

// The failover phase: clients that retry on every node, as a real client
// would, while the bench kills the leader and restarts it.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// commit is one 201 seen by a failover client.
type commit struct {
	node  int // index of the node that answered
	at    time.Time
	index uint64
}

// commitLog keeps the commits answered since a given time.
type commitLog struct {
	mu      sync.Mutex
	since   time.Time
	commits []commit
	total   int
	errors  int // answers that are neither 201 nor worth a retry
}

func (l *commitLog) add(c commit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if !l.since.IsZero() && c.at.After(l.since) {
		l.commits = append(l.commits, c)
	}
}

func (l *commitLog) addError() {
	l.mu.Lock()
	l.errors++
	l.mu.Unlock()
}

// reset forgets the commits kept so far and keeps those answered after t.
func (l *commitLog) reset(t time.Time) {
	l.mu.Lock()
	l.since, l.commits = t, nil
	l.mu.Unlock()
}

// first returns the time of the earliest commit kept that a node other than
// skip answered with a log index above after.
func (l *commitLog) first(after uint64, skip int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, c := range l.commits {
		if c.index > after && c.node != skip && (t.IsZero() || c.at.Before(t)) {
			t = c.at
		}
	}
	return t, !t.IsZero()
}

// retryingClient sends records to the nodes in turn until ctx ends. A
// connection error, 503 (no leader) or 504 (unknown outcome) is retried on
// the next node with the same command ID, as a real client would.
func retryingClient(ctx context.Context, p *poster, addrs []string, next int, log *commitLog) {
	for ctx.Err() == nil {
		id, value := p.newID(), newValue()
		for ctx.Err() == nil {
			node := next % len(addrs)
			next++
			status, index, err := p.post(ctx, addrs[node], id, "failover", value)
			if err == nil && status == http.StatusCreated {
				log.add(commit{node: node, at: time.Now(), index: index})
				break
			}
			if err == nil && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
				log.addError()
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(retryPause):
			}
		}
	}
}

// failoverRound is one SIGKILL of the leader under load.
type failoverRound struct {
	killed, newLeader string
	leaderAfter       time.Duration // from the kill until a survivor reports a new leader
	commitAfter       time.Duration // from the kill until the new leader's first commit is answered 201
	rejoinAfter       time.Duration // from the restart until the killed node has caught up
	restartCrashes    int           // times the killed node crashed while restarting
}

// maxRestartCrashes is how many times a restarted node may crash before the
// bench gives up.
const maxRestartCrashes = 5

// runFailover runs failoverConc retrying clients against all nodes and,
// under that load, kills the leader rounds times, restarting it in between.
func runFailover(ctx context.Context, c *localCluster, p *poster, rounds int, warmup time.Duration) ([]failoverRound, *commitLog, error) {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.httpAddr)
	}
	log := &commitLog{}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range failoverConc {
		wg.Go(func() { retryingClient(lctx, p, addrs, i, log) })
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	if err := sleep(ctx, warmup); err != nil {
		return nil, log, err
	}
	var out []failoverRound
	for range rounds {
		r, err := failoverOnce(ctx, c, log)
		if err != nil {
			return out, log, err
		}
		out = append(out, r)
		if err := c.exited(); err != nil {
			return out, log, err
		}
	}
	return out, log, nil
}

// failoverTimeout bounds each wait of the failover phase.
const failoverTimeout = 60 * time.Second

func failoverOnce(ctx context.Context, c *localCluster, log *commitLog) (failoverRound, error) {
	leader, err := c.waitLeader(ctx, failoverTimeout)
	if err != nil {
		return failoverRound{}, err
	}
	r := failoverRound{killed: leader.name}
	killed := slices.Index(c.nodes, leader)
	survivors := c.others(leader)

	log.reset(time.Now())
	start := time.Now()
	leader.kill()

	// Entries the dead leader committed are on a survivor's log by now, and
	// any new leader's entries come after the longest surviving log; so a
	// 201 with an index above it is a commit by the new leader, not a late
	// answer for one made before the kill.
	var last uint64
	for _, n := range survivors {
		st, err := c.nodeStatus(ctx, n)
		if err != nil {
			return r, fmt.Errorf("cannot read %s's last log index after the kill: %w", n.name, err)
		}
		last = max(last, st.LastLogIndex)
	}

	err = pollUntil(ctx, failoverTimeout, func() bool {
		if r.leaderAfter == 0 {
			for _, n := range survivors {
				st, err := c.nodeStatus(ctx, n)
				if err == nil && st.LeaderID != "" && st.LeaderID != leader.name {
					r.leaderAfter, r.newLeader = time.Since(start), st.LeaderID
					break
				}
			}
		}
		if r.commitAfter == 0 {
			if t, ok := log.first(last, killed); ok {
				r.commitAfter = t.Sub(start)
			}
		}
		return r.leaderAfter != 0 && r.commitAfter != 0
	})
	if err != nil {
		return r, fmt.Errorf("no new leader and commit after killing %s: %w", leader.name, err)
	}

	restart := time.Now()
	for {
		if err := c.start(leader); err != nil {
			return r, err
		}
		err := c.waitCaughtUp(ctx, leader, failoverTimeout)
		if errors.Is(err, errExited) && r.restartCrashes < maxRestartCrashes {
			// A node that crashes while it starts is a bug to report, not
			// a reason to give up the measurement: count it and try again.
			r.restartCrashes++
			progress("%s crashed while restarting (see %s); starting it again", leader.name, leader.logPath)
			continue
		}
		if err != nil {
			return r, fmt.Errorf("%s did not catch up after its restart: %w\n%s", leader.name, err, logTail(leader.logPath))
		}
		break
	}
	r.rejoinAfter = time.Since(restart)
	return r, sleep(ctx, time.Second) // let replication settle before the next kill
}
