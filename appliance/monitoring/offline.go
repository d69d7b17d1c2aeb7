package monitoring

// A device that goes away during a session. When a device in a session (not
// ended) goes offline (presence.go: its connection ended, or its node went
// down), a deadline of kind DeadlineDeviceOffline is set at the time it went
// plus the organisation's OfflineThreshold. Its next connection deletes it,
// as does the end of the session. If it fires while the device
// is still away and still in the session, a device-offline alarm is raised.

import (
	"encoding/json"
	"fmt"
	"time"
)

func deviceOwner(id string) string { return "device/" + id }

// offlineDeadlineID is the ID of the offline deadline of a device that
// disconnected at seen: unique, and the same on every node.
func offlineDeadlineID(deviceID string, seen time.Time) string {
	return fmt.Sprintf("device/%s/offline/%d", deviceID, seen.UnixNano())
}

// trackOffline follows device d after a change recorded for it: while it
// is connected it has no offline deadline; when it has just gone offline
// (wentOffline) in a session not ended, the deadline is set at the time it
// went plus its organisation's OfflineThreshold. A device already offline
// keeps the deadline it has: it has been away since the first disconnect.
func trackOffline(c *applyCtx, d *Device, wentOffline bool) error {
	if d.Connected {
		return clearOwnedDeadline(c, deviceOwner(d.ID), DeadlineDeviceOffline)
	}
	if !wentOffline {
		return nil
	}
	sess, err := deviceSession(c, d)
	if err != nil {
		return err
	}
	if sess == nil {
		return clearOwnedDeadline(c, deviceOwner(d.ID), DeadlineDeviceOffline)
	}
	org, err := getOrg(c.txn, sess.OrgID)
	if err != nil {
		return err
	}
	threshold := org.OfflineThreshold
	if threshold <= 0 {
		threshold = DefaultOfflineThreshold
	}
	gone := d.DisconnectedAt
	if gone.IsZero() {
		gone = d.LastSeen
	}
	dl := &Deadline{ID: offlineDeadlineID(d.ID, gone), Kind: DeadlineDeviceOffline,
		Due: gone.Add(threshold), SessionID: sess.ID, DeviceID: d.ID}
	return putOwnedDeadline(c, deviceOwner(d.ID), dl)
}

// fireDeviceOffline acts on a device's offline deadline d, stored at key:
// if the device is still away and still in the deadline's session, it
// raises a device-offline alarm with ID alarmID. The deadline goes either
// way.
func fireDeviceOffline(c *applyCtx, key string, d *Deadline, alarmID string) ([]byte, error) {
	dev, err := getDevice(c.txn, d.DeviceID)
	if err != nil {
		return nil, err
	}
	sess, err := deviceSession(c, dev)
	if err != nil {
		return nil, err
	}
	if dev.Connected || sess == nil || sess.ID != d.SessionID {
		if err := dropFiredDeadline(c, deviceOwner(dev.ID), key, d.Kind); err != nil {
			return nil, err
		}
		return json.Marshal(fireResult{Outcome: "stale", Kind: d.Kind})
	}
	if err := validID("alarm_id", alarmID); err != nil {
		return nil, err
	}
	r := RaiseAlarmCmd{Header: c.hdr, AlarmID: alarmID, Type: AlarmDeviceOffline,
		DeviceID: dev.ID, WorkerID: sess.WorkerID, SessionID: sess.ID, Location: sessionLocation(c, sess)}
	if _, err := raiseAlarm(c, r); err != nil {
		return nil, err
	}
	if err := dropFiredDeadline(c, deviceOwner(dev.ID), key, d.Kind); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("away since %s: device offline alarm %s", dev.LastSeen.Format(time.RFC3339), alarmID)
	if err := c.audit(CmdFireDeadline, "session/"+sess.ID, detail); err != nil {
		return nil, err
	}
	return json.Marshal(fireResult{Outcome: "fired", Kind: d.Kind, AlarmID: alarmID})
}
