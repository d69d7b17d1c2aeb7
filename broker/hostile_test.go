package broker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilarc/vigil/broker"
)

// Hostile and broken payloads from a real device, over MQTT: a key twice
// is refused naming it and raises nothing; a duration of zero is refused;
// an alarm from a device whose clock is not set, or far ahead, is raised
// all the same, without the device's time; what is under a field Vigil does
// not read does not matter.
func TestBroker_HostileInput(t *testing.T) {
	n := mustNode(t, nil)
	f := mustFixture(t, n.Service, "h")
	d := mustDevice(t, n.BrokerAddr(), f.device, f.secret)

	t.Run("a key twice", func(t *testing.T) {
		d.publish(f.device, broker.TypeAlarm, []byte(`{"event_id":"h1","ts":"`+ts()+`","alarm_type":"test","alarm_type":"red_alert"}`))
		r, raw := d.reply()
		if r.OK || r.Code != broker.CodeInvalidField || r.Field != "alarm_type" || r.Error == "" {
			t.Fatalf("reply %s; want invalid_field alarm_type", raw)
		}
		if open, _ := n.Service.OpenAlarms(); len(open) != 0 {
			t.Fatalf("%d alarms raised", len(open))
		}
	})
	t.Run("a duration of zero", func(t *testing.T) {
		d.publish(f.device, broker.TypeSessionStart, []byte(`{"event_id":"h2","ts":"`+ts()+`","duration":"0s"}`))
		r, raw := d.reply()
		if r.OK || r.Code != broker.CodeInvalidField || r.Field != "duration" {
			t.Fatalf("reply %s; want invalid_field duration", raw)
		}
	})
	for i, stamp := range []string{"1970-01-01T00:00:12Z", "9999-12-31T23:59:59Z"} {
		t.Run("an alarm at "+stamp, func(t *testing.T) {
			before := time.Now()
			id := "hc" + string(rune('0'+i))
			d.publish(f.device, broker.TypeAlarm, []byte(`{"event_id":"`+id+`","ts":"`+stamp+`","alarm_type":"red_alert","diag":{"k":1,"k":2}}`))
			r, raw := d.reply()
			if !r.OK {
				t.Fatalf("reply %s; want the alarm raised", raw)
			}
			var res broker.AlarmResult
			if err := json.Unmarshal(r.Result, &res); err != nil {
				t.Fatal(err)
			}
			a, err := n.Service.Alarm(res.AlarmID)
			if err != nil {
				t.Fatal(err)
			}
			if !a.DeviceTime.IsZero() || a.RaisedAt.Before(before.Add(-time.Second)) {
				t.Fatalf("alarm device time %v, raised at %v; want no device time, raised now", a.DeviceTime, a.RaisedAt)
			}
		})
	}
}
