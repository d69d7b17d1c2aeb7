package broker

// Ingest: from a device's PUBLISH to a committed command, then the reply.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Reply is what Vigil publishes on vigil/v1/d/<device>/down/reply for every
// message it processed.
type Reply struct {
	EventID string          `json:"event_id"`
	Type    string          `json:"type,omitempty"`
	OK      bool            `json:"ok"`
	Code    string          `json:"code,omitempty"`  // on error: a DecodeError or monitoring code, or unavailable
	Field   string          `json:"field,omitempty"` // on error: the field at fault, when one is
	Error   string          `json:"error,omitempty"` // on error: what is wrong, for people
	Result  json.RawMessage `json:"result,omitempty"`
	// RetryAfter, with code rate_limited, is how many seconds to wait
	// before sending the message again.
	RetryAfter int `json:"retry_after_s,omitempty"`
}

// Codes of error replies made by the gateway itself.
const (
	CodeUnavailable = "unavailable" // not recorded now: send it again
	// CodeDiskFull: not recorded, the cluster refuses writes for a disk
	// nearly full; send it again (no PUBACK comes for an alarm or a
	// session event).
	CodeDiskFull = "disk_full"
)

// AlarmResult is the result of an alarm message.
type AlarmResult struct {
	AlarmID string `json:"alarm_id"`
}

// ingestHook turns device messages into Service calls (DESIGN.md).
type ingestHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*ingestHook)(nil)

func (h *ingestHook) ID() string { return "vigil-ingest" }

func (h *ingestHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnPublishDropped }

// OnPublishDropped runs when mochi drops a message to cl because its
// outbound queue is full, in the goroutine that published it. A reply
// being watched (Broker.replyQueued) is marked as dropped.
func (h *ingestHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if v, ok := h.b.replyWatch.Load(cl); ok && pk.TopicName == DownTopic(cl.ID, "reply") {
		v.(*atomic.Bool).Store(true)
	}
}

// errUnavailable marks a failure to commit: the event may or may not be
// committed, and the device must send it again.
var errUnavailable = errors.New("the cluster did not commit the event in time")

// OnPublish runs in the device's read loop, before mochi writes the PUBACK.
// It returns packets.CodeSuccessIgnore for everything it answered: mochi
// then PUBACKs but neither retains nor forwards the message. It returns
// packets.ErrRejectPacket, after dropping the connection, when the cluster
// did not commit in time: mochi then sends no PUBACK.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // our own replies
	}
	b := h.b
	b.hooks.Add(1)
	defer b.hooks.Done()
	device := string(cl.Properties.Username)
	start := time.Now()
	msg, err := Decode(pk.TopicName, pk.Payload)
	if refused, told := b.rateLimit(cl, device, msg, err); refused { // limit.go
		if !told {
			// The device could not be told that this message was not
			// recorded: it must not get a PUBACK, which it would take
			// for "saved". It sends it again once it has reconnected.
			b.stats.rateLimitedDropped.Add(1)
			h.disconnect(cl)
			return pk, packets.ErrRejectPacket
		}
		return pk, packets.CodeSuccessIgnore
	}
	var result []byte
	if err == nil {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommitTimeout)
		result, err = b.handle(ctx, device, msg)
		if mayBeStale(err) && readsFirst[msg.Type] && b.cfg.WaitApplied != nil {
			// This node may not have applied yet what another node just
			// committed (a session started or ended there a moment ago):
			// catch up with the leader and look again. A node that cannot
			// catch up (cut off, or far behind) must not refuse from its
			// stale state: a device takes a refusal as final, and would
			// leave a session running or a worker unmonitored. It answers
			// nothing, like any other failure to decide, and the device
			// sends again, elsewhere if need be.
			if wErr := b.cfg.WaitApplied(ctx); wErr != nil {
				err = fmt.Errorf("%w: cannot confirm the refusal %q: %w", errUnavailable, err.Error(), wErr)
			} else {
				result, err = b.handle(ctx, device, msg)
			}
		}
		cancel()
		if err == nil && b.cfg.WaitReplicas != nil && !isTelemetry(msg.Type) {
			ctx, cancel := context.WithTimeout(b.ctx, b.cfg.ReplicaWait)
			if got, of := b.cfg.WaitReplicas(ctx); got < of {
				b.stats.shortOfReplicas.Add(1)
			}
			cancel()
		}
	}
	if errors.Is(err, errUnavailable) {
		b.stats.unavailable.Add(1)
		b.logger.Warn("device event not committed: no PUBACK, dropping the connection",
			"device", device, "event_id", msg.EventID, "type", msg.Type, "error", err, "after", time.Since(start))
		if errors.Is(err, monitoring.ErrDiskFull) {
			b.stats.diskFull.Add(1)
			// No PUBACK, as for any event not committed, but a reply that
			// says why, written before the connection is dropped.
			b.writeNow(cl, device, Reply{EventID: msg.EventID, Type: msg.Type, Code: CodeDiskFull,
				Error: "not recorded: the cluster's disks are nearly full and it refuses writes; send it again, " +
					"to another node if this one stays full"})
		}
		h.disconnect(cl)
		return pk, packets.ErrRejectPacket
	}
	r := Reply{EventID: msg.EventID, Type: msg.Type, OK: err == nil, Result: result}
	if err != nil {
		b.stats.errorReplies.Add(1)
		r.Code, r.Field, r.Error = describe(err)
	} else {
		b.stats.committed.Add(1)
	}
	b.sendReply(device, r)
	if err == nil && b.cfg.ObservePuback != nil && !isTelemetry(msg.Type) {
		// The hook returns now and mochi writes the PUBACK.
		b.cfg.ObservePuback(msg.Type, time.Since(start))
	}
	return pk, packets.CodeSuccessIgnore
}

// sendReply publishes r on the device's down/reply.
func (b *Broker) sendReply(device string, r Reply) {
	out, err := json.Marshal(r)
	if err != nil {
		b.logger.Error("cannot encode reply", "error", err)
		return
	}
	b.publish(device, "reply", out)
}

// writeNow writes reply r to the device's connection at once, past the
// outbound queue, when the device subscribes to its down/reply: the
// connection is about to be dropped, and a reply queued would be lost with
// it.
func (b *Broker) writeNow(cl *mqtt.Client, device string, r Reply) {
	subscribed := false
	for filter := range cl.State.Subscriptions.GetAll() {
		subscribed = subscribed || matchesDown(device, filter, "reply")
	}
	if !subscribed {
		return
	}
	out, err := json.Marshal(r)
	if err != nil {
		b.logger.Error("cannot encode reply", "error", err)
		return
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: DownTopic(device, "reply"), Payload: out}
	if err := cl.WritePacket(pk); err != nil {
		b.logger.Warn("cannot write a reply before dropping the connection", "device", device, "error", err)
	}
}

// disconnect drops a device's connection from inside its own read loop.
// An MQTT 5 client is told why; MQTT 3.1.1 has no DISCONNECT from the
// server, so the connection is just closed. Client.Stop is safe here: it
// closes the socket once, and the read loop then ends by itself.
//
// Before the socket closes, a clean session is removed from the server here,
// and mochi's own removal at the end of the read loop is turned off: mochi
// checks "taken over" and only then deletes by client ID, so a device that
// reconnected in between (it sees the socket close at once) would lose its
// new registration and with it every reply (mochi issue #173 was the same
// race for subscriptions). Nothing can take the client over before the
// socket closes.
func (h *ingestHook) disconnect(cl *mqtt.Client) {
	s := h.b.server
	v5 := cl.Properties.ProtocolVersion == 5
	if (v5 && cl.Properties.Props.SessionExpiryInterval == 0) || (!v5 && cl.Properties.Clean) { // mochi's "expire"
		s.UnsubscribeClient(cl)
		cl.ClearInflights()
		s.Clients.Delete(cl.ID)
		cl.Properties.Clean = false                   // mochi: not expire, for MQTT 3.1.1
		cl.Properties.Props.SessionExpiryInterval = 1 // mochi: not expire, for MQTT 5
	}
	if v5 {
		_ = s.DisconnectClient(cl, packets.ErrServerUnavailable)
		return
	}
	cl.Stop(packets.ErrServerUnavailable)
}

// describe turns a refusal into the code, field and text of an error reply.
func describe(err error) (code, field, text string) {
	var de *DecodeError
	var re *monitoring.RuleError
	var fe *monitoring.FieldError
	switch {
	case errors.As(err, &de):
		return de.Code, de.Field, de.Msg
	case errors.As(err, &re):
		return string(re.Code), re.Field, re.Msg
	case errors.As(err, &fe):
		return string(monitoring.CodeInvalid), fe.Field, fe.Reason
	case errors.Is(err, monitoring.ErrDiskFull):
		return CodeDiskFull, "", err.Error()
	}
	return CodeUnavailable, "", err.Error()
}

// readsFirst are the message types whose handling reads this node's state
// before proposing (the session, the worker's PINs, the alarm), so that a
// refusal may come from this node being behind. For the others refusals come
// from the state machine, in log order, and a retry would get the same
// answer.
var readsFirst = map[string]bool{TypeAlarm: true, TypeAlarmCancel: true, TypeSessionStart: true,
	TypeSessionCheckIn: true, TypeSessionExtend: true, TypeSessionEnd: true}

// isTelemetry reports whether messages of type t are gathered for the next
// telemetry batch rather than committed one by one.
func isTelemetry(t string) bool {
	return t == TypeHeartbeat || t == TypeLocation || t == TypeBattery
}

// mayBeStale reports whether err is a refusal read from this node's state
// (no such session, the worker already has one, the session has ended, the
// PIN matched neither), which a node that is behind may give wrongly;
// refusals of the event's own fields hold wherever they are made.
func mayBeStale(err error) bool {
	var re *monitoring.RuleError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case monitoring.CodeInvalid, monitoring.CodeNeedResolution, monitoring.CodeNeedConfirmation:
		return false
	}
	return true
}

// isRefusal reports whether err is an answer (the event was received and
// refused by a rule), rather than a failure to reach a decision.
func isRefusal(err error) bool {
	var re *monitoring.RuleError
	var fe *monitoring.FieldError
	var de *DecodeError
	return errors.As(err, &re) || errors.As(err, &fe) || errors.As(err, &de)
}

// handle makes the Service call for msg and returns the result for the
// reply. A failure that is not a refusal comes back wrapping
// errUnavailable for alarms and sessions, whose delivery is guaranteed.
func (b *Broker) handle(ctx context.Context, device string, msg Message) ([]byte, error) {
	cmdID := "dev/" + device + "/" + msg.EventID
	actor := "device:" + device
	var res any
	var err error
	switch msg.Type {
	case TypeAlarm:
		var a *monitoring.Alarm
		a, err = b.svc.RaiseAlarm(ctx, cmdID, actor, monitoring.RaiseAlarmRequest{
			Type: msg.AlarmType, DeviceID: device, DeviceTime: msg.TS, Location: msg.Location,
		})
		if a != nil {
			res = AlarmResult{AlarmID: a.ID}
		}
	case TypeAlarmCancel:
		res, err = b.svc.CancelAlarm(ctx, cmdID, actor, msg.AlarmID, msg.PIN)
	case TypeSessionStart:
		res, err = b.startSession(ctx, cmdID, actor, device, msg)
	case TypeSessionCheckIn, TypeSessionExtend, TypeSessionEnd:
		res, err = b.sessionAction(ctx, cmdID, actor, device, msg)
	case TypeAudio:
		res, err = b.svc.AppendAudio(ctx, cmdID, actor, msg.Audio)
	case TypeHeartbeat, TypeLocation, TypeBattery:
		b.telemetry(device, msg)
		return nil, nil
	case TypeUpdate:
		res, err = b.postUpdate(ctx, cmdID, actor, device, msg) // commands.go
	case TypePromptAnswer:
		res, err = b.answerPrompt(ctx, cmdID, actor, device, msg) // commands.go
	default:
		return nil, decodeErr(CodeUnknownType, "", "%q is not a message type", msg.Type)
	}
	if err != nil {
		if isRefusal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return json.Marshal(res)
}

func (b *Broker) startSession(ctx context.Context, cmdID, actor, device string, msg Message) (any, error) {
	worker := msg.WorkerID
	if worker == "" {
		d, err := b.svc.Device(device)
		if err != nil {
			return nil, err
		}
		if worker = d.WorkerID; worker == "" {
			return nil, decodeErr(CodeMissingField, "worker_id", "a pooled device must say which worker starts the session")
		}
	}
	s, err := b.svc.StartSession(ctx, cmdID, actor, monitoring.StartSessionRequest{
		SessionID: msg.SessionID, WorkerID: worker, DeviceID: device, Duration: msg.Duration,
		CheckInInterval: msg.CheckInInterval, Location: msg.Location, Update: msg.Update,
	})
	if err != nil {
		return nil, err
	}
	reply := monitoring.SessionReply{SessionID: s.ID, Action: "start", Status: s.Status, At: s.StartedAt,
		EndsAt: s.EndsAt, NextDue: s.NextDue, CheckInInterval: s.CheckInInterval}
	b.publishSession(device, reply)
	return reply, nil
}

func (b *Broker) sessionAction(ctx context.Context, cmdID, actor, device string, msg Message) (any, error) {
	// A device acts only on its own sessions. Another device's session
	// looks the same as none.
	if s, err := b.svc.Session(msg.SessionID); err != nil || s.DeviceID != device {
		return nil, &monitoring.RuleError{Code: monitoring.CodeNotFound, Field: "session_id", Msg: fmt.Sprintf("no session %q on this device", msg.SessionID)}
	}
	var reply monitoring.SessionReply
	var err error
	switch msg.Type {
	case TypeSessionCheckIn:
		reply, err = b.svc.CheckIn(ctx, cmdID, actor, msg.SessionID, msg.PIN)
	case TypeSessionExtend:
		reply, err = b.svc.Extend(ctx, cmdID, actor, msg.SessionID, msg.PIN, msg.ExtendBy)
	case TypeSessionEnd:
		reply, err = b.svc.EndSession(ctx, cmdID, actor, msg.SessionID, msg.PIN)
	}
	if err != nil {
		return nil, err
	}
	b.publishSession(device, reply)
	return reply, nil
}

// publishSession sends the session's state on down/session: exactly the
// Service's SessionReply, which is the same for the Safe and the Duress PIN.
func (b *Broker) publishSession(device string, r monitoring.SessionReply) {
	out, err := json.Marshal(r)
	if err != nil {
		b.logger.Error("cannot encode session reply", "error", err)
		return
	}
	b.publish(device, "session", out)
}

// telemetry gathers heartbeat, location and battery for the next batch
// (telemetry.go): latest wins, so the reply is sent at once and says the
// report was taken, not yet written. A message over a connection says the
// connection is up.
func (b *Broker) telemetry(device string, msg Message) {
	st := monitoring.DeviceStatus{DeviceID: device, Battery: msg.Battery, Location: msg.Location,
		Firmware: msg.Firmware, SeenAt: time.Now().UTC()}
	if st.Location != nil {
		st.Location.At = msg.TS
	}
	if since := b.conns.since(device); !since.IsZero() {
		up := true
		st.Connected, st.Node, st.ConnectedAt = &up, b.cfg.NodeID, since
	}
	b.tel.add(st)
}
