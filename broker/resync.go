package broker

// Resync: a device that connects is sent the current state of its alarms
// and its session, as the notices it would have had if it had stayed
// connected: what happened while it was away is not lost. See DESIGN.md,
// "The state on connect".

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Bounds of a resync.
const (
	// ResyncWindow is how far back a connecting device is sent its closed
	// alarms: those raised within it. Its open alarms are sent whatever
	// their age.
	ResyncWindow = 24 * time.Hour
	// MaxResyncAlarms bounds the down/alarm notices of one resync: mochi
	// drops what does not fit in a connection's outbound queue
	// (DefaultWritesPending). Open alarms come first, then the closed ones
	// most recently raised.
	MaxResyncAlarms = 16
)

// resyncTopics are the down topics a resync sends on.
var resyncTopics = []string{DownAlarm, "session", DownReminder, DownListen}

// resyncHook sends a device connected here the state of its alarms and its
// session: when the connection is established (for subscriptions kept from
// an earlier session on this node) and when the device subscribes to one
// of resyncTopics (a clean session subscribes after its CONNACK). It also
// orders those notices with the live ones of downlink.go: both are sent
// under mu, and a live notice of an event the resync already covered is
// not sent after it.
type resyncHook struct {
	mqtt.HookBase
	b *Broker

	mu    sync.Mutex
	conns map[string]resynced // by device: the connection here and the state it was last brought up to
}

// resynced is a device's connection here and the applied index of the
// state its last resync read.
type resynced struct {
	cl    *mqtt.Client
	index uint64
}

var _ mqtt.Hook = (*resyncHook)(nil)

func newResyncHook(b *Broker) *resyncHook {
	return &resyncHook{b: b, conns: map[string]resynced{}}
}

func (h *resyncHook) ID() string { return "vigil-resync" }

func (h *resyncHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnSubscribed || b == mqtt.OnDisconnect
}

// OnSessionEstablished resyncs a device that kept a subscription to a
// resync topic from an earlier session on this node. It runs after the
// CONNACK and before mochi reads the device's next packet.
func (h *resyncHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	for filter := range cl.State.Subscriptions.GetAll() {
		if matchesResync(device, filter) {
			h.resync(cl, device)
			return
		}
	}
}

// OnSubscribed resyncs a device that subscribed to a resync topic. mochi
// calls it once the subscription is in place and just before it writes
// the SUBACK, which the notices may precede, as MQTT allows.
func (h *resyncHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	for i, sub := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code && matchesResync(device, sub.Filter) {
			h.resync(cl, device)
			return
		}
	}
}

// OnDisconnect forgets the connection, unless another connection of the
// device here has replaced it.
func (h *resyncHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.conns[device]; ok && r.cl == cl {
		delete(h.conns, device)
	}
}

// matchesResync reports whether filter, a filter the device may subscribe
// to, matches one of its resync topics.
func matchesResync(device, filter string) bool {
	for _, sub := range resyncTopics {
		if matchesDown(device, filter, sub) {
			return true
		}
	}
	return false
}

// matchesDown reports whether filter, a filter the device may subscribe
// to, matches its topic down/<sub>.
func matchesDown(device, filter, sub string) bool {
	rest, ok := strings.CutPrefix(filter, DownTopic(device, ""))
	if !ok {
		return false
	}
	levels := strings.Split(rest, "/")
	switch {
	case levels[0] == "#":
		return true
	case levels[0] != sub && levels[0] != "+":
		return false
	}
	return len(levels) == 1 || (len(levels) == 2 && levels[1] == "#")
}

// live sends a notice of the event at index to device, unless the device's
// connection here was resynced from a state that already held that event:
// the resync sent its outcome, and the notice would now be older news
// (an acknowledgement after the close, say).
func (h *resyncHook) live(device string, index uint64, send func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.conns[device]; ok && index <= r.index {
		return
	}
	send()
}

// resync reads the device's alarms and session from this node's state and
// sends them, in that order: each alarm the device may see on down/alarm,
// the oldest raised first; each listen-in request still running on
// down/listen; its session on down/session (or that it has
// none); a reminder on down/reminder if the session is overdue. The state
// is this node's, without waiting for the leader: a node that is behind
// sends what it has, and downlink.go sends the rest as it applies it.
func (h *resyncHook) resync(cl *mqtt.Client, device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now().UTC()
	v, err := h.b.svc.DeviceView(device, now.Add(-ResyncWindow))
	if err != nil {
		h.b.logger.Warn("cannot send a device the state of its alarms and session", "device", device, "error", err)
		return
	}
	h.conns[device] = resynced{cl: cl, index: v.Applied}
	for _, n := range resyncAlarms(v.Alarms) {
		h.send(device, DownAlarm, n)
	}
	for _, a := range v.Alarms {
		// A listen-in still running: the device streams for what is left
		// of it (listening.go).
		if a.Listening(now) {
			h.send(device, DownListen, listenNotice(&a.Alarm, now))
		}
	}
	s := v.Session
	if s == nil {
		// No session runs: one that the device shows has ended (or never
		// started). The same whichever PIN ended it.
		h.send(device, "session", NoSession{Action: monitoring.SessionEnd, Status: monitoring.SessionEnded, At: now})
		return
	}
	r := monitoring.SessionReply{SessionID: s.ID, Action: "start", Status: s.Status, At: s.StartedAt.UTC(),
		EndsAt: s.EndsAt.UTC(), NextDue: s.NextDue.UTC(), CheckInInterval: s.CheckInInterval}
	if !s.LastCheckIn.IsZero() {
		r.Action, r.At = monitoring.SessionCheckIn, s.LastCheckIn.UTC() // or an extension: both check in
	}
	h.send(device, "session", r)
	if s.Status == monitoring.SessionOverdue {
		h.send(device, DownReminder, ReminderNotice{SessionID: s.ID, Due: s.NextDue.UTC(),
			GraceUntil: s.GraceUntil.UTC(), TS: s.NextDue.UTC()})
	}
}

// NoSession is sent on down/session when a device connects and no session
// of it is running: session_id is empty, status is ended.
type NoSession struct {
	SessionID string                       `json:"session_id"` // always empty
	Action    monitoring.SessionActionKind `json:"action"`     // end
	Status    monitoring.SessionStatus     `json:"status"`     // ended
	At        time.Time                    `json:"at"`         // when it was sent
}

// resyncAlarms returns the notices a device is sent for its alarms, the
// oldest raised first, at most MaxResyncAlarms: the open ones first, then
// the closed ones most recently raised. It keeps the rule of the live
// notices (alarmNotice): a silent alarm shows nothing, ever, and an alarm
// cancelled from the device shows closed, when it was cancelled, whichever
// PIN (with the Safe PIN it stays open until an operator confirms the
// worker is safe; with the Duress PIN it is silent).
func resyncAlarms(alarms []monitoring.DeviceAlarm) []AlarmNotice {
	var notes []AlarmNotice // the oldest raised first
	for _, a := range alarms {
		n := AlarmNotice{AlarmID: a.ID}
		switch {
		case a.CancelledOnDevice():
			// Either PIN: the device was told it is closed, when it was
			// cancelled, whatever the operators have done since.
			n.Status, n.TS = AlarmNoticeClosed, a.CancelledAt
		case a.Silent:
			continue // duress, discreet panic: nothing an onlooker could see
		case a.Status == monitoring.StatusClosed:
			n.Status, n.TS = AlarmNoticeClosed, a.ClosedAt
		case a.AckBy != "":
			n.Status, n.TS = AlarmNoticeAcknowledged, a.AckAt
		default:
			n.Status, n.TS = AlarmNoticeReceived, a.RaisedAt
		}
		n.TS = n.TS.UTC()
		notes = append(notes, n)
	}
	keep := make([]bool, len(notes))
	room := MaxResyncAlarms
	for i, n := range notes {
		if n.Status != AlarmNoticeClosed && room > 0 {
			keep[i], room = true, room-1
		}
	}
	for i := len(notes) - 1; i >= 0 && room > 0; i-- {
		if notes[i].Status == AlarmNoticeClosed {
			keep[i], room = true, room-1
		}
	}
	out := make([]AlarmNotice, 0, len(notes))
	for i, n := range notes {
		if keep[i] {
			out = append(out, n)
		}
	}
	return out
}

// send publishes msg on the device's down/<sub>.
func (h *resyncHook) send(device, sub string, msg any) {
	payload, err := json.Marshal(msg)
	if err != nil {
		h.b.logger.Error("cannot encode a device notice", "device", device, "topic", sub, "error", err)
		return
	}
	h.b.publish(device, sub, payload)
}
