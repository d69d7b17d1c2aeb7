package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// reset is cancel under the close rule (CmdResetAlarm).
func (e *dirEnv) reset(alarmID string, pin pinOutcome) ([]byte, error) {
	e.t.Helper()
	return e.apply(CmdResetAlarm, cancelAlarmCmd{Header: Header{At: e.now, Actor: "device:d1", Node: "n1"},
		AlarmID: alarmID, PIN: pin, PINVersion: 1, DuressAlarmID: "duress-" + alarmID})
}

// cancelledEvents returns the cancel notices for the device so far, as
// broker/downlink.go would send them.
func (e *dirEnv) cancelledEvents() []string {
	var out []string
	for _, ev := range e.events {
		if ev.Type == EventAlarmCancelled {
			b, _ := json.Marshal(ev.Alarm)
			out = append(out, string(b))
		}
	}
	return out
}

// The close rule: a worker's Safe-PIN reset tells the device the alarm is
// cancelled, exactly as the Duress PIN does, and leaves the alarm open,
// reset and awaiting an operator's confirmation; nothing closes it but an
// operator who records how the worker's safety was confirmed.
func TestResetAlarm_SafePINWaitsForAnOperator(t *testing.T) {
	safe, duress := cancelEnv(t), cancelEnv(t)
	rs, err := safe.reset("a1", pinSafe)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := duress.reset("a1", pinDuress)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rs, rd) {
		t.Fatalf("responses differ:\nsafe   %s\nduress %s", rs, rd)
	}
	if s, d := safe.cancelledEvents(), duress.cancelledEvents(); len(s) != 1 || len(d) != 1 || s[0] != d[0] {
		t.Fatalf("what the device is told differs:\nsafe   %q\nduress %q", s, d)
	}

	a := safe.alarm("a1")
	if a.Status != StatusRaised || !a.AwaitingConfirmation() || !a.ResetAt.Equal(safe.now) || a.Resolution != "" || a.DoNotCall || a.Silent {
		t.Fatalf("safe: alarm %+v; want it open, raised, reset and awaiting confirmation", a)
	}
	if n := len(safe.keys(pOpen)); n != 1 {
		t.Fatalf("safe: %d open alarms, want the reset one", n)
	}
	if n := len(safe.keys(pDeadline)); n == 0 {
		t.Fatal("safe: the acknowledgement deadline went with the reset: nobody has taken the alarm yet")
	}
	var tl []TimelineEntry
	if err := safe.db.View(func(txn *badger.Txn) (err error) { tl, err = AlarmTimeline(txn, "a1"); return err }); err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != ActionWorkerReset || !strings.Contains(last.Text, "confirm they are safe") {
		t.Fatalf("safe: last timeline entry %+v", last)
	}
	// To the device it is over: a second reset reads as for a closed alarm.
	if _, err := safe.reset("a1", pinSafe); !isCode(err, CodeAlarmClosed) {
		t.Fatalf("a second reset: %v, want alarm_closed as after a duress cancel", err)
	}

	// The operator takes it, calls the worker back, and closes it; the close
	// needs a confirmation.
	safe.must(CmdAcknowledge, AcknowledgeCmd{Header: safe.hdr(), AlarmID: "a1"})
	if _, err := safe.apply(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: safe.hdr(), AlarmID: "a1", Resolution: ResolutionFalseAlarm}); !isCode(err, CodeNeedConfirmation) {
		t.Fatalf("close without a confirmation: %v", err)
	}
	safe.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: safe.hdr(), AlarmID: "a1", Resolution: ResolutionFalseAlarm,
		Confirmation: ConfirmedByWorker, Note: "rang back: pressed it by mistake"})
	a = safe.alarm("a1")
	if a.Status != StatusClosed || a.Confirmation != ConfirmedByWorker || a.AwaitingConfirmation() {
		t.Fatalf("closed: %+v", a)
	}
	// Reopened, it no longer waits for a confirmation of that reset; the
	// device, told it was cancelled, still hears nothing of it, as after
	// the Duress PIN.
	safe.must(CmdReopenAlarm, reopenAlarmCmd{Header: safe.hdr(), AlarmID: "a1", Reason: "she rang again"})
	if a = safe.alarm("a1"); !a.ResetAt.IsZero() || a.Confirmation != "" || a.AwaitingConfirmation() || !a.CancelledOnDevice() {
		t.Fatalf("reopened: %+v", a)
	}
}

// An organisation's accidental-press window lets a Safe-PIN reset close
// the alarm by itself, as a false alarm, only within the window and only
// while no operator has taken it.
func TestResetAlarm_AccidentalPressWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		after  time.Duration // from the raise to the reset (cancelEnv waits 5 s)
		ack    bool
		closed bool
	}{
		{"no window (the default)", 0, 0, false, false},
		{"within the window", 10 * time.Second, 0, false, true},
		{"at the window's end", 10 * time.Second, 5 * time.Second, false, true},
		{"after the window", 10 * time.Second, 6 * time.Second, false, false},
		{"within the window, taken by an operator", 10 * time.Second, 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := cancelEnv(t)
			e.putOrg(Organisation{ID: "o1", Name: "Trust", Grace: time.Minute, AccidentalPressWindow: tc.window})
			if tc.ack {
				e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
			}
			e.now = e.now.Add(tc.after)
			if _, err := e.reset("a1", pinSafe); err != nil {
				t.Fatal(err)
			}
			a := e.alarm("a1")
			if !tc.closed {
				if a.Status == StatusClosed || !a.AwaitingConfirmation() {
					t.Fatalf("alarm %+v: want it open, awaiting confirmation", a)
				}
				return
			}
			if a.Status != StatusClosed || a.Resolution != ResolutionFalseAlarm || a.Confirmation != ConfirmedAccidentalPress ||
				!strings.Contains(a.CloseNote, "accidental-press window") || a.ClosedBy != "device:d1" {
				t.Fatalf("alarm %+v: want it closed as an accidental press", a)
			}
			if n := len(e.keys(pOpen)); n != 0 {
				t.Fatalf("%d open alarms", n)
			}
		})
	}
}

// The window is bounded: a long one would let any reset close alarms.
func TestResetAlarm_WindowBounds(t *testing.T) {
	e := mustDirEnv(t)
	for _, w := range []time.Duration{-time.Second, MaxAccidentalPressWindow + time.Second} {
		_, err := e.apply(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o9", Name: "X", AccidentalPressWindow: w}})
		var re *RuleError
		if !errors.As(err, &re) || re.Code != CodeInvalid || re.Field != "org.accidental_press_window_ns" {
			t.Errorf("window %s: %v, want invalid org.accidental_press_window_ns", w, err)
		}
	}
}
