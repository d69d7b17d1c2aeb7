package monitoring_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

func TestCheckDeviceTime(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		t    time.Time
		want string // in the error; empty: accepted
	}{
		{"not given", time.Time{}, ""},
		{"now", now, ""},
		{"a day ago", now.Add(-24 * time.Hour), ""},
		{"a month ago", now.AddDate(0, -1, 0), ""},
		{"an hour ahead", now.Add(time.Hour), ""},
		{"a day ahead", now.Add(monitoring.MaxDeviceClockAhead), ""},
		{"just over a day ahead", now.Add(monitoring.MaxDeviceClockAhead + time.Second), "ahead of this node's clock"},
		{"the year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "ahead of this node's clock"},
		{"1970", time.Unix(0, 0), "not set"},
		{"1999", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), "not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := monitoring.CheckDeviceTime("ts", tc.t, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *monitoring.FieldError
			if !errors.As(err, &fe) || fe.Field != "ts" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want a FieldError for ts saying %q", err, tc.want)
			}
		})
	}
}
