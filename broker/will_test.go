package broker_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// A device's last will is held to the same ACL as its publishes, and
// nothing is retained: dev-1 cannot make the broker send dev-2 a forged
// notice by dropping its connection, nor leave a retained message that
// dev-2 would get on every subscribe. The CONNECT carrying such a will is
// refused (MQTT 5: 0x87 not authorized, or 0x9A retain not supported;
// MQTT 3.1.1: return code 5, not authorized).
func TestBroker_WillOutsideOwnTopicsRefused(t *testing.T) {
	forged := []byte(`{"alarm_id":"FORGED","status":"closed"}`)
	cases := []struct {
		name   string
		v      byte
		topic  string
		retain bool
		want   byte // CONNACK code
	}{
		{"another device's down/alarm, MQTT 5", 5, broker.DownTopic("dev-2", "alarm"), false, packets.ErrNotAuthorized.Code},
		{"another device's down/alarm, MQTT 3.1.1", 4, broker.DownTopic("dev-2", "alarm"), false, packets.Err3NotAuthorized.Code},
		{"another device's up/alarm, MQTT 5", 5, broker.UpTopic("dev-2", "alarm"), false, packets.ErrNotAuthorized.Code},
		{"own down/ topic, MQTT 3.1.1", 4, broker.DownTopic("dev-1", "alarm"), false, packets.Err3NotAuthorized.Code},
		{"retained on another device's down/config, MQTT 5", 5, broker.DownTopic("dev-2", "config"), true, packets.ErrRetainNotSupported.Code},
		{"retained on another device's down/config, MQTT 3.1.1", 4, broker.DownTopic("dev-2", "config"), true, packets.Err3NotAuthorized.Code},
		{"retained on its own up/ topic, MQTT 5", 5, broker.UpTopic("dev-1", "gone"), true, packets.ErrRetainNotSupported.Code},
		{"retained on its own up/ topic, MQTT 3.1.1", 4, broker.UpTopic("dev-1", "gone"), true, packets.Err3NotAuthorized.Code},
		{"its own up/ topic, MQTT 5", 5, broker.UpTopic("dev-1", "gone"), false, packets.CodeSuccess.Code},
		{"its own up/ topic, MQTT 3.1.1", 4, broker.UpTopic("dev-1", "gone"), false, packets.CodeSuccess.Code},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHostileBroker(t, twoDevices(), nil)
			dev2 := mustWatch(t, b.TCPAddr(), "dev-2", "s-2")
			clustertest.PollUntil(t, waitTimeout, "dev-2 connected", func() bool { return b.Stats().Connected == 1 })

			pk := connectPacket(tc.v, "dev-1", "s-1")
			pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, tc.topic, forged
			pk.Connect.WillQos, pk.Connect.WillRetain = 1, tc.retain
			c, fh, body, err := dialRaw(t, b.TCPAddr(), pk)
			if got := connackCode(t, fh, body, err); got != tc.want {
				t.Errorf("CONNACK code 0x%02x, want 0x%02x", got, tc.want)
			}
			c.c.Close() // not a DISCONNECT: the will, if kept, is sent now
			clustertest.PollUntil(t, waitTimeout, "dev-1 gone", func() bool { return b.Stats().Connected == 1 })

			if got := dev2.until(t, "dev-2"); len(got) > 0 {
				t.Errorf("dev-2 received %q after dev-1 dropped", got)
			}
			// A device subscribing afresh gets nothing retained.
			again := mustWatch(t, b.TCPAddr(), "dev-2", "s-2")
			if got := again.until(t, "dev-2"); len(got) > 0 {
				t.Errorf("dev-2 got %q on subscribing: a retained will", got)
			}
		})
	}
}
