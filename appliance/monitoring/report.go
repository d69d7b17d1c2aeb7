package monitoring

// Reports: the alarms of a period, for the supervisors' charts and
// exports. Read-only.

import (
	"time"

	"github.com/dgraph-io/badger/v4"
)

// MaxReportAlarms bounds the alarms one report reads.
const MaxReportAlarms = 200_000

// AlarmsRaised returns the alarms raised in [from, to) by organisation
// orgID (every organisation when empty), oldest first, at most limit of
// them (MaxReportAlarms when limit is 0 or more), and whether there were
// more.
func AlarmsRaised(txn *badger.Txn, orgID string, from, to time.Time, limit int) ([]Alarm, bool, error) {
	if !to.After(from) {
		return nil, false, invalid("to", "the period ends (%s) before it begins (%s)", to, from)
	}
	if limit <= 0 || limit > MaxReportAlarms {
		limit = MaxReportAlarms
	}
	out := []Alarm{}
	more := false
	end := pRaised + tkey(to)
	err := scanFrom(txn, pRaised, tkey(from), func(key []byte) (bool, error) {
		if string(key) >= end {
			return false, nil
		}
		a, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, err
		}
		if orgID != "" && a.OrgID != orgID {
			return true, nil
		}
		if len(out) == limit {
			more = true
			return false, nil
		}
		out = append(out, *a)
		return true, nil
	})
	return out, more, err
}

// AlarmsRaised returns the alarms raised in [from, to) by organisation
// orgID (every organisation when empty), oldest first, at most limit, from
// this node's state, and whether there were more.
func (s *Service) AlarmsRaised(orgID string, from, to time.Time, limit int) ([]Alarm, bool, error) {
	var out []Alarm
	var more bool
	err := s.view(func(txn *badger.Txn) (err error) {
		out, more, err = AlarmsRaised(txn, orgID, from, to, limit)
		return err
	})
	return out, more, err
}
