package broker_test

import (
	"encoding/json"
	"testing"

	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// mustWSNode opens a real single node whose gateway also listens
// for MQTT over WebSocket, and returns it with the WebSocket address.
func mustWSNode(t *testing.T) (*testNode, string) {
	t.Helper()
	ws := clustertest.FreeAddr(t)
	return mustNodeWith(t, func(cfg *broker.Config) { cfg.WSAddr = ws }, nil), ws
}

// A device on the WebSocket listener authenticates as on TCP; its alarm is
// committed before the PUBACK, answered ok on down/reply, and reported
// received on down/alarm.
func TestBroker_WebSocketAlarmCommittedAndReplied(t *testing.T) {
	n, ws := mustWSNode(t)
	f := mustFixture(t, n.Service, "ws")
	d := mustDial(t, "ws://"+ws, f.device, f.secret)
	alarms := d.subscribe(f.device, broker.DownAlarm)
	d.publish(f.device, "alarm", map[string]any{"event_id": "ws-a1", "ts": ts(), "alarm_type": "red_alert",
		"location": map[string]any{"lat": 51.5, "lon": -0.12, "accuracy_m": 8, "source": "gps"}})
	open, err := n.Service.OpenAlarms()
	if err != nil || len(open) != 1 || open[0].DeviceID != f.device || open[0].Type != "red_alert" {
		t.Fatalf("right after the PUBACK: open alarms %+v (%v), want one red_alert of %s", open, err, f.device)
	}

	r, raw := d.reply()
	var res struct {
		AlarmID string `json:"alarm_id"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || !r.OK || r.EventID != "ws-a1" || res.AlarmID != open[0].ID {
		t.Fatalf("reply %s, want ok for ws-a1 with alarm_id %s", raw, open[0].ID)
	}
	st, raw := next[broker.AlarmNotice](t, alarms, "down/alarm")
	if st.AlarmID != open[0].ID || st.Status != "received" {
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
	f := mustFixture(t, n.Service, "wr")
	g := mustFixture(t, n.Service, "wg")
	for i, tc := range []struct {
		name, id, secret string
	}{
		{"wrong secret", f.device, "not-the-secret"},
		{"another device's secret", f.device, g.secret},
		{"unknown device", "d-nobody", f.secret},
		{"empty secret", f.device, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dial(t, "ws://"+ws, tc.id, tc.secret); err == nil {
				t.Fatalf("connected over WebSocket as %s with a bad secret", tc.id)
			}
			if got := n.Broker().Stats().AuthRefused; got != uint64(i+1) {
				t.Fatalf("AuthRefused %d, want %d", got, i+1)
			}
		})
	}
	// The right secret still works after the refusals.
	if _, err := dial(t, "ws://"+ws, f.device, f.secret); err != nil {
		t.Fatalf("connect with the right secret after refusals: %v", err)
	}
}
