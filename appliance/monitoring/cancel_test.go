package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Hashes for FSM tests: Apply never checks them, only their shape.
const (
	testSafeHash   = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
	testDuressHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$ZHVyZXNzZHVyZXNzZHVyZQ"
)

// cancelEnv is a dirEnv with PINs for w1 and an open red alert a1 from d1.
func cancelEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.seed()
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: testSafeHash, DuressPINHash: testDuressHash})
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: Header{At: e.now, Actor: "device:d1", Node: "n1"}, AlarmID: "a1", Type: AlarmRedAlert, DeviceID: "d1"})
	e.now = e.now.Add(5 * time.Second)
	return e
}

func (e *dirEnv) cancel(actor, alarmID string, pin pinOutcome, version uint64) ([]byte, error) {
	e.t.Helper()
	return e.apply(CmdCancelAlarm, cancelAlarmCmd{Header: Header{At: e.now, Actor: actor, Node: "n1"},
		AlarmID: alarmID, PIN: pin, PINVersion: version, DuressAlarmID: "duress-" + alarmID})
}

func (e *dirEnv) alarm(id string) *Alarm {
	e.t.Helper()
	var a *Alarm
	if err := e.db.View(func(txn *badger.Txn) (err error) { a, err = getAlarm(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func TestCancelAlarm_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prep   func(e *dirEnv)
		actor  string
		alarm  string
		pin    pinOutcome
		ver    uint64
		code   Code
		field  string
		reason string
	}{
		{name: "not a device", actor: "olivia", alarm: "a1", pin: pinSafe, ver: 1, code: CodeInvalid, field: "actor"},
		{name: "another device", actor: "device:d2", alarm: "a1", pin: pinSafe, ver: 1, code: CodeConflict, field: "alarm_id"},
		{name: "no such alarm", actor: "device:d1", alarm: "nope", pin: pinSafe, ver: 1, code: CodeNotFound, field: "alarm_id"},
		{name: "no PIN", actor: "device:d1", alarm: "a1", pin: pinNone, ver: 1, code: CodeInvalid, field: "pin"},
		{name: "unknown PIN outcome", actor: "device:d1", alarm: "a1", pin: "maybe", ver: 1, code: CodeInvalid, field: "pin"},
		{name: "stale PIN", actor: "device:d1", alarm: "a1", pin: pinSafe, ver: 0, code: CodeStalePIN, field: "pin"},
		{name: "closed alarm", actor: "device:d1", alarm: "a1", pin: pinSafe, ver: 1, code: CodeAlarmClosed, field: "alarm_id",
			prep: func(e *dirEnv) {
				e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
				e.must(CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(), AlarmID: "a1", Resolution: ResolutionWorkerSafe})
			}},
		{name: "already cancelled under duress", actor: "device:d1", alarm: "a1", pin: pinSafe, ver: 1, code: CodeAlarmClosed, field: "alarm_id",
			prep: func(e *dirEnv) {
				if _, err := e.cancel("device:d1", "a1", pinDuress, 1); err != nil {
					e.t.Fatal(err)
				}
			}},
		{name: "worker without a Safe PIN", actor: "device:d2", alarm: "a2", pin: pinSafe, ver: 0, code: CodeInvalid, field: "pin",
			prep: func(e *dirEnv) {
				e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a2", Type: AlarmManDown, DeviceID: "d2"})
			}},
		{name: "a duress alarm", actor: "device:d1", alarm: "a3", pin: pinSafe, ver: 1, code: CodeConflict, field: "alarm_id",
			prep: func(e *dirEnv) {
				e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a3", Type: AlarmDuress, DeviceID: "d1"})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := cancelEnv(t)
			if tc.prep != nil {
				tc.prep(e)
			}
			_, err := e.cancel(tc.actor, tc.alarm, tc.pin, tc.ver) // apply checks a refusal wrote nothing
			var re *RuleError
			if !errors.As(err, &re) || re.Code != tc.code || re.Field != tc.field {
				t.Fatalf("got %v, want %s (%s)", err, tc.code, tc.field)
			}
		})
	}
}

// The Safe and the Duress PIN get the same response, byte for byte; only
// the state behind it differs.
func TestCancelAlarm_SafeAndDuress(t *testing.T) {
	safe, duress := cancelEnv(t), cancelEnv(t)
	rs, err := safe.cancel("device:d1", "a1", pinSafe, 1)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := duress.cancel("device:d1", "a1", pinDuress, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rs, rd) {
		t.Fatalf("responses differ:\nsafe   %s\nduress %s", rs, rd)
	}

	a := safe.alarm("a1")
	if a.Status != StatusClosed || a.Resolution != ResolutionFalseAlarm || a.ClosedBy != "device:d1" || a.CloseNote != cancelSafeText {
		t.Fatalf("safe: alarm %+v", a)
	}
	if n := len(safe.keys(pOpen)); n != 0 {
		t.Fatalf("safe: %d open alarms", n)
	}
	// Cancelled by the worker within 5 s: a false alarm, and no target
	// applies since nobody had to acknowledge it.
	var k *KPIs
	if err := safe.db.View(func(txn *badger.Txn) (err error) {
		k, err = ComputeKPIs(txn, "o1", t0, t0.Add(time.Hour), t0.Add(time.Hour))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if k.Raised != 1 || k.Closed != 1 || k.FalseAlarms != 1 || k.TargetBase != 0 || k.Missed != 0 {
		t.Fatalf("KPIs %+v", k)
	}

	a = duress.alarm("a1")
	if a.Status != StatusRaised || !a.DoNotCall || !a.Silent || !a.DuressCancel {
		t.Fatalf("duress: alarm %+v", a)
	}
	d := duress.alarm("duress-a1")
	if d.Type != AlarmDuress || !d.Silent || !d.DoNotCall || d.IncidentID != a.IncidentID || d.WorkerID != "w1" || d.DeviceID != "d1" {
		t.Fatalf("duress alarm %+v, original incident %s", d, a.IncidentID)
	}
	if n := len(duress.keys(pOpen)); n != 2 {
		t.Fatalf("duress: %d open alarms, want the original and the duress alarm", n)
	}
	var tl []TimelineEntry
	if err := duress.db.View(func(txn *badger.Txn) (err error) { tl, err = AlarmTimeline(txn, "a1"); return err }); err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != ActionNote || last.Actor != "system" || !bytes.Contains([]byte(last.Text), []byte("DURESS PIN")) {
		t.Fatalf("duress: last timeline entry %+v", last)
	}
	// An operator may no longer call the worker about the original alarm.
	duress.must(CmdAcknowledge, AcknowledgeCmd{Header: duress.hdr(), AlarmID: "a1"})
	if _, err := duress.apply(CmdLogAction, logActionCmd{Header: duress.hdr(), AlarmID: "a1",
		Entry: TimelineEntry{Kind: ActionCallWorker, Outcome: CallNoAnswer}}); !isCode(err, CodeConflict) {
		t.Fatalf("call to the worker after a duress cancel: %v", err)
	}
}

func TestCancelAlarm_WrongPINIsCounted(t *testing.T) {
	e := cancelEnv(t)
	before := e.alarm("a1")
	resp, err := e.cancel("device:d1", "a1", pinWrong, 1)
	if err != nil {
		t.Fatal(err)
	}
	var r cancelResult
	if err := json.Unmarshal(resp, &r); err != nil || !r.WrongPIN || r.WrongPINs != 1 || r.Cancelled {
		t.Fatalf("response %s, %v", resp, err)
	}
	if w := e.worker("w1"); w.WrongPINs != 1 {
		t.Fatalf("wrong PINs %d", w.WrongPINs)
	}
	b0, _ := json.Marshal(before)
	b1, _ := json.Marshal(e.alarm("a1"))
	if !bytes.Equal(b0, b1) {
		t.Fatalf("a wrong PIN changed the alarm:\n%s\n%s", b0, b1)
	}
	// The right PIN afterwards resets the count.
	if _, err := e.cancel("device:d1", "a1", pinSafe, 1); err != nil {
		t.Fatal(err)
	}
	if w := e.worker("w1"); w.WrongPINs != 0 {
		t.Fatalf("wrong PINs %d after the Safe PIN", w.WrongPINs)
	}
}
