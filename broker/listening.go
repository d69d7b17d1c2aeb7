package broker

// Operator presence on the device: while an operator has an alarm of a
// device (acknowledged or in progress, not closed), the node holding the
// device's connection tells it so on down/alarm with status listening every
// Config.ListeningInterval, the heartbeat that reassures a worker in danger
// that someone is listening and the incident is recorded. It stops when the
// alarm is closed. A silent alarm (duress, discreet panic) never has one,
// nor an alarm the device was told is cancelled, whichever PIN: a Safe-PIN
// reset and a Duress-PIN one look the same on the wire.
//
// Nothing of it is replicated: at each tick a node reads the open alarms
// from its own state and sends the heartbeat of those whose device is
// connected to it. So a device that reconnects to another node, or a change
// of leader, changes nothing: the node the device is on sends it. The read
// and the sends are made under the resync hook's lock, as resyncs and live
// notices are, so a heartbeat never follows the closed notice of the state
// it was read from. See DESIGN.md, "Operator presence".
//
// Listen-in requests (monitoring/listen.go) go out on down/listen, from
// the event and again in a resync while the request runs.

import (
	"encoding/json"
	"math"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// DefaultListeningInterval is how often a device is told that an operator
// has its alarm.
const DefaultListeningInterval = 15 * time.Second

// ListenNotice is published on down/listen: stream the alarm's audio
// (alarm_id, as in audio messages) for seconds from now, without showing
// anything.
type ListenNotice struct {
	AlarmID string    `json:"alarm_id"`
	Seconds int       `json:"seconds"`
	TS      time.Time `json:"ts"`
}

// listenNotice is the notice of a's listen-in request at now: the seconds
// left of it, rounded up.
func listenNotice(a *monitoring.Alarm, now time.Time) ListenNotice {
	left := a.ListenUntil.Sub(now).Seconds()
	return ListenNotice{AlarmID: a.ID, Seconds: int(math.Ceil(left)), TS: now.UTC()}
}

func (b *Broker) listeningInterval() time.Duration {
	if b.cfg.ListeningInterval > 0 {
		return b.cfg.ListeningInterval
	}
	return DefaultListeningInterval
}

// heardBy reports whether a's device is told that an operator has it.
func heardBy(a *monitoring.Alarm) bool {
	return a.DeviceID != "" && a.Type != monitoring.AlarmDeviceFlooding && !a.Silent && !a.CancelledOnDevice() &&
		a.AckBy != "" && (a.Status == monitoring.StatusAcknowledged || a.Status == monitoring.StatusInProgress)
}

// sendListening sends the heartbeat of every alarm an operator has whose
// device is connected here.
func (b *Broker) sendListening() {
	h := b.resync
	h.mu.Lock()
	defer h.mu.Unlock()
	alarms, err := b.svc.OpenAlarms()
	if err != nil {
		b.logger.Warn("cannot read the open alarms for the devices' listening notices", "error", err)
		return
	}
	now := time.Now().UTC()
	for i := range alarms {
		a := &alarms[i]
		if !heardBy(a) || !b.connectedHere(a.DeviceID) {
			continue
		}
		payload, err := json.Marshal(AlarmNotice{AlarmID: a.ID, Status: AlarmNoticeListening, TS: now})
		if err != nil {
			b.logger.Error("cannot encode a device notice", "device", a.DeviceID, "error", err)
			continue
		}
		b.publish(a.DeviceID, DownAlarm, payload)
	}
}
