package monitoring

// The bounds of a time a device gives by its own clock.

import (
	"fmt"
	"time"
)

// Bounds of a device's clock.
const (
	// MaxDeviceClockAhead is how far ahead of the receiving node's clock
	// a device's time may be: a day covers a device left in another time
	// zone's local time or a clock set by hand, and refuses the year 9999.
	MaxDeviceClockAhead = 24 * time.Hour
)

// EarliestDeviceTime is the earliest time a device may give: a clock
// before it has not been set (a device that lost its battery starts in
// 1970 or 2000).
var EarliestDeviceTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// CheckDeviceTime reports why t, a time a device gave by its own clock
// (field names it), cannot be taken when the receiving node's clock says
// now: it is before EarliestDeviceTime, or more than MaxDeviceClockAhead
// after now. The zero time, "not given", passes.
func CheckDeviceTime(field string, t, now time.Time) error {
	switch {
	case t.IsZero():
		return nil
	case t.Before(EarliestDeviceTime):
		return fieldErrorf(field, "%s is before %s: the device's clock is not set", t.Format(time.RFC3339), EarliestDeviceTime.Format(time.RFC3339))
	case t.After(now.Add(MaxDeviceClockAhead)):
		return fieldErrorf(field, "%s is more than %s ahead of this node's clock (%s): the device's clock is wrong",
			t.Format(time.RFC3339), fmtHours(MaxDeviceClockAhead), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func fmtHours(d time.Duration) string { return fmt.Sprintf("%g hours", d.Hours()) }
