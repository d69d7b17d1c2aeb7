package monitoring

// Key performance indicators: how fast alarms were acknowledged and closed,
// against the BS 8484 targets, per organisation and period.

import (
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The BS 8484 acknowledgement targets: an alarm should be accepted within
// AckTarget1 for AckTarget1Share of alarms, and within AckTarget2 for
// AckTarget2Share.
const (
	AckTarget1      = 10 * time.Second
	AckTarget1Share = 0.80
	AckTarget2      = 40 * time.Second
	AckTarget2Share = 0.985
)

// KPIs are the figures of the alarms raised in one period. Test alarms (of
// type test, or closed as a test) are counted in Raised and Tests only: the
// times and the shares leave them out.
type KPIs struct {
	OrgID string    `json:"org_id,omitempty"` // empty: every organisation
	From  time.Time `json:"from"`
	To    time.Time `json:"to"` // exclusive
	At    time.Time `json:"at"` // the time the figures were made

	Raised       int `json:"raised"`
	Tests        int `json:"tests"`
	Acknowledged int `json:"acknowledged"` // not tests
	Closed       int `json:"closed"`       // not tests
	FalseAlarms  int `json:"false_alarms"`
	Open         int `json:"open"` // not tests, not closed

	MeanToAck     time.Duration `json:"mean_to_ack_ns"`
	MedianToAck   time.Duration `json:"median_to_ack_ns"`
	MeanToClose   time.Duration `json:"mean_to_close_ns"`
	MedianToClose time.Duration `json:"median_to_close_ns"`

	// TargetBase is how many alarms the shares count: the acknowledged
	// ones, and the ones still unacknowledged after AckTarget2 (missed).
	// Alarms younger than that and not acknowledged yet are left out.
	TargetBase   int     `json:"target_base"`
	AckWithin10s float64 `json:"ack_within_10s"` // share of TargetBase, 0 to 1
	AckWithin40s float64 `json:"ack_within_40s"`
	Missed       int     `json:"missed"` // not acknowledged within AckTarget2
	// Target1Met and Target2Met say whether the shares reach the BS 8484
	// targets (vacuously true with no alarms).
	Target1Met bool `json:"target_10s_met"`
	Target2Met bool `json:"target_40s_met"`
}

// ComputeKPIs returns the KPIs of the alarms raised in [from, to) by the
// organisation orgID (every organisation when empty); now decides which
// unacknowledged alarms have already missed their targets.
func ComputeKPIs(txn *badger.Txn, orgID string, from, to, now time.Time) (*KPIs, error) {
	if !to.After(from) {
		return nil, invalid("to", "the period ends (%s) before it begins (%s)", to, from)
	}
	k := &KPIs{OrgID: orgID, From: from, To: to, At: now}
	var toAck, toClose []time.Duration
	within1, within2 := 0, 0
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
		k.Raised++
		if a.Type == AlarmTest || a.Resolution == ResolutionTest {
			k.Tests++
			return true, nil
		}
		if a.Resolution == ResolutionFalseAlarm {
			k.FalseAlarms++
		}
		if a.Status == StatusClosed {
			k.Closed++
			toClose = append(toClose, a.ClosedAt.Sub(a.RaisedAt))
		} else {
			k.Open++
		}
		switch {
		case !a.AckAt.IsZero():
			k.Acknowledged++
			d := a.AckAt.Sub(a.RaisedAt)
			toAck = append(toAck, d)
			k.TargetBase++
			if d <= AckTarget1 {
				within1++
			}
			if d <= AckTarget2 {
				within2++
			} else {
				k.Missed++
			}
		case a.Status == StatusClosed:
			// Cancelled from the device before anyone acknowledged it: it
			// missed the targets only if it waited past AckTarget2.
			if a.ClosedAt.Sub(a.RaisedAt) > AckTarget2 {
				k.TargetBase++
				k.Missed++
			}
		case now.Sub(a.RaisedAt) > AckTarget2:
			k.TargetBase++
			k.Missed++
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	k.MeanToAck, k.MedianToAck = meanMedian(toAck)
	k.MeanToClose, k.MedianToClose = meanMedian(toClose)
	k.AckWithin10s, k.AckWithin40s = 1, 1
	if k.TargetBase > 0 {
		k.AckWithin10s = float64(within1) / float64(k.TargetBase)
		k.AckWithin40s = float64(within2) / float64(k.TargetBase)
	}
	k.Target1Met = k.AckWithin10s >= AckTarget1Share
	k.Target2Met = k.AckWithin40s >= AckTarget2Share
	return k, nil
}

// meanMedian returns the mean and the median of ds (zero when empty).
func meanMedian(ds []time.Duration) (mean, median time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	mean = sum / time.Duration(len(ds))
	if n := len(ds); n%2 == 1 {
		median = ds[n/2]
	} else {
		median = (ds[n/2-1] + ds[n/2]) / 2
	}
	return mean, median
}
