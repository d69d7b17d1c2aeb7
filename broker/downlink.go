package broker

// Commands to devices, driven by domain events: every node sees every
// event in commit order; only the node holding a device's connection
// publishes to it. See DESIGN.md, "Commands to devices".

import (
	"encoding/json"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Down topics of commands driven by domain events (after down/).
const (
	DownAlarm    = "alarm"    // AlarmNotice
	DownReminder = "reminder" // ReminderNotice
	DownPrompt   = "prompt"   // PromptNotice (commands.go)
	DownConfig   = "config"   // ConfigNotice (commands.go)
	DownListen   = "listen"   // ListenNotice (listening.go)
)

// Statuses of an AlarmNotice.
const (
	AlarmNoticeReceived     = "received"     // the alarm is raised: Vigil has it
	AlarmNoticeAcknowledged = "acknowledged" // an operator is dealing with it
	AlarmNoticeClosed       = "closed"       // closed (or cancelled from the device)
	// AlarmNoticeListening is sent every Config.ListeningInterval while an
	// operator has the alarm (listening.go).
	AlarmNoticeListening = "listening"
	// AlarmNoticePolice: the operator has called the police about it.
	AlarmNoticePolice = "police"
)

// AlarmNotice is published on down/alarm.
type AlarmNotice struct {
	AlarmID string    `json:"alarm_id"`
	Status  string    `json:"status"`
	TS      time.Time `json:"ts"` // the event's time
}

// ReminderNotice is published on down/reminder when a session's check-in
// or end is overdue.
type ReminderNotice struct {
	SessionID  string    `json:"session_id"`
	Due        time.Time `json:"due"`
	GraceUntil time.Time `json:"grace_until,omitzero"` // an alarm is raised after this
	TS         time.Time `json:"ts"`                   // the event's time
}

// eventBuffer is the room of the broker's event subscription.
const eventBuffer = monitoring.DefaultSubscriptionBuffer

// runDownlink turns events into commands to the devices connected here,
// until the broker's context ends. It owns sub.
func (b *Broker) runDownlink(sub *monitoring.Subscription) {
	defer close(b.downDone)
	defer func() { sub.Close() }()
	tick := time.NewTicker(b.listeningInterval())
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
			b.sendListening() // listening.go
		case e, ok := <-sub.C:
			if !ok {
				if !sub.Lagged() {
					return
				}
				// Events were lost: devices miss those notices. The next
				// ones still go out.
				b.logger.Warn("downlink fell behind the events; some device notices were not sent")
				sub = b.svc.Subscribe(eventBuffer)
				continue
			}
			b.downlink(e)
		}
	}
}

// downlink sends the command that e calls for, if any, to its device if
// that device is connected to this node.
func (b *Broker) downlink(e monitoring.Event) {
	var device, sub string
	var msg any
	switch e.Type {
	case monitoring.EventAlarmRaised, monitoring.EventAlarmUpdated, monitoring.EventAlarmClosed, monitoring.EventAlarmCancelled:
		a := e.Alarm
		if a == nil || a.DeviceID == "" || a.Type == monitoring.AlarmDeviceFlooding {
			// A device-flooding alarm is about the device, for the
			// operators: a stolen credential learns nothing from it.
			return
		}
		if e.Type == monitoring.EventAlarmCancelled {
			b.lastCancel = cancelMark{index: e.Index, alarm: a.ID}
		} else if b.lastCancel == (cancelMark{index: e.Index, alarm: a.ID}) {
			return // the cancel's own event: the device has had its notice
		}
		status := alarmNotice(e)
		if status == "" {
			return
		}
		device, sub, msg = a.DeviceID, DownAlarm, AlarmNotice{AlarmID: a.ID, Status: status, TS: e.At.UTC()}
	case monitoring.EventListenRequested:
		a := e.Alarm
		if a == nil || a.DeviceID == "" {
			return
		}
		device, sub, msg = a.DeviceID, DownListen, listenNotice(a, e.At) // listening.go
	case monitoring.EventDevicePrompt:
		p := e.Prompt
		if p == nil {
			return
		}
		device, sub, msg = p.DeviceID, DownPrompt, promptNotice(p, e.At) // commands.go
	case monitoring.EventOrgUpdated, monitoring.EventDeviceUpdated:
		b.cmds.configEvent(e) // commands.go: down/config
		return
	case monitoring.EventCheckInReminder:
		s := e.Session
		if s == nil || s.DeviceID == "" {
			return
		}
		device, sub = s.DeviceID, DownReminder
		msg = ReminderNotice{SessionID: s.ID, Due: s.NextDue.UTC(), GraceUntil: s.GraceUntil.UTC(), TS: e.At.UTC()}
	default:
		return
	}
	if !b.connectedHere(device) {
		return
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		b.logger.Error("cannot encode a device notice", "device", device, "error", err)
		return
	}
	if sub == DownPrompt {
		b.publish(device, sub, payload)
		return
	}
	// An alarm, a listen request or a reminder: a resync of the device's connection may
	// already have sent this event's outcome, or a newer one (resync.go).
	b.resync.live(device, e.Index, func() { b.publish(device, sub, payload) })
}

// cancelMark names the last cancel seen by the event loop: the command's
// index and the alarm.
type cancelMark struct {
	index uint64
	alarm string
}

// alarmNotice returns the status an alarm event shows the device, or "" for
// none.
func alarmNotice(e monitoring.Event) string {
	a := e.Alarm
	if e.Type == monitoring.EventAlarmCancelled {
		// The worker cancelled it with a PIN: the device sees "closed"
		// whichever PIN it was; with the Duress PIN the alarm is silent
		// from now on. The command's own EventAlarmClosed (Safe PIN) that
		// follows is skipped by the caller.
		return AlarmNoticeClosed
	}
	if a.Silent {
		return "" // duress, discreet panic: nothing an onlooker could see
	}
	if a.CancelledOnDevice() {
		// The device was told the alarm is cancelled, whichever PIN: what
		// operators do with it afterwards (take it, close it once the
		// worker is confirmed safe) is not shown, or a Safe-PIN reset
		// would look different from a Duress-PIN one.
		return ""
	}
	switch e.Type {
	case monitoring.EventAlarmRaised:
		return AlarmNoticeReceived
	case monitoring.EventAlarmUpdated:
		// A reopened alarm is acknowledged again, by the operator who
		// reopened it: the device, which showed it closed, learns it is
		// being handled once more.
		if e.Entry != nil && (e.Entry.Kind == monitoring.ActionAcknowledged || e.Entry.Kind == monitoring.ActionReopened) {
			return AlarmNoticeAcknowledged
		}
		// The police were called: the worker learns that help is coming,
		// nothing more (not the force, the route or the reference).
		if e.Entry != nil && e.Entry.Kind == monitoring.ActionPolice {
			return AlarmNoticePolice
		}
	case monitoring.EventAlarmClosed:
		return AlarmNoticeClosed
	}
	return ""
}

// connectedHere reports whether device's MQTT client is connected to this
// node.
func (b *Broker) connectedHere(device string) bool {
	cl, ok := b.server.Clients.Get(device)
	return ok && !cl.Closed()
}
