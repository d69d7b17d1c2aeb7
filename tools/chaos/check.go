package chaos

// The checker. Once every fault is healed and the load has stopped, it
// reads every node's whole state and compares it with what the devices and
// the operator were told. check makes one check per promise, in this
// order, and the verdict lists their findings in the same order:
//
//   - checkRecords: every node applied each device event as one command,
//     and only events the devices sent;
//   - checkAcked: every event a device got a PUBACK and no refusal for was
//     applied on every node: its command record is there (the Service
//     keeps one per command ID, in the same transaction as the change), and
//     what it made is there (the alarm, the session, the session ended);
//     and no acked event was refused;
//   - checkAlarmsOnce: every alarm was raised once, and every alarm a
//     device raised is the alarm of exactly one of its events: an alarm no
//     event's record names was raised twice;
//   - checkCloses: no alarm is closed that the operator did not close, and
//     every close the operator was answered for is there;
//   - checkSessions: every session let run out has exactly one
//     missed-check-in alarm, and its two deadlines (due, then grace) each
//     fired once; a session ended in time has none;
//   - checkAckDeadlines: acknowledgement deadlines fired at most once, and
//     once each for an alarm left alone;
//   - checkSame: all nodes have the same state hash at the same applied
//     index, and the same alarms.
//
// Availability is not the checker's: the report measures it from the
// devices' history (report.go).

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/api"
)

// maxProblems is how many problems a verdict lists in full.
const maxProblems = 50

// nodeView is one node's state as the checker reads it.
type nodeView struct {
	name     string
	state    api.DiagStateResponse
	alarms   map[string]monitoring.DiagAlarm
	commands map[string]monitoring.DiagCommand // by command ID
	fires    []monitoring.AuditRecord          // deadline fires of sessions
	sessions map[string]*monitoring.Session    // the planned sessions it has
}

// checkInput is everything the checker judges.
type checkInput struct {
	attempts []sim.Attempt
	devices  map[string]bool // the simulated devices' IDs
	sessions []PlannedSession
	op       OperatorRecord
	views    []*nodeView
	now      time.Time // when the state was read
}

// Verdict is the checker's finding.
type Verdict struct {
	Events       int // distinct device events sent
	Acked        int // distinct device events PUBACKed
	AckedAlarms  int // of which alarms
	Lost         int // acked events (and answered closes) missing on a node
	Duplicated   int // events applied more than once
	Diverged     bool
	Rejected     int // acked events the state machine refused
	ClosedByOp   int // alarms closed, all by the operator
	Spurious     int // alarms closed that no operator closed
	Expired      int // sessions let run out, with their alarm, once
	DeadlineErrs int // deadlines that fired other than once
	Problems     []string
	problems     int // problems found, listed or not
}

// OK reports whether the verdict finds nothing wrong.
func (v *Verdict) OK() bool { return v.problems == 0 && !v.Diverged }

func (v *Verdict) problem(format string, a ...any) {
	v.problems++
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, a...))
	}
}

// check judges in: it checks each promise in turn, and the verdict lists
// their findings in that order.
func check(in checkInput) *Verdict {
	ix := newCheckIndex(in)
	v := &Verdict{Events: len(ix.events)}
	checkRecords(v, in, ix)
	checkAcked(v, in, ix)
	checkAlarmsOnce(v, in, ix)
	checkCloses(v, in, ix)
	checkSessions(v, in, ix)
	checkAckDeadlines(v, in, ix)
	checkSame(v, in, ix)
	return v
}

// sentEvent is one device event as the history tells it.
type sentEvent struct {
	device, id, typ string
	acked           bool
	reply           string
}

// eventKey is the part of a command ID that names a device event.
func eventKey(device, eventID string) string { return "dev/" + device + "/" + eventID }

// checkIndex is what the checks share, built once from the history and
// the nodes' state.
type checkIndex struct {
	events  map[string]*sentEvent // the devices' events, by event key
	order   []string              // their event keys, in the order first sent
	planned map[string]bool       // the planned sessions' IDs
	// applied is, for each view in turn, the record of each device event
	// the node applied, by event key.
	applied []map[string]monitoring.DiagCommand
	// strays are the nodes' records of device events that are not the one
	// record of an event the devices sent, in the order found.
	strays []strayRecord
}

// strayRecord is a node's record of a device event that is not the one
// record of an event the devices sent: a second record of the event, or a
// record of an event never sent.
type strayRecord struct {
	node  string // the node's name
	key   string // the event key
	id    string // the command ID
	first string // the ID of the event's record found before it; empty if the devices never sent it
}

// newCheckIndex indexes in for the checks.
func newCheckIndex(in checkInput) *checkIndex {
	ix := &checkIndex{planned: map[string]bool{}}
	ix.events, ix.order = indexEvents(in.attempts)
	for _, ps := range in.sessions {
		ix.planned[ps.ID] = true
	}
	for _, nv := range in.views {
		applied, strays := indexApplied(nv, ix.events)
		ix.applied = append(ix.applied, applied)
		ix.strays = append(ix.strays, strays...)
	}
	return ix
}

// indexEvents gathers the devices' attempts into the events they sent, by
// event key, and the keys in the order first sent.
func indexEvents(attempts []sim.Attempt) (map[string]*sentEvent, []string) {
	events := map[string]*sentEvent{}
	var order []string
	for _, a := range attempts {
		k := eventKey(a.Device, a.EventID)
		e := events[k]
		if e == nil {
			e = &sentEvent{device: a.Device, id: a.EventID, typ: a.Type}
			events[k] = e
			order = append(order, k)
		}
		e.acked = e.acked || a.Acked != nil
		if a.Reply != "" {
			e.reply = a.Reply
		}
	}
	return events, order
}

// indexApplied returns the records of the device events nv applied, by
// event key, and the records that are not the one record of an event in
// events.
func indexApplied(nv *nodeView, events map[string]*sentEvent) (map[string]monitoring.DiagCommand, []strayRecord) {
	applied := map[string]monitoring.DiagCommand{}
	var strays []strayRecord
	for id, c := range nv.commands {
		_, key, ok := strings.Cut(id, "/")
		if !ok || !strings.HasPrefix(key, "dev/") {
			continue
		}
		if prev, dup := applied[key]; dup {
			strays = append(strays, strayRecord{node: nv.name, key: key, id: id, first: prev.ID})
			continue
		}
		applied[key] = c
		if events[key] == nil {
			strays = append(strays, strayRecord{node: nv.name, key: key, id: id})
		}
	}
	return applied, strays
}

// refusal reports whether acked event k was refused, and why: the
// device's reply, or the last node whose record of it is a refusal.
func (ix *checkIndex) refusal(k string) (reason string, refused bool) {
	e := ix.events[k]
	reason, refused = e.reply, e.reply != "" && e.reply != "ok"
	for _, applied := range ix.applied {
		if c, ok := applied[k]; ok && c.Refused != "" {
			reason, refused = c.Refused, true
		}
	}
	return reason, refused
}
