package chaos

// A run: the network, three nodes, the device load and the operator, the
// schedule of faults, then the check.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

// Defaults and figures of a run.
const (
	// DefaultFaults is the length of the short schedule, a few minutes.
	DefaultFaults = 10
	// devicePrefix begins the IDs of everything the run provisions.
	devicePrefix = "cx"
	// warmupAlarms is how many alarms must be acked before the first fault.
	warmupAlarms = 20
	// warmupTimeout bounds the warm-up.
	warmupTimeout = 2 * time.Minute
	// quiesce is how long the harness waits once the load has stopped, so
	// that every deadline due by then has fired: a session started last
	// runs out after ExpiringSession plus Grace, and an alarm raised last
	// has its second acknowledgement deadline after 40 s.
	quiesce = monitoring.AckTarget2 + 10*time.Second
	// convergeTimeout bounds the wait for every node to reach the same
	// applied index once the cluster is quiet.
	convergeTimeout = 2 * time.Minute
	// removeTimeout bounds the removal of a wiped node from the membership.
	removeTimeout = time.Minute
	// logLines is how much of each node's log a failed run prints.
	logLines = 40
	// slowRecovery is a recovery long enough for the log to say what it
	// waited for.
	slowRecovery = 5 * time.Second
)

// Options configure a run.
type Options struct {
	// Vigil is the path of the vigil executable the nodes run.
	Vigil string
	// Seed chooses the faults, their targets and times, and the load.
	Seed uint64
	// Faults is the number of faults; 0 means DefaultFaults.
	Faults int
	// Kinds restricts the faults to these kinds; empty means all.
	Kinds []Kind
	// Devices is the number of simulated devices; 0 means DefaultDevices.
	Devices int
	// AlarmEvery is the mean time between alarms of one alarm device; 0
	// means DefaultAlarmEvery.
	AlarmEvery time.Duration
	// Subnet is the first three octets of the run's /24; empty means
	// DefaultSubnet.
	Subnet string
	// Dir holds the nodes' data and logs, the simulator's log and the
	// history; empty means a new temporary directory.
	Dir string
	// Keep keeps Dir after a run that passed; a failed run always keeps it.
	Keep bool
	// Out receives the progress and the report.
	Out io.Writer
}

// harness is one run in progress.
type harness struct {
	o     Options
	out   io.Writer
	start time.Time
	nw    *Network
	c     *Cluster
	sim   *sim.Simulator
	// simLog is the simulator's log file, closed at the end of the run.
	simLog *os.File
}

// Run runs the schedule of faults for o.Seed under device load and checks
// the cluster afterwards. An error means the run could not be made (no
// root, a cluster that never formed); what the run found is in the Result.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Faults <= 0 {
		o.Faults = DefaultFaults
	}
	if o.Devices <= 0 {
		o.Devices = DefaultDevices
	}
	if o.AlarmEvery <= 0 {
		o.AlarmEvery = DefaultAlarmEvery
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Devices < 2 {
		return nil, errors.New("devices: at least 2, one raising alarms and one running sessions")
	}
	if o.Vigil, err = filepath.Abs(o.Vigil); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Vigil); err != nil {
		return nil, fmt.Errorf("the vigil executable: %w (make build)", err)
	}
	if err := CheckTools(); err != nil {
		return nil, err
	}
	h := &harness{o: o, out: o.Out, start: time.Now()}
	if !haveFUSE() {
		// Without FUSE the nodes' disks are plain directories, and no
		// power can be cut: a run asked for power cuts fails; one of every
		// kind runs the others and says so.
		if slices.Contains(o.Kinds, KindPowercut) || slices.Contains(o.Kinds, KindPowercutAll) {
			return nil, errors.New("power cuts need the nodes' disks on FUSE (powerfs), and there is no /dev/fuse")
		}
		if len(o.Kinds) == 0 {
			o.Kinds = slices.DeleteFunc(slices.Clone(Kinds), func(k Kind) bool { return k == KindPowercut || k == KindPowercutAll })
		}
		plainDisks = true
		h.logf("WARNING: no /dev/fuse: the nodes' disks are plain directories and the run has no power cuts (kinds %v)", o.Kinds)
	}
	if removed, err := CleanStale(ctx); err != nil {
		h.logf("cannot remove everything left by earlier runs: %v", err)
	} else if len(removed) > 0 {
		h.logf("removed what earlier runs left: %s", strings.Join(removed, ", "))
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", fmt.Sprintf("vigil-chaos-%d-", o.Seed)); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res = &Result{Seed: o.Seed, Dir: dir}
	defer func() {
		if err == nil && res.OK() && !o.Keep {
			os.RemoveAll(dir)
			res.Dir = ""
		}
	}()

	h.nw = NewNetwork(o.Subnet, 3)
	if err := h.nw.Up(ctx); err != nil {
		return nil, fmt.Errorf("cannot make the network: %w", err)
	}
	if h.c, err = newCluster(o.Vigil, dir, h.nw); err != nil {
		return nil, errors.Join(err, h.nw.Down())
	}
	defer func() {
		if kerr := h.c.killAll(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		if uerr := h.c.unmountDisks(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("cannot unmount the nodes' disks: %w", uerr))
		}
		if derr := h.nw.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("cannot remove the network: %w", derr))
		}
	}()
	h.logf("seed %d: %d faults; nodes at %s.11-13 in namespaces %s..., their logs in %s",
		o.Seed, o.Faults, h.nw.subnet, h.nw.Namespace(0), dir)
	if err := h.c.start(ctx); err != nil {
		return nil, fmt.Errorf("the cluster did not form: %w\n%s", err, h.c.logTails(logLines))
	}
	h.logf("cluster formed: %s", strings.Join(h.c.memberIDs(), ", "))
	if err := h.c.obtainToken(ctx); err != nil {
		return nil, err
	}

	plan := Plan(o.Seed, o.Faults, o.Kinds)
	horizon := 5 * time.Minute
	for _, f := range plan {
		horizon += f.Hold + f.Quiet + 40*time.Second
	}
	load := planLoad(o.Seed, devicePrefix, o.Devices, o.AlarmEvery, horizon)
	s, err := h.provision(ctx, load, dir)
	if err != nil {
		return nil, err
	}
	h.sim = s
	defer h.simLog.Close()

	// The load and the operator run until the schedule is over.
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(simCtx) }()
	op := newOperator(h.c, o.Seed, func(dev string) bool {
		for i := 1; i <= load.AlarmDevices; i++ {
			if dev == deviceID(devicePrefix, i) {
				return i%3 != 0
			}
		}
		return false
	})
	opCtx, stopOp := context.WithCancel(ctx)
	defer stopOp()
	opDone := make(chan struct{})
	go func() {
		defer close(opDone)
		op.run(opCtx)
	}()

	if err := pollUntil(ctx, warmupTimeout, func() bool { return len(alarmAcks(s.History().Attempts())) >= warmupAlarms }); err != nil {
		return nil, fmt.Errorf("the devices' first %d alarms were not acked within %s: %w (see %s)", warmupAlarms, warmupTimeout, err, filepath.Join(dir, "sim.log"))
	}
	h.logf("load running: %d devices (%d raising alarms, %d running sessions), the operator closing two in three alarm devices' alarms",
		load.Devices, load.AlarmDevices, load.Devices-load.AlarmDevices)

	for _, f := range plan {
		if ctx.Err() != nil {
			break
		}
		rec := h.inject(ctx, f)
		res.Faults = append(res.Faults, rec)
		if rec.Err != "" {
			res.Failures = append(res.Failures, fmt.Sprintf("fault %d (%s %s): %s", f.N, f.Kind, rec.Node, rec.Err))
		}
		if rec.Recovered.IsZero() {
			break // the rest of the schedule would test nothing
		}
		if !sleepCtx(ctx, f.Quiet) {
			break
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	// Stop the load, let every deadline due fire, then read every node.
	loadEnd := time.Now()
	stopSim()
	stopOp()
	<-opDone
	if err := <-simDone; err != nil {
		res.Failures = append(res.Failures, "simulator: "+err.Error())
	}
	attempts := s.History().Attempts()
	if err := writeHistory(filepath.Join(dir, "history.jsonl"), s.History()); err != nil {
		h.logf("cannot write the history: %v", err)
	}
	res.Operator = op.record()
	h.logf("load stopped; waiting %s for the last deadlines to fire", quiesce)
	if !sleepCtx(ctx, quiesce) {
		return res, ctx.Err()
	}
	if _, _, err := h.c.waitHealthy(ctx, healthyTimeout); err != nil {
		res.Failures = append(res.Failures, "after the schedule: "+err.Error())
	}
	views, err := h.readViews(ctx, load, loadEnd.Sub(h.start))
	if err != nil {
		res.Failures = append(res.Failures, "cannot read the nodes: "+err.Error())
		return res, nil
	}
	devices := map[string]bool{}
	for i := 1; i <= load.Devices; i++ {
		devices[deviceID(devicePrefix, i)] = true
	}
	res.Verdict = check(checkInput{attempts: attempts, devices: devices, sessions: load.Sessions,
		op: res.Operator, views: views, now: time.Now()})

	acks := alarmAcks(attempts)
	measure(res.Faults, acks)
	res.Kinds = byKind(res.Faults)
	if err := writeJSON(filepath.Join(dir, "faults.json"), res.Faults); err != nil {
		h.logf("cannot write the faults: %v", err)
	}
	if len(acks) > 0 {
		res.MaxUnavailable = longestGap(acks, acks[0].acked, loadEnd)
	}
	if !res.OK() {
		fmt.Fprint(h.out, h.c.logTails(logLines))
	}
	return res, nil
}

// provision creates the devices' organisation, workers and devices, sets
// the organisation's grace and offline threshold, and returns the
// simulator, ready to run.
func (h *harness) provision(ctx context.Context, load *Load, dir string) (*sim.Simulator, error) {
	leader, err := h.c.waitLeader(ctx, formTimeout)
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf("s%d", h.o.Seed)
	rng := rand.New(rand.NewPCG(h.o.Seed, 0x9e0))
	creds, err := sim.ProvisionWith(ctx, sim.API{URL: leader.url(), Token: h.c.token, Client: newHTTPClient(h.c.ca, 15*time.Second)}, devicePrefix, run, load.Devices, rng)
	if err != nil {
		return nil, fmt.Errorf("cannot provision the devices: %w", err)
	}
	// The sessions let run out raise their alarm Grace after; devices are
	// never taken for gone during a run.
	org := api.OrganisationRequest{
		Command: api.Command{ID: devicePrefix + "-chaos-org", Actor: OperatorActor},
		Org: api.OrganisationBody{ID: devicePrefix + "-org", Name: "Chaos Community Care (simulated)",
			DefaultSession: "45m", Grace: Grace.String(), OfflineThreshold: "2h",
			Procedure: "Call the worker; if no answer or duress, call 999 and give the last location."},
	}
	if err := h.c.send(ctx, leader, "POST", "/api/v1/organisations", 30*time.Second, org, nil); err != nil {
		return nil, fmt.Errorf("cannot set the organisation's grace: %w", err)
	}
	if _, _, err := h.c.waitHealthy(ctx, formTimeout); err != nil {
		return nil, err
	}
	if h.simLog, err = os.Create(filepath.Join(dir, "sim.log")); err != nil {
		return nil, err
	}
	cfg := sim.DefaultConfig()
	cfg.Brokers = nil
	for _, n := range h.c.nodes {
		cfg.Brokers = append(cfg.Brokers, n.mqttAddr())
	}
	cfg.Credentials, cfg.Scenario, cfg.Seed, cfg.Run = creds, load.Scenario, h.o.Seed, run
	cfg.Logger = slog.New(slog.NewTextHandler(h.simLog, nil))
	s, err := sim.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot make the simulator: %w", err)
	}
	h.logf("provisioned %d devices; %d alarms and %d sessions planned over %s", load.Devices,
		countSteps(load.Scenario, sim.DoAlarm), len(load.Sessions), lastStep(load.Scenario).Round(time.Second))
	return s, nil
}

// inject makes one fault, holds it, heals it, and waits until the cluster
// is whole again.
func (h *harness) inject(ctx context.Context, f Fault) (rec FaultRecord) {
	rec.Fault = f
	leader, err := h.c.waitLeader(ctx, healthyTimeout)
	if err != nil {
		rec.Err = err.Error()
		return rec
	}
	target := leader
	switch f.Role {
	case RoleFollower:
		fs := h.c.others(leader)
		target = fs[f.Pick%len(fs)]
	case RoleAny:
		target = h.c.nodes[f.Pick%len(h.c.nodes)]
	}
	rec.Node, rec.NodeID, rec.WasLeader = target.name, target.id, target == leader
	if h.sim != nil {
		rec.Devices = int(h.sim.Status().ByBroker[target.mqttAddr()])
	}
	if f.Role == RoleAll {
		rec.Node, rec.NodeID = "all", strings.Join(h.c.memberIDs(), ",")
		if h.sim != nil {
			rec.Devices = 0
			for _, n := range h.c.nodes {
				rec.Devices += int(h.sim.Status().ByBroker[n.mqttAddr()])
			}
		}
	}
	// Healing must happen even when ctx ends during the hold.
	heal := context.WithoutCancel(ctx)
	var errs []error
	switch f.Kind {
	case KindKill:
		errs = append(errs, target.kill())
		rec.Injected = time.Now()
		sleepCtx(ctx, f.Hold)
		errs = append(errs, target.start())
	case KindPause:
		errs = append(errs, target.pause())
		rec.Injected = time.Now()
		sleepCtx(ctx, f.Hold)
		errs = append(errs, target.resume())
	case KindIsolateLeader:
		errs = append(errs, h.nw.Isolate(heal, target.slot))
		rec.Injected = time.Now()
		sleepCtx(ctx, f.Hold)
		errs = append(errs, h.nw.Reconnect(heal, target.slot))
	case KindSplit:
		errs = append(errs, h.nw.Split(heal, target.slot))
		rec.Injected = time.Now()
		sleepCtx(ctx, f.Hold)
		errs = append(errs, h.nw.Unsplit(heal, target.slot))
	case KindPowercut:
		errs = append(errs, target.kill(), target.powerOff(&rec.Unsynced))
		rec.Injected = time.Now()
		errs = append(errs, target.mountDisk())
		sleepCtx(ctx, f.Hold-time.Since(rec.Injected))
		errs = append(errs, target.start())
	case KindPowercutAll:
		errs = append(errs, h.c.killAll())
		for _, n := range h.c.nodes {
			errs = append(errs, n.powerOff(&rec.Unsynced))
		}
		rec.Injected = time.Now()
		for _, n := range h.c.nodes {
			errs = append(errs, n.mountDisk())
		}
		sleepCtx(ctx, f.Hold-time.Since(rec.Injected))
		for _, n := range h.c.nodes {
			errs = append(errs, n.start())
		}
	case KindWipe:
		errs = append(errs, target.kill())
		rec.Injected = time.Now()
		errs = append(errs, h.replace(heal, target))
		rec.NewID = target.id
		sleepCtx(ctx, f.Hold-time.Since(rec.Injected))
		if err := h.c.join(heal, target); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, target.start())
		}
	}
	rec.Healed = time.Now()
	if err := errors.Join(errs...); err != nil {
		rec.Err = err.Error()
	}
	l, slowest, err := h.c.waitHealthy(ctx, healthyTimeout)
	if ctx.Err() != nil {
		rec.Err = "interrupted"
		return rec
	}
	if err != nil {
		rec.Err = strings.TrimPrefix(rec.Err+"; ", "; ") + err.Error()
		h.logf("fault %2d/%d %-14s %s: NOT RECOVERED: %s", f.N, h.o.Faults, f.Kind, rec.Node, rec.Err)
		return rec
	}
	rec.Recovered, rec.LeaderNow, rec.Slowest = time.Now(), l.id, slowest
	what := fmt.Sprintf("%s (%s", rec.Node, rec.NodeID)
	if rec.WasLeader {
		what += ", leader"
	}
	what += fmt.Sprintf(", %d devices", rec.Devices)
	if rec.NewID != "" {
		what += ", now " + rec.NewID
	}
	note := ""
	if f.Kind == KindPowercut || f.Kind == KindPowercutAll {
		note = fmt.Sprintf("; lost unsynced: %d bytes in %d files", rec.Unsynced.Bytes, rec.Unsynced.Files)
	}
	if rec.recovery() > slowRecovery {
		note += " (longest: " + slowest + ")"
	}
	h.logf("fault %2d/%d %-14s %-34s held %6s, whole again %6s after healing; leader %s%s",
		f.N, h.o.Faults, f.Kind, what+")", ms(rec.Healed.Sub(rec.Injected)), ms(rec.recovery()), rec.LeaderNow, note)
	return rec
}

// replace removes the killed node n from the membership through a live
// node, wipes its data and gives its slot a new member ID; the caller
// joins it with a join token (Cluster.join) and starts it.
func (h *harness) replace(ctx context.Context, n *node) error {
	err := pollUntil(ctx, removeTimeout, func() bool {
		for _, o := range h.c.others(n) {
			if h.c.send(ctx, o, "DELETE", "/api/v1/cluster/members/"+n.id, 15*time.Second, nil, nil) == nil {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("cannot remove %s from the membership: %w", n.id, err)
	}
	if err := n.wipe(); err != nil {
		return err
	}
	n.gen++
	n.id = fmt.Sprintf("%s-r%d", n.name, n.gen)
	n.args = n.serveArgs(nil)
	return nil
}

// readViews waits until every node has applied the same index and holds
// it, then reads each node's state; it starts again, a few times, if a
// node applied more while it was read.
func (h *harness) readViews(ctx context.Context, load *Load, elapsed time.Duration) (views []*nodeView, err error) {
	for range 3 {
		views, err = h.readViewsOnce(ctx, load, elapsed)
		if !errors.Is(err, errMoved) {
			return views, err
		}
		h.logf("%v; reading again", err)
	}
	return nil, err
}

// errMoved is a node that applied more while the checker read it.
var errMoved = errors.New("a node applied more while it was read")

func (h *harness) readViewsOnce(ctx context.Context, load *Load, elapsed time.Duration) ([]*nodeView, error) {
	var states []api.DiagStateResponse
	stable := 0
	var last string
	err := pollUntil(ctx, convergeTimeout, func() bool {
		prev := states
		states = nil
		for _, n := range h.c.nodes {
			var st api.DiagStateResponse
			if err := h.c.getJSON(ctx, n, "/api/v1/diag/state", bigReadTimeout, &st); err != nil {
				last = fmt.Sprintf("%s: %v", n.name, err)
				return false
			}
			states = append(states, st)
		}
		for _, st := range states[1:] {
			if st.AppliedIndex != states[0].AppliedIndex {
				last = fmt.Sprintf("applied indexes differ: %d and %d", states[0].AppliedIndex, st.AppliedIndex)
				stable = 0
				return false
			}
		}
		if len(prev) > 0 && prev[0].AppliedIndex == states[0].AppliedIndex {
			stable++
		} else {
			stable = 0
		}
		return stable >= 2
	})
	if err != nil {
		return nil, fmt.Errorf("the nodes did not settle on one applied index (%s): %w", last, err)
	}
	var views []*nodeView
	for i, n := range h.c.nodes {
		nv := &nodeView{name: n.name, state: states[i], alarms: map[string]monitoring.DiagAlarm{},
			commands: map[string]monitoring.DiagCommand{}, sessions: map[string]*monitoring.Session{}}
		var al api.DiagAlarmsResponse
		if err := h.c.getJSON(ctx, n, "/api/v1/diag/alarms", bigReadTimeout, &al); err != nil {
			return nil, err
		}
		for _, a := range al.Alarms {
			nv.alarms[a.Alarm.ID] = a
		}
		for _, p := range []string{monitoring.CmdRaiseAlarm.String(), monitoring.CmdStartSession.String(), monitoring.CmdSessionAction.String()} {
			var cr api.DiagCommandsResponse
			if err := h.c.getJSON(ctx, n, "/api/v1/diag/commands?prefix="+p+"/dev/", bigReadTimeout, &cr); err != nil {
				return nil, err
			}
			if cr.AppliedIndex != states[i].AppliedIndex {
				return nil, fmt.Errorf("%w: %s, index %d, then %d", errMoved, n.name, states[i].AppliedIndex, cr.AppliedIndex)
			}
			for _, c := range cr.Commands {
				nv.commands[c.ID] = c
			}
		}
		var au api.DiagAuditResponse
		if err := h.c.getJSON(ctx, n, "/api/v1/diag/audit?subject=session/", bigReadTimeout, &au); err != nil {
			return nil, err
		}
		if au.AppliedIndex != states[i].AppliedIndex {
			return nil, fmt.Errorf("%w: %s, index %d, then %d", errMoved, n.name, states[i].AppliedIndex, au.AppliedIndex)
		}
		for _, r := range au.Records {
			if r.Command == monitoring.CmdFireDeadline.String() {
				nv.fires = append(nv.fires, r)
			}
		}
		for _, ps := range load.Sessions {
			if ps.Start > elapsed {
				continue // planned after the load stopped
			}
			var s monitoring.Session
			err := h.c.getJSON(ctx, n, "/api/v1/sessions/"+ps.ID, bigReadTimeout, &s)
			switch {
			case err == nil:
				nv.sessions[ps.ID] = &s
			case statusCode(err) != 404:
				return nil, err
			}
		}
		if al.AppliedIndex != states[i].AppliedIndex {
			return nil, fmt.Errorf("%w: %s, index %d, then %d", errMoved, n.name, states[i].AppliedIndex, al.AppliedIndex)
		}
		views = append(views, nv)
	}
	return views, nil
}

// logf prints one line of progress, with the time since the start.
func (h *harness) logf(format string, a ...any) {
	fmt.Fprintf(h.out, "[%6.1fs] %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, a...))
}

// writeHistory writes the simulator's history as JSON lines.
func writeHistory(path string, hist *sim.History) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := hist.WriteJSONLines(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeJSON writes v, indented, to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func countSteps(s *sim.Scenario, do string) int {
	n := 0
	for _, st := range s.Steps {
		if st.Do == do {
			n++
		}
	}
	return n
}

func lastStep(s *sim.Scenario) time.Duration {
	if len(s.Steps) == 0 {
		return 0
	}
	return s.Steps[len(s.Steps)-1].At
}
