package monitoring

import (
	"testing"
	"time"
)

// A reported battery under the organisation's level raises one
// low-battery alarm per low spell: none again until the battery is back
// over the level by LowBatteryHysteresis. Under the older rules (a log
// written before) a report raises nothing, as it did.
func TestDeviceStatus_LowBatteryRaisesOneAlarm(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	report := func(battery, rules int) {
		t.Helper()
		e.now = e.now.Add(time.Minute)
		e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Rules: rules,
			Devices: []DeviceStatus{{DeviceID: "d1", Battery: &battery, SeenAt: e.now}}})
	}
	lowAlarms := func() []Alarm {
		t.Helper()
		var out []Alarm
		for _, k := range e.keys(pOpen) {
			if a := e.alarm(lastSegment([]byte(k))); a.Type == AlarmLowBattery {
				out = append(out, *a)
			}
		}
		return out
	}
	report(9, 0)
	if n := len(lowAlarms()); n != 0 {
		t.Fatalf("under the older rules a report raised %d alarms", n)
	}
	for i, tc := range []struct {
		battery, want int
	}{
		{10, 1}, // under 15: raised
		{12, 1}, // still low: no repeat
		{16, 1}, // over the level, not by the hysteresis: the same spell
		{14, 1},
		{20, 1}, // back over by 5: the spell ends
		{13, 2}, // a new spell, a new alarm
	} {
		report(tc.battery, RulesLowBattery)
		got := lowAlarms()
		if len(got) != tc.want {
			t.Fatalf("report %d (battery %d): %d low-battery alarms, want %d", i, tc.battery, len(got), tc.want)
		}
		for _, a := range got {
			if a.DeviceID != "d1" || a.WorkerID != "w1" || a.Priority != DefaultPriorities[AlarmLowBattery] {
				t.Fatalf("low-battery alarm %+v", a)
			}
		}
	}
	// The organisation's own level.
	e.putOrg(Organisation{ID: "o1", Name: "Trust", Grace: time.Minute, LowBattery: 40})
	report(35, RulesLowBattery)
	if d := e.device("d2"); d.LowBatteryAlarm != "" {
		t.Fatalf("device d2 %+v has a low-battery alarm it never reported", d)
	}
	b := 35
	e.now = e.now.Add(time.Minute)
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Rules: RulesLowBattery, Devices: []DeviceStatus{{DeviceID: "d2", Battery: &b, SeenAt: e.now}}})
	if d := e.device("d2"); d.LowBatteryAlarm == "" {
		t.Fatal("device d2 at 35 % under its organisation's level of 40 raised no alarm")
	}
	// Bounds of the level.
	e.refused(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o9", Name: "X", LowBattery: MaxLowBattery + 1}},
		CodeInvalid, "org.low_battery_percent")
}
