package main

// The gateway section: devices over MQTT rather than clients over HTTP, on
// a three-node cluster of its own, so that its memory figures do not
// depend on the earlier sections. In order:
//
//   - provisioning: an organisation and the devices, each registered and
//     given a secret (argon2id, 4 MiB, one pass) through the HTTP API, the
//     first ones one at a time, the rest with concurrent clients;
//   - alarm latency: 1, 100 and 1,000 devices spread over the three
//     brokers, each raising test alarms back to back: the device
//     simulator's closed alarm loop, in this process (gwalarm.go);
//   - memory: the nodes are restarted and left idle past the Go runtime's
//     two-minute forced collection, so that the baseline is a settled node
//     holding the provisioned state; then the idle devices connect and send
//     heartbeats until the nodes settle: the simulator's idle mode, in
//     vigil sim child processes (gwidle.go).
//
// The devices are appliance/sim's, as vigil sim runs them: real paho MQTT
// clients speaking device protocol v1.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// The gateway section's plan for a full run and a -quick one.
const (
	gwIdleDevices      = 20000
	gwIdleDevicesQuick = 2000
	gwHeartbeatMin     = 30 * time.Second
	gwHeartbeatMax     = 60 * time.Second
	gwSettle           = 60 * time.Second
	gwSettleQuick      = 20 * time.Second
	// gwBaselineWait is longer than the Go runtime's forced collection
	// period (two minutes), so that an idle node's start-up garbage has
	// been collected when the baseline is read.
	gwBaselineWait      = 130 * time.Second
	gwBaselineWaitQuick = 15 * time.Second
	// gwProvisionSeq devices are provisioned one at a time, to measure
	// one request; the rest with gwProvisionClients concurrent clients.
	gwProvisionSeq      = 100
	gwProvisionSeqQuick = 30
	gwProvisionClients  = 16
)

// gwLevels are the numbers of devices raising alarms at once. One device
// is measured twice: on the leader's broker and on a follower's, which
// forwards to the leader and answers once it has applied the alarm itself.
var gwLevels = []int{1, 100, 1000}

// gwLevel is one run of the alarm latency measurement.
type gwLevel struct {
	tag     string   // tells the run's event IDs and summary keys apart
	where   string   // for the report
	devices int      // devices raising alarms at once
	brokers []string // device i uses brokers[i mod len]
}

// alarmLevels returns the runs of the alarm latency measurement.
func alarmLevels(c *localCluster, leader *node) []gwLevel {
	follower := c.others(leader)[0]
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.mqttAddr)
	}
	var out []gwLevel
	for _, k := range gwLevels {
		if k == 1 {
			out = append(out,
				gwLevel{tag: "d1_leader", where: "the leader's broker (" + leader.name + ")", devices: 1, brokers: []string{leader.mqttAddr}},
				gwLevel{tag: "d1_follower", where: "a follower's broker (" + follower.name + ")", devices: 1, brokers: []string{follower.mqttAddr}})
			continue
		}
		out = append(out, gwLevel{tag: fmt.Sprintf("d%d", k), where: "the 3 nodes' brokers", devices: k, brokers: all})
	}
	return out
}

// gatewayPlan is what the gateway section does.
type gatewayPlan struct {
	warmup, dur   time.Duration // of each latency level
	idle          idlePlan
	provisionSeq  int
	provisionConc int
}

func newGatewayPlan(o options) gatewayPlan {
	p := gatewayPlan{
		warmup: warmup, dur: loadDuration,
		idle: idlePlan{devices: gwIdleDevices, heartbeatMin: gwHeartbeatMin, heartbeatMax: gwHeartbeatMax,
			settle: gwSettle, baselineWait: gwBaselineWait},
		provisionSeq: gwProvisionSeq, provisionConc: gwProvisionClients,
	}
	if o.quick {
		p.warmup, p.dur = warmupQuick, loadDurationQuick
		p.idle.devices, p.idle.settle, p.provisionSeq = gwIdleDevicesQuick, gwSettleQuick, gwProvisionSeqQuick
		p.idle.baselineWait = gwBaselineWaitQuick
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
	return p
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

// gatewayReport holds the gateway section's figures.
type gatewayReport struct {
	plan    gatewayPlan
	prov    provisionResult
	latency []gwLoad
	idle    idleResult
}

// runGateway runs the gateway section on a new cluster in dir.
func runGateway(ctx context.Context, vigil, dir string, plan gatewayPlan) (*gatewayReport, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create the gateway's directory: %w", err)
	}
	c, err := newLocalCluster(vigil, dir)
	if err != nil {
		return nil, err
	}
	c.gctrace = true
	defer c.stop()
	progress("gateway: starting three nodes; logs in %s/node*.log", dir)
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	g := &gatewayReport{plan: plan}

	n := max(plan.idle.devices, slices.Max(gwLevels))
	var httpAddrs []string
	for _, nd := range c.nodes {
		httpAddrs = append(httpAddrs, nd.httpAddr)
	}
	progress("gateway: provisioning %d devices (%d one at a time, the rest with %d clients)", n, plan.provisionSeq, plan.provisionConc)
	creds, prov, err := provisionDevices(ctx, httpAddrs, n, plan.provisionSeq, plan.provisionConc)
	g.prov = prov
	if err != nil {
		return nil, err
	}
	progress("gateway: provisioned %d devices in %s", n, prov.total().Round(time.Second))
	// A broker checks a secret against its own node's state.
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}

	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return nil, err
	}
	for _, l := range alarmLevels(c, leader) {
		progress("gateway: %d devices on %s raising test alarms for %s", l.devices, l.where, plan.dur)
		r, err := runAlarmLoad(ctx, l, creds[:l.devices], plan.warmup, plan.dur, c.pids())
		if err != nil {
			return nil, err
		}
		g.latency = append(g.latency, r)
		if err := c.exited(); err != nil {
			return nil, err
		}
	}

	progress("gateway: restarting the nodes for a clean memory baseline")
	c.stop()
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}
	progress("gateway: %d idle devices, heartbeats every %s to %s", plan.idle.devices, plan.idle.heartbeatMin, plan.idle.heartbeatMax)
	if g.idle, err = runIdle(ctx, c, vigil, dir, creds[:plan.idle.devices], plan.idle); err != nil {
		return nil, err
	}
	return g, nil
}

// startAll starts every node and waits for a leader.
func (c *localCluster) startAll(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			return err
		}
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
	p := newPoster(1)
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

// write prints the gateway section of the report.
func (g *gatewayReport) write(w io.Writer) {
	fmt.Fprintf(w, "### Device gateway\n\n")
	fmt.Fprintf(w, "A cluster of its own. Devices are the device simulator's (appliance/sim, as vigil sim runs them: paho MQTT 3.1.1 clients, "+
		"protocol v1), device i on node i mod 3's broker.\n\n")

	p := g.prov
	fmt.Fprintf(w, "| Provisioning (HTTP API: register device + set secret) | Devices | Clients | Elapsed s | Devices/s | ms/device | register p50 ms | secret p50 ms |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|\n")
	if p.seqDevices > 0 {
		fmt.Fprintf(w, "| one at a time | %d | 1 | %.1f | %.1f | %s | %s | %s |\n", p.seqDevices, p.seqElapsed.Seconds(),
			float64(p.seqDevices)/p.seqElapsed.Seconds(), ms(p.seqPerDevice()), ms(quantile(p.seqCreate, 0.5)), ms(quantile(p.seqSecret, 0.5)))
	}
	if p.concDevices > 0 {
		fmt.Fprintf(w, "| concurrent, over the three nodes | %d | %d | %.1f | %.1f | %s | | |\n", p.concDevices, p.concClients,
			p.concElapsed.Seconds(), p.concPerSecond(), ms(time.Duration(float64(time.Second)/max(p.concPerSecond(), 1e-9))))
	}
	fmt.Fprintf(w, "| **total** | %d | | %.1f | | | | |\n\n", p.devices, p.total().Seconds())
	if p.seqDevices > 0 {
		fmt.Fprintf(w, "One at a time, %d devices would take %.0f s. %d requests were retried (no reply, 503 or 504).\n\n",
			gwIdleDevices, (p.seqPerDevice() * gwIdleDevices).Seconds(), p.retries)
	}

	fmt.Fprintf(w, "| Alarm latency | Devices | Alarms/s | p50 ms | p99 ms | max ms | Errors | CPU: machine %% | nodes %% | bench %% | nodes ms/alarm |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range g.latency {
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			r.name, r.conc, r.perSecond(), ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(1)), r.errors,
			pct(r.cpu.busy), pct(r.cpu.nodes), pct(r.cpu.self), ms(r.cpuPerCommit()))
	}
	fmt.Fprintf(w, "\nEach device publishes its next test alarm when the previous one's PUBACK arrives; an alarm counts only if its "+
		"down/reply said ok. Errors: replies with an error code, missing replies, and publishes with no PUBACK, here %s.\n\n",
		latencyErrors(g.latency))

	r := g.idle
	if len(r.rss) == 0 {
		return
	}
	fmt.Fprintf(w, "| Memory with idle devices | Devices | Baseline RSS MiB | RSS MiB | KiB per device | "+
		"anonymous RSS: baseline / with devices MiB | live heap + stacks after the last GC: baseline / with devices MiB | live KiB per device |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for i := range r.rss {
		live, perDevice := "? / ?", "?"
		if k, ok := r.liveKiBPerDevice(i); ok {
			live = fmt.Sprintf("%d / %d", r.baseGC[i].live+r.baseGC[i].stacks, r.gc[i].live+r.gc[i].stacks)
			perDevice = fmt.Sprintf("%.1f", k)
		}
		fmt.Fprintf(w, "| node%d | %d | %s | %s | %.1f | %s / %s | %s | %s |\n", i+1, r.perNode[i], mib(r.baseline[i]), mib(r.rss[i]), r.kibPerDevice(i),
			mib(r.baseAnon[i]), mib(r.anon[i]), live, perDevice)
	}
	fmt.Fprintf(w, "| **all** | %d | %s | %s | %.1f | %s / %s | | |\n\n", sumInts(r.perNode), mib(sum64(r.baseline)), mib(sum64(r.rss)), r.meanKiBPerDevice(),
		mib(sum64(r.baseAnon)), mib(sum64(r.anon)))
	hbMean := (r.plan.heartbeatMin + r.plan.heartbeatMax) / 2
	fmt.Fprintf(w, "%d devices connected through vigil sim --mode idle (child processes: %d) in %.0f s (%.0f CONNECTs/s, each checking the secret with argon2id once per node). "+
		"Each sent a heartbeat (QoS 1) on connecting, then every %s to %s (mean %s: %.0f/s expected, %.0f/s PUBACKed while settling; "+
		"before aggregation, each heartbeat was one Raft entry). Baseline: the median of %d readings of VmRSS, %s after a restart of the nodes; "+
		"RSS: the median of the readings every %s over %s of settling after the last device connected. "+
		"Live heap: from the nodes' GODEBUG=gctrace=1 lines (Go lets the heap grow to twice the live heap before it collects, "+
		"and keeps freed pages a while, so RSS runs well above it). "+
		"CPU while settling: machine %s%%, nodes %s%%. Heartbeats sent %d, PUBACKed %d, replies ok %d, error %d; "+
		"failed connection attempts %d, connections lost %d, reconnections %d.\n\n",
		sumInts(r.perNode), r.children, r.connectElapsed.Seconds(), float64(r.plan.devices)/r.connectElapsed.Seconds(),
		r.plan.heartbeatMin, r.plan.heartbeatMax, hbMean, float64(r.plan.devices)/hbMean.Seconds(), r.hbRate,
		baselineSamples, r.plan.baselineWait, rssEvery, r.plan.settle, pct(r.cpu.busy), pct(r.cpu.nodes),
		r.final.Heartbeats, r.final.TelemetryAcked, r.final.TelemetryOK, r.final.TelemetryRefused,
		r.final.ConnectErrors, r.final.Lost, r.final.Reconnects)
}

func latencyErrors(ls []gwLoad) string {
	var parts []string
	for _, r := range ls {
		parts = append(parts, fmt.Sprintf("%d on %s: %d refused, %d without reply, %d without PUBACK", r.conc, r.where, r.refused, r.noReply, r.lost))
	}
	return strings.Join(parts, "; ")
}

// summary returns the gateway's key=value figures for the bench: line.
func (g *gatewayReport) summary() string {
	var b strings.Builder
	for _, r := range g.latency {
		fmt.Fprintf(&b, " gw_%s_alarms_per_s=%.0f gw_%s_p50_ms=%s gw_%s_p99_ms=%s", r.tag, r.perSecond(), r.tag, ms(r.quantile(0.5)), r.tag, ms(r.quantile(0.99)))
	}
	fmt.Fprintf(&b, " gw_provision_devices=%d gw_provision_s=%.1f gw_provision_seq_ms=%s", g.prov.devices, g.prov.total().Seconds(), ms(g.prov.seqPerDevice()))
	if r := g.idle; len(r.rss) > 0 {
		fmt.Fprintf(&b, " gw_idle_devices=%d gw_rss_max_mib=%s gw_kib_per_device=%.1f", sumInts(r.perNode), mib(slices.Max(r.rss)), r.meanKiBPerDevice())
	}
	return b.String()
}

func sumInts(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

func sum64(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}
