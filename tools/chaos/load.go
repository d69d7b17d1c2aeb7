package chaos

// The device load: a scenario for the simulator, drawn from the seed. Most
// devices raise alarms; the others run timed sessions, some of which they
// let run out so that the missed-check-in deadline fires.

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

// Defaults of the load.
const (
	// DefaultDevices is how many devices the simulator runs.
	DefaultDevices = 24
	// DefaultAlarmEvery is the mean time between two alarms of one alarm
	// device: with 18 alarm devices, about 4.5 alarms a second overall,
	// often enough that a window without an acknowledged alarm means the
	// cluster could not acknowledge one.
	DefaultAlarmEvery = 4 * time.Second
	// sessionDeviceShare is the share of devices that run sessions (one
	// in four).
	sessionDeviceShare = 4
	// ExpiringSession is the length of a session its worker lets run out.
	ExpiringSession = 15 * time.Second
	// Grace is the organisation's grace period, from a session running out
	// to its missed-check-in alarm.
	Grace = 5 * time.Second
	// expiryMargin is how long after the alarm is due the worker ends a
	// session that ran out: far longer than any single fault keeps the
	// cluster from firing a deadline.
	expiryMargin = 40 * time.Second
	// normalSession is the planned length of a session that its worker
	// ends: it never runs out during a run.
	normalSession = time.Hour
	// expiringShare is the chance that a session is let run out.
	expiringShare = 0.35
)

// PlannedSession is a session of the load.
type PlannedSession struct {
	ID       string
	Device   string        // the device's ID
	Start    time.Duration // from the start of the load
	Expires  bool          // the worker lets it run out, then ends it late
	Duration time.Duration // its planned length
}

// Load is the device load of a run.
type Load struct {
	Devices      int
	AlarmDevices int // devices 1..AlarmDevices raise alarms; the rest run sessions
	Sessions     []PlannedSession
	Scenario     *sim.Scenario
}

// deviceID is the ID sim.Provision gives device i (1-based) under prefix.
func deviceID(prefix string, i int) string { return fmt.Sprintf("%s-d%03d", prefix, i) }

// planLoad draws the steps of devices devices over horizon from seed.
func planLoad(seed uint64, prefix string, devices int, alarmEvery, horizon time.Duration) *Load {
	rng := rand.New(rand.NewPCG(seed, 0x10ad))
	l := &Load{Devices: devices, AlarmDevices: devices - max(1, devices/sessionDeviceShare)}
	var steps []sim.Step
	for d := 1; d <= l.AlarmDevices; d++ {
		at := expDuration(rng, alarmEvery)
		for at < horizon {
			steps = append(steps, sim.Step{At: at, Device: d, Do: sim.DoAlarm, Type: alarmType(rng)})
			at += expDuration(rng, alarmEvery)
		}
	}
	for d := l.AlarmDevices + 1; d <= devices; d++ {
		at := uniform(rng, time.Second, 10*time.Second)
		for n := 1; at < horizon; n++ {
			s := PlannedSession{Device: deviceID(prefix, d), Start: at, Expires: rng.Float64() < expiringShare}
			var end time.Duration
			if s.Expires {
				s.ID = fmt.Sprintf("%s-d%03d-s%03d-expire", prefix, d, n)
				s.Duration = ExpiringSession
				end = at + ExpiringSession + Grace + expiryMargin
			} else {
				s.ID = fmt.Sprintf("%s-d%03d-s%03d-end", prefix, d, n)
				s.Duration = normalSession
				checkIn := at + uniform(rng, 3*time.Second, 8*time.Second)
				end = checkIn + uniform(rng, 5*time.Second, 15*time.Second)
				steps = append(steps, sim.Step{At: checkIn, Device: d, Do: sim.DoCheckIn, Session: s.ID})
			}
			steps = append(steps,
				sim.Step{At: at, Device: d, Do: sim.DoSessionStart, Session: s.ID, Duration: s.Duration.String(),
					Update: "chaos: visit " + s.ID},
				sim.Step{At: end, Device: d, Do: sim.DoSessionEnd, Session: s.ID})
			l.Sessions = append(l.Sessions, s)
			at = end + uniform(rng, 2*time.Second, 6*time.Second)
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	l.Scenario = &sim.Scenario{Steps: steps}
	return l
}

// deviceAlarmTypes are the alarm types a device raises on its own; the
// state machine raises the others (missed check-in, duress, offline).
var deviceAlarmTypes = []string{"red_alert", "man_down", "discreet_panic", "low_battery", "test"}

// alarmType picks a device alarm type, red alerts the most often.
func alarmType(rng *rand.Rand) string {
	switch n := rng.IntN(100); {
	case n < 55:
		return "red_alert"
	case n < 75:
		return "man_down"
	case n < 88:
		return "discreet_panic"
	case n < 95:
		return "low_battery"
	default:
		return "test"
	}
}

// expDuration returns an exponentially distributed duration of the given
// mean, at least a millisecond.
func expDuration(rng *rand.Rand, mean time.Duration) time.Duration {
	return max(time.Millisecond, time.Duration(rng.ExpFloat64()*float64(mean)))
}
