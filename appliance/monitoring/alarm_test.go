package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// t0 is the time the test clocks start at.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// alarmEnv is one replica's state machine on a real Badger, with a clock
// and a log index that advance as commands are applied.
type alarmEnv struct {
	t     *testing.T
	db    *badger.DB
	f     *FSM
	index uint64
	now   time.Time
	sub   *Subscription
}

func mustAlarmEnv(t *testing.T) *alarmEnv {
	t.Helper()
	e := &alarmEnv{t: t, db: mustOpenDB(t), f: NewFSM(), now: t0}
	e.sub = e.f.Bus().Subscribe(1024)
	e.put(pOrg+"o1", Organisation{ID: "o1", Name: "Trust One"})
	e.put(pOrg+"o2", Organisation{ID: "o2", Name: "Council Two",
		Priorities: map[AlarmType]int{AlarmLowBattery: 2, AlarmTest: 9}})
	e.put(pWorker+"w1", Worker{ID: "w1", Name: "Ann", OrgID: "o1"})
	e.put(pWorker+"w2", Worker{ID: "w2", Name: "Bob", OrgID: "o1"})
	e.put(pWorker+"w3", Worker{ID: "w3", Name: "Cat", OrgID: "o2"})
	here := &Location{Lat: 51.5074, Lon: -0.1278, Source: "gps"}
	e.put(pDevice+"d1", Device{ID: "d1", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w1", Location: here})
	e.put(pDevice+"d2", Device{ID: "d2", Kind: DevicePhoneApp, OrgID: "o1", WorkerID: "w2"})
	e.put(pDevice+"d3", Device{ID: "d3", Kind: DevicePooled, OrgID: "o2", WorkerID: "w3"})
	e.put(pDevice+"d4", Device{ID: "d4", Kind: DevicePooled, OrgID: "o2"}) // no worker
	return e
}

// put writes a record directly, as test setup.
func (e *alarmEnv) put(key string, v any) {
	e.t.Helper()
	err := e.db.Update(func(txn *badger.Txn) error { return putJSON(txn, key, v) })
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *alarmEnv) hdr(actor string) Header { return Header{At: e.now, Actor: actor, Node: "n1"} }

// tick advances the clock.
func (e *alarmEnv) tick(d time.Duration) { e.now = e.now.Add(d) }

// hash returns the state hash.
func (e *alarmEnv) hash() []byte {
	e.t.Helper()
	var h []byte
	err := e.db.View(func(txn *badger.Txn) (err error) {
		h, err = StateHash(txn)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// apply applies one command at the next index and commits it. A refused
// command's transaction is committed too, and must have changed nothing.
func (e *alarmEnv) apply(t CmdType, body any) ([]byte, error) {
	e.t.Helper()
	e.index++
	before := e.hash()
	txn := e.db.NewTransaction(true)
	defer txn.Discard()
	resp, err := e.f.Apply(txn, cluster.Entry{Index: e.index, Term: 1, ID: fmt.Sprintf("cmd-%d", e.index), Data: encode(t, body)})
	if cerr := txn.Commit(); cerr != nil {
		e.t.Fatalf("commit: %v", cerr)
	}
	if err != nil {
		e.f.Discarded()
		if after := e.hash(); !bytes.Equal(before, after) {
			e.t.Fatalf("refused %s (%v) changed the state", t, err)
		}
		return nil, err
	}
	e.f.Committed()
	return resp, nil
}

// must applies a command that must be accepted and returns the alarm it
// responds with.
func (e *alarmEnv) must(t CmdType, body any) *Alarm {
	e.t.Helper()
	resp, err := e.apply(t, body)
	if err != nil {
		e.t.Fatalf("%s refused: %v", t, err)
	}
	a := new(Alarm)
	if err := json.Unmarshal(resp, a); err != nil {
		e.t.Fatalf("%s response %q: %v", t, resp, err)
	}
	return a
}

func (e *alarmEnv) raise(id string, typ AlarmType, device string) *Alarm {
	e.t.Helper()
	return e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("device:" + device), AlarmID: id, Type: typ, DeviceID: device})
}

func (e *alarmEnv) raiseAt(id, device string, loc *Location) *Alarm {
	e.t.Helper()
	return e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("device:" + device), AlarmID: id, Type: AlarmRedAlert, DeviceID: device, Location: loc})
}

func (e *alarmEnv) ack(id, op string) *Alarm {
	e.t.Helper()
	return e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(op), AlarmID: id})
}

func (e *alarmEnv) closeAlarm(id, op string, r Resolution) *Alarm {
	e.t.Helper()
	return e.must(CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(op), AlarmID: id, Resolution: r})
}

func (e *alarmEnv) alarm(id string) *Alarm {
	e.t.Helper()
	var a *Alarm
	err := e.db.View(func(txn *badger.Txn) (err error) {
		a, err = LookupAlarm(txn, id)
		return err
	})
	if err != nil {
		e.t.Fatalf("alarm %s: %v", id, err)
	}
	return a
}

func (e *alarmEnv) view(fn func(txn *badger.Txn) error) {
	e.t.Helper()
	if err := e.db.View(fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *alarmEnv) openIDs() []string {
	e.t.Helper()
	var ids []string
	e.view(func(txn *badger.Txn) error {
		as, err := OpenAlarms(txn)
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		return err
	})
	return ids
}

func (e *alarmEnv) timelineKinds(id string) []ActionKind {
	e.t.Helper()
	var kinds []ActionKind
	e.view(func(txn *badger.Txn) error {
		tl, err := AlarmTimeline(txn, id)
		for _, te := range tl {
			kinds = append(kinds, te.Kind)
		}
		return err
	})
	return kinds
}

// events drains the events published so far.
func (e *alarmEnv) events() []Event {
	var out []Event
	for {
		select {
		case ev := <-e.sub.C:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestAlarm_Raise(t *testing.T) {
	e := mustAlarmEnv(t)
	e.events()
	a := e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("device:d1"), AlarmID: "a1", Type: AlarmDuress,
		DeviceID: "d1", DeviceTime: t0.Add(-3 * time.Second)})
	want := Alarm{ID: "a1", Type: AlarmDuress, Priority: 1, Status: StatusRaised, OrgID: "o1", WorkerID: "w1",
		DeviceID: "d1", IncidentID: "a1", RaisedAt: t0, DeviceTime: t0.Add(-3 * time.Second),
		Location: &Location{Lat: 51.5074, Lon: -0.1278, Source: "gps"}, DoNotCall: true, Silent: true, Actions: 1}
	if got, _ := json.Marshal(a); string(got) != string(mustJSON(t, want)) {
		t.Fatalf("raised\n %s\nwant\n %s", got, mustJSON(t, want))
	}
	if got := e.alarm("a1"); !equalJSON(t, got, a) {
		t.Fatalf("stored %+v, responded %+v", got, a)
	}
	e.view(func(txn *badger.Txn) error {
		for _, k := range []string{
			"ix/open/1/" + tkey(t0) + "/a1", "ix/raised/" + tkey(t0) + "/a1",
			"ix/device-alarm/d1/" + tkey(t0) + "/a1", "ix/incident/a1/" + tkey(t0) + "/a1",
		} {
			if _, err := txn.Get([]byte(k)); err != nil {
				t.Errorf("index %s: %v", k, err)
			}
		}
		audit, err := AuditFor(txn, "alarm/a1")
		if err != nil || len(audit) != 1 || audit[0].Actor != "device:d1" || audit[0].Node != "n1" || audit[0].Command != "CmdRaiseAlarm" {
			t.Errorf("audit = %+v, %v", audit, err)
		}
		return nil
	})
	if k := e.timelineKinds("a1"); fmt.Sprint(k) != "[raised]" {
		t.Fatalf("timeline = %v", k)
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Type != EventAlarmRaised || evs[0].Alarm.ID != "a1" || evs[0].Index != e.index {
		t.Fatalf("events = %+v", evs)
	}

	// Without a device location and with an explicit worker.
	b := e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("ops"), AlarmID: "b1", Type: AlarmRedAlert, WorkerID: "w2"})
	if b.WorkerID != "w2" || b.OrgID != "o1" || b.Location != nil || b.DoNotCall || b.Silent {
		t.Fatalf("worker alarm = %+v", b)
	}
	// A device without a worker: the device's organisation.
	c := e.raise("c1", AlarmLowBattery, "d4")
	if c.WorkerID != "" || c.OrgID != "o2" || c.Priority != 2 {
		t.Fatalf("device alarm = %+v", c)
	}
	// Discreet panic is do-not-call and silent as well.
	if d := e.raise("d1a", AlarmDiscreetPanic, "d2"); !d.DoNotCall || !d.Silent {
		t.Fatalf("discreet = %+v", d)
	}
}

func TestAlarm_PrioritiesOverriddenByOrg(t *testing.T) {
	for _, tc := range []struct {
		typ    AlarmType
		device string
		want   int
	}{
		{AlarmLowBattery, "d1", 4}, // o1: defaults
		{AlarmLowBattery, "d3", 2}, // o2 overrides
		{AlarmTest, "d1", 5},
		{AlarmTest, "d3", 9},
		{AlarmRedAlert, "d3", 1}, // o2 keeps the default
		{AlarmMissedCheckIn, "d3", 2},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.typ, tc.device), func(t *testing.T) {
			e := mustAlarmEnv(t)
			if a := e.raise("a", tc.typ, tc.device); a.Priority != tc.want {
				t.Fatalf("priority %d, want %d", a.Priority, tc.want)
			}
		})
	}
}

func TestAlarm_Lifecycle(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	e.tick(7 * time.Second)
	a := e.ack("a1", "olivia")
	if a.Status != StatusAcknowledged || a.AckBy != "olivia" || !a.AckAt.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("acknowledged = %+v", a)
	}
	e.tick(time.Second)
	a = e.must(CmdLogAction, logActionCmd{Header: e.hdr("olivia"), AlarmID: "a1",
		Entry: TimelineEntry{Kind: ActionCallWorker, Outcome: CallNoAnswer, Actor: "forged", Index: 99}})
	if a.Status != StatusInProgress {
		t.Fatalf("after an action: %s", a.Status)
	}
	e.must(CmdLogAction, logActionCmd{Header: e.hdr("olivia"), AlarmID: "a1",
		Entry: TimelineEntry{Kind: ActionPolice, Force: "Met", Route: RouteURN, Reference: "CAD 1234"}})
	e.tick(time.Minute)
	a = e.closeAlarm("a1", "olivia", ResolutionIncidentHandled)
	if a.Status != StatusClosed || a.ClosedBy != "olivia" || a.Resolution != ResolutionIncidentHandled ||
		!a.ClosedAt.Equal(e.now) {
		t.Fatalf("closed = %+v", a)
	}
	if ids := e.openIDs(); len(ids) != 0 {
		t.Fatalf("open queue after close = %v", ids)
	}
	e.tick(time.Minute)
	a = e.must(CmdReopenAlarm, reopenAlarmCmd{Header: e.hdr("sam"), AlarmID: "a1", Reason: "worker rang back, not safe"})
	if a.Status != StatusAcknowledged || a.AckBy != "sam" || a.Reopened != 1 || a.Resolution != "" ||
		a.ClosedBy != "" || !a.ClosedAt.IsZero() || !a.AckAt.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("reopened = %+v", a)
	}
	if ids := e.openIDs(); fmt.Sprint(ids) != "[a1]" {
		t.Fatalf("open queue after reopen = %v", ids)
	}
	e.closeAlarm("a1", "sam", ResolutionWorkerSafe)
	want := "[raised acknowledged call_worker police closed reopened closed]"
	if k := e.timelineKinds("a1"); fmt.Sprint(k) != want {
		t.Fatalf("timeline = %v, want %s", k, want)
	}
	e.view(func(txn *badger.Txn) error {
		tl, err := AlarmTimeline(txn, "a1")
		if err != nil {
			return err
		}
		if c := tl[2]; c.Actor != "olivia" || c.Index != 3 || c.AlarmID != "a1" || !c.At.Equal(t0.Add(8*time.Second)) {
			t.Errorf("the logged action was not stamped by the command: %+v", c)
		}
		if r := tl[5]; r.Text != "worker rang back, not safe" || r.Actor != "sam" {
			t.Errorf("reopen entry = %+v", r)
		}
		audit, err := AuditLog(txn, 0, 0)
		if len(audit) != 7 {
			t.Errorf("audit has %d records, want 7: %+v", len(audit), audit)
		}
		if from, _ := AuditLog(txn, 5, 1); len(from) != 1 || from[0].Index != 5 {
			t.Errorf("AuditLog(5, 1) = %+v", from)
		}
		return err
	})
	if a := e.alarm("a1"); a.Actions != 7 {
		t.Fatalf("actions = %d, want 7", a.Actions)
	}
}

func TestAlarm_AcknowledgeHoldersAndTakeover(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmManDown, "d1")
	e.ack("a1", "olivia")
	e.events()
	before := e.hash()
	again := e.ack("a1", "olivia")
	if !bytes.Equal(before, e.hash()) || again.AckBy != "olivia" {
		t.Fatal("acknowledging again by the holder changed the state")
	}
	if evs := e.events(); len(evs) != 0 {
		t.Fatalf("an idempotent acknowledgement emitted %+v", evs)
	}
	_, err := e.apply(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr("sam"), AlarmID: "a1"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "olivia") {
		t.Fatalf("another operator's ack = %v, want a conflict naming olivia", err)
	}
	e.tick(time.Minute)
	a := e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr("sam"), AlarmID: "a1", Takeover: true})
	if a.AckBy != "sam" || !a.AckAt.Equal(t0) {
		t.Fatalf("taken over = %+v (the first ack time must be kept)", a)
	}
	e.view(func(txn *badger.Txn) error {
		tl, err := AlarmTimeline(txn, "a1")
		if last := tl[len(tl)-1]; last.Kind != ActionAcknowledged || !strings.Contains(last.Text, "taken over from olivia") {
			t.Errorf("takeover entry = %+v", last)
		}
		return err
	})
}

// step is one command of a table test's setup.
type step struct {
	t    CmdType
	body func(e *alarmEnv) any
}

func TestAlarm_Refusals(t *testing.T) {
	raise := func(id string, typ AlarmType, dev string) step {
		return step{CmdRaiseAlarm, func(e *alarmEnv) any {
			return RaiseAlarmCmd{Header: e.hdr("device:" + dev), AlarmID: id, Type: typ, DeviceID: dev}
		}}
	}
	ack := func(id, op string) step {
		return step{CmdAcknowledge, func(e *alarmEnv) any { return AcknowledgeCmd{Header: e.hdr(op), AlarmID: id} }}
	}
	closeS := func(id string) step {
		return step{CmdCloseAlarm, func(e *alarmEnv) any {
			return CloseAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Resolution: ResolutionFalseAlarm}
		}}
	}
	logA := func(id string, te TimelineEntry) step {
		return step{CmdLogAction, func(e *alarmEnv) any { return logActionCmd{Header: e.hdr("olivia"), AlarmID: id, Entry: te} }}
	}
	logRules := func(id string, te TimelineEntry) step {
		return step{CmdLogAction, func(e *alarmEnv) any {
			return logActionCmd{Header: e.hdr("olivia"), AlarmID: id, Entry: te, Rules: RulesIncidentDoNotCall}
		}}
	}
	closeWith := func(id string, r Resolution) step {
		return step{CmdCloseAlarm, func(e *alarmEnv) any { return CloseAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Resolution: r} }}
	}
	closeConfirmed := func(id string, r Resolution, c Confirmation) step {
		return step{CmdCloseAlarmConfirmed, func(e *alarmEnv) any {
			return CloseAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Resolution: r, Confirmation: c}
		}}
	}
	reopen := func(id, reason string) step {
		return step{CmdReopenAlarm, func(e *alarmEnv) any { return reopenAlarmCmd{Header: e.hdr("olivia"), AlarmID: id, Reason: reason} }}
	}
	raiseCmd := func(r RaiseAlarmCmd) step {
		return step{CmdRaiseAlarm, func(e *alarmEnv) any {
			r.Header = e.hdr("device:x")
			return r
		}}
	}
	red := raise("a1", AlarmRedAlert, "d1")
	acked := []step{red, ack("a1", "olivia")}
	closed := []step{red, ack("a1", "olivia"), closeS("a1")}
	for _, tc := range []struct {
		name  string
		setup []step
		cmd   step
		code  Code
		field string
		msg   string
	}{
		{"raise without an ID", nil, raiseCmd(RaiseAlarmCmd{Type: AlarmRedAlert, DeviceID: "d1"}), CodeInvalid, "alarm_id", ""},
		{"raise with an ID twice", []step{red}, red, CodeConflict, "alarm_id", "already exists"},
		{"raise of an unknown type", nil, raiseCmd(RaiseAlarmCmd{AlarmID: "a1", Type: "fire", DeviceID: "d1"}), CodeInvalid, "type", "fire"},
		{"raise without device or worker", nil, raiseCmd(RaiseAlarmCmd{AlarmID: "a1", Type: AlarmRedAlert}), CodeInvalid, "device_id", ""},
		{"raise from an unknown device", nil, raise("a1", AlarmRedAlert, "nope"), CodeNotFound, "device_id", "nope"},
		{"raise for an unknown worker", nil, raiseCmd(RaiseAlarmCmd{AlarmID: "a1", Type: AlarmRedAlert, WorkerID: "nobody"}), CodeNotFound, "worker_id", ""},
		{"raise without a time", nil, step{CmdRaiseAlarm, func(e *alarmEnv) any {
			return RaiseAlarmCmd{Header: Header{Actor: "x"}, AlarmID: "a1", Type: AlarmRedAlert, DeviceID: "d1"}
		}}, CodeInvalid, "at", ""},

		{"acknowledge an unknown alarm", nil, ack("zz", "olivia"), CodeNotFound, "alarm_id", ""},
		{"acknowledge a closed alarm", closed, ack("a1", "olivia"), CodeAlarmClosed, "alarm_id", "closed"},
		{"acknowledge one another operator holds", acked, ack("a1", "sam"), CodeConflict, "alarm_id", "held by olivia"},

		{"log on a raised alarm", []step{red}, logA("a1", TimelineEntry{Kind: ActionNote, Text: "x"}), CodeConflict, "alarm_id", "acknowledge it first"},
		{"log on a closed alarm", closed, logA("a1", TimelineEntry{Kind: ActionNote, Text: "x"}), CodeAlarmClosed, "alarm_id", ""},
		{"log on an unknown alarm", nil, logA("zz", TimelineEntry{Kind: ActionNote, Text: "x"}), CodeNotFound, "alarm_id", ""},
		{"call the worker on a duress alarm", []step{raise("a1", AlarmDuress, "d1"), ack("a1", "olivia")},
			logA("a1", TimelineEntry{Kind: ActionCallWorker, Outcome: CallAnsweredSafe}), CodeConflict, "entry.kind", "do not call the worker"},
		{"call the worker on a discreet panic", []step{raise("a1", AlarmDiscreetPanic, "d1"), ack("a1", "olivia")},
			logA("a1", TimelineEntry{Kind: ActionCallWorker, Outcome: CallNoAnswer}), CodeConflict, "entry.kind", "do not call the worker"},
		{"call the worker about an alarm linked to a duress alarm", []step{red, raise("a2", AlarmDuress, "d1"), ack("a1", "olivia")},
			logRules("a1", TimelineEntry{Kind: ActionCallWorker, Outcome: CallAnsweredSafe}), CodeConflict, "entry.kind", "incident of the duress alarm a2"},
		{"call the worker about an alarm linked to a discreet panic", []step{red, raise("a2", AlarmDiscreetPanic, "d1"), ack("a1", "olivia")},
			logRules("a1", TimelineEntry{Kind: ActionCallWorker, Outcome: CallNoAnswer}), CodeConflict, "entry.kind", "incident of the discreet alarm a2"},
		{"call without an outcome", acked, logA("a1", TimelineEntry{Kind: ActionCallWorker}), CodeInvalid, "entry.outcome", "answered_safe"},
		{"call with an unknown outcome", acked, logA("a1", TimelineEntry{Kind: ActionCallWorker, Outcome: "maybe"}), CodeInvalid, "entry.outcome", "maybe"},
		{"police without a force", acked, logA("a1", TimelineEntry{Kind: ActionPolice, Route: RouteURN}), CodeInvalid, "entry.force", ""},
		{"police by an unknown route", acked, logA("a1", TimelineEntry{Kind: ActionPolice, Force: "Met", Route: "112"}), CodeInvalid, "entry.route", "112"},
		{"contact without who", acked, logA("a1", TimelineEntry{Kind: ActionContact, Outcome: "answered"}), CodeInvalid, "entry.contact", ""},
		{"contact without an outcome", acked, logA("a1", TimelineEntry{Kind: ActionContact, Contact: "manager"}), CodeInvalid, "entry.outcome", ""},
		{"note without text", acked, logA("a1", TimelineEntry{Kind: ActionNote, Text: "  "}), CodeInvalid, "entry.text", ""},
		{"device command without the command", acked, logA("a1", TimelineEntry{Kind: ActionDeviceCmd}), CodeInvalid, "entry.text", ""},
		{"log a lifecycle kind", acked, logA("a1", TimelineEntry{Kind: ActionClosed}), CodeInvalid, "entry.kind", "cannot be logged"},
		{"log without a kind", acked, logA("a1", TimelineEntry{}), CodeInvalid, "entry.kind", ""},

		{"close without a resolution", acked, closeWith("a1", ""), CodeNeedResolution, "resolution", "worker_safe, incident_handled, false_alarm, test"},
		{"close with an unknown resolution", acked, closeWith("a1", "bored"), CodeInvalid, "resolution", "bored"},
		{"close an unacknowledged alarm", []step{red}, closeWith("a1", ResolutionWorkerSafe), CodeConflict, "alarm_id", "acknowledged"},
		{"close a closed alarm", closed, closeWith("a1", ResolutionWorkerSafe), CodeAlarmClosed, "alarm_id", ""},
		{"close an unknown alarm", nil, closeWith("zz", ResolutionWorkerSafe), CodeNotFound, "alarm_id", ""},
		{"close without how safety was confirmed", acked, closeConfirmed("a1", ResolutionWorkerSafe, ""), CodeNeedConfirmation, "confirmation",
			"worker_confirmed, contact_confirmed, police_attended, in_person"},
		{"close a false alarm without a confirmation", acked, closeConfirmed("a1", ResolutionFalseAlarm, ""), CodeNeedConfirmation, "confirmation", ""},
		{"close a test without a confirmation", acked, closeConfirmed("a1", ResolutionTest, ""), CodeNeedConfirmation, "confirmation", ""},
		{"close with an unknown confirmation", acked, closeConfirmed("a1", ResolutionWorkerSafe, "hunch"), CodeInvalid, "confirmation", "hunch"},
		{"an operator's close as an accidental press", acked, closeConfirmed("a1", ResolutionFalseAlarm, ConfirmedAccidentalPress), CodeInvalid, "confirmation", "accidental_press"},
		{"close confirmed, without a resolution", acked, closeConfirmed("a1", "", ConfirmedByWorker), CodeNeedResolution, "resolution", ""},
		{"close confirmed, unacknowledged", []step{red}, closeConfirmed("a1", ResolutionWorkerSafe, ConfirmedByWorker), CodeConflict, "alarm_id", "acknowledged"},

		{"reopen without a reason", closed, reopen("a1", " "), CodeInvalid, "reason", ""},
		{"reopen an open alarm", acked, reopen("a1", "why not"), CodeConflict, "alarm_id", "not closed"},
		{"reopen an unknown alarm", nil, reopen("zz", "why not"), CodeNotFound, "alarm_id", ""},

		{"a command without an actor", []step{red}, step{CmdAcknowledge, func(e *alarmEnv) any {
			return AcknowledgeCmd{Header: Header{At: e.now}, AlarmID: "a1"}
		}}, CodeInvalid, "actor", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustAlarmEnv(t)
			for _, s := range tc.setup {
				e.tick(time.Second)
				if _, err := e.apply(s.t, s.body(e)); err != nil {
					t.Fatalf("setup %s: %v", s.t, err)
				}
			}
			e.tick(time.Second)
			// apply checks that the refusal wrote nothing.
			_, err := e.apply(tc.cmd.t, tc.cmd.body(e))
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a refusal %s", err, tc.code)
			}
			if re.Code != tc.code || re.Field != tc.field || !strings.Contains(re.Msg, tc.msg) {
				t.Fatalf("got %q, want code %s, field %q, message with %q", err, tc.code, tc.field, tc.msg)
			}
			// The refusal crosses the cluster as text and comes back intact.
			if back := ParseRefusal(err.Error()); *back != *re {
				t.Fatalf("ParseRefusal(%q) = %+v", err, back)
			}
		})
	}
}

func TestAlarm_IncidentLinking(t *testing.T) {
	here := &Location{Lat: 51.5074, Lon: -0.1278}
	near := &Location{Lat: 51.5074 + 0.0009, Lon: -0.1278} // about 100 m north
	far := &Location{Lat: 51.5074 + 0.0045, Lon: -0.1278}  // about 500 m north
	type raiseStep struct {
		id, device string
		loc        *Location
		after      time.Duration // since the previous step
		closeFirst bool          // close the previous alarm before raising
	}
	for _, tc := range []struct {
		name  string
		steps []raiseStep
		want  map[string]string // alarm -> incident
	}{
		{"repeat from one device", []raiseStep{{"a", "d1", nil, 0, false}, {"b", "d1", nil, 9 * time.Minute, false}},
			map[string]string{"a": "a", "b": "a"}},
		{"repeat after the window", []raiseStep{{"a", "d1", nil, 0, false}, {"b", "d1", nil, 11 * time.Minute, false}},
			map[string]string{"a": "a", "b": "b"}},
		{"repeat after the first was closed", []raiseStep{{"a", "d1", nil, 0, false}, {"b", "d1", nil, time.Minute, true}},
			map[string]string{"a": "a", "b": "b"}},
		{"chain of repeats keeps the first incident", []raiseStep{{"a", "d1", nil, 0, false},
			{"b", "d1", nil, 8 * time.Minute, false}, {"c", "d1", nil, 8 * time.Minute, false}},
			map[string]string{"a": "a", "b": "a", "c": "a"}},
		{"colleagues 100 m apart within minutes", []raiseStep{{"a", "d1", here, 0, false}, {"b", "d2", near, 3 * time.Minute, false}},
			map[string]string{"a": "a", "b": "a"}},
		{"colleagues 500 m apart", []raiseStep{{"a", "d1", here, 0, false}, {"b", "d2", far, time.Minute, false}},
			map[string]string{"a": "a", "b": "b"}},
		{"colleagues at one place but late", []raiseStep{{"a", "d1", here, 0, false}, {"b", "d2", near, 6 * time.Minute, false}},
			map[string]string{"a": "a", "b": "b"}},
		{"a colleague without a location", []raiseStep{{"a", "d1", here, 0, false}, {"b", "d2", nil, time.Minute, false}},
			map[string]string{"a": "a", "b": "b"}},
		{"three colleagues join the first", []raiseStep{{"a", "d1", here, 0, false}, {"b", "d2", near, time.Minute, false},
			{"c", "d3", here, time.Minute, false}},
			map[string]string{"a": "a", "b": "a", "c": "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustAlarmEnv(t)
			prev := ""
			for _, s := range tc.steps {
				e.tick(s.after)
				if s.closeFirst {
					e.ack(prev, "olivia")
					e.closeAlarm(prev, "olivia", ResolutionFalseAlarm)
				}
				a := e.raiseAt(s.id, s.device, s.loc)
				kinds := e.timelineKinds(s.id)
				linked := a.IncidentID != a.ID
				if linked != (fmt.Sprint(kinds) == "[raised linked]") {
					t.Errorf("%s: incident %s, timeline %v", s.id, a.IncidentID, kinds)
				}
				prev = s.id
			}
			for id, inc := range tc.want {
				if got := e.alarm(id).IncidentID; got != inc {
					t.Errorf("alarm %s: incident %s, want %s", id, got, inc)
				}
			}
			e.view(func(txn *badger.Txn) error {
				as, err := IncidentAlarms(txn, "a")
				n := 0
				for _, inc := range tc.want {
					if inc == "a" {
						n++
					}
				}
				if len(as) != n {
					t.Errorf("incident a has %d alarms, want %d", len(as), n)
				}
				return err
			})
		})
	}
}

func TestAlarm_Distance(t *testing.T) {
	// London to Paris is about 343.5 km.
	d := distance(Location{Lat: 51.5074, Lon: -0.1278}, Location{Lat: 48.8566, Lon: 2.3522})
	if d < 343000 || d > 344500 {
		t.Fatalf("London-Paris = %.0f m", d)
	}
	if d := distance(Location{Lat: 10, Lon: 10}, Location{Lat: 10, Lon: 10}); d != 0 {
		t.Fatalf("same point = %v", d)
	}
}

func TestAlarm_OpenQueueOrder(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("battery", AlarmLowBattery, "d4") // o2: priority 2
	e.tick(time.Second)
	e.raise("test", AlarmTest, "d2") // 5
	e.tick(time.Second)
	e.raise("red-old", AlarmRedAlert, "d1") // 1
	e.tick(time.Second)
	e.raise("missed", AlarmMissedCheckIn, "d2") // 2, repeat of "test" (same device)
	e.tick(time.Second)
	e.raise("red-new", AlarmDuress, "d3") // 1
	e.tick(time.Second)
	e.raise("closed", AlarmManDown, "d1")
	e.ack("closed", "olivia")
	e.closeAlarm("closed", "olivia", ResolutionFalseAlarm)
	want := "[red-old red-new battery missed test]"
	if got := fmt.Sprint(e.openIDs()); got != want {
		t.Fatalf("open queue = %s, want %s", got, want)
	}
}

func TestAlarm_EventsFollowTheLifecycle(t *testing.T) {
	e := mustAlarmEnv(t)
	e.events()
	e.raise("a1", AlarmRedAlert, "d1")
	e.ack("a1", "olivia")
	e.must(CmdLogAction, logActionCmd{Header: e.hdr("olivia"), AlarmID: "a1", Entry: TimelineEntry{Kind: ActionListenIn}})
	e.closeAlarm("a1", "olivia", ResolutionWorkerSafe)
	e.must(CmdReopenAlarm, reopenAlarmCmd{Header: e.hdr("olivia"), AlarmID: "a1", Reason: "again"})
	var got []string
	for _, ev := range e.events() {
		s := string(ev.Type) + ":" + string(ev.Alarm.Status)
		if ev.Entry != nil {
			s += ":" + string(ev.Entry.Kind)
		}
		got = append(got, s)
	}
	want := "[alarm_raised:raised alarm_updated:acknowledged:acknowledged alarm_updated:in_progress:listen_in " +
		"alarm_closed:closed:closed alarm_updated:acknowledged:reopened]"
	if fmt.Sprint(got) != want {
		t.Fatalf("events %v\nwant   %s", got, want)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return bytes.Equal(mustJSON(t, a), mustJSON(t, b))
}

func TestService_RaiseAlarmReplay(t *testing.T) {
	c := clustertest.MustCluster(t, 1, NewFSM, nil)
	s := NewService(c.Node(0), c.StateMachine(0), nil)
	ids := 0
	s.NewID = func() string { ids++; return fmt.Sprintf("alarm-%d", ids) }
	ctx := context.Background()
	for i, c := range []struct {
		t    CmdType
		body any
	}{
		{CmdPutOrganisation, putOrganisationCmd{Header: s.header("admin"), Org: Organisation{ID: "o1", Name: "Trust"}}},
		{CmdPutWorker, putWorkerCmd{Header: s.header("admin"), Worker: Worker{ID: "w1", Name: "Ann", OrgID: "o1"}}},
		{CmdPutDevice, putDeviceCmd{Header: s.header("admin"), Device: Device{ID: "d1", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w1"}}},
	} {
		if _, err := s.propose(ctx, fmt.Sprintf("setup-%d", i), c.t, c.body); err != nil {
			t.Fatalf("setup %s: %v", c.t, err)
		}
	}
	req := RaiseAlarmRequest{Type: AlarmRedAlert, DeviceID: "d1", Location: &Location{Lat: 51.5, Lon: -0.12}}
	first, err := s.RaiseAlarm(ctx, "device-event-7", "device:d1", req)
	if err != nil {
		t.Fatal(err)
	}
	// The device retries: the Service makes a new alarm ID and time, but the
	// command ID is the same, so the first result comes back.
	again, err := s.RaiseAlarm(ctx, "device-event-7", "device:d1", req)
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, first, again) || first.ID != "alarm-1" || first.WorkerID != "w1" {
		t.Fatalf("replay returned %+v, first %+v", again, first)
	}
	open, err := s.OpenAlarms()
	if err != nil || len(open) != 1 {
		t.Fatalf("open alarms = %+v, %v; want one", open, err)
	}
	if _, err := s.Alarm("alarm-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the replay raised a second alarm: %v", err)
	}

	// The rest of the lifecycle through the Service, with its replays.
	a, err := s.Acknowledge(ctx, "ack-1", "olivia", first.ID, false)
	if err != nil || a.AckBy != "olivia" {
		t.Fatalf("acknowledge = %+v, %v", a, err)
	}
	if _, err := s.Acknowledge(ctx, "ack-2", "sam", first.ID, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second operator's acknowledgement = %v, want a conflict", err)
	}
	if _, err := s.LogAction(ctx, "log-1", "olivia", first.ID, TimelineEntry{Kind: ActionNote, Text: "called manager"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Close(ctx, "close-1", "olivia", first.ID, "", ConfirmedByWorker, "", ""); !errors.Is(err, ErrNeedResolution) {
		t.Fatalf("close without a resolution = %v", err)
	}
	if _, err := s.Close(ctx, "close-1b", "olivia", first.ID, ResolutionFalseAlarm, "", "pocket press", ""); !errors.Is(err, ErrNeedConfirmation) {
		t.Fatalf("close without a confirmation = %v", err)
	}
	closed, err := s.Close(ctx, "close-2", "olivia", first.ID, ResolutionFalseAlarm, ConfirmedByWorker, "pocket press", "")
	if err != nil || closed.Status != StatusClosed {
		t.Fatalf("close = %+v, %v", closed, err)
	}
	// A replayed close returns the first result, not "already closed".
	if again, err := s.Close(ctx, "close-2", "olivia", first.ID, ResolutionFalseAlarm, ConfirmedByWorker, "pocket press", ""); err != nil || !equalJSON(t, again, closed) {
		t.Fatalf("replayed close = %+v, %v", again, err)
	}
	if _, err := s.Reopen(ctx, "reopen-1", "olivia", first.ID, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reopen without a reason = %v", err)
	}
	tl, err := s.Timeline(first.ID)
	if err != nil || len(tl) != 4 {
		t.Fatalf("timeline = %+v, %v", tl, err)
	}
	k, err := s.KPIs("o1", t0.AddDate(-1, 0, 0), time.Now().Add(time.Hour))
	if err != nil || k.Raised != 1 || k.Closed != 1 || k.FalseAlarms != 1 {
		t.Fatalf("KPIs = %+v, %v", k, err)
	}
}

func TestService_ValidatesBeforeProposing(t *testing.T) {
	// A Service over a cluster that fails the test if anything is proposed.
	s := NewService(noCluster{t}, NewFSM(), nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		code  Code
		field string
	}{
		{"raise without an actor", func() error {
			_, err := s.RaiseAlarm(ctx, "c", "", RaiseAlarmRequest{Type: AlarmRedAlert, DeviceID: "d1"})
			return err
		}, CodeInvalid, "actor"},
		{"raise of an unknown type", func() error {
			_, err := s.RaiseAlarm(ctx, "c", "device:d1", RaiseAlarmRequest{Type: "x", DeviceID: "d1"})
			return err
		}, CodeInvalid, "type"},
		{"raise without device or worker", func() error {
			_, err := s.RaiseAlarm(ctx, "c", "system", RaiseAlarmRequest{Type: AlarmTest})
			return err
		}, CodeInvalid, "device_id"},
		{"raise at latitude 91", func() error {
			_, err := s.RaiseAlarm(ctx, "c", "device:d1", RaiseAlarmRequest{Type: AlarmRedAlert, DeviceID: "d1", Location: &Location{Lat: 91}})
			return err
		}, CodeInvalid, "location.lat"},
		{"acknowledge without an operator", func() error {
			_, err := s.Acknowledge(ctx, "c", "", "a1", false)
			return err
		}, CodeInvalid, "operator"},
		{"acknowledge without an alarm", func() error {
			_, err := s.Acknowledge(ctx, "c", "olivia", "", false)
			return err
		}, CodeInvalid, "alarm_id"},
		{"log a police call without a route", func() error {
			_, err := s.LogAction(ctx, "c", "olivia", "a1", TimelineEntry{Kind: ActionPolice, Force: "Met"})
			return err
		}, CodeInvalid, "entry.route"},
		{"close without a resolution", func() error {
			_, err := s.Close(ctx, "c", "olivia", "a1", "", ConfirmedByWorker, "", "")
			return err
		}, CodeNeedResolution, "resolution"},
		{"close with an unknown resolution", func() error {
			_, err := s.Close(ctx, "c", "olivia", "a1", "meh", ConfirmedByWorker, "", "")
			return err
		}, CodeInvalid, "resolution"},
		{"close without a confirmation", func() error {
			_, err := s.Close(ctx, "c", "olivia", "a1", ResolutionWorkerSafe, "", "", "no contacts on file (test)")
			return err
		}, CodeNeedConfirmation, "confirmation"},
		{"close confirmed by an accidental press", func() error {
			_, err := s.Close(ctx, "c", "olivia", "a1", ResolutionFalseAlarm, ConfirmedAccidentalPress, "", "")
			return err
		}, CodeInvalid, "confirmation"},
		{"reopen without a reason", func() error {
			_, err := s.Reopen(ctx, "c", "olivia", "a1", "")
			return err
		}, CodeInvalid, "reason"},
		{"a command without an ID", func() error {
			_, err := s.Reopen(ctx, "", "olivia", "a1", "because")
			return err
		}, CodeInvalid, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var re *RuleError
			if err := tc.call(); !errors.As(err, &re) || re.Code != tc.code || re.Field != tc.field {
				t.Fatalf("got %v, want %s on %q", err, tc.code, tc.field)
			}
		})
	}
}

// noCluster is a Cluster that fails the test when a command is proposed.
type noCluster struct{ t *testing.T }

func (c noCluster) Apply(context.Context, string, []byte) (cluster.Result, error) {
	c.t.Error("a command was proposed")
	return cluster.Result{}, errors.New("no cluster")
}
func (c noCluster) View(func(*badger.Txn) error) error { return errors.New("no cluster") }

func (c noCluster) LinearizableView(context.Context, func(*badger.Txn) error) error {
	return errors.New("no cluster")
}
func (c noCluster) ID() string { return "none" }

// A log written before do-not-call became a property of the incident
// replays as it was applied: a call on an alarm linked to a duress alarm,
// logged under the older rules, is accepted.
func TestLogAction_IncidentDoNotCallReplaysOlderLogs(t *testing.T) {
	e := mustAlarmEnv(t)
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("device:d1"), AlarmID: "a1", Type: AlarmRedAlert, DeviceID: "d1"})
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr("device:d1"), AlarmID: "a2", Type: AlarmDuress, DeviceID: "d1"})
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr("olivia"), AlarmID: "a1"})
	if a := e.alarm("a1"); a.IncidentID != e.alarm("a2").IncidentID || a.DoNotCall {
		t.Fatalf("a1 %+v: want it in a2's incident, not do-not-call itself", a)
	}
	e.must(CmdLogAction, logActionCmd{Header: e.hdr("olivia"), AlarmID: "a1", Entry: TimelineEntry{Kind: ActionCallWorker, Outcome: CallNoAnswer}})
}
