package main

// Durable alarm ingest, side by side: at each concurrency, k devices of the
// simulator raise test alarms QoS 1 back to back on the three-node Vigil,
// then the same devices on Mosquitto (QoS 1, nothing replicated or synced:
// the floor for broker overhead), then k etcd clients put one key per
// alarm on the three-member etcd cluster (the nearest peer with the same
// durability). The three run one after the other at each level, so that
// the ratios compare figures measured within a minute of each other.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/sim"
)

// ingestLevels are the concurrencies: devices, or etcd clients.
var ingestLevels = []int{1, 16, 256, 1024}

// The levels the summary line reads.
const (
	latencyLevel    = 16  // ack_p99_ms, etcd_put_p99_ms, ratio_vs_etcd
	throughputLevel = 256 // tput_ratio_vs_etcd
)

// ingestLevel is one concurrency's figures. One device or client is
// measured twice: on the leader and on a follower.
type ingestLevel struct {
	conc      int
	vigil     []gwLoad
	mosquitto *gwLoad
	etcd      []loadResult
}

// ingestReport holds the ingest comparison.
type ingestReport struct {
	levels []ingestLevel
	// noWait is Vigil at latencyLevel devices with broker.replica_wait 0
	// (PUBACK once a quorum committed and the device's node applied the
	// alarm), measured after the levels when the nodes run with their
	// default wait; nil otherwise.
	noWait           *gwLoad
	mosquittoVersion string
	etcdVersion      string
}

// noWaitLoad returns noWait, or nil.
func (r *ingestReport) noWaitLoad() *gwLoad {
	if r == nil {
		return nil
	}
	return r.noWait
}

// level returns the figures at conc, or nil.
func (r *ingestReport) level(conc int) *ingestLevel {
	if r == nil {
		return nil
	}
	for i := range r.levels {
		if r.levels[i].conc == conc {
			return &r.levels[i]
		}
	}
	return nil
}

// peers are the running peers of the comparison.
type peers struct {
	mosquitto *mosquitto
	etcd      *etcdCluster
}

// startPeers starts Mosquitto and the etcd cluster in dir.
func startPeers(ctx context.Context, dir string) (*peers, error) {
	m, err := newMosquitto(dir)
	if err != nil {
		return nil, err
	}
	e, err := newEtcdCluster(dir)
	if err != nil {
		return nil, err
	}
	p := &peers{mosquitto: m, etcd: e}
	progress("peers: starting %s on %s and three etcd members (%s)", m.version, m.addr, e.version)
	if err := m.start(ctx); err != nil {
		p.stop()
		return nil, err
	}
	if err := e.startAll(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *peers) stop() {
	if p == nil {
		return
	}
	p.mosquitto.stop()
	p.etcd.stop()
}

// runIngest measures every level on c and the peers.
func runIngest(ctx context.Context, c *localCluster, p *peers, creds []sim.Credential, plan gatewayPlan) (*ingestReport, error) {
	rep := &ingestReport{mosquittoVersion: p.mosquitto.version, etcdVersion: p.etcd.version}
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.mqttAddr)
	}
	for _, k := range plan.levels {
		if k > len(creds) {
			return rep, fmt.Errorf("%d devices wanted, %d provisioned", k, len(creds))
		}
		leader, err := c.waitLeader(ctx, startTimeout)
		if err != nil {
			return rep, err
		}
		lv := ingestLevel{conc: k}
		var vigilLevels []gwLevel
		type etcdRun struct {
			eps   []string
			where string
		}
		var etcdRuns []etcdRun
		if k == 1 {
			follower := c.others(leader)[0]
			el, err := p.etcd.waitLeader(ctx, startTimeout)
			if err != nil {
				return rep, err
			}
			ef := p.etcd.others(el)[0]
			vigilLevels = []gwLevel{
				{tag: "d1_leader", where: "the leader's broker (" + leader.name + ")", devices: 1, brokers: []string{leader.mqttAddr}},
				{tag: "d1_follower", where: "a follower's broker (" + follower.name + ")", devices: 1, brokers: []string{follower.mqttAddr}},
			}
			etcdRuns = []etcdRun{{[]string{el.clientURL}, "the leader (" + el.name + ")"}, {[]string{ef.clientURL}, "a follower (" + ef.name + ")"}}
		} else {
			vigilLevels = []gwLevel{{tag: fmt.Sprintf("d%d", k), where: "the 3 nodes' brokers", devices: k, brokers: all}}
			etcdRuns = []etcdRun{{p.etcd.endpoints(), "the 3 members"}}
		}
		for _, l := range vigilLevels {
			if plan.pprofDir != "" && (k == throughputLevel || k == latencyLevel) {
				l.profile = func(ctx context.Context, d time.Duration) {
					var wg sync.WaitGroup
					for _, n := range c.nodes {
						role := "follower"
						if n == leader {
							role = "leader"
						}
						wg.Go(func() {
							profileCPU(ctx, n, d, filepath.Join(plan.pprofDir, fmt.Sprintf("cpu-%s-%s-%s.pprof", l.tag, n.name, role)))
						})
					}
					wg.Wait()
				}
			}
			progress("ingest: Vigil, %d devices on %s, test alarms for %s", k, l.where, plan.dur)
			r, err := runAlarmLoad(ctx, l, creds[:k], plan.warmup, plan.dur, c.pids())
			if err != nil {
				return rep, err
			}
			lv.vigil = append(lv.vigil, r)
			if err := c.exited(); err != nil {
				return rep, err
			}
		}
		progress("ingest: Mosquitto, %d devices, test alarms for %s", k, plan.dur)
		ml := gwLevel{tag: fmt.Sprintf("mosquitto_d%d", k), where: "Mosquitto", devices: k, brokers: []string{p.mosquitto.addr}, peer: true}
		r, err := runAlarmLoad(ctx, ml, creds[:k], plan.warmup, plan.dur, []int{p.mosquitto.p.pid()})
		if err != nil {
			return rep, err
		}
		lv.mosquitto = &r
		if err := p.mosquitto.p.exited(); err != nil {
			return rep, err
		}
		for _, er := range etcdRuns {
			progress("ingest: etcd, %d clients on %s, puts for %s", k, er.where, plan.dur)
			r, err := runEtcdLoad(ctx, p.etcd, er.eps, er.where, k, plan.warmup, plan.dur)
			if err != nil {
				return rep, err
			}
			lv.etcd = append(lv.etcd, r)
			if err := p.etcd.exited(); err != nil {
				return rep, err
			}
		}
		rep.levels = append(rep.levels, lv)
	}
	if plan.replicaWait == "" && slices.Contains(plan.levels, latencyLevel) {
		r, err := runIngestNoWait(ctx, c, creds[:latencyLevel], plan)
		if err != nil {
			return rep, err
		}
		rep.noWait = &r
	}
	return rep, nil
}

// runIngestNoWait restarts c's nodes with broker.replica_wait 0, measures
// len(creds) devices raising alarms on the three brokers, and restarts the
// nodes with their earlier settings.
func runIngestNoWait(ctx context.Context, c *localCluster, creds []sim.Credential, plan gatewayPlan) (gwLoad, error) {
	saved := c.env
	restart := func(env []string) error {
		c.stop()
		c.env = env
		if err := c.startAll(ctx); err != nil {
			return err
		}
		// A broker checks a device's secret against its own node's state.
		return c.barrier(ctx)
	}
	progress("ingest: restarting the nodes with broker.replica_wait 0")
	if err := restart(append(slices.Clone(saved), appliance.EnvName("broker.replica_wait")+"=0")); err != nil {
		return gwLoad{}, err
	}
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.mqttAddr)
	}
	l := gwLevel{tag: fmt.Sprintf("d%d_nowait", len(creds)), where: "the 3 nodes' brokers, broker.replica_wait 0", devices: len(creds), brokers: all}
	progress("ingest: Vigil with broker.replica_wait 0, %d devices on the 3 nodes' brokers, test alarms for %s", len(creds), plan.dur)
	r, err := runAlarmLoad(ctx, l, creds, plan.warmup, plan.dur, c.pids())
	if err == nil {
		err = c.exited()
	}
	if err != nil {
		return r, err
	}
	progress("ingest: restarting the nodes with their default broker.replica_wait")
	return r, restart(saved)
}
