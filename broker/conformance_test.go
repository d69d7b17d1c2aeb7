package broker_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// A v5 CONNACK says what the gateway enforces: the largest packet it
// reads and that nothing is retained.
func TestBroker_ConnackAdvertisesLimits(t *testing.T) {
	b := mustHostileBroker(t, twoDevices(), nil)
	_, fh, body, err := dialRaw(t, b.TCPAddr(), connectPacket(5, "dev-1", "s-1"))
	if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 5}
	if err := pk.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	if pk.Properties.MaximumPacketSize != broker.DefaultMaxPacket {
		t.Errorf("Maximum Packet Size %d, want %d", pk.Properties.MaximumPacketSize, broker.DefaultMaxPacket)
	}
	if !pk.Properties.RetainAvailableFlag || pk.Properties.RetainAvailable != 0 {
		t.Errorf("Retain Available %v %d, want present and 0", pk.Properties.RetainAvailableFlag, pk.Properties.RetainAvailable)
	}
}

// mosquitto_pub in MQTT 5 learns the Maximum Packet Size from the
// CONNACK and does not send a 70 KB message, and disconnects cleanly
// (before, it sent it and the broker reset the connection: "The
// connection was lost").
func TestBroker_MosquittoRespectsMaximumPacketSize(t *testing.T) {
	mustMosquitto(t)
	b := mustHostileBroker(t, twoDevices(), nil)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 70_000), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newMosquittoDevice(t, b.TCPAddr(), "dev-1", "s-1", "mqttv5")
	stdout, stderr, err := d.run(t, "mosquitto_pub", "-d", "-q", "1", "-t", broker.UpTopic("dev-1", "alarm"), "-f", big)
	if err != nil || stderr != "" || !strings.Contains(stdout, "received CONNACK (0)") ||
		strings.Contains(stdout, "sending PUBLISH") || !strings.Contains(stdout, "sending DISCONNECT") {
		t.Fatalf("mosquitto_pub: %v; want a CONNACK, no PUBLISH, a DISCONNECT and no error", err)
	}
}

// A server never sends an MQTT 3.1.1 client a DISCONNECT (3.1.1 has none
// from the server): it closes the connection. mochi sent one when it
// dropped a 3.1.1 client for a refused QoS 1 publish, or when the
// device connected again.
func TestBroker_NoDisconnectPacketToMQTT311(t *testing.T) {
	cases := []struct {
		name string
		drop func(t *testing.T, c *conn5, addr string)
	}{
		{"publish outside its topics", func(t *testing.T, c *conn5, _ string) {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
				TopicName: broker.UpTopic("dev-2", "alarm"), PacketID: 3, Payload: []byte(`{}`)}
			var buf bytes.Buffer
			if err := pk.PublishEncode(&buf); err != nil {
				t.Fatal(err)
			}
			c.write(t, buf.Bytes())
		}},
		{"taken over by a new connection", func(t *testing.T, _ *conn5, addr string) {
			_, fh, body, err := dialRaw(t, addr, connectPacket(4, "dev-1", "s-1"))
			if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
				t.Fatalf("second CONNACK 0x%02x", code)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHostileBroker(t, twoDevices(), nil)
			c, fh, body, err := dialRaw(t, b.TCPAddr(), connectPacket(4, "dev-1", "s-1"))
			if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
				t.Fatalf("CONNACK 0x%02x", code)
			}
			tc.drop(t, c, b.TCPAddr())
			fh, body, err = c.read()
			if err == nil {
				t.Fatalf("the broker sent %s % x, want the connection closed", packets.PacketNames[fh.Type], body)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read: %v, want the connection closed", err)
			}
		})
	}
}

// An MQTT 5 QoS 2 message sent again (DUP) before its PUBREL is answered
// with PUBREC 0x00 like the first time, not 0x91 packet identifier in
// use, and is processed once.
func TestBroker_QoS2ResendBeforePubrel(t *testing.T) {
	b := mustHostileBroker(t, twoDevices(), nil)
	c, fh, body, err := dialRaw(t, b.TCPAddr(), connectPacket(5, "dev-1", "s-1"))
	if code := connackCode(t, fh, body, err); code != packets.CodeSuccess.Code {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	send := func(pk packets.Packet) {
		t.Helper()
		var buf bytes.Buffer
		var err error
		switch pk.FixedHeader.Type {
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Pubrel:
			err = pk.PubrelEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		c.write(t, buf.Bytes())
	}
	expect := func(what string, typ byte) {
		t.Helper()
		fh, body, err := c.read()
		if err != nil || fh.Type != typ || len(body) < 2 || body[0] != 0 || body[1] != 9 ||
			(len(body) > 2 && body[2] != packets.CodeSuccess.Code) {
			t.Fatalf("%s: got %s % x %v, want a successful %s of packet 9", what, packets.PacketNames[fh.Type], body, err, packets.PacketNames[typ])
		}
	}
	pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 5,
		TopicName: broker.UpTopic("dev-1", "no-such-type"), PacketID: 9, Payload: []byte(`{"event_id":"q2"}`)}
	send(pub)
	expect("first send", packets.Pubrec)
	pub.FixedHeader.Dup = true
	send(pub)
	expect("resend", packets.Pubrec)
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: 5, PacketID: 9})
	expect("release", packets.Pubcomp)
	clustertest.PollUntil(t, waitTimeout, "one error reply", func() bool { return b.Stats().ErrorReplies >= 1 })
	if n := b.Stats().ErrorReplies; n != 1 {
		t.Errorf("the message was processed %d times, want once", n)
	}
}
