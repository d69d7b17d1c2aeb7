package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

func FuzzDecode(f *testing.F) {
	f.Add("vigil/v1/d/d1/up/alarm", []byte(`{"event_id":"e1","ts":"2025-01-02T15:04:05Z","alarm_type":"red_alert","location":{"lat":51.5,"lon":-0.1}}`))
	f.Add("vigil/v1/d/d1/up/session/start", []byte(`{"event_id":"e2","ts":"2025-01-02T15:04:05Z","duration":"45m","checkin_interval":"15m","update":"flat 3"}`))
	f.Add("vigil/v1/d/d1/up/session/extend", []byte(`{"event_id":"e3","ts":"2025-01-02T15:04:05Z","session_id":"s","pin":"1111","extend_by":"30m"}`))
	f.Add("vigil/v1/d/d1/up/alarm/cancel", []byte(`{"event_id":"e4","ts":"2025-01-02T15:04:05Z","alarm_id":"a","pin":"1111"}`))
	f.Add("vigil/v1/d/d1/up/heartbeat", []byte(`{"event_id":"e5","ts":"2025-01-02T15:04:05Z","battery":80}`))
	f.Add("vigil/v1/d/d1/up/battery", []byte(`{"event_id":"e6","ts":"x","battery":"full"}`))
	f.Add("vigil/v1/d/d1/up/nope", []byte(`{"event_id":"e7"}`))
	f.Add("elsewhere", []byte(`{`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		m, err := Decode(topic, payload)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Code == "" || de.Msg == "" {
				t.Fatalf("error %v is not a complete DecodeError", err)
			}
			return
		}
		if m.EventID == "" || len(m.EventID) > MaxEventIDLen || m.TS.IsZero() || m.DeviceID == "" {
			t.Fatalf("accepted an incomplete message %+v", m)
		}
		if m.Type == TypeAlarm && m.AlarmType == "" {
			t.Fatalf("alarm without a type")
		}
	})
}

// The visit address a worker typed comes through with a session's start
// location; one past the limit is refused naming the field.
func TestDecode_LocationAddress(t *testing.T) {
	const topic = "vigil/v1/d/d1/up/session/start"
	m, err := Decode(topic, []byte(`{"event_id":"e1","ts":"2025-01-02T15:04:05Z","duration":"45m",`+
		`"location":{"lat":53.48,"lon":-2.29,"source":"manual","address":"Flat 3, 12 Mill Lane, Salford"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Location == nil || m.Location.Address != "Flat 3, 12 Mill Lane, Salford" || m.Location.Source != "manual" {
		t.Fatalf("location %+v", m.Location)
	}
	long := strings.Repeat("x", monitoring.MaxAddressLen+1)
	_, err = Decode(topic, []byte(`{"event_id":"e2","ts":"2025-01-02T15:04:05Z","duration":"45m","location":{"lat":53.48,"lon":-2.29,"address":"`+long+`"}}`))
	var de *DecodeError
	if !errors.As(err, &de) || de.Code != CodeInvalidField || de.Field != "location.address" {
		t.Fatalf("a %d-byte address: %v; want invalid_field location.address", len(long), err)
	}
}
