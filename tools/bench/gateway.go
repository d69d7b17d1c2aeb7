package main

// The gateway section: devices over MQTT rather than clients over HTTP, on
// a three-node cluster of its own, side by side with the peers a user
// would pick instead (peers.go). In order:
//
//   - provisioning: an organisation and the devices, each registered and
//     given a secret (argon2id, 4 MiB, one pass) through the HTTP API, the
//     first ones one at a time, the rest with concurrent clients
//     (gwprovision.go);
//   - commit to console: from an alarm's PUBACK to its event on each
//     node's operator console stream (console.go);
//   - the cost of TLS: a connect storm and the alarm load on plain MQTT
//     and on MQTT over TLS (tlscost.go);
//   - durable alarm ingest at 1, 16, 256 and 1,024 devices on Vigil, on
//     Mosquitto and as etcd puts (ingest.go);
//   - failover under alarm load, then under etcd puts (failover_alarm.go);
//   - connections: one node's memory with 10,000 idle devices and with
//     as many as it may hold, then Mosquitto's (conns.go);
//   - how cost grows with the fleet and the alarm rate (grow.go).
//
// The devices are appliance/sim's, as vigil sim runs them (real paho MQTT
// clients speaking device protocol v1), but for the console probe and the
// paced alarms and the TLS part, which are the bench's own paho clients
// (mqttdev.go).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/appliance"
)

// The gateway section's plan for a full run and a -quick one.
const (
	gwIdleDevices      = 10000
	gwIdleDevicesQuick = 2000
	gwHeartbeatMin     = 30 * time.Second
	gwHeartbeatMax     = 60 * time.Second
	gwSettle           = 60 * time.Second
	gwSettleQuick      = 10 * time.Second
	// gwBaselineWait is longer than the Go runtime's forced collection
	// period (two minutes), so that an idle node's start-up garbage has
	// been collected when the baseline is read.
	gwBaselineWait      = 130 * time.Second
	gwBaselineWaitQuick = 15 * time.Second
	// peerBaselineWait is Mosquitto's: it has no garbage collector.
	peerBaselineWait = 3 * time.Second
	// gwProvisionSeq devices are provisioned one at a time, to measure
	// one request; the rest with gwProvisionClients concurrent clients.
	gwProvisionSeq      = 100
	gwProvisionSeqQuick = 30
	gwProvisionClients  = 16
	// consoleSamples probe alarms are followed to the consoles, quiet and
	// again under load.
	consoleSamples      = 200
	consoleSamplesQuick = 30
	growDuration        = 10 * time.Second
	growDurationQuick   = 2 * time.Second
)

// The cost-growth grid: fleet sizes and total alarm rates per second.
var (
	growDevices      = []int{1000, 5000, 15000}
	growDevicesQuick = []int{1000}
	growRates        = []float64{10, 100, 300, 1000, 3000, 10000}
	growRatesQuick   = []float64{10, 100, 1000, 10000}
)

// The parts of the gateway section -only may name; partGateway names them
// all.
const (
	partConsole  = "console"
	partIngest   = "ingest"
	partFailover = "failover"
	partGrow     = "grow"
	partConns    = "conns"
)

var gatewayParts = []string{partConsole, partIngest, partFailover, partGrow, partConns, partTLS}

// gwLevel is one run of the simulator's alarm loop.
type gwLevel struct {
	tag     string   // tells the run's event IDs and summary keys apart
	where   string   // for the report
	devices int      // devices raising alarms at once
	brokers []string // device i uses brokers[i mod len]
	// peer is set for a broker other than Vigil's (Mosquitto), which sends
	// no down/reply: a PUBACK alone counts.
	peer bool
	// profile, if set, is called in its own goroutine when the measured
	// time starts, with its length.
	profile func(ctx context.Context, d time.Duration)
}

// gatewayPlan is what the gateway section does.
type gatewayPlan struct {
	parts          map[string]bool
	warmup, dur    time.Duration // of each ingest level
	levels         []int
	idle           idlePlan
	baselineWait   time.Duration
	provisionSeq   int
	provisionConc  int
	consoleSamples int
	failoverRounds int
	growDevices    []int
	growRates      []float64
	growDur        time.Duration
	tlsStorm       int // devices of each connect storm of the TLS part
	tlsAlarmRounds int // alarm loads per transport of the TLS part
	hostile        hostilePlan
	pprofDir       string
	replicaWait    string // broker.replica_wait of the nodes; "" for their default
}

func newGatewayPlan(o options) gatewayPlan {
	p := gatewayPlan{
		parts:  o.parts,
		warmup: warmup, dur: loadDuration, levels: ingestLevels,
		idle: idlePlan{devices: gwIdleDevices, max: true, heartbeatMin: gwHeartbeatMin, heartbeatMax: gwHeartbeatMax,
			settle: gwSettle},
		baselineWait: gwBaselineWait,
		provisionSeq: gwProvisionSeq, provisionConc: gwProvisionClients,
		consoleSamples: consoleSamples, failoverRounds: failoverRounds,
		growDevices: growDevices, growRates: growRates, growDur: growDuration,
		tlsStorm: tlsStormDevices, tlsAlarmRounds: tlsAlarmRounds,
		pprofDir: o.pprofDir, replicaWait: o.replicaWait,
		hostile: newHostilePlan(o.quick),
	}
	if o.quick {
		p.warmup, p.dur = warmupQuick, loadDurationQuick
		p.idle.devices, p.idle.max, p.idle.settle = gwIdleDevicesQuick, false, gwSettleQuick
		p.baselineWait, p.provisionSeq = gwBaselineWaitQuick, gwProvisionSeqQuick
		p.consoleSamples, p.failoverRounds = consoleSamplesQuick, 1
		p.growDevices, p.growRates, p.growDur = growDevicesQuick, growRatesQuick, growDurationQuick
		p.tlsStorm, p.tlsAlarmRounds = tlsStormDevicesQuick, 1
	}
	if o.duration > 0 {
		p.dur = o.duration
	}
	if o.idleDevices > 0 {
		p.idle.devices = o.idleDevices
	}
	if o.settle > 0 {
		p.idle.settle = o.settle
	}
	if lo, hi, err := parseInterval(o.heartbeat); err == nil && hi > 0 {
		p.idle.heartbeatMin, p.idle.heartbeatMax = lo, hi
	}
	if d, _ := parseList(o.growDevices, strconv.Atoi); len(d) > 0 {
		p.growDevices = d
	}
	if r, _ := parseList(o.growRates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); len(r) > 0 {
		p.growRates = r
	}
	return p
}

// devicesNeeded is how many devices the plan provisions: enough for every
// part it runs, and one more, the console's probe.
func (p gatewayPlan) devicesNeeded() int {
	n := failoverConc
	if p.parts[partIngest] {
		n = max(n, slices.Max(p.levels))
	}
	if p.parts[partGrow] {
		n = max(n, slices.Max(p.growDevices))
	}
	if p.parts[partConns] {
		n = max(n, p.idle.devices)
		if p.idle.max {
			n = max(n, openFileLimit()-fileMargin)
		}
	}
	if p.parts[partTLS] {
		n = max(n, tlsDevicesNeeded(p.tlsStorm))
	}
	if p.parts[partHostile] {
		n = max(n, hostileDevices+1)
	}
	return n + 1
}

// openFileLimit is this process's soft open-file limit; the nodes it starts
// inherit it.
func openFileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<20 {
		return 1 << 20
	}
	return int(l.Cur)
}

// parseInterval parses "min-max", two durations, min at most max and both
// positive; "" is 0, 0.
func parseInterval(s string) (lo, hi time.Duration, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want two durations joined by -, such as 30s-60s")
	}
	if lo, err = time.ParseDuration(a); err == nil {
		hi, err = time.ParseDuration(b)
	}
	switch {
	case err != nil:
		return 0, 0, err
	case lo <= 0 || hi < lo:
		return 0, 0, fmt.Errorf("want 0 < min <= max, got %s to %s", lo, hi)
	}
	return lo, hi, nil
}

// gatewayReport holds the gateway section's figures; a part not run
// leaves its field nil.
type gatewayReport struct {
	plan     gatewayPlan
	prov     provisionResult
	console  *consoleReport
	ingest   *ingestReport
	failover *failoverReport
	grow     *growReport
	conns    []connResult // Vigil's node, then Mosquitto
	tls      *tlsReport
	hostile  *hostileReport
}

// runGateway runs the gateway section on a new cluster in dir. It returns
// what it measured so far with an error.
func runGateway(ctx context.Context, vigil, dir string, plan gatewayPlan) (*gatewayReport, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create the gateway's directory: %w", err)
	}
	if plan.pprofDir != "" {
		if err := os.MkdirAll(plan.pprofDir, 0o750); err != nil {
			return nil, fmt.Errorf("cannot create the profiles' directory: %w", err)
		}
	}
	c, err := newLocalCluster(vigil, dir)
	if err != nil {
		return nil, err
	}
	c.gctrace, c.pprof = true, plan.pprofDir != ""
	if plan.replicaWait != "" {
		c.env = append(c.env, appliance.EnvName("broker.replica_wait")+"="+plan.replicaWait)
	}
	defer c.stop()
	progress("gateway: starting three nodes; logs in %s/node*.log", dir)
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	g := &gatewayReport{plan: plan}

	n := plan.devicesNeeded()
	var httpAddrs []string
	for _, nd := range c.nodes {
		httpAddrs = append(httpAddrs, nd.httpAddr)
	}
	progress("gateway: provisioning %d devices (%d one at a time, the rest with %d clients)", n, plan.provisionSeq, plan.provisionConc)
	creds, prov, err := provisionDevices(ctx, httpAddrs, n, plan.provisionSeq, plan.provisionConc, c.apiToken)
	g.prov = prov
	if err != nil {
		return g, err
	}
	progress("gateway: provisioned %d devices in %s", n, prov.total().Round(time.Second))
	// A broker checks a secret against its own node's state.
	if err := c.barrier(ctx); err != nil {
		return g, err
	}
	probe := creds[n-1]
	creds = creds[:n-1]

	if plan.parts[partConsole] {
		progress("console: %d probe alarms followed to the three consoles, quiet and under load", plan.consoleSamples)
		if g.console, err = runConsole(ctx, c, creds, probe, plan.consoleSamples, plan.warmup); err != nil {
			return g, err
		}
	}
	// Before the other parts: the storms' devices, the last of creds,
	// must not have connected to the node yet.
	if plan.parts[partTLS] {
		if g.tls, err = runTLS(ctx, c, creds, plan); err != nil {
			return g, err
		}
	}

	var p *peers
	defer func() { p.stop() }()
	if plan.parts[partIngest] || plan.parts[partFailover] {
		if p, err = startPeers(ctx, filepath.Join(dir, "peers")); err != nil {
			return g, err
		}
	}
	if plan.parts[partIngest] {
		if g.ingest, err = runIngest(ctx, c, p, creds, plan); err != nil {
			return g, err
		}
	}
	if plan.parts[partFailover] {
		f := &failoverReport{etcdVersion: p.etcd.version}
		progress("failover: %d devices raising alarms on the 3 brokers; killing the Vigil leader %d time(s)", failoverConc, plan.failoverRounds)
		if f.vigil, f.vigilAlarms, f.vigilErr, err = runAlarmFailover(ctx, c, creds, plan.failoverRounds, plan.warmup); err != nil {
			return g, err
		}
		progress("failover: %d etcd clients putting alarms; killing the etcd leader %d time(s)", failoverConc, plan.failoverRounds)
		if f.etcd, f.etcdErrors, err = runEtcdFailover(ctx, p.etcd, plan.failoverRounds, plan.warmup); err != nil {
			return g, err
		}
		g.failover = f
	}
	p.stop()

	if plan.parts[partConns] {
		progress("conns: restarting the nodes for a clean memory baseline")
		c.stop()
		if err := c.startAll(ctx); err != nil {
			return g, err
		}
		if err := c.barrier(ctx); err != nil {
			return g, err
		}
		leader, err := c.waitLeader(ctx, startTimeout)
		if err != nil {
			return g, err
		}
		nd := c.others(leader)[0]
		t := idleTarget{name: "Vigil " + nd.name + " (a follower)", pid: nd.cmd.Process.Pid, broker: nd.mqttAddr,
			logPath: nd.logPath, margin: fileMargin, exited: c.exited}
		if plan.pprofDir != "" {
			t.afterSettle = func(devices int) {
				profileHeap(ctx, nd, filepath.Join(plan.pprofDir, fmt.Sprintf("heap-%s-%d-devices.pprof", nd.name, devices)))
			}
		}
		r, err := runConns(ctx, t, vigil, dir, creds, plan.idle, plan.baselineWait)
		g.conns = append(g.conns, r)
		if err != nil {
			return g, err
		}

		m, err := newMosquitto(filepath.Join(dir, "peers"))
		if err != nil {
			return g, err
		}
		if err := m.start(ctx); err != nil {
			return g, err
		}
		defer m.stop()
		limit, err := processFileLimit(m.p.pid())
		if err != nil {
			return g, err
		}
		t = idleTarget{name: m.version, pid: m.p.pid(), broker: m.addr, margin: mosquittoFileMargin, exited: m.p.exited}
		r, err = runConns(ctx, t, vigil, dir, peerCredentials(int(limit)-mosquittoFileMargin), plan.idle, peerBaselineWait)
		g.conns = append(g.conns, r)
		if err != nil {
			return g, err
		}
		m.stop()
	}
	// Last: the largest fleet is the hardest test of the nodes, and what
	// follows a node's crash would not be measured.
	if plan.parts[partGrow] {
		if g.grow, err = runGrow(ctx, c, vigil, dir, creds, plan); err != nil {
			return g, err
		}
	}
	// After everything: its floods leave alarms and refusals behind.
	if plan.parts[partHostile] {
		if g.hostile, err = runHostile(ctx, c, creds, plan.hostile); err != nil {
			return g, err
		}
	}
	return g, nil
}

// startAll starts every node and waits for a leader. At the first start it
// obtains the API token first, as asking for the leader is an API request.
func (c *localCluster) startAll(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			return err
		}
	}
	if c.apiToken == "" {
		tok, err := obtainAPIToken(ctx, c)
		if err != nil {
			return fmt.Errorf("cannot obtain an API token: %w; %v", err, c.exited())
		}
		c.apiToken = tok
	}
	if _, err := c.waitLeader(ctx, startTimeout); err != nil {
		return fmt.Errorf("%w; %v", err, c.exited())
	}
	return nil
}

// barrier commits one diagnostic record through the leader and waits
// until every node has applied it, so that each node's state holds
// everything committed before. (A leader's own no-op entry is never applied
// to the state, so comparing applied with commit indexes after a restart
// would wait for ever.)
func (c *localCluster) barrier(ctx context.Context) error {
	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return err
	}
	p := newPoster(1, c.apiToken)
	defer p.client.CloseIdleConnections()
	var index uint64
	err = pollUntil(ctx, startTimeout, func() bool {
		status, i, err := p.post(ctx, leader.httpAddr, p.newID()+"-barrier", "gateway-barrier", "barrier")
		index = i
		return err == nil && status == http.StatusCreated
	})
	if err != nil {
		return fmt.Errorf("cannot commit a barrier record through %s: %w", leader.name, err)
	}
	for _, n := range c.nodes {
		err := pollUntil(ctx, startTimeout, func() bool {
			st, err := c.nodeStatus(ctx, n)
			return err == nil && st.AppliedIndex >= index
		})
		if err != nil {
			return fmt.Errorf("%s did not apply index %d: %w", n.name, index, err)
		}
	}
	return nil
}
