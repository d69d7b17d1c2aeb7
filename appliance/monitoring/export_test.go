package monitoring

import (
	"context"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Internals, and helpers of the internal tests, for the tests in package
// monitoring_test.

// FireDeadline proposes FireDeadline for d, as the scheduler does.
func (s *Service) FireDeadline(ctx context.Context, d Deadline) (string, error) {
	return s.fireDeadline(ctx, d)
}

// GetOperator reads operator id from the state.
var GetOperator = getOperator

// CountAlarms returns the alarms of type typ for session sessionID in the
// state of svc's node.
func CountAlarms(t testing.TB, svc *Service, typ AlarmType, sessionID string) int {
	t.Helper()
	c := 0
	err := svc.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pAlarm, true, func(_, val []byte) (bool, error) {
			a, err := decodeResponse[Alarm](val)
			if err != nil {
				return false, err
			}
			if a.Type == typ && a.SessionID == sessionID {
				c++
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("count alarms: %v", err)
	}
	return c
}

// IsCode reports whether err is a *RuleError with code.
var IsCode = isCode

// PCMTone returns n frames of a 16-bit PCM tone (audio_test.go).
var PCMTone = pcmTone

// T0 is the time the internal tests start at.
var T0 = t0

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return ptr(v) }

// HashSessionToken is how the state keys a session token.
var HashSessionToken = hashSessionToken

// DeadlineAlarmID is the ID of the alarm a deadline raises.
var DeadlineAlarmID = deadlineAlarmID
