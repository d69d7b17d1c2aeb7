package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/broker"
)

// mustWSNode opens a real single-node appliance whose broker also listens
// for MQTT over WebSocket, and returns it with the WebSocket address.
func mustWSNode(t *testing.T) (*appliance.Node, string) {
	t.Helper()
	cfg := testConfig(t, "127.0.0.1:0")
	cfg.Broker.WSAddr = freeAddr(t)
	n, err := appliance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Cluster().WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n, cfg.Broker.WSAddr
}

// wsDevice is a paho client connected over ws://, collecting what Vigil
// sends to its down/ topics.
type wsDevice struct {
	c       paho.Client
	down    chan paho.Message
	pending []paho.Message // received, not yet asked for by next
}

// wsConnect connects to ws://addr as a device, MQTT 3.1.1, and subscribes
// to the device's down/#. It returns the CONNECT's error.
func wsConnect(t *testing.T, addr, id, secret string) (*wsDevice, error) {
	t.Helper()
	d := &wsDevice{down: make(chan paho.Message, 16)}
	opts := paho.NewClientOptions().AddBroker("ws://" + addr).SetClientID(id).SetUsername(id).SetPassword(secret).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(10 * time.Second).SetOrderMatters(false)
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect over WebSocket timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	sub := d.c.Subscribe(broker.TopicPrefix+id+"/down/#", 1, func(_ paho.Client, m paho.Message) { d.down <- m })
	if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
		t.Fatalf("subscribe over WebSocket: %v", sub.Error())
	}
	return d, nil
}

// next returns the next message Vigil sent on the device's topic sub
// (reply, alarm...). Messages on other topics are kept for later calls:
// the alarm notice and the reply may arrive in either order.
func (d *wsDevice) next(t *testing.T, id, sub string) []byte {
	t.Helper()
	topic := broker.DownTopic(id, sub)
	for i, m := range d.pending {
		if m.Topic() == topic {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			return m.Payload()
		}
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-d.down:
			if m.Topic() == topic {
				return m.Payload()
			}
			d.pending = append(d.pending, m)
		case <-deadline:
			t.Fatalf("no message on down/%s", sub)
			return nil
		}
	}
}

// A device on the WebSocket listener authenticates as on TCP; its alarm is
// committed before the PUBACK, answered ok on down/reply, and reported
// received on down/alarm.
func TestBroker_WebSocketAlarmCommittedAndReplied(t *testing.T) {
	n, ws := mustWSNode(t)
	f := mustFixture(t, n.Service(), "ws")
	d, err := wsConnect(t, ws, f.device, f.secret)
	if err != nil {
		t.Fatalf("connect over ws://%s: %v", ws, err)
	}
	msg, _ := json.Marshal(map[string]any{"event_id": "ws-a1", "ts": ts(), "alarm_type": "red_alert",
		"location": map[string]any{"lat": 51.5, "lon": -0.12, "accuracy_m": 8, "source": "gps"}})
	tok := d.c.Publish(broker.UpTopic(f.device, "alarm"), 1, false, msg)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("alarm over WebSocket: no PUBACK: %v", tok.Error())
	}
	open, err := n.Service().OpenAlarms()
	if err != nil || len(open) != 1 || open[0].DeviceID != f.device || open[0].Type != "red_alert" {
		t.Fatalf("right after the PUBACK: open alarms %+v (%v), want one red_alert of %s", open, err, f.device)
	}

	var r broker.Reply
	raw := d.next(t, f.device, "reply")
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	var res struct {
		AlarmID string `json:"alarm_id"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || !r.OK || r.EventID != "ws-a1" || res.AlarmID != open[0].ID {
		t.Fatalf("reply %s, want ok for ws-a1 with alarm_id %s", raw, open[0].ID)
	}
	var st struct {
		AlarmID string `json:"alarm_id"`
		Status  string `json:"status"`
	}
	raw = d.next(t, f.device, "alarm")
	if err := json.Unmarshal(raw, &st); err != nil || st.AlarmID != open[0].ID || st.Status != "received" {
		t.Fatalf("down/alarm %s, want received for %s", raw, open[0].ID)
	}
	if s := n.Broker().Stats(); s.Committed != 1 || s.AuthRefused != 0 {
		t.Fatalf("stats %+v, want 1 committed and no refusal", s)
	}
}

// A login the TCP listener would refuse is refused over WebSocket too, and
// counted.
func TestBroker_WebSocketRefusesBadLogin(t *testing.T) {
	n, ws := mustWSNode(t)
	f := mustFixture(t, n.Service(), "wr")
	g := mustFixture(t, n.Service(), "wg")
	for i, tc := range []struct {
		name, id, secret string
	}{
		{"wrong secret", f.device, "not-the-secret"},
		{"another device's secret", f.device, g.secret},
		{"unknown device", "d-nobody", f.secret},
		{"empty secret", f.device, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := wsConnect(t, ws, tc.id, tc.secret); err == nil {
				t.Fatalf("connected over WebSocket as %s with a bad secret", tc.id)
			}
			if got := n.Broker().Stats().AuthRefused; got != uint64(i+1) {
				t.Fatalf("AuthRefused %d, want %d", got, i+1)
			}
		})
	}
	// The right secret still works after the refusals.
	if _, err := wsConnect(t, ws, f.device, f.secret); err != nil {
		t.Fatalf("connect with the right secret after refusals: %v", err)
	}
}
