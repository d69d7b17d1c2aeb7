package broker_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// testListening is the listening interval of these tests.
const testListening = 300 * time.Millisecond

// timedMsg is a message a device received, and when.
type timedMsg struct {
	topic, payload string
	at             time.Time
}

// timedWatcher is a paho device subscribed to its whole down/ tree that
// notes when each message arrived.
type timedWatcher struct {
	c   paho.Client
	got chan timedMsg
}

// mustTimedWatch connects f's device to the node at addr, once that node
// knows the device, and subscribes to down/#.
func mustTimedWatch(t *testing.T, n *testNode, f fixture) *timedWatcher {
	t.Helper()
	clustertest.PollUntil(t, 10*time.Second, "the node knows the device", func() bool {
		return n.Service.CheckDeviceSecret(f.device, f.secret)
	})
	d, err := connect(t, n.BrokerAddr(), f.device, f.secret)
	if err != nil {
		t.Fatalf("connect %s: %v", f.device, err)
	}
	w := &timedWatcher{c: d.c, got: make(chan timedMsg, 256)}
	tok := d.c.Subscribe(broker.DownTopic(f.device, "#"), 1, func(_ paho.Client, m paho.Message) {
		w.got <- timedMsg{m.Topic(), string(m.Payload()), time.Now()}
	})
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return w
}

// collect returns what the device receives in the next d.
func (w *timedWatcher) collect(d time.Duration) []timedMsg {
	var out []timedMsg
	end := time.After(d)
	for {
		select {
		case m := <-w.got:
			out = append(out, m)
		case <-end:
			return out
		}
	}
}

// wait returns what the device received up to and including the first
// message on down/<sub> whose payload holds want.
func (w *timedWatcher) wait(t *testing.T, device, sub, want string) []timedMsg {
	t.Helper()
	var out []timedMsg
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-w.got:
			out = append(out, m)
			if m.topic == broker.DownTopic(device, sub) && strings.Contains(m.payload, want) {
				return out
			}
		case <-deadline:
			t.Fatalf("no down/%s with %s; received %v", sub, want, out)
		}
	}
}

// statuses returns the times of the down/alarm notices of alarmID with
// status among msgs.
func statuses(t *testing.T, msgs []timedMsg, device, alarmID, status string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, m := range msgs {
		if m.topic != broker.DownTopic(device, broker.DownAlarm) {
			continue
		}
		var n broker.AlarmNotice
		if err := json.Unmarshal([]byte(m.payload), &n); err != nil {
			t.Fatalf("down/alarm %s: %v", m.payload, err)
		}
		if n.AlarmID == alarmID && n.Status == status {
			if n.TS.IsZero() {
				t.Fatalf("down/alarm %s has no ts", m.payload)
			}
			out = append(out, m.at)
		}
	}
	return out
}

// wantHeartbeat checks that msgs, received over span, hold the listening
// notices of alarmID at the interval: about one per interval, none closer
// than half of it or further apart than twice it.
func wantHeartbeat(t *testing.T, msgs []timedMsg, device, alarmID string, span time.Duration) {
	t.Helper()
	at := statuses(t, msgs, device, alarmID, broker.AlarmNoticeListening)
	if want := int(span/testListening) - 2; len(at) < want {
		t.Fatalf("%d listening notices for %s in %s, want at least %d; received %v", len(at), alarmID, span, want, msgs)
	}
	// A tick delivered late under load is followed by one on time: gaps
	// vary around the interval. What must not happen is notices sent in
	// bursts, or a gap of several intervals.
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < testListening/4 || gap > 3*testListening {
			t.Fatalf("listening notices %s apart, want about %s", gap, testListening)
		}
	}
}

// While an operator has a red alert, the device hears listening at the
// interval, whichever node it is connected to, across a change of node and
// of leader; a silent alarm taken at the same time sends nothing; a police
// call is told as police and nothing more; the close stops the heartbeat.
func TestListening_HeartbeatWhileTakenStopsOnClose(t *testing.T) {
	nodes := mustThreeNodesWith(t, func(c *broker.Config) { c.ListeningInterval = testListening })
	leader, follower := mustLeaderAndFollower(t, nodes)
	ctx := context.Background()
	svc := leader.Service
	f := mustFixture(t, svc, "hb")
	w := mustTimedWatch(t, follower, f)

	red, err := svc.RaiseAlarm(ctx, "red", "device:"+f.device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.device})
	if err != nil {
		t.Fatal(err)
	}
	discreet, err := svc.RaiseAlarm(ctx, "panic", "device:"+f.device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, DeviceID: f.device})
	if err != nil {
		t.Fatal(err)
	}
	w.wait(t, f.device, broker.DownAlarm, red.ID)
	// Not taken yet: no heartbeat.
	if got := statuses(t, w.collect(3*testListening), f.device, red.ID, broker.AlarmNoticeListening); len(got) != 0 {
		t.Fatalf("listening before anyone took the alarm: %v", got)
	}
	for _, id := range []string{red.ID, discreet.ID} {
		if _, err := svc.Acknowledge(ctx, "ack-"+id, "op1", id, false); err != nil {
			t.Fatal(err)
		}
	}
	span := 8 * testListening
	msgs := w.collect(span)
	wantHeartbeat(t, msgs, f.device, red.ID, span)
	for _, m := range msgs {
		if strings.Contains(m.payload, discreet.ID) {
			t.Fatalf("the silent alarm reached the device: %v", m)
		}
	}

	// The police are called: the device is told so, without the force or
	// the reference.
	if _, err := svc.LogAction(ctx, "police", "op1", red.ID, monitoring.TimelineEntry{Kind: monitoring.ActionPolice,
		Force: "Greater Manchester", Route: monitoring.Route999, Reference: "GM-123"}); err != nil {
		t.Fatal(err)
	}
	got := w.wait(t, f.device, broker.DownAlarm, `"police"`)
	var police map[string]any
	if err := json.Unmarshal([]byte(got[len(got)-1].payload), &police); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(police))
	for k := range police {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "alarm_id,status,ts" || police["alarm_id"] != red.ID {
		t.Fatalf("police notice %v", police)
	}
	// Not for the silent alarm.
	if _, err := svc.LogAction(ctx, "police-2", "op1", discreet.ID, monitoring.TimelineEntry{Kind: monitoring.ActionPolice,
		Force: "Greater Manchester", Route: monitoring.Route999}); err != nil {
		t.Fatal(err)
	}
	for _, m := range w.collect(3 * testListening) {
		if strings.Contains(m.payload, discreet.ID) {
			t.Fatalf("the silent alarm's police call reached the device: %v", m)
		}
	}

	// The device moves to the third node, a follower too: that node sends
	// the heartbeat.
	w.c.Disconnect(50)
	var third *testNode
	for _, n := range nodes {
		if n != leader && n != follower {
			third = n
		}
	}
	w = mustTimedWatch(t, third, f)
	msgs = w.collect(span)
	wantHeartbeat(t, msgs, f.device, red.ID, span)

	// The leader stops: the node the device is on goes on.
	if err := leader.close(); err != nil {
		t.Logf("stopping the leader: %v", err)
	}
	msgs = w.collect(span)
	wantHeartbeat(t, msgs, f.device, red.ID, span)
	for _, m := range msgs {
		if strings.Contains(m.payload, discreet.ID) {
			t.Fatalf("the silent alarm reached the device: %v", m)
		}
	}

	// Closed: the heartbeat stops.
	if _, err := third.Service.Close(ctx, "close", "op1", red.ID, monitoring.ResolutionWorkerSafe, monitoring.ConfirmedByWorker, "safe", "no contacts on file (test)"); err != nil {
		t.Fatal(err)
	}
	w.wait(t, f.device, broker.DownAlarm, `"closed"`)
	if got := statuses(t, w.collect(4*testListening), f.device, red.ID, broker.AlarmNoticeListening); len(got) != 0 {
		t.Fatalf("%d listening notices after the close", len(got))
	}
}

// A listen-in request reaches the device on down/listen, for a silent
// alarm too, and again when the device connects to another node while the
// request runs; the silent alarm sends nothing on down/alarm.
func TestListening_ListenRequestReachesTheDevice(t *testing.T) {
	nodes := mustThreeNodesWith(t, func(c *broker.Config) { c.ListeningInterval = testListening })
	leader, follower := mustLeaderAndFollower(t, nodes)
	ctx := context.Background()
	svc := leader.Service
	f := mustFixture(t, svc, "li")
	w := mustTimedWatch(t, follower, f)

	a, err := svc.RaiseAlarm(ctx, "panic", "device:"+f.device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, DeviceID: f.device})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "ack", "op1", a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RequestListen(ctx, "listen", "op1", a.ID, 60); err != nil {
		t.Fatal(err)
	}
	msgs := w.wait(t, f.device, broker.DownListen, a.ID)
	var n broker.ListenNotice
	if err := json.Unmarshal([]byte(msgs[len(msgs)-1].payload), &n); err != nil || n.AlarmID != a.ID || n.Seconds != 60 || n.TS.IsZero() {
		t.Fatalf("down/listen %s (%v)", msgs[len(msgs)-1].payload, err)
	}
	msgs = append(msgs, w.collect(3*testListening)...)
	for _, m := range msgs {
		if m.topic == broker.DownTopic(f.device, broker.DownAlarm) {
			t.Fatalf("the silent alarm reached down/alarm: %v", m)
		}
	}

	// On another node, while the request runs: asked again, for what is
	// left of it.
	w.c.Disconnect(50)
	w = mustTimedWatch(t, leader, f)
	msgs = w.wait(t, f.device, broker.DownListen, a.ID)
	if err := json.Unmarshal([]byte(msgs[len(msgs)-1].payload), &n); err != nil || n.AlarmID != a.ID || n.Seconds <= 0 || n.Seconds > 60 {
		t.Fatalf("down/listen on reconnect %s (%v)", msgs[len(msgs)-1].payload, err)
	}
}

// A red alert taken by an operator, then reset from the device with the
// Safe PIN or cancelled with the Duress PIN: the device is told closed and
// the heartbeat stops either way, though with either PIN the alarm stays
// open for the operators; the two devices receive the same topics.
func TestListening_ResetStopsTheHeartbeatWhicheverPIN(t *testing.T) {
	n := mustNodeWith(t, func(c *broker.Config) { c.ListeningInterval = testListening }, nil)
	svc := n.Service
	ctx := context.Background()
	var shapes [2][]string
	for i, pin := range []string{"1111", "9999"} {
		f := mustFixture(t, svc, "reset"+pin)
		w := mustTimedWatch(t, n, f)
		a, err := svc.RaiseAlarm(ctx, "red-"+pin, "device:"+f.device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.device})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Acknowledge(ctx, "ack-"+pin, "op1", a.ID, false); err != nil {
			t.Fatal(err)
		}
		w.wait(t, f.device, broker.DownAlarm, `"listening"`)
		payload, _ := json.Marshal(map[string]any{"event_id": "c1", "ts": ts(), "alarm_id": a.ID, "pin": pin})
		if tok := w.c.Publish(broker.UpTopic(f.device, "alarm/cancel"), 1, false, payload); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("cancel: %v", tok.Error())
		}
		w.wait(t, f.device, broker.DownAlarm, `"closed"`)
		after := w.collect(5 * testListening)
		if got := statuses(t, after, f.device, a.ID, broker.AlarmNoticeListening); len(got) != 0 {
			t.Fatalf("PIN %s: %d listening notices after the reset", pin, len(got))
		}
		open, err := svc.Alarm(a.ID)
		if err != nil || open.Status == monitoring.StatusClosed {
			t.Fatalf("PIN %s: alarm %+v (%v), want it open", pin, open, err)
		}
		for _, m := range after {
			// The cancel's reply is sent by the gateway as the closed
			// notice is by the downlink: either may come first.
			if sub := strings.TrimPrefix(m.topic, broker.DownTopic(f.device, "")); sub != "reply" {
				shapes[i] = append(shapes[i], sub)
			}
		}
		w.c.Disconnect(50)
	}
	if s, d := strings.Join(shapes[0], ","), strings.Join(shapes[1], ","); s != d {
		t.Fatalf("after the reset the Safe PIN's device got %q, the Duress PIN's %q", s, d)
	}
}
