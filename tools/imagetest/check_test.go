package imagetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// recordingT is a testing.T whose errors are counted, not reported.
type recordingT struct {
	*testing.T
	errors int
}

// TestCheckAlarms_FindsLostDoubledAndStrayAlarms checks the end check on
// made-up node views: it must pass a node that holds each acknowledged
// alarm once, and find one that lacks one, holds one twice or holds an
// alarm no command made.
func TestCheckAlarms_FindsLostDoubledAndStrayAlarms(t *testing.T) {
	acked := []*sentAlarm{{device: "img-d1", eventID: "img-d1-a01"}, {device: "img-d2", eventID: "img-d2-a01"}}
	cmd := func(device, event, alarm string) monitoring.DiagCommand {
		b, _ := json.Marshal(monitoring.Alarm{ID: alarm, DeviceID: device})
		return monitoring.DiagCommand{ID: monitoring.CmdRaiseAlarm.String() + "/dev/" + device + "/" + event, Response: b}
	}
	alarm := func(id, device string, raised int) monitoring.DiagAlarm {
		return monitoring.DiagAlarm{Alarm: monitoring.Alarm{ID: id, DeviceID: device}, Raised: raised}
	}
	good := func() *nodeView {
		v := &nodeView{name: "node1", commands: map[string]monitoring.DiagCommand{}}
		for _, c := range []monitoring.DiagCommand{cmd("img-d1", "img-d1-a01", "A1"), cmd("img-d2", "img-d2-a01", "A2")} {
			v.commands[c.ID] = c
		}
		v.alarms = []monitoring.DiagAlarm{alarm("A1", "img-d1", 1), alarm("A2", "img-d2", 1)}
		return v
	}
	for _, tc := range []struct {
		name   string
		change func(v *nodeView)
		lost   int
		errors bool
	}{
		{"every alarm once", func(*nodeView) {}, 0, false},
		{"a command lost", func(v *nodeView) { delete(v.commands, monitoring.CmdRaiseAlarm.String()+"/dev/img-d2/img-d2-a01") }, 1, true},
		{"an alarm lost", func(v *nodeView) { v.alarms = v.alarms[:1] }, 1, true},
		{"an alarm twice", func(v *nodeView) { v.alarms = append(v.alarms, alarm("A2", "img-d2", 1)) }, 0, true},
		{"an alarm raised twice", func(v *nodeView) { v.alarms[0].Raised = 2 }, 0, true},
		{"a refused command", func(v *nodeView) {
			c := v.commands[monitoring.CmdRaiseAlarm.String()+"/dev/img-d1/img-d1-a01"]
			c.Refused, c.Response = "rate limited", nil
			v.commands[c.ID] = c
		}, 0, true},
		{"a stray alarm", func(v *nodeView) { v.alarms = append(v.alarms, alarm("A9", "img-d1", 1)) }, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := good()
			tc.change(v)
			rt := &recordingT{T: t}
			lost := checkAlarms(rt, []*nodeView{good(), v}, acked)
			if lost != tc.lost || (rt.errors > 0) != tc.errors {
				t.Errorf("lost %d, %d errors; want lost %d, errors %v", lost, rt.errors, tc.lost, tc.errors)
			}
		})
	}
}

func (r *recordingT) Errorf(string, ...any) { r.errors++ }

// TestFigures_GapsAndWaits checks the load's figures on made-up alarms.
func TestFigures_GapsAndWaits(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	all := []*sentAlarm{
		{sent: t0, acked: t0.Add(time.Second)},
		{sent: t0.Add(time.Second), acked: t0.Add(5 * time.Second)},
		{sent: t0.Add(2 * time.Second)},
		{sent: t0.Add(5 * time.Second), acked: t0.Add(5500 * time.Millisecond)},
	}
	acked, unacked, gap, wait := figures(all, t0)
	if len(acked) != 3 || unacked != 1 || gap != 4*time.Second || wait != 4*time.Second {
		t.Errorf("acked %d, unacked %d, gap %s, wait %s; want 3, 1, 4s, 4s", len(acked), unacked, gap, wait)
	}
}
