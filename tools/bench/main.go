// Command bench measures a three-node Vigil cluster on this machine, side
// by side with the peers a user would pick instead: Mosquitto and etcd;
// make bench runs it.
//
// Performance claims here are ratios measured in one run on the same
// machine, because the machines it runs on are shared and noisy. It
// answers what an installer and a reviewer ask of an alarm receiver, in
// the numbering:
//
//  1. durable alarm ingest: publish-to-PUBACK latency and throughput of
//     QoS 1 alarms from 1, 16, 256 and 1,024 simulated devices on Vigil,
//     the same load on Mosquitto (the floor for broker overhead: it
//     replicates nothing and syncs nothing), and one put per alarm on a
//     three-member etcd cluster (the nearest peer with the same
//     durability), with Vigil/peer ratios (ingest.go);
//  2. commit to console: from an alarm's PUBACK to its event on each
//     node's operator console stream (console.go);
//  3. failover: under steady load, SIGKILL of the leader until alarms are
//     acknowledged again, and the same for etcd's leader
//     (failover_alarm.go);
//  4. connections: one node's memory with 10,000 idle devices sending
//     heartbeats, and with as many as one process may hold, and
//     Mosquitto's (conns.go);
//  5. the floor: this disk's fsync latency (measure.go);
//  6. how cost grows: latency as the fleet (1,000 to 15,000 devices) and
//     the alarm rate (10 to 10,000 per second) grow (grow.go);
//  7. the cost of TLS: per CONNECT and per alarm, MQTT over TLS beside
//     plain MQTT (tlscost.go);
//
// and, from before the comparison, the commit path through the HTTP API
// (commits of 1 KB records at 1, 16 and 256 clients, failover, disk use)
// and the cost of provisioning devices.
//
// -only names the parts to run: cluster (the HTTP commit path), and the
// gateway's console, ingest, failover, grow, conns and tls (gateway: all
// six); and hostile, which runs only when named: issue 16's hostile
// input sent to one node, with its memory, the API's latency and a
// legitimate device's alarms measured meanwhile (hostile.go).
//
// The nodes are real vigil serve processes (the binary given by -vigil) on
// 127.0.0.1 with temporary data directories, and the peers real mosquitto
// and etcd processes; loopback hides the network, and the bench's load
// shares the CPUs with what it measures.
//
// The report is markdown on stdout, ending with one line of key=value figures
// for scripts; progress goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/broker"
)

// The plan of a full run and of a -quick one.
const (
	fsyncSamples      = 2000
	fsyncSamplesQuick = 300
	idleDuration      = 5 * time.Second
	idleDurationQuick = 2 * time.Second
	loadDuration      = 10 * time.Second
	loadDurationQuick = 3 * time.Second
	warmup            = time.Second
	warmupQuick       = 500 * time.Millisecond
	failoverRounds    = 3
	startTimeout      = 60 * time.Second
)

// concurrencies are the numbers of clients sending to the leader.
var concurrencies = []int{1, 16, 256}

type options struct {
	vigil       string
	quick       bool
	duration    time.Duration
	keep        bool
	dir         string
	only        string          // -only as given
	parts       map[string]bool // the parts to run
	pprofDir    string          // where to save the nodes' profiles; "" for none
	replicaWait string          // broker.replica_wait of the gateway's nodes; "" for their default
	growDevices string          // overrides the fleet sizes of the cost growth, "1000,5000"
	growRates   string          // overrides its alarm rates, "10,100"
	idleDevices int             // overrides the gateway's idle devices
	settle      time.Duration   // overrides the gateway's settling time
	heartbeat   string          // overrides the idle devices' heartbeat interval, "min-max"
}

// The parts -only may name: the cluster section, each part of the gateway
// section (gateway.go), or gateway for all of those; and the hostile input
// (hostile.go), which runs only when named.
const (
	partCluster = "cluster"
	partGateway = "gateway"
)

// parseParts parses -only: a comma-separated list of parts, empty for all.
func parseParts(only string) (map[string]bool, error) {
	all := append([]string{partCluster}, gatewayParts...)
	valid := append(slices.Clone(all), partHostile)
	parts := map[string]bool{}
	if strings.TrimSpace(only) == "" {
		for _, p := range all {
			parts[p] = true
		}
		return parts, nil
	}
	for p := range strings.SplitSeq(only, ",") {
		switch p = strings.TrimSpace(p); {
		case p == partGateway:
			for _, g := range gatewayParts {
				parts[g] = true
			}
		case slices.Contains(valid, p):
			parts[p] = true
		default:
			return nil, fmt.Errorf("unknown part %q: want %s or %s", p, strings.Join(valid, ", "), partGateway)
		}
	}
	return parts, nil
}

// parseList parses a comma-separated list of positive numbers; "" is nil.
func parseList[T int | float64](s string, parse func(string) (T, error)) ([]T, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []T
	for f := range strings.SplitSeq(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		if v <= 0 {
			return nil, fmt.Errorf("%v: want a positive number", v)
		}
		out = append(out, v)
	}
	return out, nil
}

// anyGateway reports whether parts holds a part of the gateway section or
// the hostile input, which runs on the gateway's cluster.
func anyGateway(parts map[string]bool) bool {
	return parts[partHostile] || slices.ContainsFunc(gatewayParts, func(p string) bool { return parts[p] })
}

func main() {
	o := options{}
	flag.StringVar(&o.vigil, "vigil", "", "`path` of the vigil binary to run (required)")
	flag.BoolVar(&o.quick, "quick", false, "a short run: fewer fsync samples, 3 s per load level, one failover")
	flag.DurationVar(&o.duration, "duration", 0, "measured `time` of each load level (default 10s, 3s with -quick)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories and node logs")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "`directory` to create the data directories in; its disk is the one measured")
	flag.StringVar(&o.only, "only", "", "run only these comma-separated `parts`: cluster (HTTP commit path, failover, disk), "+
		"console, ingest, failover, grow, conns, tls, or gateway (all but cluster and hostile); hostile (issue 16's cases) runs only when named")
	flag.IntVar(&o.idleDevices, "idle-devices", 0, "`number` of idle devices for the connections' memory figure (default 10000, 2000 with -quick)")
	flag.DurationVar(&o.settle, "settle", 0, "`time` the idle devices run before the memory is read (default 60s, 10s with -quick)")
	flag.StringVar(&o.pprofDir, "pprof", "", "save CPU and heap profiles of the gateway's nodes in `directory`")
	flag.StringVar(&o.growDevices, "grow-devices", "", "comma-separated fleet `sizes` of the cost growth (default 1000,5000,15000; 1000 with -quick)")
	flag.StringVar(&o.growRates, "grow-rates", "", "comma-separated alarm `rates` per second of the cost growth (default 10,100,300,1000,3000,10000)")
	flag.StringVar(&o.replicaWait, "replica-wait", "", "broker.replica_wait of the gateway's nodes, such as 0 to PUBACK on quorum alone (default: the nodes' default)")
	flag.StringVar(&o.heartbeat, "heartbeat", "", "`min-max` interval of the idle devices' heartbeats, such as 30s-60s (the default)")
	flag.Parse()
	usage := "usage: bench -vigil PATH [-quick] [-only PART,...] [-duration D] [-idle-devices N] [-settle D] [-heartbeat MIN-MAX] [-grow-devices N,...] [-grow-rates R,...] [-replica-wait D] [-pprof DIR] [-keep] [-dir DIR]"
	if o.vigil == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	parts, err := parseParts(o.only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -only: %v\n%s\n", err, usage)
		os.Exit(2)
	}
	o.parts = parts
	if _, _, err := parseInterval(o.heartbeat); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -heartbeat %q: %v\n%s\n", o.heartbeat, err, usage)
		os.Exit(2)
	}
	if _, err := parseList(o.growDevices, strconv.Atoi); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -grow-devices %q: %v\n%s\n", o.growDevices, err, usage)
		os.Exit(2)
	}
	if _, err := parseList(o.growRates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -grow-rates %q: %v\n%s\n", o.growRates, err, usage)
		os.Exit(2)
	}
	if d, err := time.ParseDuration(o.replicaWait); o.replicaWait != "" && (err != nil || d < 0) {
		fmt.Fprintf(os.Stderr, "bench: -replica-wait %q: want a duration, 0 or more\n%s\n", o.replicaWait, usage)
		os.Exit(2)
	}
	if o.idleDevices < 0 || o.settle < 0 {
		fmt.Fprintf(os.Stderr, "bench: -idle-devices and -settle must not be negative\n%s\n", usage)
		os.Exit(2)
	}

	// The nodes run in their own process group, so a Ctrl-C reaches only
	// the bench. It ends the context, and run stops the nodes before it
	// returns; further signals are ignored until then.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout)
	stop()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "bench: interrupted; the nodes are stopped")
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// report holds every figure of a run.
type report struct {
	machine   machine
	fsync     []time.Duration
	idle      cpuUse // the cluster with no clients
	idleFor   time.Duration
	loads     []loadResult
	failovers []failoverRound
	failLog   *commitLog
	disk      []diskRow
	applied   uint64 // log index applied when the disk was measured
	snapshot  uint64 // index of the last snapshot then
	gateway   *gatewayReport
}

type diskRow struct {
	when, node, dir string
	use             diskUse
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	vigil, err := filepath.Abs(o.vigil)
	if err != nil {
		return err
	}
	if _, err := os.Stat(vigil); err != nil {
		return fmt.Errorf("-vigil: %w (make build makes bin/vigil)", err)
	}

	root, err := os.MkdirTemp(o.dir, "vbench-")
	if err != nil {
		return fmt.Errorf("cannot create the bench directory: %w", err)
	}
	defer func() {
		switch {
		case o.keep:
			progress("data directories and node logs kept in %s", root)
		case err != nil && ctx.Err() == nil:
			progress("the run failed: data directories and logs kept in %s for a look", root)
		default:
			os.RemoveAll(root)
		}
	}()

	rep := &report{machine: describeMachine(vigil, root)}
	rep.machine.during = startLoadSampler()
	defer rep.machine.during.finish()
	// finishMachine closes the machine's figures before the report.
	finishMachine := func() {
		rep.machine.during.finish()
		rep.machine.loadAfter = loadAvg()
		rep.machine.elapsed = time.Since(started)
	}
	// The nodes and idle devices run a copy of the binary under a name of
	// its own: on a shared machine, someone's pkill vigil must not take the
	// bench's nodes down in the middle of a run.
	if vigil, err = copyBinary(vigil, filepath.Join(root, benchBinary)); err != nil {
		return err
	}
	fsyncN := fsyncSamples
	if o.quick {
		fsyncN = fsyncSamplesQuick
	}
	progress("measuring the fsync floor in %s (%d samples)", root, fsyncN)
	if rep.fsync, err = fsyncFloor(ctx, root, fsyncN); err != nil {
		return err
	}

	if o.parts[partCluster] {
		if err := rep.runCluster(ctx, o, vigil, root); err != nil {
			return err
		}
	}
	if anyGateway(o.parts) {
		dir := filepath.Join(root, "gateway")
		rep.gateway, err = runGateway(ctx, vigil, dir, newGatewayPlan(o))
		if err != nil && rep.gateway != nil && ctx.Err() == nil {
			// Print what was measured before the failure.
			finishMachine()
			rep.write(out)
		}
		if err != nil {
			return err
		}
	}
	finishMachine()
	rep.write(out)
	if g := rep.gateway; g != nil && g.grow != nil && g.grow.crash != "" {
		return errors.New("a node crashed during the cost growth (see the report)")
	}
	return nil
}

// runCluster measures the commit path through the HTTP API: commits at
// each concurrency, failover and disk use, on a cluster in root.
func (rep *report) runCluster(ctx context.Context, o options, vigil, root string) error {
	idle, dur, warm, rounds := idleDuration, loadDuration, warmup, failoverRounds
	if o.quick {
		idle, dur, warm, rounds = idleDurationQuick, loadDurationQuick, warmupQuick, 1
	}
	if o.duration > 0 {
		dur = o.duration
	}
	c, err := newLocalCluster(vigil, root)
	if err != nil {
		return err
	}
	defer c.stop()
	progress("starting three nodes; logs in %s/node*.log", root)
	if err := c.startAll(ctx); err != nil {
		return err
	}

	progress("idle: measuring the nodes' CPU use with no clients for %s", idle)
	a := sampleCPU(c.pids())
	if err := sleep(ctx, idle); err != nil {
		return err
	}
	rep.idle, rep.idleFor = cpuBetween(a, sampleCPU(c.pids())), idle

	p := newPoster(slices.Max(concurrencies), c.apiToken)
	for _, conc := range concurrencies {
		leader, err := c.waitLeader(ctx, startTimeout)
		if err != nil {
			return err
		}
		progress("load: %d clients to the leader (%s) for %s", conc, leader.name, dur)
		r, err := runLoad(ctx, p, "leader ("+leader.name+")", leader.httpAddr, conc, warm, dur, c.pids())
		if err != nil {
			return err
		}
		rep.loads = append(rep.loads, r)
		if err := c.exited(); err != nil {
			return err
		}
	}
	leader, err := c.waitLeader(ctx, startTimeout)
	if err != nil {
		return err
	}
	follower := c.others(leader)[0]
	progress("load: %d clients to a follower (%s) for %s", failoverConc, follower.name, dur)
	r, err := runLoad(ctx, p, "follower ("+follower.name+"), forwarded", follower.httpAddr, failoverConc, warm, dur, c.pids())
	if err != nil {
		return err
	}
	rep.loads = append(rep.loads, r)

	progress("failover: %d clients to all nodes; killing the leader %d time(s)", failoverConc, rounds)
	rep.failovers, rep.failLog, err = runFailover(ctx, c, p, rounds, warm)
	if err != nil {
		return err
	}

	if st, err := c.nodeStatus(ctx, c.nodes[0]); err == nil {
		rep.applied, rep.snapshot = st.AppliedIndex, st.LastSnapshot
	}
	if err := rep.measureDisk(c, "running"); err != nil {
		return err
	}
	progress("stopping the nodes")
	c.stop()
	if err := rep.measureDisk(c, "stopped"); err != nil {
		return err
	}
	return nil
}

// benchBinary is the name of the bench's copy of the vigil binary.
const benchBinary = "vbnode"

// copyBinary copies the executable src to dst and returns dst.
func copyBinary(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("cannot copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("cannot copy %s: %w", src, err)
	}
	return dst, out.Close()
}

// started is when the bench started, for the progress lines.
var started = time.Now()

// progress prints a progress line on stderr, with the minutes and seconds
// since the start.
func progress(format string, a ...any) {
	el := time.Since(started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "bench %02d:%02d: "+format+"\n", append([]any{int(el.Minutes()), int(el.Seconds()) % 60}, a...)...)
}

func (rep *report) measureDisk(c *localCluster, when string) error {
	for _, n := range c.nodes {
		for _, dir := range []string{"raft", "state"} {
			u, err := measureDiskUse(filepath.Join(n.dataDir, dir))
			if err != nil {
				return err
			}
			rep.disk = append(rep.disk, diskRow{when: when, node: n.name, dir: dir + "/", use: u})
		}
	}
	return nil
}

// write prints the report as markdown, then the summary lines.
func (rep *report) write(w io.Writer) {
	m := rep.machine
	g := rep.gateway
	fmt.Fprintf(w, "## Vigil benchmark, side by side with Mosquitto and etcd\n\n")
	fmt.Fprintf(w, "| Machine | |\n|---|---|\n")
	fmt.Fprintf(w, "| CPU | %s, %d logical CPUs |\n", m.cpuModel, m.cpus)
	fmt.Fprintf(w, "| Kernel | %s |\n", m.kernel)
	fmt.Fprintf(w, "| Go (bench) | %s |\n", m.goVersion)
	fmt.Fprintf(w, "| vigil | %s |\n", m.vigil)
	if g != nil && g.ingest != nil {
		fmt.Fprintf(w, "| Peers | %s; %s (client go.etcd.io/etcd/client/v3 %s) |\n", g.ingest.mosquittoVersion, g.ingest.etcdVersion, etcdClientVersion())
	}
	if g != nil {
		rw := "the nodes' default (" + broker.DefaultReplicaWait.String() + ")"
		if g.plan.replicaWait != "" {
			rw = g.plan.replicaWait
		}
		fmt.Fprintf(w, "| Gateway nodes' broker.replica_wait | %s |\n", rw)
	}
	fmt.Fprintf(w, "| Memory | %s |\n", m.memory)
	fmt.Fprintf(w, "| Data directory | %s (%s on %s) |\n", m.dataDir, m.fsType, m.disk)
	fmt.Fprintf(w, "| Load average before / after | %s / %s |\n", m.loadBefore, m.loadAfter)
	fmt.Fprintf(w, "| Load average during the run | %s |\n", m.during)
	fmt.Fprintf(w, "| Run took | %s |\n\n", m.elapsed.Round(time.Second))
	fmt.Fprintf(w, "Everything runs on 127.0.0.1: the load generators share these CPUs with the systems they measure, "+
		"and other work on the machine raises every latency. Compare figures within this run only.\n\n")

	var detail strings.Builder
	detail.WriteString("bench-detail:")
	if g != nil {
		g.writeGoals(w)
	}
	rep.writeFloor(w, &detail)
	if g != nil {
		g.write(w, &detail)
	}
	if len(rep.loads) > 0 {
		rep.writeCluster(w, &detail)
	}
	if g != nil {
		g.writeProvisioning(w, &detail)
	}
	if g != nil && g.tls != nil {
		fmt.Fprintln(w, tlsSummaryLine(g.tls))
	}
	if g != nil && g.hostile != nil {
		fmt.Fprintln(w, hostileSummaryLine(g.hostile))
	}
	fmt.Fprintln(w, detail.String())
	fmt.Fprintln(w, summaryLine(g))
}

// writeFloor prints the disk's fsync latency (5. the floor).
func (rep *report) writeFloor(w io.Writer, line *strings.Builder) {
	f := rep.fsync
	if len(f) == 0 {
		return
	}
	fmt.Fprintf(w, "### 5. The floor: this disk's fsync\n\n")
	fmt.Fprintf(w, "| Append 1 KiB + fsync | Samples | Syncs/s | p50 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|--:|\n")
	fmt.Fprintf(w, "| %s (%s) | %d | %.0f | %s | %s | %s |\n\n", rep.machine.dataDir, rep.machine.fsType,
		len(f), float64(len(f))/sum(f).Seconds(), ms(quantile(f, 0.5)), ms(quantile(f, 0.99)), ms(f[len(f)-1]))
	fmt.Fprintf(w, "A durable write waits for at least two of these in series: the leader's log, then a follower's (etcd and Vigil alike).\n\n")
	fmt.Fprintf(line, " fsync_p50_ms=%s fsync_p99_ms=%s", ms(quantile(f, 0.5)), ms(quantile(f, 0.99)))
}

// writeCluster prints the commit path's tables and adds its figures to
// the summary line.
func (rep *report) writeCluster(w io.Writer, line *strings.Builder) {
	fmt.Fprintf(w, "### The commit path through the HTTP API\n\n")
	fmt.Fprintf(w, "A cluster of its own: 1 KB records through POST /api/v1/diag/records, answered once a quorum has the command on disk and the leader has applied it. "+
		"The CPU columns are shares of all CPUs while measuring: the whole machine, the three nodes, the bench's clients; "+
		"then the three nodes' CPU time per commit.\n\n")
	fmt.Fprintf(w, "| Measurement | Clients | Ops/s | p50 ms | p99 ms | max ms | Errors | CPU: machine %% | nodes %% | bench %% | nodes ms/commit |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	fmt.Fprintf(w, "| idle cluster, no clients, %s | 0 | | | | | | %s | %s | %s | |\n", rep.idleFor, pct(rep.idle.busy), pct(rep.idle.nodes), pct(rep.idle.self))
	for _, r := range rep.loads {
		fmt.Fprintf(w, "| commit 1 KB to %s, %s | %d | %.0f | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			r.name, r.elapsed, r.conc, r.perSecond(), ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(1)), r.errors,
			pct(r.cpu.busy), pct(r.cpu.nodes), pct(r.cpu.self), ms(r.cpuPerCommit()))
	}

	fmt.Fprintf(w, "\n| Failover | Killed leader | New leader | Leader reported after ms | First commit after ms | Killed node caught up after restart ms | Crashes on restart |\n|---|---|---|--:|--:|--:|--:|\n")
	var leaderAfter, commitAfter []time.Duration
	for i, r := range rep.failovers {
		fmt.Fprintf(w, "| round %d | %s | %s | %s | %s | %s | %d |\n", i+1, r.killed, r.newLeader, ms0(r.leaderAfter), ms0(r.commitAfter), ms0(r.rejoinAfter), r.restartCrashes)
		leaderAfter, commitAfter = append(leaderAfter, r.leaderAfter), append(commitAfter, r.commitAfter)
	}
	fmt.Fprintf(w, "| **median** | | | %s | %s | | |\n", ms0(median(leaderAfter)), ms0(median(commitAfter)))
	if l := rep.failLog; l != nil {
		fmt.Fprintf(w, "\n%d clients, retrying on the next node after a connection error, 503 or 504; %d commits during the phase, %d other errors. "+
			"\"First commit\" is the first 201 from a survivor for a log index past the survivors' logs at the kill.\n", failoverConc, l.total, l.errors)
	}

	fmt.Fprintf(w, "\nDisk use after %d log entries (last snapshot at %d), measured while the nodes run and after they stop:\n", rep.applied, rep.snapshot)
	fmt.Fprintf(w, "\n| Disk use | Node | Dir | Files | Apparent MiB | Allocated MiB | of which *.mem apparent / allocated MiB |\n|---|---|---|--:|--:|--:|--:|\n")
	for _, d := range rep.disk {
		u := d.use
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s / %s |\n", d.when, d.node, d.dir, u.files, mib(u.apparent), mib(u.allocated), mib(u.memApparent), mib(u.memAllocated))
	}
	fmt.Fprintf(w, "\nBadger's memtable logs (*.mem) are sparse: created at their full size, allocated as they fill.\n\n")

	for _, r := range rep.loads[:len(concurrencies)] {
		fmt.Fprintf(line, " http_c%d_tput=%.0f http_c%d_p50_ms=%s http_c%d_p99_ms=%s", r.conc, r.perSecond(), r.conc, ms(r.quantile(0.5)), r.conc, ms(r.quantile(0.99)))
	}
	fmt.Fprintf(line, " http_failover_ms=%s", ms0(median(commitAfter)))
}

func ms(d time.Duration) string  { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
func ms0(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }
func pct(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", 100*f)
}
func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func sum(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

// median returns the middle value, or the mean of the two middle values.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
