package monitoring

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func (e *dirEnv) status(device string, seen time.Time, connected *bool) {
	e.t.Helper()
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{{DeviceID: device, SeenAt: seen, Connected: connected}}})
}

// offlineDeadlines returns the device-offline deadlines in the state.
func (e *dirEnv) offlineDeadlines() []Deadline {
	e.t.Helper()
	var out []Deadline
	for _, d := range e.deadlines() {
		if d.Kind == DeadlineDeviceOffline {
			out = append(out, d)
		}
	}
	return out
}

// fireResult fires d and returns the whole result.
func (e *dirEnv) fireResult(d Deadline) fireResult {
	e.t.Helper()
	resp := e.must(CmdFireDeadline, fireDeadlineCmd{Header: e.hdr(), DeadlineID: d.ID, Due: d.Due, AlarmID: deadlineAlarmID(d.ID)})
	var r fireResult
	if err := json.Unmarshal(resp, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *dirEnv) countAlarms(typ AlarmType) int {
	e.t.Helper()
	n := 0
	err := e.db.View(func(txn *badger.Txn) error {
		as, err := listJSON[Alarm](txn, pAlarm, 0)
		for _, a := range as {
			if a.Type == typ {
				n++
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func mustOfflineEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.seed()
	e.putOrg(Organisation{ID: "o1", Name: "Trust", Grace: time.Minute, OfflineThreshold: 5 * time.Minute})
	e.start("s1", "w1", "d1", 2*time.Hour, 0)
	on := true
	e.status("d1", e.now, &on)
	e.status("d2", e.now, &on)
	return e
}

func TestDeviceOffline_SetOnlyInASession(t *testing.T) {
	e := mustOfflineEnv(t)
	off, on := false, true
	seen := e.now.Add(time.Minute)
	e.now = seen
	e.status("d2", seen, &off) // d2 is in no session
	if ds := e.offlineDeadlines(); len(ds) != 0 {
		t.Fatalf("deadline for a device in no session: %+v", ds)
	}
	e.status("d1", seen, &off)
	ds := e.offlineDeadlines()
	if len(ds) != 1 || ds[0].ID != offlineDeadlineID("d1", seen) || !ds[0].Due.Equal(seen.Add(5*time.Minute)) || ds[0].SessionID != "s1" {
		t.Fatalf("deadlines %+v", ds)
	}
	// The same disconnect again changes nothing, nor does a later one: the
	// device has been away since the first.
	e.status("d1", seen, &off)
	if got := e.offlineDeadlines(); len(got) != 1 || got[0].ID != ds[0].ID {
		t.Fatalf("after a repeat: %+v", got)
	}
	later := seen.Add(time.Minute)
	e.status("d1", later, &off)
	if got := e.offlineDeadlines(); len(got) != 1 || got[0].ID != ds[0].ID {
		t.Fatalf("after a later disconnect: %+v", got)
	}
	// Telemetry without presence says nothing about the connection.
	e.status("d1", later.Add(time.Second), nil)
	if got := e.offlineDeadlines(); len(got) != 1 || got[0].ID != ds[0].ID {
		t.Fatalf("after telemetry alone: %+v", got)
	}
	// Back: no deadline.
	e.status("d1", later.Add(2*time.Second), &on)
	if got := e.offlineDeadlines(); len(got) != 0 {
		t.Fatalf("after coming back: %+v", got)
	}
	// Ending the session deletes it.
	e.status("d1", later.Add(4*time.Second), &off)
	if got := e.offlineDeadlines(); len(got) != 1 {
		t.Fatalf("after going away again: %+v", got)
	}
	if _, err := e.action("s1", SessionEnd, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	if got := e.deadlines(); len(got) != 0 {
		t.Fatalf("after the session ended: %+v", got)
	}
	if got := e.keys(pDeadlineOf); len(got) != 0 {
		t.Fatalf("index left after the session ended: %v", got)
	}
}

func TestDeviceOffline_BackInTimeRaisesNothing(t *testing.T) {
	e := mustOfflineEnv(t)
	off, on := false, true
	seen := e.now.Add(time.Minute)
	e.now = seen
	e.status("d1", seen, &off)
	d := e.offlineDeadlines()[0]
	e.now = seen.Add(4 * time.Minute)
	e.status("d1", e.now, &on)
	// The scheduler had read the deadline before the device came back.
	e.now = d.Due
	before := e.dump()
	if r := e.fireResult(d); r.Outcome != "stale" {
		t.Fatalf("outcome %+v", r)
	}
	if e.dump() != before {
		t.Fatal("a stale offline deadline wrote to the state")
	}
	if n := e.countAlarms(AlarmDeviceOffline); n != 0 {
		t.Fatalf("%d device offline alarms", n)
	}
}

func TestDeviceOffline_StaysAwayRaisesOneAlarm(t *testing.T) {
	e := mustOfflineEnv(t)
	off := false
	here := &Location{Lat: 53.48, Lon: -2.24, Source: "gps"}
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{{DeviceID: "d1", SeenAt: e.now, Location: here}}})
	seen := e.now.Add(time.Minute)
	e.now = seen
	e.status("d1", seen, &off)
	d := e.offlineDeadlines()[0]
	e.now = d.Due.Add(time.Second)
	r := e.fireResult(d)
	if r.Outcome != "fired" || r.AlarmID != deadlineAlarmID(d.ID) {
		t.Fatalf("outcome %+v", r)
	}
	a := e.alarm(r.AlarmID)
	if a.Type != AlarmDeviceOffline || a.WorkerID != "w1" || a.DeviceID != "d1" || a.SessionID != "s1" ||
		a.Location == nil || a.Location.Lat != here.Lat {
		t.Fatalf("alarm %+v", a)
	}
	if got := e.offlineDeadlines(); len(got) != 0 {
		t.Fatalf("deadlines left %+v", got)
	}
	if got := e.keys(pDeadlineOf + "device/"); len(got) != 0 {
		t.Fatalf("index left %v", got)
	}
	// Fired again (a retry under a new command ID): stale, no second alarm.
	if r := e.fireResult(d); r.Outcome != "stale" {
		t.Fatalf("second firing %+v", r)
	}
	if n := e.countAlarms(AlarmDeviceOffline); n != 1 {
		t.Fatalf("%d device offline alarms, want exactly 1", n)
	}
}

// An offline deadline that fires after the session ended under it (the
// deadline was read before the end applied) raises nothing.
func TestDeviceOffline_SessionEndedMeanwhile(t *testing.T) {
	e := mustOfflineEnv(t)
	off := false
	e.status("d1", e.now, &off)
	d := e.offlineDeadlines()[0]
	if _, err := e.action("s1", SessionEnd, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	e.now = d.Due
	if r := e.fireResult(d); r.Outcome != "stale" {
		t.Fatalf("outcome %+v", r)
	}
	if n := e.countAlarms(AlarmDeviceOffline); n != 0 {
		t.Fatalf("%d device offline alarms", n)
	}
}
