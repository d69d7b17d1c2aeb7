package chaos

// The device events' promises: nothing acked is lost, nothing is applied
// twice, and nothing is applied that no device sent.

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// checkRecords checks that nothing is applied twice or invented: every
// node applied each device event as one command, and only events the
// devices sent.
func checkRecords(v *Verdict, _ checkInput, ix *checkIndex) {
	for _, s := range ix.strays {
		if s.first != "" {
			v.Duplicated++
			v.problem("%s: device event %s applied as two commands, %s and %s", s.node, s.key, s.first, s.id)
		} else {
			v.problem("%s: command %s is of an event the devices never sent", s.node, s.id)
		}
	}
}

// checkAcked checks that nothing acknowledged is lost: every event a
// device got a PUBACK and no refusal for was applied on every node, with
// its effect. It counts the acked events. A refused one was not lost, as
// the device was not told it is saved, but no event of this load should
// ever be refused: a refusal is a finding of its own, listed in full for
// the first of each device's.
func checkAcked(v *Verdict, in checkInput, ix *checkIndex) {
	refusals := map[string]int{} // refusals per device
	for _, k := range ix.order {
		e := ix.events[k]
		if !e.acked {
			continue
		}
		v.Acked++
		if e.typ == "alarm" {
			v.AckedAlarms++
		}
		if reason, refused := ix.refusal(k); refused {
			v.Rejected++
			if refusals[e.device] == 0 {
				v.problem("event %s (%s), acked, was refused: %s", k, e.typ, reason)
			}
			refusals[e.device]++
			continue
		}
		if checkApplied(v, in, ix, k) {
			v.Lost++
		}
	}
	for _, dev := range slices.Sorted(maps.Keys(refusals)) {
		if n := refusals[dev]; n > 1 {
			v.problem("%s: %d more refusals after its first, as its sessions went on from the refused one", dev, n-1)
		}
	}
}

// checkApplied checks that acked event k was applied on every node, with
// its effect, and that all nodes say it raised the same alarm. It reports
// whether the event is lost on some node.
func checkApplied(v *Verdict, in checkInput, ix *checkIndex, k string) (lost bool) {
	e := ix.events[k]
	var firstAlarm string
	for i, nv := range in.views {
		c, ok := ix.applied[i][k]
		if !ok {
			lost = true
			v.problem("%s: acked %s event %s is missing", nv.name, e.typ, k)
			continue
		}
		switch e.typ {
		case "alarm":
			id, missing := alarmApplied(v, nv, k, c)
			lost = lost || missing
			switch {
			case id == "":
			case firstAlarm == "":
				firstAlarm = id
			case id != firstAlarm:
				v.Diverged = true
				v.problem("%s: event %s raised alarm %s, another node says %s", nv.name, k, id, firstAlarm)
			}
		case "session/start", "session/end":
			lost = sessionApplied(v, nv, k, e.typ, c, ix.planned) || lost
		}
	}
	return lost
}

// alarmApplied checks that nv has the alarm that c, its record of alarm
// event k, says was raised. It returns the alarm's ID, empty if the record
// names none, and whether the alarm is missing.
func alarmApplied(v *Verdict, nv *nodeView, k string, c monitoring.DiagCommand) (id string, missing bool) {
	var a monitoring.Alarm
	if err := json.Unmarshal(c.Response, &a); err != nil || a.ID == "" {
		v.problem("%s: the record of alarm event %s names no alarm: %s", nv.name, k, c.Response)
		return "", false
	}
	if _, ok := nv.alarms[a.ID]; !ok {
		v.problem("%s: alarm %s of acked event %s is missing", nv.name, a.ID, k)
		return a.ID, true
	}
	return a.ID, false
}

// sessionApplied checks that nv has the effect of session event k of type
// typ, whose record is c: the session it started is there, the session it
// ended is ended. Only planned sessions are checked. It reports whether
// the effect is missing.
func sessionApplied(v *Verdict, nv *nodeView, k, typ string, c monitoring.DiagCommand, planned map[string]bool) (missing bool) {
	switch typ {
	case "session/start":
		var s monitoring.Session
		if json.Unmarshal(c.Response, &s) == nil && s.ID != "" && nv.sessions[s.ID] == nil && planned[s.ID] {
			v.problem("%s: session %s of acked event %s is missing", nv.name, s.ID, k)
			return true
		}
	case "session/end":
		var r monitoring.SessionReply
		if json.Unmarshal(c.Response, &r) == nil && r.SessionID != "" && planned[r.SessionID] {
			if s := nv.sessions[r.SessionID]; s == nil || s.Status != monitoring.SessionEnded {
				v.problem("%s: session %s, ended by acked event %s, is not ended", nv.name, r.SessionID, k)
				return true
			}
		}
	}
	return false
}

// checkAlarmsOnce checks that nothing is duplicated: every alarm was
// raised once, and every alarm a simulated device raised is the alarm of
// exactly one of its events (an alarm no event's record names was raised
// by an event applied twice).
func checkAlarmsOnce(v *Verdict, in checkInput, ix *checkIndex) {
	dup := map[string]bool{}
	for i, nv := range in.views {
		named := alarmsNamed(ix.applied[i])
		for id, da := range nv.alarms {
			a := da.Alarm
			switch {
			case da.Raised != 1:
				dup[id] = true
				v.problem("%s: alarm %s was raised %d times", nv.name, id, da.Raised)
			case !in.devices[a.DeviceID] || !slices.Contains(deviceAlarmTypes, string(a.Type)):
			case named[id] == 0:
				dup[id] = true
				v.problem("%s: alarm %s (%s of %s, raised %s) is the alarm of no device event: an event applied twice",
					nv.name, id, a.Type, a.DeviceID, a.RaisedAt.Format(time.RFC3339Nano))
			case named[id] > 1:
				dup[id] = true
				v.problem("%s: alarm %s is the alarm of %d events", nv.name, id, named[id])
			}
		}
	}
	v.Duplicated += len(dup)
}

// alarmsNamed counts, by alarm ID, the records in applied that are not
// refusals and name an alarm as raised.
func alarmsNamed(applied map[string]monitoring.DiagCommand) map[string]int {
	named := map[string]int{}
	for _, c := range applied {
		var a monitoring.Alarm
		if c.Refused == "" && json.Unmarshal(c.Response, &a) == nil && a.ID != "" && a.Type != "" {
			named[a.ID]++
		}
	}
	return named
}
