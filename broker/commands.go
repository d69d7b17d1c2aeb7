package broker

// Commands to devices besides the alarm notices: prompts (down/prompt) and
// their answers (up/prompt/answer), the device's configuration
// (down/config), and the worker's Update message (up/update). See
// DESIGN.md, "Commands to devices".

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// ProtocolVersion is the device protocol version, as down/config names it.
const ProtocolVersion = "v1"

// PromptNotice is published on down/prompt when an operator prompts the
// device.
type PromptNotice struct {
	PromptID  string                `json:"prompt_id"`
	Kind      monitoring.PromptKind `json:"kind"`
	Text      string                `json:"text,omitempty"`
	AlarmID   string                `json:"alarm_id,omitempty"`
	ExpiresAt time.Time             `json:"expires_at"` // an answer at or after this is refused
	TS        time.Time             `json:"ts"`         // the event's time
}

// PromptAnswerResult is the result of an up/prompt/answer message. It says
// nothing of an alarm the answer raised: that alarm is silent.
type PromptAnswerResult struct {
	PromptID string                  `json:"prompt_id"`
	Answer   monitoring.PromptAnswer `json:"answer"`
}

// UpdateResult is the result of an up/update message.
type UpdateResult struct {
	SessionID string    `json:"session_id,omitempty"` // the session whose Update it replaced; none: the worker's standing Update
	At        time.Time `json:"at"`
}

// ConfigNotice is published on down/config: the settings a
// device works with. Intervals are whole seconds.
type ConfigNotice struct {
	Protocol          string    `json:"protocol"`
	HeartbeatInterval int64     `json:"heartbeat_interval_s"`
	LocationInterval  int64     `json:"location_interval_s"`
	OfflineThreshold  int64     `json:"offline_threshold_s"` // away this long during a session raises an alarm
	SessionDuration   int64     `json:"session_duration_s"`  // when session/start gives none
	CheckInInterval   int64     `json:"checkin_interval_s,omitempty"`
	Grace             int64     `json:"grace_s"` // after a reminder, before a missed check-in alarm
	MaxPayload        int       `json:"max_payload"`
	TS                time.Time `json:"ts"` // when it was sent
}

// settingsOf returns the settings of an organisation's devices, with the
// defaults for what it leaves unset, without a time. An unset heartbeat
// interval is at most half the offline threshold.
func settingsOf(o *monitoring.Organisation) ConfigNotice {
	or := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	offline := or(o.OfflineThreshold, monitoring.DefaultOfflineThreshold)
	heartbeat := o.HeartbeatInterval
	if heartbeat <= 0 {
		heartbeat = min(monitoring.DefaultHeartbeatInterval, offline/2)
	}
	secs := func(d time.Duration) int64 { return int64(d / time.Second) }
	return ConfigNotice{
		Protocol:          ProtocolVersion,
		HeartbeatInterval: max(1, secs(heartbeat)),
		LocationInterval:  secs(or(o.LocationInterval, monitoring.DefaultLocationInterval)),
		OfflineThreshold:  secs(offline),
		SessionDuration:   secs(or(o.DefaultSession, monitoring.DefaultSessionDuration)),
		CheckInInterval:   secs(o.DefaultCheckIn),
		Grace:             secs(or(o.Grace, monitoring.DefaultGrace)),
		MaxPayload:        MaxPayload,
	}
}

// commandHook sends the devices connected to this node their
// configuration on down/config: when a device connects (for a subscription
// it kept from an earlier session), when it subscribes to down/config (or
// down/#: a device subscribes after its CONNECT), when its organisation's
// settings change, and when it moves to another organisation. Nothing is
// retained: a retained message would cost about 1.6 KiB per connected
// device in mochi (measured: packet, topic nodes), against nothing here but
// an entry in devices.
type commandHook struct {
	mqtt.HookBase
	b *Broker

	// mu serialises config publishes: each reads this node's state and
	// the last one made is from the newest state.
	mu      sync.Mutex
	devices map[string]configured   // devices connected here
	sent    map[string]ConfigNotice // by organisation: the settings last sent on its EventOrgUpdated
}

// configured is a device connected here and the organisation its config
// is from.
type configured struct {
	cl  *mqtt.Client
	org string
}

var _ mqtt.Hook = (*commandHook)(nil)

func newCommandHook(b *Broker) *commandHook {
	return &commandHook{b: b, devices: map[string]configured{}, sent: map[string]ConfigNotice{}}
}

func (h *commandHook) ID() string { return "vigil-commands" }

func (h *commandHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnSubscribed || b == mqtt.OnDisconnect
}

// OnSessionEstablished records the device and sends its configuration. It
// runs after the CONNACK and before mochi reads the device's first packet;
// only a subscription the device kept from an earlier session on this node
// gets it now.
func (h *commandHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.devices[device] = configured{cl: cl}
	h.sendConfig(device)
}

// OnSubscribed sends the configuration to a device that subscribed to its
// down/config topic. mochi calls it once the subscription is in place and
// just before it writes the SUBACK, so the configuration may arrive before
// the SUBACK, which MQTT allows.
func (h *commandHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	if !grantsConfig(device, pk.Filters, codes) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.devices[device]; ok && c.cl == cl {
		h.sendConfig(device)
	}
}

// grantsConfig reports whether a subscription granted one of filters
// (codes are the SUBACK's) matching the device's down/config topic.
func grantsConfig(device string, filters packets.Subscriptions, codes []byte) bool {
	for i, sub := range filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code && matchesConfig(device, sub.Filter) {
			return true
		}
	}
	return false
}

// matchesConfig reports whether filter, a filter the device may subscribe
// to, matches its down/config topic.
func matchesConfig(device, filter string) bool { return matchesDown(device, filter, DownConfig) }

// sendConfig reads the device and its organisation from this node's state,
// notes the organisation and publishes the configuration. h.mu is held.
func (h *commandHook) sendConfig(device string) {
	d, err := h.b.svc.Device(device)
	if err != nil {
		h.b.logger.Warn("cannot send a device its configuration", "device", device, "error", err)
		return
	}
	org, err := h.b.svc.Organisation(d.OrgID)
	if err != nil {
		h.b.logger.Warn("cannot send a device its configuration", "device", device, "org", d.OrgID, "error", err)
		return
	}
	if c, ok := h.devices[device]; ok {
		c.org = org.ID
		h.devices[device] = c
	}
	h.publishConfig(device, settingsOf(org))
}

// OnDisconnect forgets the device, unless another connection of the device
// here has replaced this one.
func (h *commandHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Inline {
		return
	}
	device := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.devices[device]; ok && c.cl == cl {
		delete(h.devices, device)
	}
}

// configEvent sends a new configuration to the devices connected here that
// an event concerns: every device of an organisation whose settings
// changed, or a device that moved to another organisation. Telemetry emits
// EventDeviceUpdated too, so that case costs one map lookup.
func (h *commandHook) configEvent(e monitoring.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch e.Type {
	case monitoring.EventOrgUpdated:
		if e.Org == nil {
			return
		}
		s := settingsOf(e.Org)
		if prev, ok := h.sent[e.Org.ID]; ok && prev == s {
			return // a change devices do not see (a name, a procedure...)
		}
		h.sent[e.Org.ID] = s
		for device, c := range h.devices {
			if c.org == e.Org.ID {
				h.publishConfig(device, s)
			}
		}
	case monitoring.EventDeviceUpdated:
		d := e.Device
		if d == nil {
			return
		}
		c, ok := h.devices[d.ID]
		if !ok || c.org == d.OrgID {
			return
		}
		h.sendConfig(d.ID)
	}
}

// publishConfig publishes s, timed now, to device.
func (h *commandHook) publishConfig(device string, s ConfigNotice) {
	s.TS = time.Now().UTC()
	payload, err := json.Marshal(s)
	if err != nil {
		h.b.logger.Error("cannot encode a device configuration", "device", device, "error", err)
		return
	}
	if err := h.b.server.Publish(DownTopic(device, DownConfig), payload, false, 1); err != nil {
		h.b.logger.Warn("cannot publish to device", "device", device, "topic", DownConfig, "error", err)
	}
}

// promptNotice is what a device is sent on down/prompt.
func promptNotice(p *monitoring.DevicePrompt, at time.Time) PromptNotice {
	return PromptNotice{PromptID: p.ID, Kind: p.Kind, Text: p.Text, AlarmID: p.AlarmID,
		ExpiresAt: p.ExpiresAt.UTC(), TS: at.UTC()}
}

// answerPrompt records the device's answer to a prompt it was sent.
func (b *Broker) answerPrompt(ctx context.Context, cmdID, actor, device string, msg Message) (any, error) {
	p, err := b.svc.AnswerPrompt(ctx, cmdID, actor, monitoring.PromptAnswerRequest{
		PromptID: msg.PromptID, DeviceID: device, Answer: msg.Answer, DeviceTime: msg.TS,
	})
	if err != nil {
		return nil, err
	}
	return PromptAnswerResult{PromptID: p.ID, Answer: p.Answer}, nil
}

// postUpdate records the worker's Update message: the session's Update
// (the one named, else the worker's current one), else the worker's
// standing Update.
func (b *Broker) postUpdate(ctx context.Context, cmdID, actor, device string, msg Message) (any, error) {
	r, err := b.svc.PostUpdate(ctx, cmdID, actor, monitoring.PostUpdateRequest{
		DeviceID: device, WorkerID: msg.WorkerID, SessionID: msg.SessionID, Text: msg.Update, DeviceTime: msg.TS,
	})
	if err != nil {
		return nil, err
	}
	return UpdateResult{SessionID: r.SessionID, At: r.At}, nil
}
