package monitoring

import (
	"encoding/json"
	"testing"
	"time"
)

// Every rule of a listen-in request, each refusal naming its field and
// writing nothing (apply compares the whole state).
func TestListenRequest_Refusals(t *testing.T) {
	e := cancelEnv(t) // red alert a1 from d1, not yet acknowledged
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "t1", Type: AlarmTest, WorkerID: "w1"})
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "t1"})
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: Header{At: e.now, Actor: "device:d2", Node: "n1"}, AlarmID: "c1", Type: AlarmRedAlert, DeviceID: "d2"})
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "c1"})
	e.must(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: e.hdr(), AlarmID: "c1", Resolution: ResolutionFalseAlarm,
		Confirmation: Confirmations[0]})
	cases := []struct {
		name, actor, alarm string
		seconds            int
		code               Code
		field              string
	}{
		{"a device", "device:d1", "a1", 60, CodeInvalid, "actor"},
		{"the system", "system", "a1", 60, CodeInvalid, "actor"},
		{"too short", "tester", "a1", MinListenSeconds - 1, CodeInvalid, "seconds"},
		{"too long", "tester", "a1", MaxListenSeconds + 1, CodeInvalid, "seconds"},
		{"bad alarm ID", "tester", "a/1", 60, CodeInvalid, "alarm_id"},
		{"unknown alarm", "tester", "nope", 60, CodeNotFound, "alarm_id"},
		{"not acknowledged", "tester", "a1", 60, CodeConflict, "alarm_id"},
		{"no device", "tester", "t1", 60, CodeConflict, "alarm_id"},
		{"closed", "tester", "c1", 60, CodeAlarmClosed, "alarm_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.refused(CmdListenRequest, listenRequestCmd{Header: Header{At: e.now, Actor: c.actor, Node: "n1"},
				AlarmID: c.alarm, Seconds: c.seconds}, c.code, c.field)
		})
	}
}

// An accepted request is on the alarm's timeline as a listen_in entry by
// the operator, in the audit log, and runs for its seconds; a silent alarm
// takes one too.
func TestListenRequest_Recorded(t *testing.T) {
	e := cancelEnv(t)
	e.t = t
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "a1"})
	e.events = nil
	resp := e.must(CmdListenRequest, listenRequestCmd{Header: e.hdr(), AlarmID: "a1", Seconds: 90})
	var a Alarm
	if err := json.Unmarshal(resp, &a); err != nil {
		t.Fatal(err)
	}
	if a.Status != StatusInProgress || !a.ListenAt.Equal(e.now) || !a.ListenUntil.Equal(e.now.Add(90*time.Second)) {
		t.Fatalf("alarm %+v", a)
	}
	if !a.Listening(e.now.Add(89*time.Second)) || a.Listening(e.now.Add(90*time.Second)) {
		t.Fatal("Listening is wrong about the request's window")
	}
	tl := e.timeline("a1")
	last := tl[len(tl)-1]
	if last.Kind != ActionListenIn || last.Actor != "tester" || last.Text != "asked the device to stream its audio for 90 s" {
		t.Fatalf("timeline entry %+v", last)
	}
	if got := e.eventTypes(); len(got) != 2 || got[0] != EventAlarmUpdated || got[1] != EventListenRequested {
		t.Fatalf("events %v", got)
	}
	if n := len(e.keys(pAudit)); n == 0 {
		t.Fatal("no audit record")
	}

	// A duress alarm raised by a Duress-PIN session end takes a request:
	// covert listening is how it is verified.
	e.start("s1", "w1", "d1", time.Hour, 0)
	if _, err := e.apply(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionEnd, PIN: pinDuress,
		PINVersion: 1, AlarmID: "dur1", Rules: RulesSessionAudioRef}); err != nil {
		t.Fatal(err)
	}
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "dur1"})
	resp = e.must(CmdListenRequest, listenRequestCmd{Header: e.hdr(), AlarmID: "dur1", Seconds: MaxListenSeconds})
	if err := json.Unmarshal(resp, &a); err != nil || !a.Silent || !a.Listening(e.now) {
		t.Fatalf("duress alarm %+v (%v)", a, err)
	}
}
