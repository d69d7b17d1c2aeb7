package sim

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario step actions (the do field).
const (
	DoSessionStart = "session_start"
	DoCheckIn      = "checkin"
	DoExtend       = "extend"
	DoSessionEnd   = "session_end"
	DoAlarm        = "alarm"
	DoHeartbeat    = "heartbeat"
	DoLocation     = "location"
)

// alarmTypes are the alarm types a device may raise (device protocol v1).
var alarmTypes = []string{"red_alert", "discreet_panic", "man_down", "low_battery", "test"}

// AlarmTypes returns the alarm types a device may raise.
func AlarmTypes() []string { return slices.Clone(alarmTypes) }

// Step is one timed action of a scenario: at At after the start of the run,
// device Device (1-based) does Do.
type Step struct {
	// At is when the step runs, from the start of the run (a Go duration).
	At time.Duration `yaml:"-"`
	// Device is the device's number, 1 to --devices.
	Device int `yaml:"device"`
	// Do is the action: session_start, checkin, extend, session_end, alarm,
	// heartbeat or location.
	Do string `yaml:"do"`
	// Duration is the session's planned length for session_start (a Go
	// duration; empty for the organisation's default).
	Duration string `yaml:"duration"`
	// CheckInInterval is the session's check-in interval for session_start
	// (empty for the organisation's default, else at least 5m).
	CheckInInterval string `yaml:"checkin_interval"`
	// Update is the session's Update message for session_start.
	Update string `yaml:"update"`
	// Session is the session ID; empty for a new one (session_start) or the
	// device's current session (checkin, extend, session_end).
	Session string `yaml:"session"`
	// PIN is safe (the default), duress, wrong, or literal digits, for
	// checkin, extend and session_end.
	PIN string `yaml:"pin"`
	// ExtendBy is how much to extend by, for extend (a Go duration).
	ExtendBy string `yaml:"extend_by"`
	// Type is the alarm type for alarm: red_alert (the default),
	// discreet_panic, man_down, low_battery or test.
	Type string `yaml:"type"`

	RawAt string `yaml:"at"`
}

// Scenario is the steps of a scenario file, in time order.
type Scenario struct {
	Steps []Step
}

// LoadScenario reads and checks a scenario file for a run of devices
// devices.
func LoadScenario(path string, devices int) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read scenario: %w", err)
	}
	return ParseScenario(b, devices)
}

// ParseScenario decodes a scenario (a YAML list of steps) and checks every
// step against a run of devices devices.
func ParseScenario(b []byte, devices int) (*Scenario, error) {
	var steps []Step
	if err := yaml.Unmarshal(b, &steps); err != nil {
		return nil, fmt.Errorf("cannot decode scenario: %w", err)
	}
	for i := range steps {
		if err := steps[i].check(devices); err != nil {
			return nil, fmt.Errorf("scenario step %d: %w", i+1, err)
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	return &Scenario{Steps: steps}, nil
}

// check validates the step and parses At.
func (s *Step) check(devices int) error {
	if s.RawAt == "" {
		return fmt.Errorf("at: missing (a duration from the start, such as 5s)")
	}
	at, err := time.ParseDuration(s.RawAt)
	if err != nil || at < 0 {
		return fmt.Errorf("at: %q is not a duration of 0 or more", s.RawAt)
	}
	s.At = at
	if s.Device < 1 || s.Device > devices {
		return fmt.Errorf("device: %d is outside 1..%d", s.Device, devices)
	}
	for field, v := range map[string]string{"duration": s.Duration, "checkin_interval": s.CheckInInterval, "extend_by": s.ExtendBy} {
		if v != "" {
			if _, err := time.ParseDuration(v); err != nil {
				return fmt.Errorf("%s: %q is not a duration", field, v)
			}
		}
	}
	switch s.Do {
	case DoSessionStart, DoHeartbeat, DoLocation:
	case DoCheckIn, DoSessionEnd:
	case DoExtend:
		if s.ExtendBy == "" {
			return fmt.Errorf("extend_by: missing for extend")
		}
	case DoAlarm:
		if s.Type == "" {
			s.Type = "red_alert"
		}
		if !slices.Contains(alarmTypes, s.Type) {
			return fmt.Errorf("type: %q is not one of %v", s.Type, alarmTypes)
		}
	case "":
		return fmt.Errorf("do: missing")
	default:
		return fmt.Errorf("do: %q is not one of session_start, checkin, extend, session_end, alarm, heartbeat, location", s.Do)
	}
	return nil
}
