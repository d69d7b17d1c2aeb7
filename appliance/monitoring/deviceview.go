package monitoring

// The state a device is brought up to date with when it connects: its
// alarms and its session, read in one transaction with the applied index,
// so that the gateway can tell which later events it still has to send.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// DeviceView is what the state holds for one device's connection: its
// alarms and its session.
type DeviceView struct {
	// Applied is the index of the last command applied to the state read:
	// the view holds every event up to it and none after.
	Applied uint64
	// Alarms are the device's open alarms, whatever their age, and its
	// alarms raised at or after the time asked for, the oldest raised first.
	Alarms []DeviceAlarm
	// Session is the session not ended that uses the device, or nil.
	Session *Session
}

// DeviceAlarm is an alarm of a DeviceView. For an alarm the device was
// told is cancelled (CancelledOnDevice), CancelledAt is always set: a
// cancel with the Duress PIN recorded before CancelledAt existed has it
// from its timeline.
type DeviceAlarm struct {
	Alarm
}

// DeviceView returns the device's view: its open alarms, its alarms raised
// at or after since, and its session not ended, read from this node's
// state. It costs a scan of the open alarms' index keys, a read of each
// open alarm raised before since (normally none), and a read of each alarm
// the device raised since.
func (s *Service) DeviceView(deviceID string, since time.Time) (*DeviceView, error) {
	v := &DeviceView{}
	err := s.view(func(txn *badger.Txn) error {
		var err error
		if v.Applied, err = cluster.AppliedIndex(txn); err != nil {
			return err
		}
		d, err := getDevice(txn, deviceID)
		if err != nil {
			return err
		}
		if v.Alarms, err = deviceAlarms(txn, deviceID, since); err != nil {
			return err
		}
		if d.WorkerID != "" {
			sess, err := workerSession(txn, d.WorkerID)
			if err != nil {
				return err
			}
			if sess != nil && sess.DeviceID == deviceID {
				v.Session = sess
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// deviceAlarms returns the device's open alarms and its alarms raised at or
// after since, the oldest raised first.
func deviceAlarms(txn *badger.Txn, deviceID string, since time.Time) ([]DeviceAlarm, error) {
	var out []DeviceAlarm
	add := func(a *Alarm) error {
		da := DeviceAlarm{Alarm: *a}
		if a.DuressCancel && a.CancelledAt.IsZero() {
			at, err := duressCancelTime(txn, a.ID)
			if err != nil {
				return err
			}
			da.CancelledAt = at
		}
		out = append(out, da)
		return nil
	}
	// Open alarms raised before since: from the open index, whose keys hold
	// the time raised (ix/open/<priority>/<raised>/<id>).
	from := tkey(since)
	err := scanPrefix(txn, pOpen, false, func(key, _ []byte) (bool, error) {
		parts := strings.Split(string(key[len(pOpen):]), "/")
		if len(parts) != 3 {
			return false, fmt.Errorf("index key %s: want <priority>/<raised>/<id>", key)
		}
		if parts[1] >= from {
			return true, nil // found below, with the device's alarms raised since
		}
		a, err := getAlarm(txn, parts[2])
		if err != nil {
			return false, fmt.Errorf("index %s: %w", key, err)
		}
		if a.DeviceID != deviceID {
			return true, nil
		}
		return true, add(a)
	})
	if err != nil {
		return nil, err
	}
	err = scanFrom(txn, pDeviceAlarm+deviceID+"/", from, func(key []byte) (bool, error) {
		a, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, fmt.Errorf("index %s: %w", key, err)
		}
		return true, add(a)
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b DeviceAlarm) int {
		if c := a.RaisedAt.Compare(b.RaisedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// duressCancelTime returns when an alarm was cancelled with the Duress PIN:
// the time of the note applyCancelAlarm put on its timeline.
func duressCancelTime(txn *badger.Txn, alarmID string) (time.Time, error) {
	prefix, _, _ := strings.Cut(cancelDuressText, "%")
	var at time.Time
	err := scanPrefix(txn, pTimeline+alarmID+"/", true, func(key, val []byte) (bool, error) {
		var te TimelineEntry
		if err := json.Unmarshal(val, &te); err != nil {
			return false, fmt.Errorf("cannot decode %s: %w", key, err)
		}
		if te.Kind == ActionNote && te.Actor == "system" && strings.HasPrefix(te.Text, prefix) {
			at = te.At
			return false, nil
		}
		return true, nil
	})
	return at, err
}
