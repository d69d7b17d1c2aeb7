package monitoring

import (
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ackDeadlines returns the acknowledgement deadlines in the state.
func (e *dirEnv) ackDeadlines() []Deadline {
	e.t.Helper()
	var out []Deadline
	for _, d := range e.deadlines() {
		if d.Kind == DeadlineAckOverdue {
			out = append(out, d)
		}
	}
	return out
}

func TestAckOverdue_FiresAt10And40Seconds(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	raised := e.now
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Type: AlarmRedAlert, DeviceID: "d1"})
	ds := e.ackDeadlines()
	if len(ds) != 1 || ds[0].AlarmID != "a1" || !ds[0].Due.Equal(raised.Add(AckTarget1)) {
		t.Fatalf("after raising: %+v", ds)
	}
	e.eventTypes()

	e.now = ds[0].Due.Add(200 * time.Millisecond)
	if r := e.fireResult(ds[0]); r.Outcome != "fired" {
		t.Fatalf("10 s: %+v", r)
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventAckOverdue}) {
		t.Fatalf("events %v", got)
	}
	second := e.ackDeadlines()
	if len(second) != 1 || !second[0].Due.Equal(raised.Add(AckTarget2)) || second[0].ID == ds[0].ID {
		t.Fatalf("after 10 s: %+v", second)
	}
	// The first again: stale, nothing written.
	before := e.dump()
	if r := e.fireResult(ds[0]); r.Outcome != "stale" {
		t.Fatalf("10 s again: %+v", r)
	}
	if e.dump() != before {
		t.Fatal("a stale acknowledgement deadline wrote to the state")
	}

	e.now = second[0].Due
	if r := e.fireResult(second[0]); r.Outcome != "fired" {
		t.Fatalf("40 s: %+v", r)
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventAckOverdue}) {
		t.Fatalf("events %v", got)
	}
	if got := e.ackDeadlines(); len(got) != 0 {
		t.Fatalf("after 40 s: %+v", got)
	}
	var notes []string
	a := e.alarm("a1")
	if a.Status != StatusRaised || a.Actions != 3 {
		t.Fatalf("alarm %+v", a)
	}
	for _, ev := range e.timeline("a1") {
		if ev.Kind == ActionNote && ev.Actor == "system" {
			notes = append(notes, ev.Text)
		}
	}
	if want := []string{"not acknowledged within 10 s", "not acknowledged within 40 s"}; !slices.Equal(notes, want) {
		t.Fatalf("notes %q, want %q", notes, want)
	}
	if got := e.keys(pDeadlineOf); len(got) != 0 {
		t.Fatalf("index left %v", got)
	}
}

func TestAckOverdue_AcknowledgeOrCloseDeletes(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(e *dirEnv)
	}{
		{"acknowledged", func(e *dirEnv) {
			e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
		}},
		{"acknowledged after 10 s", func(e *dirEnv) {
			e.now = e.now.Add(11 * time.Second)
			e.fireResult(e.ackDeadlines()[0])
			e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
		}},
		{"closed", func(e *dirEnv) {
			e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
			e.must(CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionWorkerSafe})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustDirEnv(t)
			e.seed()
			e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Type: AlarmManDown, DeviceID: "d1"})
			pending := e.ackDeadlines()
			tc.do(e)
			if got := e.ackDeadlines(); len(got) != 0 {
				t.Fatalf("deadlines left %+v", got)
			}
			if got := e.keys(pDeadlineOf); len(got) != 0 {
				t.Fatalf("index left %v", got)
			}
			// One read by the scheduler before the change is stale.
			e.now = e.now.Add(time.Minute)
			if r := e.fireResult(pending[0]); r.Outcome != "stale" {
				t.Fatalf("outcome %+v", r)
			}
		})
	}
	t.Run("cancelled from the device", func(t *testing.T) {
		e := cancelEnv(t)
		if _, err := e.cancel("device:d1", "a1", pinSafe, 1); err != nil {
			t.Fatal(err)
		}
		if got := e.ackDeadlines(); len(got) != 0 {
			t.Fatalf("deadlines left %+v", got)
		}
	})
	t.Run("test alarms have none", func(t *testing.T) {
		e := mustDirEnv(t)
		e.seed()
		e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "t1", Type: AlarmTest, DeviceID: "d1"})
		if got := e.ackDeadlines(); len(got) != 0 {
			t.Fatalf("deadlines %+v", got)
		}
	})
}

func (e *dirEnv) timeline(id string) []TimelineEntry {
	e.t.Helper()
	var out []TimelineEntry
	if err := e.db.View(func(txn *badger.Txn) (err error) { out, err = AlarmTimeline(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return out
}
