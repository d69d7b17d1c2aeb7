package chaos

// What a run found: availability measured from the devices' history, per
// fault and per kind of fault, the checker's verdict, and the final line.

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/tools/chaos/powerfs"
)

// afterRecovery is how long after the cluster is whole again a fault's
// window lasts: devices that failed over are still reconnecting and
// flushing their outboxes.
const afterRecovery = 2 * time.Second

// FaultRecord is one fault as it happened.
type FaultRecord struct {
	Fault
	Node      string // the slot hit: n1, n2 or n3
	NodeID    string // the member hit
	WasLeader bool
	Devices   int    // devices connected to the node hit when it was hit
	NewID     string // the replacement's ID, for a wipe
	// Unsynced is what a power cut threw away, summed over the disks cut.
	Unsynced  powerfs.Loss
	Injected  time.Time
	Healed    time.Time
	Recovered time.Time // when the cluster was whole again; zero if it was not
	LeaderNow string    // the leader once recovered
	Slowest   string    // what kept the cluster from being whole the longest
	Err       string    // what went wrong injecting, healing or recovering

	// Measured from the history once the run is over, over the window
	// from Injected to Recovered plus afterRecovery.
	Gap      time.Duration // the longest time without an acked alarm that this fault ended (see measure)
	MaxDelay time.Duration // the longest first-send-to-PUBACK of an alarm in flight in the window
	Acked    int           // alarms PUBACKed in the window
}

// recovery is the time from heal to a whole cluster.
func (r *FaultRecord) recovery() time.Duration {
	if r.Recovered.IsZero() || r.Healed.IsZero() {
		return 0
	}
	return r.Recovered.Sub(r.Healed)
}

func (r *FaultRecord) window() (from, to time.Time) {
	to = r.Recovered
	if to.IsZero() {
		to = r.Healed
	}
	return r.Injected, to.Add(afterRecovery)
}

// KindStats sums up the faults of one kind.
type KindStats struct {
	Kind        Kind
	Faults      int
	MaxGap      time.Duration // the longest time without an acked alarm over any of them
	MaxDelay    time.Duration
	MaxRecovery time.Duration
	SumRecovery time.Duration
}

// alarmAck is one alarm event's first send and its PUBACK.
type alarmAck struct {
	sent, acked time.Time
}

// alarmAcks returns the first send and the PUBACK of every acked alarm
// event, by PUBACK time.
func alarmAcks(attempts []sim.Attempt) []alarmAck {
	first := map[string]time.Time{}
	acked := map[string]time.Time{}
	for _, a := range attempts {
		if a.Type != "alarm" {
			continue
		}
		k := eventKey(a.Device, a.EventID)
		if t, ok := first[k]; !ok || a.Sent.Before(t) {
			first[k] = a.Sent
		}
		if a.Acked != nil {
			if t, ok := acked[k]; !ok || a.Acked.Before(t) {
				acked[k] = *a.Acked
			}
		}
	}
	out := make([]alarmAck, 0, len(acked))
	for k, t := range acked {
		out = append(out, alarmAck{sent: first[k], acked: t})
	}
	slices.SortFunc(out, func(a, b alarmAck) int { return a.acked.Compare(b.acked) })
	return out
}

// longestGap returns the longest time between consecutive PUBACKs, from
// and to included as the bounds, over the gaps that overlap [from, to].
func longestGap(acks []alarmAck, from, to time.Time) time.Duration {
	var longest time.Duration
	prev := from
	// Start from the last ack at or before from.
	i, _ := slices.BinarySearchFunc(acks, from, func(a alarmAck, t time.Time) int { return a.acked.Compare(t) })
	if i > 0 {
		prev = acks[i-1].acked
	}
	for ; i < len(acks); i++ {
		t := acks[i].acked
		longest = max(longest, t.Sub(prev))
		prev = t
		if !t.Before(to) {
			return longest
		}
	}
	return max(longest, to.Sub(prev))
}

// measure fills in each record's figures from the acks. A time without
// an acked alarm belongs to the last fault injected before the ack that
// ended it, if it overlaps that fault's window: windows of consecutive
// faults do not overlap, and a gap that runs from one into the next is the
// next one's doing.
func measure(recs []FaultRecord, acks []alarmAck) {
	for i := range recs {
		r := &recs[i]
		from, to := r.window()
		for _, a := range acks {
			if a.acked.Before(from) || a.sent.After(to) {
				continue
			}
			r.MaxDelay = max(r.MaxDelay, a.acked.Sub(a.sent))
			if !a.acked.After(to) {
				r.Acked++
			}
		}
	}
	// owner returns the record of the last fault injected before t, or nil.
	owner := func(t time.Time) *FaultRecord {
		var o *FaultRecord
		for i := range recs {
			if recs[i].Injected.Before(t) {
				o = &recs[i]
			}
		}
		return o
	}
	for i := 1; i < len(acks); i++ {
		a, b := acks[i-1].acked, acks[i].acked
		if r := owner(b); r != nil {
			if _, to := r.window(); a.Before(to) {
				r.Gap = max(r.Gap, b.Sub(a))
			}
		}
	}
	// A fault whose window no ack ends: the gap runs to the window's end.
	for i := range recs {
		r := &recs[i]
		from, to := r.window()
		if n := len(acks); n == 0 || acks[n-1].acked.Before(to) {
			last := from
			if n > 0 && acks[n-1].acked.After(from) {
				last = acks[n-1].acked
			}
			r.Gap = max(r.Gap, to.Sub(last))
		}
	}
}

// byKind sums the records up per kind, in Kinds order.
func byKind(recs []FaultRecord) []KindStats {
	var out []KindStats
	for _, k := range Kinds {
		s := KindStats{Kind: k}
		for _, r := range recs {
			if r.Kind != k {
				continue
			}
			s.Faults++
			s.MaxGap = max(s.MaxGap, r.Gap)
			s.MaxDelay = max(s.MaxDelay, r.MaxDelay)
			s.MaxRecovery = max(s.MaxRecovery, r.recovery())
			s.SumRecovery += r.recovery()
		}
		if s.Faults > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Result is what a run found.
type Result struct {
	Seed           uint64
	Faults         []FaultRecord
	Kinds          []KindStats
	Verdict        *Verdict
	MaxUnavailable time.Duration // the longest time without an acked alarm over the whole load
	Failures       []string      // the harness's own findings: a cluster that did not recover
	Operator       OperatorRecord
	Dir            string // logs, data and history
}

// OK reports whether the run found nothing wrong.
func (r *Result) OK() bool {
	return r.Verdict != nil && r.Verdict.OK() && len(r.Failures) == 0
}

// Line is the run's last line, as CI greps it.
func (r *Result) Line() string {
	var acked, lost, dup int
	diverged := 0
	if v := r.Verdict; v != nil {
		acked, lost, dup = v.Acked, v.Lost, v.Duplicated
		if v.Diverged {
			diverged = 1
		}
	}
	return fmt.Sprintf("chaos: seed=%d faults=%d acked=%d lost=%d duplicated=%d diverged=%d max_unavailable_ms=%d",
		r.Seed, len(r.Faults), acked, lost, dup, diverged, r.MaxUnavailable.Milliseconds())
}

// WriteReport writes the per-fault table, the per-kind summary, the
// verdict and the final line.
func (r *Result) WriteReport(w io.Writer) {
	fmt.Fprintf(w, "\nfaults (gap: longest time without an acked alarm during the fault and its recovery; delay: longest first send to PUBACK):\n")
	fmt.Fprintf(w, "  %3s  %-14s %-8s %-6s %-7s %7s %9s %9s %9s %9s %6s\n", "#", "kind", "role", "node", "leader", "devices", "hold", "recovery", "gap", "delay", "acks")
	for _, f := range r.Faults {
		leader := "-"
		if f.WasLeader {
			leader = "yes"
		}
		fmt.Fprintf(w, "  %3d  %-14s %-8s %-6s %-7s %7d %9s %9s %9s %9s %6d", f.N, f.Kind, f.Role, f.Node, leader, f.Devices,
			ms(f.Hold), ms(f.recovery()), ms(f.Gap), ms(f.MaxDelay), f.Acked)
		if f.Err != "" {
			fmt.Fprintf(w, "  ERROR: %s", f.Err)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nper kind:\n  %-14s %6s %12s %12s %13s %13s\n", "kind", "faults", "max gap", "max delay", "max recovery", "mean recovery")
	for _, k := range r.Kinds {
		fmt.Fprintf(w, "  %-14s %6d %12s %12s %13s %13s\n", k.Kind, k.Faults, ms(k.MaxGap), ms(k.MaxDelay),
			ms(k.MaxRecovery), ms(k.SumRecovery/time.Duration(k.Faults)))
	}
	if v := r.Verdict; v != nil {
		fmt.Fprintf(w, "\ncheck: %d device events sent, %d acked (%d alarms); %d lost, %d duplicated, %d refused; "+
			"%d alarms closed, %d of them not by the operator; %d sessions ran out and raised their alarm once; %d deadline errors; diverged %v\n",
			v.Events, v.Acked, v.AckedAlarms, v.Lost, v.Duplicated, v.Rejected, v.ClosedByOp, v.Spurious, v.Expired, v.DeadlineErrs, v.Diverged)
		fmt.Fprintf(w, "operator: %d acknowledgements, %d closes answered, %d refused, %d without an answer\n",
			r.Operator.Acks, len(r.Operator.Closed), r.Operator.Refused, r.Operator.Errors)
		if len(v.Problems) > 0 {
			fmt.Fprintf(w, "\n%d problems; the first %d:\n  %s\n", v.problems, len(v.Problems), strings.Join(v.Problems, "\n  "))
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILURE: %s\n", f)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "logs, data and history: %s\n", r.Dir)
	}
	fmt.Fprintln(w, r.Line())
}

// ms formats a duration in milliseconds for the tables.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// tail returns the last n lines of the file at path, leaving out the
// requests answered below 500, which would otherwise fill it.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, `msg="http request"`) && !strings.Contains(l, "status=5") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

// splitComma splits a comma-separated list, dropping blanks.
func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
