package main

// The gateway section's report: the goals, then the comparison in the
// issue's numbering, then the summary line.

import (
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// The goals (targets, not assertions) on a two-core machine.
const (
	goalAckP99          = 5 * time.Millisecond
	goalRatioVsEtcd     = 0.2   // ack p99 at most a fifth of etcd's put p99
	goalThroughput      = 10000 // durable alarms per second at 256 devices
	goalTputRatioVsEtcd = 3.0
	goalFailover        = 1500 * time.Millisecond
	goalKiBPerDevice    = 15.0
)

// etcdClientVersion is the etcd client module's version in this build.
func etcdClientVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.etcd.io/etcd/client/v3" {
				return d.Version
			}
		}
	}
	return "?"
}

// headline holds the figures of the summary line; ok is false for those
// not measured.
type headline struct {
	ackP99, etcdP99         time.Duration
	latOK                   bool
	vigilTput, etcdTput     float64
	tputOK                  bool
	failover, etcdFailover  time.Duration
	failoverOK, etcdFailOK  bool
	kibPerDevice, mibPer10k float64
	memDevices              int
	memOK                   bool
	mosquittoKiB            float64
	mosquittoOK             bool
}

func (g *gatewayReport) headline() headline {
	var h headline
	if g == nil {
		return h
	}
	if l := g.ingest.level(latencyLevel); l != nil && len(l.vigil) > 0 && len(l.etcd) > 0 {
		h.ackP99, h.etcdP99, h.latOK = l.vigil[0].quantile(0.99), l.etcd[0].quantile(0.99), len(l.vigil[0].lat) > 0 && len(l.etcd[0].lat) > 0
	}
	if l := g.ingest.level(throughputLevel); l != nil && len(l.vigil) > 0 && len(l.etcd) > 0 {
		h.vigilTput, h.etcdTput, h.tputOK = l.vigil[0].perSecond(), l.etcd[0].perSecond(), l.etcd[0].commits > 0
	}
	if f := g.failover; f != nil {
		h.failover, h.failoverOK = medianFirst(f.vigil)
		h.etcdFailover, h.etcdFailOK = medianFirst(f.etcd)
	}
	if len(g.conns) > 0 && len(g.conns[0].steps) > 0 {
		r := g.conns[0]
		h.kibPerDevice, h.mibPer10k, h.memDevices, h.memOK = r.kibPerDevice(0), r.mibPer10k(0), r.steps[0].devices, true
	}
	if len(g.conns) > 1 && len(g.conns[1].steps) > 0 {
		h.mosquittoKiB, h.mosquittoOK = g.conns[1].kibPerDevice(0), true
	}
	return h
}

func medianFirst(rs []peerRound) (time.Duration, bool) {
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, r.firstAfter)
	}
	return median(ds), len(ds) > 0
}

// ratio formats a/b, or "NA".
func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return "NA"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func msOr(d time.Duration, ok bool) string {
	if !ok {
		return "NA"
	}
	return ms(d)
}

func ms0Or(d time.Duration, ok bool) string {
	if !ok {
		return "NA"
	}
	return ms0(d)
}

func metOr(met, ok bool) string {
	switch {
	case !ok:
		return "not measured"
	case met:
		return "**met**"
	}
	return "**missed**"
}

// summaryLine is the last line of the report.
func summaryLine(g *gatewayReport) string {
	h := g.headline()
	mem := "NA"
	if h.memOK {
		mem = fmt.Sprintf("%.1f", h.mibPer10k)
	}
	tput := "NA"
	if h.tputOK {
		tput = ratio(h.vigilTput, h.etcdTput, true)
	}
	return fmt.Sprintf("bench: ack_p99_ms=%s etcd_put_p99_ms=%s ratio_vs_etcd=%s tput_ratio_vs_etcd=%s failover_ms=%s mem_per_10k_devices_mb=%s",
		msOr(h.ackP99, h.latOK), msOr(h.etcdP99, h.latOK), ratio(float64(h.ackP99), float64(h.etcdP99), h.latOK),
		tput, ms0Or(h.failover, h.failoverOK), mem)
}

// writeGoals prints the goals and whether this run met them.
func (g *gatewayReport) writeGoals(w io.Writer) {
	h := g.headline()
	fmt.Fprintf(w, "### Goals\n\n| Goal | Target | Measured in this run | |\n|---|---|---|---|\n")
	latText := "NA"
	if h.latOK {
		latText = fmt.Sprintf("%s ms; etcd %s ms; ratio %s", ms(h.ackP99), ms(h.etcdP99), ratio(float64(h.ackP99), float64(h.etcdP99), true))
	}
	fmt.Fprintf(w, "| Alarm publish-to-PUBACK p99, %d devices | at most %s ms, and at most %.0f%% of etcd's put p99 with %d clients | %s | %s |\n",
		latencyLevel, ms0(goalAckP99), 100*goalRatioVsEtcd, latencyLevel, latText,
		metOr(h.ackP99 <= goalAckP99 && float64(h.ackP99) <= goalRatioVsEtcd*float64(h.etcdP99), h.latOK))
	if nw := g.ingest.noWaitLoad(); nw != nil && h.latOK && nw.commits > 0 {
		p99 := nw.quantile(0.99)
		fmt.Fprintf(w, "| The same with broker.replica_wait 0 (not the default) | as above | %s ms; etcd %s ms; ratio %s | %s |\n",
			ms(p99), ms(h.etcdP99), ratio(float64(p99), float64(h.etcdP99), true),
			metOr(p99 <= goalAckP99 && float64(p99) <= goalRatioVsEtcd*float64(h.etcdP99), true))
	}
	tputText := "NA"
	if h.tputOK {
		tputText = fmt.Sprintf("%.0f/s; etcd %.0f/s; ratio %s", h.vigilTput, h.etcdTput, ratio(h.vigilTput, h.etcdTput, true))
	}
	fmt.Fprintf(w, "| Durable alarms per second, %d devices | at least %d/s, about %.0fx etcd's puts/s with %d clients | %s | %s |\n",
		throughputLevel, goalThroughput, goalTputRatioVsEtcd, throughputLevel, tputText,
		metOr(h.vigilTput >= goalThroughput && h.vigilTput >= goalTputRatioVsEtcd*h.etcdTput, h.tputOK))
	failText := "NA"
	if h.failoverOK {
		failText = fmt.Sprintf("%s ms; etcd %s ms", ms0(h.failover), ms0Or(h.etcdFailover, h.etcdFailOK))
	}
	fmt.Fprintf(w, "| Failover: SIGKILL of the leader until alarms are acknowledged again (median) | under %s ms | %s | %s |\n",
		ms0(goalFailover), failText, metOr(h.failover < goalFailover, h.failoverOK))
	memText := "NA"
	if h.memOK {
		memText = fmt.Sprintf("%.1f KiB of RSS per device on one node (%d devices: %.0f MiB per 10,000)", h.kibPerDevice, h.memDevices, h.mibPer10k)
		if h.mosquittoOK {
			memText += fmt.Sprintf("; Mosquitto %.1f KiB", h.mosquittoKiB)
		}
	}
	fmt.Fprintf(w, "| Memory per connected device | at most %.0f KiB | %s | %s |\n", goalKiBPerDevice, memText,
		metOr(h.kibPerDevice <= goalKiBPerDevice, h.memOK))
	if g.grow != nil && g.grow.crash != "" {
		line, _, _ := strings.Cut(g.grow.crash, "\n")
		fmt.Fprintf(w, "| No node crashes | none | %s (section 6) | **missed** |\n", line)
	}
	fmt.Fprintf(w, "\n")
}

// write prints sections 1, 2, 3, 4, 6 and 7, and the hostile input, and
// adds the figures of the first five to line (section 7 and the hostile
// input have their own lines, tlsSummaryLine and hostileSummaryLine).
func (g *gatewayReport) write(w io.Writer, line *strings.Builder) {
	if g.ingest != nil {
		g.writeIngest(w, line)
	}
	if g.console != nil {
		g.writeConsole(w, line)
	}
	if g.failover != nil {
		g.writeFailover(w, line)
	}
	if len(g.conns) > 0 {
		g.writeConns(w, line)
	}
	if g.grow != nil {
		g.writeGrow(w, line)
	}
	if g.tls != nil {
		g.writeTLS(w)
	}
	if g.hostile != nil {
		g.hostile.write(w)
	}
}

func (g *gatewayReport) writeIngest(w io.Writer, line *strings.Builder) {
	r := g.ingest
	fmt.Fprintf(w, "### 1. Durable alarm ingest\n\n")
	puback := "the broker PUBACKs once the cluster committed the alarm and every healthy node applied it, broker.replica_wait"
	if g.plan.replicaWait != "" {
		if d, _ := time.ParseDuration(g.plan.replicaWait); d == 0 {
			puback = "the broker PUBACKs once a quorum committed the alarm and the broker's node applied it, broker.replica_wait 0"
		}
	}
	fmt.Fprintf(w, "At each concurrency, one after the other: Vigil (three nodes; N devices of the simulator, device i on node i mod 3's broker, "+
		"each publishing a test alarm QoS 1 and the next as soon as the PUBACK arrives; %s); %s (the same devices and load, QoS 1; it replicates nothing and syncs nothing to disk); "+
		"%s (three members; N clients, client i on member i mod 3, each putting one key per alarm, the device's alarm JSON, "+
		"and the next as soon as the put is answered). %s of warm-up, then %s measured per run. "+
		"CPU: shares of all CPUs while measuring, for the machine, the system under test (its processes) and the bench (the load); "+
		"then the system's CPU time per alarm.\n\n", puback, r.mosquittoVersion, r.etcdVersion, g.plan.warmup, g.plan.dur)
	fmt.Fprintf(w, "| Concurrency | System | Clients on | Alarms/s | p50 ms | p99 ms | max ms | Errors | CPU: machine %% | system %% | bench %% | system ms/alarm |\n"+
		"|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	row := func(k int, system, where string, r loadResult) {
		fmt.Fprintf(w, "| %d | %s | %s | %.0f | %s | %s | %s | %d | %s | %s | %s | %s |\n", k, system, where, r.perSecond(),
			ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(1)), r.errors, pct(r.cpu.busy), pct(r.cpu.nodes), pct(r.cpu.self), ms(r.cpuPerCommit()))
	}
	var errs []string
	for _, lv := range r.levels {
		for _, v := range lv.vigil {
			row(lv.conc, "Vigil", v.where, v.loadResult)
			if v.errors > 0 {
				errs = append(errs, fmt.Sprintf("Vigil %d on %s: %d refused, %d without reply, %d without PUBACK", v.conc, v.where, v.refused, v.noReply, v.lost))
			}
		}
		if m := lv.mosquitto; m != nil {
			row(lv.conc, "Mosquitto", "one broker", m.loadResult)
			if m.errors > 0 {
				errs = append(errs, fmt.Sprintf("Mosquitto %d: %d without PUBACK", m.conc, m.lost))
			}
		}
		for _, e := range lv.etcd {
			where := strings.TrimSuffix(strings.TrimPrefix(e.name, "etcd put, clients on "), ", "+g.plan.dur.String())
			row(lv.conc, "etcd", where, e)
		}
	}
	if nw := r.noWait; nw != nil {
		row(nw.conc, "Vigil, **broker.replica_wait 0**", "the 3 nodes' brokers", nw.loadResult)
		if nw.errors > 0 {
			errs = append(errs, fmt.Sprintf("Vigil %d with broker.replica_wait 0: %d refused, %d without reply, %d without PUBACK", nw.conc, nw.refused, nw.noReply, nw.lost))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, "none")
	}
	fmt.Fprintf(w, "\nAn alarm on Vigil counts only if its down/reply said ok; errors: %s. An etcd error is a put that failed or took over %s.\n\n",
		strings.Join(errs, "; "), etcdPutTimeout)

	fmt.Fprintf(w, "| Concurrency | Vigil/etcd p50 | Vigil/etcd p99 | Vigil/etcd alarms/s | Vigil/Mosquitto p50 | Vigil/Mosquitto p99 | Vigil/Mosquitto alarms/s |\n"+
		"|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, lv := range r.levels {
		if len(lv.vigil) == 0 {
			continue
		}
		v := lv.vigil[0].loadResult
		cols := make([]string, 0, 6)
		for _, peer := range []*loadResult{first(lv.etcd), mosquittoResult(lv.mosquitto)} {
			if peer == nil || peer.commits == 0 || v.commits == 0 {
				cols = append(cols, "NA", "NA", "NA")
				continue
			}
			cols = append(cols, ratio(float64(v.quantile(0.5)), float64(peer.quantile(0.5)), true),
				ratio(float64(v.quantile(0.99)), float64(peer.quantile(0.99)), true), ratio(v.perSecond(), peer.perSecond(), true))
		}
		fmt.Fprintf(w, "| %d | %s |\n", lv.conc, strings.Join(cols, " | "))
	}
	if nw := r.noWait; nw != nil {
		if lv := r.level(nw.conc); lv != nil {
			cols := make([]string, 0, 6)
			for _, peer := range []*loadResult{first(lv.etcd), mosquittoResult(lv.mosquitto)} {
				if peer == nil || peer.commits == 0 || nw.commits == 0 {
					cols = append(cols, "NA", "NA", "NA")
					continue
				}
				cols = append(cols, ratio(float64(nw.quantile(0.5)), float64(peer.quantile(0.5)), true),
					ratio(float64(nw.quantile(0.99)), float64(peer.quantile(0.99)), true), ratio(nw.perSecond(), peer.perSecond(), true))
			}
			fmt.Fprintf(w, "| %d, Vigil with broker.replica_wait 0 | %s |\n", nw.conc, strings.Join(cols, " | "))
		}
	}
	fmt.Fprintf(w, "\nBelow 1 is better for latency, above 1 for alarms/s. At concurrency 1 the ratios compare Vigil's leader's broker with etcd's leader.\n\n")
	if nw := r.noWait; nw != nil {
		fmt.Fprintf(w, "The rows marked broker.replica_wait 0 were measured last, on the same nodes restarted with the wait off: the PUBACK follows the quorum commit "+
			"and the apply on the device's own node, without waiting for the other nodes to apply the alarm. Every other figure, and the summary line, "+
			"are with the nodes' default wait.\n\n")
	}

	for _, lv := range r.levels {
		if len(lv.vigil) > 0 {
			v := lv.vigil[0]
			fmt.Fprintf(line, " vigil_c%d_per_s=%.0f vigil_c%d_p50_ms=%s vigil_c%d_p99_ms=%s", lv.conc, v.perSecond(), lv.conc, ms(v.quantile(0.5)), lv.conc, ms(v.quantile(0.99)))
		}
		if m := lv.mosquitto; m != nil {
			fmt.Fprintf(line, " mosquitto_c%d_per_s=%.0f mosquitto_c%d_p99_ms=%s", lv.conc, m.perSecond(), lv.conc, ms(m.quantile(0.99)))
		}
		if e := first(lv.etcd); e != nil {
			fmt.Fprintf(line, " etcd_c%d_per_s=%.0f etcd_c%d_p99_ms=%s", lv.conc, e.perSecond(), lv.conc, ms(e.quantile(0.99)))
		}
	}
	if nw := r.noWait; nw != nil {
		fmt.Fprintf(line, " vigil_c%d_nowait_per_s=%.0f vigil_c%d_nowait_p50_ms=%s vigil_c%d_nowait_p99_ms=%s", nw.conc, nw.perSecond(), nw.conc,
			ms(nw.quantile(0.5)), nw.conc, ms(nw.quantile(0.99)))
	}
}

func first(rs []loadResult) *loadResult {
	if len(rs) == 0 {
		return nil
	}
	return &rs[0]
}

func mosquittoResult(m *gwLoad) *loadResult {
	if m == nil {
		return nil
	}
	return &m.loadResult
}

func (g *gatewayReport) writeConsole(w io.Writer, line *strings.Builder) {
	fmt.Fprintf(w, "### 2. Commit to console\n\n")
	fmt.Fprintf(w, "From an alarm's PUBACK at the device to its alarm_raised event on an operator console's event stream (GET /ui/events, "+
		"signed in as an operator), on each node. A probe device on the leader's broker raises one test alarm at a time and learns its ID "+
		"from the down/reply; the bench waits until every console has shown it. Negative: the console showed the alarm before the device "+
		"heard it was saved (the PUBACK waits for every healthy node to apply the alarm, broker.replica_wait).\n\n")
	fmt.Fprintf(w, "| Run | Console on | Probes shown | PUBACK to event p50 ms | p99 ms | max ms | min ms | publish to event p50 ms | p99 ms | Not shown in %s | Stream reconnects |\n"+
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", consoleWait)
	for _, r := range g.console.runs {
		for _, n := range r.nodes {
			a := n.afterAck
			minv := "NA"
			if len(a) > 0 {
				minv = ms(a[0])
			}
			fmt.Fprintf(w, "| %s | %s (%s) | %d of %d | %s | %s | %s | %s | %s | %s | %d | %d |\n", r.name, n.name, n.role, len(a), r.samples,
				ms(quantile(a, 0.5)), ms(quantile(a, 0.99)), ms(quantile(a, 1)), minv,
				ms(quantile(n.afterSend, 0.5)), ms(quantile(n.afterSend, 0.99)), n.missing, n.reconnects)
		}
	}
	fmt.Fprintf(w, "\n")
	for _, r := range g.console.runs {
		fmt.Fprintf(w, "- %s: the probes' publish-to-PUBACK p50 %s ms, p99 %s ms; %d probes without an alarm ID in their reply.", r.name,
			ms(quantile(r.puback, 0.5)), ms(quantile(r.puback, 0.99)), r.errors)
		if l := r.load; l != nil {
			fmt.Fprintf(w, " The load meanwhile: %.0f alarms/s, p99 %s ms, %d errors.", l.perSecond(), ms(l.quantile(0.99)), l.errors)
		}
		fmt.Fprintf(w, "\n")
	}
	fmt.Fprintf(w, "\n")
	for i, r := range g.console.runs {
		var all []time.Duration
		for _, n := range r.nodes {
			all = append(all, n.afterAck...)
		}
		slices.Sort(all)
		tag := []string{"quiet", "loaded"}[min(i, 1)]
		fmt.Fprintf(line, " console_%s_p50_ms=%s console_%s_p99_ms=%s", tag, ms(quantile(all, 0.5)), tag, ms(quantile(all, 0.99)))
	}
}

func (g *gatewayReport) writeFailover(w io.Writer, line *strings.Builder) {
	f := g.failover
	fmt.Fprintf(w, "### 3. Failover\n\n")
	fmt.Fprintf(w, "Under steady load, SIGKILL of the leader, then a restart of the killed process once the survivors recovered. "+
		"Vigil: %d devices of the simulator raising test alarms back to back, device i on node i mod 3; a device whose broker dies moves "+
		"to the next one and resends its alarm. etcd: %d clients, each on the three members, putting one alarm at a time, a put given up "+
		"after %s and sent again after an error. \"First acknowledged\": from the kill until a write sent after the kill is acknowledged "+
		"(PUBACK; put answered); \"every device\": until each device or client has had one acknowledged. Cluster timing: Vigil's defaults "+
		"(heartbeat and election timeouts 500 ms), etcd's (100 ms heartbeats, 1 s election timeout).\n\n",
		failoverConc, failoverConc, etcdFailoverPutTimeout)
	fmt.Fprintf(w, "| System | Round | Killed | New leader | New leader named after ms | First acknowledged after ms | Every device or client after ms |\n"+
		"|---|--:|---|---|--:|--:|--:|\n")
	for _, s := range []struct {
		name   string
		rounds []peerRound
	}{{"Vigil", f.vigil}, {"etcd", f.etcd}} {
		var leader, firstAck, all []time.Duration
		for i, r := range s.rounds {
			allText := "over " + ms0(r.firstAfter+allRecoveredWait)
			if r.allOK {
				allText = ms0(r.allAfter)
				all = append(all, r.allAfter)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", s.name, i+1, r.killed, r.newLeader, ms0(r.leaderAfter), ms0(r.firstAfter), allText)
			leader, firstAck = append(leader, r.leaderAfter), append(firstAck, r.firstAfter)
		}
		fmt.Fprintf(w, "| **%s median** | | | | %s | %s | %s |\n", s.name, ms0(median(leader)), ms0(median(firstAck)), ms0(median(all)))
	}
	fmt.Fprintf(w, "\nVigil: %d alarms PUBACKed during the phase, %d attempts without PUBACK (resent). etcd: %d puts failed or given up (sent again).\n\n",
		f.vigilAlarms, f.vigilErr, f.etcdErrors)
	v, _ := medianFirst(f.vigil)
	e, _ := medianFirst(f.etcd)
	fmt.Fprintf(line, " failover_etcd_ms=%s failover_vigil_ms=%s", ms0(e), ms0(v))
}

func (g *gatewayReport) writeConns(w io.Writer, line *strings.Builder) {
	fmt.Fprintf(w, "### 4. Connections\n\n")
	fmt.Fprintf(w, "| Process | Devices | Baseline RSS MiB | RSS MiB | KiB per device | MiB per 10,000 | Anonymous RSS MiB: baseline / with devices | "+
		"Live heap + stacks MiB: baseline / with devices | Live KiB per device | Connecting s | Heartbeats PUBACKed/s | CPU %% |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range g.conns {
		for i, s := range r.steps {
			live, perDevice := "", ""
			if k, ok := r.liveKiBPerDevice(i); ok {
				live = fmt.Sprintf("%d / %d", r.baseGC.live+r.baseGC.stacks, s.gc.live+s.gc.stacks)
				perDevice = fmt.Sprintf("%.1f", k)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.1f | %.0f | %s / %s | %s | %s | %.0f | %.0f | %s |\n", r.target, s.devices,
				mib(r.baseline), mib(s.rss), r.kibPerDevice(i), r.mibPer10k(i), mib(r.baseAnon), mib(s.anon), live, perDevice,
				s.connectElapsed.Seconds(), s.hbRate, pct(s.cpu.nodes))
		}
	}
	p := g.plan
	hbMean := (p.idle.heartbeatMin + p.idle.heartbeatMax) / 2
	fmt.Fprintf(w, "\nAll the devices on one process: vigil sim --mode idle child processes (up to %d devices each), a heartbeat QoS 1 on connecting, "+
		"then every %s to %s (mean %s: %.0f/s expected per 10,000 devices). The second row of a process is as many devices as it may hold: "+
		"its open-file limit (%s) less a margin for its own files. Baseline: the median of %d readings of VmRSS after %s idle "+
		"(a Vigil node restarted first); with devices, the median of readings every %s over %s of settling after the last connected "+
		"(cumulative: the second row's devices include the first's). Live heap: from the node's GODEBUG=gctrace=1 lines at the last "+
		"collection (Go lets the heap grow to twice the live heap before it collects, so RSS runs above it). CPU: the process's share of all CPUs while settling.\n\n",
		devicesPerChild, p.idle.heartbeatMin, p.idle.heartbeatMax, hbMean, 10000/hbMean.Seconds(), limitsText(g.conns), baselineSamples,
		p.baselineWait, rssEvery, p.idle.settle)
	for _, r := range g.conns {
		fmt.Fprintf(w, "- %s: heartbeats sent %d, PUBACKed %d, replies ok %d, error %d; failed connection attempts %d, connections lost %d.\n",
			r.target, r.final.Heartbeats, r.final.TelemetryAcked, r.final.TelemetryOK, r.final.TelemetryRefused, r.final.ConnectErrors, r.final.Lost)
	}
	fmt.Fprintf(w, "\n")
	for i, r := range g.conns {
		tag := []string{"vigil", "mosquitto"}[min(i, 1)]
		for j, s := range r.steps {
			fmt.Fprintf(line, " conns_%s_%d_kib_per_device=%.1f", tag, s.devices, r.kibPerDevice(j))
		}
	}
}

func limitsText(rs []connResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s %d", r.target, r.limit))
	}
	return strings.Join(parts, ", ")
}

func (g *gatewayReport) writeGrow(w io.Writer, line *strings.Builder) {
	r := g.grow
	fmt.Fprintf(w, "### 6. How cost grows\n\n")
	fmt.Fprintf(w, "Fleets of growing size on the three nodes (device i on node i mod 3): up to %d of the bench's own devices raise test alarms at a "+
		"set total rate, open loop (the k-th alarm is due at k/rate s on device k mod n, whatever became of the earlier ones; at most %d "+
		"awaiting their PUBACK per device, past which the bench holds back), the rest are idle devices of the simulator sending heartbeats "+
		"every %s to %s. %s of warm-up, then %s measured per rate; latency is publish to PUBACK of the alarms sent in that time, "+
		"PUBACKs/s those received in it. A rate is kept up with when PUBACKs reach %.0f%% of it and none is lost; "+
		"once PUBACKs fall below %.0f%% of a rate, the fleet is past its bend and its higher rates are not run.\n\n",
		growAlarmDevices, growInflightPerDevice, g.plan.idle.heartbeatMin, g.plan.idle.heartbeatMax, g.plan.warmup, r.dur, 100*growKeepsUp, 100*growGaveUp)
	fmt.Fprintf(w, "| Devices connected | Raising alarms | Alarms/s asked | sent/s | PUBACKs/s | p50 ms | p99 ms | max ms | Lost | Refused | "+
		"CPU: machine %% | nodes %% | bench %% | Kept up |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, c := range r.cells {
		if c.skipped {
			fmt.Fprintf(w, "| %d | %d | %.0f | | | | | | | | | | | not run: below %.0f%% of a lower rate |\n", c.devices, c.alarmDevices, c.offered, 100*growGaveUp)
			continue
		}
		kept := "yes"
		if !c.sustained() {
			kept = "**no**"
		}
		if c.heldBack {
			kept += " (held back)"
		}
		fmt.Fprintf(w, "| %d | %d | %.0f | %.0f | %.0f | %s | %s | %s | %d | %d | %s | %s | %s | %s |\n", c.devices, c.alarmDevices, c.offered,
			c.sentRate, c.ackRate, ms(quantile(c.lat, 0.5)), ms(quantile(c.lat, 0.99)), ms(quantile(c.lat, 1)), c.lost, c.refused,
			pct(c.cpu.busy), pct(c.cpu.nodes), pct(c.cpu.self), kept)
	}
	if r.crash != "" {
		fmt.Fprintf(w, "\n**A node crashed during this part, which stopped there** (the run's data and logs are kept):\n\n```\n%s\n```\n", r.crash)
	}
	fmt.Fprintf(w, "\nWhere it bends:\n\n")
	for _, size := range uniqueDevices(r.cells) {
		var cells []growCell
		for _, c := range r.cells {
			if c.devices == size {
				cells = append(cells, c)
			}
		}
		best := -1
		for i, c := range cells {
			if c.sustained() {
				best = i
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "- %d devices connected: ", size)
		if best < 0 {
			b.WriteString("no rate measured was kept up with")
		} else {
			fmt.Fprintf(&b, "kept up with %.0f alarms/s (p99 %s ms)", cells[best].offered, ms(quantile(cells[best].lat, 0.99)))
		}
		if best+1 < len(cells) {
			n := cells[best+1]
			fmt.Fprintf(&b, "; at %.0f/s asked it PUBACKed %.0f/s, p99 %s ms", n.offered, n.ackRate, ms(quantile(n.lat, 0.99)))
		} else {
			b.WriteString(", the highest rate measured")
		}
		var missed []string
		for _, c := range cells[:max(best, 0)] {
			if !c.sustained() {
				missed = append(missed, fmt.Sprintf("%.0f/s (PUBACKed %.0f/s, p99 %s ms)", c.offered, c.ackRate, ms(quantile(c.lat, 0.99))))
			}
		}
		if len(missed) > 0 {
			fmt.Fprintf(&b, "; lower rates missed: %s", strings.Join(missed, ", "))
		}
		fmt.Fprintf(w, "%s.\n", b.String())
		kept := 0.0
		if best >= 0 {
			kept = cells[best].offered
		}
		fmt.Fprintf(line, " grow_%d_kept_up_per_s=%.0f", size, kept)
	}
	fmt.Fprintf(w, "\n")
}

func uniqueDevices(cells []growCell) []int {
	var out []int
	for _, c := range cells {
		if !slices.Contains(out, c.devices) {
			out = append(out, c.devices)
		}
	}
	return out
}

// writeProvisioning prints the cost of provisioning the devices.
func (g *gatewayReport) writeProvisioning(w io.Writer, line *strings.Builder) {
	p := g.prov
	if p.devices == 0 {
		return
	}
	fmt.Fprintf(w, "### Provisioning the devices\n\n")
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
	fmt.Fprintf(w, "%d requests were retried (no reply, 503 or 504).\n\n", p.retries)
	fmt.Fprintf(line, " provision_devices=%d provision_s=%.1f provision_seq_ms=%s", p.devices, p.total().Seconds(), ms(p.seqPerDevice()))
}
