package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// subscribe subscribes d to one of its down topics and returns what
// arrives on it.
func (d *device) subscribe(id, sub string) chan []byte {
	d.t.Helper()
	ch := make(chan []byte, 64)
	tok := d.c.Subscribe(broker.DownTopic(id, sub), 1, func(_ paho.Client, m paho.Message) { ch <- m.Payload() })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe %s: %v", sub, tok.Error())
	}
	return ch
}

// next decodes the next message of ch into a T.
func next[T any](t *testing.T, ch chan []byte, what string) (T, []byte) {
	t.Helper()
	var v T
	select {
	case b := <-ch:
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %v", what, b, err)
		}
		return v, b
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s", what)
	}
	return v, nil
}

// mustOnAll waits until cond holds on every node.
func mustOnAll(t *testing.T, nodes []*testNode, what string, cond func(*monitoring.Service) bool) {
	t.Helper()
	for _, n := range nodes {
		clustertest.PollUntil(t, 10*time.Second, what+" on node "+n.ID(), func() bool { return cond(n.Service) })
	}
}

// A prompt sent through one node reaches the device connected to another
// on down/prompt; the device's answer is saved before its PUBACK and lands
// on the alarm's timeline on every node.
func TestCommands_PromptToDeviceOnAnotherNode(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "pr")
	on := nodes[2]
	clustertest.PollUntil(t, 10*time.Second, "the secret on the third node", func() bool {
		return on.Service.CheckDeviceSecret(f.device, f.secret)
	})
	d := mustDevice(t, on.BrokerAddr(), f.device, f.secret)
	prompts := d.subscribe(f.device, broker.DownPrompt)
	alarm := raise(t, d, f, "a1", "red_alert")
	mustOnAll(t, nodes[:1], "the alarm", func(s *monitoring.Service) bool { _, err := s.Alarm(alarm); return err == nil })

	p, err := nodes[0].Service.SendPrompt(context.Background(), "prompt-1", "olivia", monitoring.PromptRequest{
		DeviceID: f.device, AlarmID: alarm, Kind: monitoring.PromptTapTwice, Text: "Tap twice if you need help"})
	if err != nil {
		t.Fatal(err)
	}
	got, raw := next[broker.PromptNotice](t, prompts, "down/prompt")
	if got.PromptID != p.ID || got.Kind != monitoring.PromptTapTwice || got.Text != "Tap twice if you need help" ||
		got.AlarmID != alarm || !got.ExpiresAt.Equal(p.ExpiresAt) || got.TS.IsZero() {
		t.Fatalf("down/prompt %s, want prompt %+v", raw, p)
	}

	d.publish(f.device, broker.TypePromptAnswer, map[string]any{"event_id": "ans-1", "ts": ts(), "prompt_id": p.ID, "answer": "tapped"})
	// PUBACKed: saved on a quorum and applied on the node holding the device.
	if pr, err := on.Service.Prompt(p.ID); err != nil || pr.Answer != monitoring.AnswerTapped {
		t.Fatalf("right after PUBACK, on the device's node: %+v, %v", pr, err)
	}
	r, raw := d.reply()
	var res broker.PromptAnswerResult
	if !r.OK || r.Type != broker.TypePromptAnswer || json.Unmarshal(r.Result, &res) != nil || res.PromptID != p.ID || res.Answer != "tapped" {
		t.Fatalf("reply %s", raw)
	}
	mustOnAll(t, nodes, "the answer on the alarm's timeline", func(s *monitoring.Service) bool {
		tl, err := s.Timeline(alarm)
		if err != nil {
			return false
		}
		last := tl[len(tl)-1]
		return last.Kind == monitoring.ActionPromptAnswer && last.Outcome == "tapped" && last.Reference == p.ID
	})

	// A second answer, and an answer to an unknown prompt, are refused with
	// a reply naming why, and PUBACKed.
	d.publish(f.device, broker.TypePromptAnswer, map[string]any{"event_id": "ans-2", "ts": ts(), "prompt_id": p.ID, "answer": "declined"})
	if r, raw := d.reply(); r.OK || r.Code != "conflict" || r.Field != "prompt_id" || !strings.Contains(r.Error, "already answered") {
		t.Fatalf("second answer: %s", raw)
	}
	d.publish(f.device, broker.TypePromptAnswer, map[string]any{"event_id": "ans-3", "ts": ts(), "prompt_id": "nope", "answer": "acknowledged"})
	if r, raw := d.reply(); r.OK || r.Code != "not_found" || r.Field != "prompt_id" {
		t.Fatalf("unknown prompt: %s", raw)
	}
}

// A worker under duress (here: a check-in with the Duress PIN) is not
// prompted unless the operator overrides; nothing reaches the device for
// the refused prompt.
func TestCommands_PromptRefusedUnderDuress(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "du")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)
	prompts := d.subscribe(f.device, broker.DownPrompt)
	d.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "sess-du", "duration": "45m"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("start: %s", raw)
	}
	d.publish(f.device, "session/checkin", map[string]any{"event_id": "s2", "ts": ts(), "session_id": "sess-du", "pin": "9999"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("checkin: %s", raw)
	}
	ctx := context.Background()
	_, err := svc.SendPrompt(ctx, "prompt-1", "olivia", monitoring.PromptRequest{DeviceID: f.device, Kind: monitoring.PromptCallBack})
	var re *monitoring.RuleError
	if !errors.As(err, &re) || re.Code != monitoring.CodeConflict || re.Field != "override_silent" || !strings.Contains(re.Msg, "duress") {
		t.Fatalf("prompt under duress: %v", err)
	}
	p, err := svc.SendPrompt(ctx, "prompt-2", "olivia", monitoring.PromptRequest{DeviceID: f.device, Kind: monitoring.PromptCallBack, OverrideSilent: true})
	if err != nil {
		t.Fatal(err)
	}
	// Events go out in commit order: had the refused prompt been sent, it
	// would come first.
	if got, raw := next[broker.PromptNotice](t, prompts, "down/prompt"); got.PromptID != p.ID {
		t.Fatalf("first down/prompt %s, want the overriding prompt %s", raw, p.ID)
	}
}

// down/config reaches a device that subscribes after its CONNECT, and again
// when its organisation's settings change or it moves to another
// organisation; a change devices do not see sends nothing.
func TestCommands_ConfigOnConnectAndOnChange(t *testing.T) {
	n := mustNode(t, nil)
	svc := n.Service
	f := mustFixture(t, svc, "cf")
	ctx := context.Background()
	org := monitoring.Organisation{ID: "org-cf", Name: "Org", HeartbeatInterval: 30 * time.Second, DefaultCheckIn: 15 * time.Minute}
	if _, err := svc.PutOrganisation(ctx, "org-cf-2", "admin", org); err != nil {
		t.Fatal(err)
	}
	d, err := connect(t, n.BrokerAddr(), f.device, f.secret)
	if err != nil {
		t.Fatal(err)
	}
	configs := d.subscribe(f.device, broker.DownConfig) // after the CONNACK
	c, raw := next[broker.ConfigNotice](t, configs, "down/config after connect")
	want := broker.ConfigNotice{Protocol: "v1", HeartbeatInterval: 30, LocationInterval: 300, OfflineThreshold: 600,
		SessionDuration: 3600, CheckInInterval: 900, Grace: 120, MaxPayload: broker.MaxPayload, TS: c.TS}
	if c != want || c.TS.IsZero() {
		t.Fatalf("down/config %s, want %+v", raw, want)
	}

	org.Name = "Renamed" // nothing a device sees
	if _, err := svc.PutOrganisation(ctx, "org-cf-3", "admin", org); err != nil {
		t.Fatal(err)
	}
	org.HeartbeatInterval = 45 * time.Second
	if _, err := svc.PutOrganisation(ctx, "org-cf-4", "admin", org); err != nil {
		t.Fatal(err)
	}
	if c, raw := next[broker.ConfigNotice](t, configs, "down/config after the change"); c.HeartbeatInterval != 45 {
		t.Fatalf("down/config %s, want heartbeat_interval_s 45 (and nothing for the rename before it)", raw)
	}

	// Moved to another organisation, with its worker.
	other := monitoring.Organisation{ID: "org-cf-b", Name: "Other", LocationInterval: time.Minute, OfflineThreshold: 4 * time.Minute}
	if _, err := svc.PutOrganisation(ctx, "org-b", "admin", other); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w-b", "admin", monitoring.Worker{ID: "w-cf-b", Name: "Bea", OrgID: other.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "move", "admin", monitoring.Device{ID: f.device, Kind: monitoring.DevicePhoneApp, OrgID: other.ID, WorkerID: "w-cf-b"}); err != nil {
		t.Fatal(err)
	}
	c, raw = next[broker.ConfigNotice](t, configs, "down/config after the move")
	if c.LocationInterval != 60 || c.OfflineThreshold != 240 || c.HeartbeatInterval != 60 || c.CheckInInterval != 0 {
		t.Fatalf("down/config %s, want the other organisation's settings", raw)
	}

	// Telemetry makes EventDeviceUpdated too; it sends nothing. A new
	// connection gets the configuration again, as its first message.
	d.publish(f.device, "heartbeat", map[string]any{"event_id": "h1", "ts": ts(), "battery": 80})
	clustertest.PollUntil(t, 10*time.Second, "the heartbeat written", func() bool {
		dev, err := svc.Device(f.device)
		return err == nil && dev.Battery == 80
	})
	select {
	case b := <-configs:
		t.Fatalf("telemetry sent a down/config: %s", b)
	case <-time.After(300 * time.Millisecond):
	}
	d.c.Disconnect(50)
	d2, err := connect(t, n.BrokerAddr(), f.device, f.secret)
	if err != nil {
		t.Fatal(err)
	}
	if c, raw := next[broker.ConfigNotice](t, d2.subscribe(f.device, broker.DownConfig), "down/config after reconnecting"); c.LocationInterval != 60 {
		t.Fatalf("down/config %s", raw)
	}
	select {
	case b := <-configs:
		t.Fatalf("the first connection got another down/config: %s", b)
	default:
	}
}

// A device that kept its MQTT session (clean session off) and reconnects to
// the same node gets down/config on its old subscription, without
// subscribing again; a subscription to down/# gets it too.
func TestCommands_ConfigOnKeptSubscription(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "ks")
	configs := make(chan []byte, 16)
	opts := paho.NewClientOptions().AddBroker("tcp://" + n.BrokerAddr()).SetClientID(f.device).SetUsername(f.device).
		SetPassword(f.secret).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			if m.Topic() == broker.DownTopic(f.device, broker.DownConfig) { // down/# has the resync too
				configs <- m.Payload()
			}
		})
	var last time.Time
	for i := range 2 {
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %d: %v", i, tok.Error())
		}
		if i == 0 {
			tok := c.Subscribe(broker.DownTopic(f.device, "#"), 1, nil)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
		}
		// A new one: the one before may come again, if its PUBACK was
		// not in before the disconnect.
		for {
			got, raw := next[broker.ConfigNotice](t, configs, "down/config")
			if got.Protocol != "v1" || got.HeartbeatInterval != 60 {
				t.Fatalf("connection %d: down/config %s", i, raw)
			}
			if got.TS.After(last) {
				last = got.TS
				break
			}
		}
		c.Disconnect(250)
	}
}

// up/update replaces the session's Update on every node, and an alarm
// raised afterwards shows it; without a session it is the worker's standing
// Update.
func TestCommands_UpdateOnSessionAndNextAlarm(t *testing.T) {
	nodes := mustThreeNodes(t)
	f := mustFixture(t, nodes[0].Service, "up")
	on := nodes[1]
	clustertest.PollUntil(t, 10*time.Second, "the secret on the second node", func() bool {
		return on.Service.CheckDeviceSecret(f.device, f.secret)
	})
	d := mustDevice(t, on.BrokerAddr(), f.device, f.secret)
	d.publish(f.device, "session/start", map[string]any{"event_id": "s1", "ts": ts(), "session_id": "sess-up", "duration": "45m", "update": "second floor"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("start: %s", raw)
	}
	const text = "visiting 14 Elm Road, client has a history of aggression, call me at 15:30"
	d.publish(f.device, broker.TypeUpdate, map[string]any{"event_id": "u1", "ts": ts(), "update": text})
	if s, err := on.Service.Session("sess-up"); err != nil || s.Update != text {
		t.Fatalf("right after PUBACK: %+v, %v", s, err)
	}
	r, raw := d.reply()
	var res broker.UpdateResult
	if !r.OK || json.Unmarshal(r.Result, &res) != nil || res.SessionID != "sess-up" || res.At.IsZero() {
		t.Fatalf("reply %s", raw)
	}
	mustOnAll(t, nodes, "the session's Update", func(s *monitoring.Service) bool {
		sess, err := s.Session("sess-up")
		return err == nil && sess.Update == text
	})
	alarm := raise(t, d, f, "a1", "red_alert")
	mustOnAll(t, nodes, "the Update on the alarm's timeline", func(s *monitoring.Service) bool {
		tl, err := s.Timeline(alarm)
		if err != nil {
			return false
		}
		for _, e := range tl {
			if e.Kind == monitoring.ActionUpdate && e.Text == text && e.Reference == "session/sess-up" {
				return true
			}
		}
		return false
	})

	// With no session, the worker's standing Update.
	d.publish(f.device, "session/end", map[string]any{"event_id": "s2", "ts": ts(), "session_id": "sess-up", "pin": "1111"})
	if r, raw := d.reply(); !r.OK {
		t.Fatalf("end: %s", raw)
	}
	d.publish(f.device, broker.TypeUpdate, map[string]any{"event_id": "u2", "ts": ts(), "update": "back at the office"})
	if r, raw := d.reply(); !r.OK || strings.Contains(string(r.Result), "session_id") {
		t.Fatalf("standing Update: %s", raw)
	}
	mustOnAll(t, nodes, "the worker's standing Update", func(s *monitoring.Service) bool {
		w, err := s.Worker(f.worker)
		return err == nil && w.LastUpdate == "back at the office"
	})
	// A session named that has ended is refused, naming it.
	d.publish(f.device, broker.TypeUpdate, map[string]any{"event_id": "u3", "ts": ts(), "update": "x", "session_id": "sess-up"})
	if r, raw := d.reply(); r.OK || r.Code != "session_ended" || r.Field != "session_id" {
		t.Fatalf("ended session: %s", raw)
	}
}

// The decoder names what is wrong with an answer or an Update.
func TestCommands_DecodeNamesTheProblem(t *testing.T) {
	for _, tc := range []struct {
		typ, payload, code, field string
	}{
		{broker.TypePromptAnswer, `{"event_id":"e","ts":"2025-01-02T15:04:05Z","answer":"tapped"}`, broker.CodeMissingField, "prompt_id"},
		{broker.TypePromptAnswer, `{"event_id":"e","ts":"2025-01-02T15:04:05Z","prompt_id":"p"}`, broker.CodeMissingField, "answer"},
		{broker.TypePromptAnswer, `{"event_id":"e","ts":"2025-01-02T15:04:05Z","prompt_id":"p","answer":"maybe"}`, broker.CodeInvalidField, "answer"},
		{broker.TypePromptAnswer, `{"event_id":"e","ts":"2025-01-02T15:04:05Z","prompt_id":"p","answer":7}`, broker.CodeInvalidField, "answer"},
		{broker.TypeUpdate, `{"event_id":"e","ts":"2025-01-02T15:04:05Z","update":" "}`, broker.CodeMissingField, "update"},
	} {
		_, err := broker.Decode(broker.UpTopic("d1", tc.typ), []byte(tc.payload))
		var de *broker.DecodeError
		if !errors.As(err, &de) || de.Code != tc.code || de.Field != tc.field {
			t.Errorf("%s %s: %v, want %s (%s)", tc.typ, tc.payload, err, tc.code, tc.field)
		}
	}
	m, err := broker.Decode(broker.UpTopic("d1", broker.TypeUpdate), []byte(`{"event_id":"e","ts":"2025-01-02T15:04:05Z","update":"hi","session_id":"s9"}`))
	if err != nil || m.Update != "hi" || m.SessionID != "s9" {
		t.Fatalf("update: %+v, %v", m, err)
	}
	m, err = broker.Decode(broker.UpTopic("d1", broker.TypePromptAnswer), []byte(`{"event_id":"e","ts":"2025-01-02T15:04:05Z","prompt_id":"p","answer":"declined"}`))
	if err != nil || m.PromptID != "p" || m.Answer != monitoring.AnswerDeclined {
		t.Fatalf("answer: %+v, %v", m, err)
	}
}
