package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
)

// keptDevice is a paho device with a persistent MQTT session (clean
// session off), collecting everything it receives; subscribe says whether
// it subscribes to down/# (the first connection) or relies on the session
// the node kept.
func keptDevice(t *testing.T, addr string, f fixture, subscribe bool) *watcher {
	t.Helper()
	got := make(chan downMsg, 64)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(f.device).SetUsername(f.device).
		SetPassword(f.secret).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- downMsg{m.Topic(), string(m.Payload())} })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", f.device, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	if subscribe {
		if tok := c.Subscribe(broker.DownTopic(f.device, "#"), 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
	}
	return &watcher{device: &device{t: t, c: c}, got: got}
}

// notice decodes the down/<sub> messages among msgs into Ts.
func decodeAll[T any](t *testing.T, msgs []downMsg, device, sub string) []T {
	t.Helper()
	var out []T
	for _, m := range msgs {
		if m.topic != broker.DownTopic(device, sub) {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(m.payload), &v); err != nil {
			t.Fatalf("%s %s: %v", m.topic, m.payload, err)
		}
		out = append(out, v)
	}
	return out
}

// wantAlarm checks that the last down/alarm for alarmID among msgs has
// status and ts.
func wantAlarm(t *testing.T, msgs []downMsg, device, alarmID, status string, ts time.Time) {
	t.Helper()
	var last *broker.AlarmNotice
	for _, n := range decodeAll[broker.AlarmNotice](t, msgs, device, broker.DownAlarm) {
		if n.AlarmID == alarmID {
			last = &n
		}
	}
	if last == nil || last.Status != status || !last.TS.Equal(ts) {
		t.Fatalf("down/alarm for %s: %+v, want status %s at %s; received %v", alarmID, last, status, ts, msgs)
	}
}

// topics returns the down topics of msgs, without the device's prefix.
func topics(msgs []downMsg, device string) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, strings.TrimPrefix(m.topic, broker.DownTopic(device, "")))
	}
	return out
}

// An alarm acknowledged, then closed, by an operator while its device was
// away: the device learns each on reconnecting, whether it kept its MQTT
// session on the node it left or connects to another node with a clean
// session.
func TestResync_AlarmHandledWhileAway(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "away")
	mustOnAll(t, nodes, "the device's secret", func(s *monitoring.Service) bool { return s.CheckDeviceSecret(f.device, f.secret) })
	ctx := context.Background()

	w := keptDevice(t, nodes[0].BrokerAddr(), f, true)
	w.publish(f.device, "alarm", map[string]any{"event_id": "a1", "ts": ts(), "alarm_type": "red_alert"})
	msgs := w.until(t, f.device)
	var id string
	for _, r := range decodeAll[broker.Reply](t, msgs, f.device, "reply") {
		var res broker.AlarmResult
		if r.EventID == "a1" && r.OK && json.Unmarshal(r.Result, &res) == nil {
			id = res.AlarmID
		}
	}
	a, err := nodes[0].Service.Alarm(id)
	if err != nil {
		t.Fatalf("alarm %q: %v (received %v)", id, err, msgs)
	}
	wantAlarm(t, msgs, f.device, id, broker.AlarmNoticeReceived, a.RaisedAt)
	w.c.Disconnect(250)

	if _, err := nodes[1].Service.Acknowledge(ctx, "ack-away", "op1", id, false); err != nil {
		t.Fatal(err)
	}
	mustOnAll(t, nodes, "the acknowledgement", func(s *monitoring.Service) bool {
		a, err := s.Alarm(id)
		return err == nil && a.AckBy == "op1"
	})
	a, _ = nodes[0].Service.Alarm(id)

	// The same node, on the session it kept: no SUBSCRIBE.
	w = keptDevice(t, nodes[0].BrokerAddr(), f, false)
	msgs = w.until(t, f.device)
	wantAlarm(t, msgs, f.device, id, broker.AlarmNoticeAcknowledged, a.AckAt)
	w.c.Disconnect(250)

	if _, err := nodes[2].Service.Close(ctx, "close-away", "op1", id, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "called back", "no contacts on file (test)"); err != nil {
		t.Fatal(err)
	}
	mustOnAll(t, nodes, "the close", func(s *monitoring.Service) bool {
		a, err := s.Alarm(id)
		return err == nil && a.Status == monitoring.StatusClosed
	})
	a, _ = nodes[0].Service.Alarm(id)

	// Another node, a clean session: the state comes after the SUBSCRIBE.
	for _, n := range nodes[1:] {
		cw := mustWatch(t, n.BrokerAddr(), f.device, f.secret)
		msgs = cw.until(t, f.device)
		wantAlarm(t, msgs, f.device, id, broker.AlarmNoticeClosed, a.ClosedAt)
		if got := topics(msgs, f.device); len(got) != 3 || got[0] != "config" || got[1] != "alarm" || got[2] != "session" {
			t.Fatalf("node %s sent %v on connect, want config, alarm, session", n.ID(), got)
		}
		cw.c.Disconnect(250)
	}
}

// A session's state reaches its device on reconnecting to another node:
// running (as started, then as checked in through the API while the device
// was away), then ended through the API.
func TestResync_SessionOnReconnect(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "sess")
	mustOnAll(t, nodes, "the device's secret", func(s *monitoring.Service) bool { return s.CheckDeviceSecret(f.device, f.secret) })
	ctx := context.Background()

	w := mustWatch(t, nodes[0].BrokerAddr(), f.device, f.secret)
	w.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "visit-1",
		"duration": "2h", "checkin_interval": "30m"})
	w.until(t, f.device)
	w.c.Disconnect(250)

	session := func(n *testNode) []downMsg {
		t.Helper()
		w := mustWatch(t, n.BrokerAddr(), f.device, f.secret)
		defer w.c.Disconnect(250)
		return w.until(t, f.device)
	}
	s, err := nodes[1].Service.Session("visit-1")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeAll[monitoring.SessionReply](t, session(nodes[1]), f.device, "session")
	want := monitoring.SessionReply{SessionID: "visit-1", Action: "start", Status: monitoring.SessionActive,
		At: s.StartedAt, EndsAt: s.EndsAt, NextDue: s.NextDue, CheckInInterval: 30 * time.Minute}
	if len(got) != 1 || !sameReply(got[0], want) {
		t.Fatalf("down/session on connect %+v, want %+v", got, want)
	}

	if _, err := nodes[0].Service.CheckIn(ctx, "ci-api", "op1", "visit-1", "1111"); err != nil {
		t.Fatal(err)
	}
	mustOnAll(t, nodes, "the check-in", func(svc *monitoring.Service) bool {
		s, err := svc.Session("visit-1")
		return err == nil && !s.LastCheckIn.IsZero()
	})
	s, _ = nodes[2].Service.Session("visit-1")
	got = decodeAll[monitoring.SessionReply](t, session(nodes[2]), f.device, "session")
	want.Action, want.At, want.NextDue = monitoring.SessionCheckIn, s.LastCheckIn, s.NextDue
	if len(got) != 1 || !sameReply(got[0], want) {
		t.Fatalf("down/session after a check-in %+v, want %+v", got, want)
	}

	if _, err := nodes[0].Service.EndSession(ctx, "end-api", "op1", "visit-1", "1111"); err != nil {
		t.Fatal(err)
	}
	mustOnAll(t, nodes, "the end", func(svc *monitoring.Service) bool {
		s, err := svc.Session("visit-1")
		return err == nil && s.Status == monitoring.SessionEnded
	})
	none := decodeAll[broker.NoSession](t, session(nodes[1]), f.device, "session")
	if len(none) != 1 || none[0].SessionID != "" || none[0].Status != monitoring.SessionEnded || none[0].Action != monitoring.SessionEnd {
		t.Fatalf("down/session with no session running: %+v", none)
	}
}

func sameReply(a, b monitoring.SessionReply) bool {
	return a.SessionID == b.SessionID && a.Action == b.Action && a.Status == b.Status && a.At.Equal(b.At) &&
		a.EndsAt.Equal(b.EndsAt) && a.NextDue.Equal(b.NextDue) && a.CheckInInterval == b.CheckInInterval
}

// Duress stays silent on reconnect: a device whose worker cancelled an
// alarm and ended a session with the Duress PIN, while operators dealt
// with the silent alarms, is sent exactly what the Safe PIN gets: the
// cancelled alarm closed at the time it was told so live, no session
// running, and nothing of the duress alarms or a discreet panic.
func TestResync_DuressStaysSilent(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	ctx := context.Background()
	shapes := map[string][]string{}
	for _, pin := range []string{"1111", "9999"} {
		f := mustFixture(t, svc, "pin"+pin)
		w := mustWatch(t, n.BrokerAddr(), f.device, f.secret)
		w.publish(f.device, "alarm", map[string]any{"event_id": "p1", "ts": ts(), "alarm_type": "discreet_panic"})
		w.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "visit-" + pin, "duration": "1h"})
		w.publish(f.device, "alarm", map[string]any{"event_id": "a1", "ts": ts(), "alarm_type": "red_alert"})
		var id string
		for _, r := range decodeAll[broker.Reply](t, w.until(t, f.device), f.device, "reply") {
			var res broker.AlarmResult
			if r.EventID == "a1" && json.Unmarshal(r.Result, &res) == nil {
				id = res.AlarmID
			}
		}
		w.publish(f.device, "alarm/cancel", map[string]any{"event_id": "c1", "ts": ts(), "alarm_id": id, "pin": pin})
		w.publish(f.device, "session/end", map[string]any{"event_id": "s2", "ts": ts(), "session_id": "visit-" + pin, "pin": pin})
		live := w.until(t, f.device)
		var closedAt time.Time
		for _, a := range decodeAll[broker.AlarmNotice](t, live, f.device, broker.DownAlarm) {
			if a.AlarmID == id && a.Status == broker.AlarmNoticeClosed {
				closedAt = a.TS
			}
		}
		if closedAt.IsZero() {
			t.Fatalf("PIN %s: no live closed notice for %s: %v", pin, id, live)
		}
		w.c.Disconnect(250)

		// Operators take every open alarm of the worker: the discreet
		// panic and the cancelled alarm (with the Safe PIN it waits for
		// them to confirm the worker is safe), and with the Duress PIN two
		// duress alarms too.
		open, err := svc.OpenAlarms()
		if err != nil {
			t.Fatal(err)
		}
		silent := map[string]bool{}
		for _, a := range open {
			if a.DeviceID != f.device {
				continue
			}
			silent[a.ID] = true
			if _, err := svc.Acknowledge(ctx, "ack-"+a.ID, "op1", a.ID, false); err != nil {
				t.Fatal(err)
			}
		}
		if want := map[string]int{"1111": 2, "9999": 4}[pin]; len(silent) != want {
			t.Fatalf("PIN %s: %d open alarms of the device, want %d", pin, len(silent), want)
		}

		w = mustWatch(t, n.BrokerAddr(), f.device, f.secret)
		msgs := w.until(t, f.device)
		wantAlarm(t, msgs, f.device, id, broker.AlarmNoticeClosed, closedAt)
		for _, a := range decodeAll[broker.AlarmNotice](t, msgs, f.device, broker.DownAlarm) {
			if silent[a.AlarmID] && a.AlarmID != id {
				t.Fatalf("PIN %s: a silent alarm reached the device on reconnect: %v", pin, msgs)
			}
		}
		none := decodeAll[broker.NoSession](t, msgs, f.device, "session")
		if len(none) != 1 || none[0].SessionID != "" || none[0].Status != monitoring.SessionEnded {
			t.Fatalf("PIN %s: down/session %+v, want no session running", pin, none)
		}
		shapes[pin] = topics(msgs, f.device)
		w.c.Disconnect(250)
	}
	if s, d := strings.Join(shapes["1111"], ","), strings.Join(shapes["9999"], ","); s != d {
		t.Fatalf("on reconnect the Safe PIN's device got %s, the Duress PIN's %s", s, d)
	}
}

// An MQTT 5 device (raw packets: paho.mqtt.golang speaks 3.1.1 only) with
// a session expiry gets the acknowledgement of its alarm on reconnecting to
// the node that kept its session, without subscribing again; a clean start
// gets it after its SUBSCRIBE.
func TestResync_MQTT5(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "v5")
	c := mustConnect5Kept(t, n.BrokerAddr(), f, true)
	c.subscribe(t, 1, broker.DownTopic(f.device, "#"))
	payload, _ := json.Marshal(map[string]any{"event_id": "a1", "ts": ts(), "alarm_type": "red_alert"})
	c.publish(t, 2, broker.UpTopic(f.device, "alarm"), payload)
	var id string
	for id == "" {
		topic, body := c.nextPublish(t)
		var r broker.Reply
		var res broker.AlarmResult
		if topic == broker.DownTopic(f.device, "reply") && json.Unmarshal(body, &r) == nil && json.Unmarshal(r.Result, &res) == nil {
			id = res.AlarmID
		}
	}
	c.disconnect(t)
	if _, err := svc.Acknowledge(context.Background(), "ack-v5", "op1", id, false); err != nil {
		t.Fatal(err)
	}
	a, _ := svc.Alarm(id)

	for _, clean := range []bool{false, true} {
		c := mustConnect5Kept(t, n.BrokerAddr(), f, clean)
		if clean {
			c.subscribe(t, 3, broker.DownTopic(f.device, broker.DownAlarm))
		}
		for {
			topic, body := c.nextPublish(t)
			var got broker.AlarmNotice
			if topic != broker.DownTopic(f.device, broker.DownAlarm) || json.Unmarshal(body, &got) != nil || got.AlarmID != id {
				continue
			}
			if got.Status == broker.AlarmNoticeAcknowledged && got.TS.Equal(a.AckAt) {
				break
			}
			if got.Status != broker.AlarmNoticeReceived { // the one kept in flight may come first
				t.Fatalf("clean start %v: down/alarm %s, want acknowledged at %s", clean, body, a.AckAt)
			}
		}
		c.disconnect(t)
	}
}

// mustConnect5Kept connects f's device with MQTT 5: a clean start, or
// resuming the session kept on the node; either way the session is kept
// for 5 minutes after the connection ends.
func mustConnect5Kept(t *testing.T, addr string, f fixture, clean bool) *conn5 {
	t.Helper()
	pk := connectPacket(5, f.device, f.secret)
	pk.Connect.Clean = clean
	pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 300, true
	c, fh, body, err := dialRaw(t, addr, pk)
	if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	if present := body[0]&1 == 1; present == clean {
		t.Fatalf("clean start %v: session present %v", clean, present)
	}
	return c
}

// subscribe sends a SUBSCRIBE of filter, QoS 1.
func (c *conn5) subscribe(t *testing.T, id uint16, filter string) {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5,
		PacketID: id, Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
}

// nextPublish returns the topic and payload of the next PUBLISH, which it
// acknowledges; other packets are skipped.
func (c *conn5) nextPublish(t *testing.T) (string, []byte) {
	t.Helper()
	for {
		fh, body, err := c.read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if fh.Type != packets.Publish {
			continue
		}
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 5}
		if err := pk.PublishDecode(body); err != nil {
			t.Fatal(err)
		}
		if fh.Qos > 0 {
			ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 5, PacketID: pk.PacketID}
			var buf bytes.Buffer
			if err := ack.PubackEncode(&buf); err != nil {
				t.Fatal(err)
			}
			c.write(t, buf.Bytes())
		}
		return pk.TopicName, pk.Payload
	}
}

// disconnect sends DISCONNECT (normal) and waits for the node to close
// the connection, so that the session is kept before the next connect.
func (c *conn5) disconnect(t *testing.T) {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5}
	var buf bytes.Buffer
	if err := pk.DisconnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
	for {
		if _, _, err := c.read(); err != nil {
			return
		}
	}
}
