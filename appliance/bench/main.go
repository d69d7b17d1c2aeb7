// Command bench measures a three-node Vigil cluster on this machine; make
// bench runs it.
//
// It answers what an installer and a reviewer ask of an alarm receiver: how
// many commands per second can the cluster commit, how long does one take,
// and for how long are alarms refused when the leader appliance dies? In
// order, it measures:
//
//   - the floor: this disk's latency for appending 1 KiB and syncing it. Every
//     commit pays it at least twice in series, as the leader and then a
//     follower sync the entry to their Raft logs;
//   - commit throughput and latency of 1 KB commands (POST
//     /api/v1/diag/records, answered 201 once a quorum has the command on
//     disk and the leader has applied it) with 1, 16 and 256 concurrent
//     clients sending to the leader, and 16 sending to a follower, which
//     forwards to the leader;
//   - failover: under steady load from clients that retry on any node, the
//     time from SIGKILL of the leader until the next commit is answered, and
//     until a survivor reports the new leader; three times, restarting the
//     killed node in between;
//   - the disk used by each node's Raft log (raft/) and state (state/);
//   - the device gateway, on a cluster of its own (gateway.go): the time to
//     provision devices with secrets, publish-to-PUBACK latency of alarms
//     from 1, 100 and 1,000 MQTT devices, and each node's memory with
//     20,000 idle devices sending heartbeats.
//
// -only cluster or -only gateway runs one part.
//
// The nodes are real vigil serve processes (the binary given by -vigil) on
// 127.0.0.1 with temporary data directories, so the figures include HTTP,
// JSON, forwarding and both Badger databases, as an appliance sees them; but
// loopback hides the network, and the bench shares the CPU with the nodes.
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
	"strings"
	"syscall"
	"time"
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
	only        string        // "", "cluster" or "gateway"
	idleDevices int           // overrides the gateway's idle devices
	settle      time.Duration // overrides the gateway's settling time
	heartbeat   string        // overrides the idle devices' heartbeat interval, "min-max"
}

// The parts -only may name.
const (
	partCluster = "cluster"
	partGateway = "gateway"
)

func main() {
	o := options{}
	flag.StringVar(&o.vigil, "vigil", "", "`path` of the vigil binary to run (required)")
	flag.BoolVar(&o.quick, "quick", false, "a short run: fewer fsync samples, 3 s per load level, one failover")
	flag.DurationVar(&o.duration, "duration", 0, "measured `time` of each load level (default 10s, 3s with -quick)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories and node logs")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "`directory` to create the data directories in; its disk is the one measured")
	flag.StringVar(&o.only, "only", "", "run only one `part`: cluster (commit path, failover, disk) or gateway (devices over MQTT)")
	flag.IntVar(&o.idleDevices, "idle-devices", 0, "`number` of idle devices for the gateway's memory figure (default 20000, 2000 with -quick)")
	flag.DurationVar(&o.settle, "settle", 0, "`time` the idle devices run before the nodes' memory is read (default 60s, 20s with -quick)")
	flag.StringVar(&o.heartbeat, "heartbeat", "", "`min-max` interval of the idle devices' heartbeats, such as 30s-60s (the default)")
	flag.Parse()
	usage := "usage: bench -vigil PATH [-quick] [-only cluster|gateway] [-duration D] [-idle-devices N] [-settle D] [-heartbeat MIN-MAX] [-keep] [-dir DIR]"
	if o.vigil == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if o.only != "" && o.only != partCluster && o.only != partGateway {
		fmt.Fprintf(os.Stderr, "bench: -only %q: want %s or %s\n%s\n", o.only, partCluster, partGateway, usage)
		os.Exit(2)
	}
	if _, _, err := parseInterval(o.heartbeat); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -heartbeat %q: %v\n%s\n", o.heartbeat, err, usage)
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
	err := run(ctx, o, os.Stdout)
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

func run(ctx context.Context, o options, out io.Writer) error {
	vigil, err := filepath.Abs(o.vigil)
	if err != nil {
		return err
	}
	if _, err := os.Stat(vigil); err != nil {
		return fmt.Errorf("-vigil: %w (make build makes bin/vigil)", err)
	}

	root, err := os.MkdirTemp(o.dir, "vigil-bench-")
	if err != nil {
		return fmt.Errorf("cannot create the bench directory: %w", err)
	}
	defer func() {
		if o.keep {
			progress("data directories and node logs kept in %s", root)
			return
		}
		os.RemoveAll(root)
	}()

	rep := &report{machine: describeMachine(vigil, root)}

	if o.only != partGateway {
		if err := rep.runCluster(ctx, o, vigil, root); err != nil {
			return err
		}
	}
	if o.only != partCluster {
		dir := filepath.Join(root, "gateway")
		if rep.gateway, err = runGateway(ctx, vigil, dir, newGatewayPlan(o)); err != nil {
			return err
		}
	}
	rep.machine.loadAfter = loadAvg()
	rep.write(out)
	return nil
}

// runCluster measures the commit path: the fsync floor, commits at each
// concurrency, failover and disk use, on a cluster in root.
func (rep *report) runCluster(ctx context.Context, o options, vigil, root string) error {
	var err error
	fsyncN, idle, dur, warm, rounds := fsyncSamples, idleDuration, loadDuration, warmup, failoverRounds
	if o.quick {
		fsyncN, idle, dur, warm, rounds = fsyncSamplesQuick, idleDurationQuick, loadDurationQuick, warmupQuick, 1
	}
	if o.duration > 0 {
		dur = o.duration
	}

	progress("measuring the fsync floor in %s (%d samples)", root, fsyncN)
	if rep.fsync, err = fsyncFloor(ctx, root, fsyncN); err != nil {
		return err
	}

	c, err := newLocalCluster(vigil, root)
	if err != nil {
		return err
	}
	defer c.stop()
	progress("starting three nodes; logs in %s/node*.log", root)
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			return err
		}
	}
	if _, err := c.waitLeader(ctx, startTimeout); err != nil {
		return errors.Join(err, c.exited())
	}

	progress("idle: measuring the nodes' CPU use with no clients for %s", idle)
	a := sampleCPU(c.pids())
	if err := sleep(ctx, idle); err != nil {
		return err
	}
	rep.idle, rep.idleFor = cpuBetween(a, sampleCPU(c.pids())), idle

	p := newPoster(slices.Max(concurrencies))
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

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
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

// write prints the report as markdown, then the summary line.
func (rep *report) write(w io.Writer) {
	m := rep.machine
	fmt.Fprintf(w, "## Vigil cluster benchmark\n\n")
	fmt.Fprintf(w, "| Machine | |\n|---|---|\n")
	fmt.Fprintf(w, "| CPU | %s, %d logical CPUs |\n", m.cpuModel, m.cpus)
	fmt.Fprintf(w, "| Kernel | %s |\n", m.kernel)
	fmt.Fprintf(w, "| Go (bench) | %s |\n", m.goVersion)
	fmt.Fprintf(w, "| vigil | %s |\n", m.vigil)
	fmt.Fprintf(w, "| Data directory | %s (%s) |\n", m.dataDir, m.fsType)
	fmt.Fprintf(w, "| Load average before / after | %s / %s |\n\n", m.loadBefore, m.loadAfter)
	fmt.Fprintf(w, "The bench's clients and the three nodes share these CPUs, and other work on the machine raises every latency.\n\n")

	var line strings.Builder
	fmt.Fprintf(&line, "bench:")
	if len(rep.fsync) > 0 {
		rep.writeCluster(w, &line)
	}
	if rep.gateway != nil {
		rep.gateway.write(w)
		line.WriteString(rep.gateway.summary())
	}
	fmt.Fprintln(w, line.String())
}

// writeCluster prints the commit path's tables and adds its figures to
// the summary line.
func (rep *report) writeCluster(w io.Writer, line *strings.Builder) {
	fmt.Fprintf(w, "The CPU columns are shares of all CPUs while measuring: the whole machine, the three nodes, the bench's clients; "+
		"then the three nodes' CPU time per commit.\n\n")
	fmt.Fprintf(w, "| Measurement | Clients | Ops/s | p50 ms | p99 ms | max ms | Errors | CPU: machine %% | nodes %% | bench %% | nodes ms/commit |\n"+
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	f := rep.fsync
	fmt.Fprintf(w, "| fsync floor: append 1 KiB + fsync, %d samples | 1 | %.0f | %s | %s | %s | 0 | | | | |\n",
		len(f), float64(len(f))/sum(f).Seconds(), ms(quantile(f, 0.5)), ms(quantile(f, 0.99)), ms(f[len(f)-1]))
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

	fmt.Fprintf(line, " fsync_p50_ms=%s fsync_p99_ms=%s", ms(quantile(f, 0.5)), ms(quantile(f, 0.99)))
	for _, r := range rep.loads[:len(concurrencies)] {
		fmt.Fprintf(line, " c%d_tput=%.0f c%d_p50_ms=%s c%d_p99_ms=%s", r.conc, r.perSecond(), r.conc, ms(r.quantile(0.5)), r.conc, ms(r.quantile(0.99)))
	}
	fmt.Fprintf(line, " failover_ms=%s", ms0(median(commitAfter)))
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
