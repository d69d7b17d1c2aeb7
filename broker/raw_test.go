package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
)

// twoDevices is a fake Service that knows dev-1 and dev-2 (secrets s-1
// and s-2) and nothing else: messages they send get an error reply.
func twoDevices() *fakeService {
	return &fakeService{
		checkDeviceSecret: func(id, secret string) bool {
			return (id == "dev-1" && secret == "s-1") || (id == "dev-2" && secret == "s-2")
		},
		raiseAlarm: func(context.Context, string, string, monitoring.RaiseAlarmRequest) (*monitoring.Alarm, error) {
			return nil, errNotInFake
		},
	}
}

// mustHostileBroker opens a gateway over svc on 127.0.0.1:0; tweak, if
// set, changes its configuration first.
func mustHostileBroker(t *testing.T, svc broker.Service, tweak func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := broker.Config{TCPAddr: "127.0.0.1:0", NodeID: "n1", CommitTimeout: fakeCommitTimeout}
	if tweak != nil {
		tweak(&cfg)
	}
	b := broker.New(cfg, svc, nil)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// connectPacket is a clean CONNECT of device id with secret, in MQTT
// version v (4 is 3.1.1, 5 is 5).
func connectPacket(v byte, id, secret string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: v,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: true, Keepalive: 60,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(secret)}}
}

// dialRaw opens a bare connection to addr, sends pk (a CONNECT) and
// returns the connection with the broker's first answer: its header and
// body, or the read error.
func dialRaw(t *testing.T, addr string, pk packets.Packet) (*conn5, packets.FixedHeader, []byte, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &conn5{c: nc, r: bufio.NewReader(nc)}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(t, buf.Bytes())
	fh, body, err := c.read()
	return c, fh, body, err
}

// connackCode returns the reason code of a CONNACK body (the return code
// in MQTT 3.1.1).
func connackCode(t *testing.T, fh packets.FixedHeader, body []byte, err error) byte {
	t.Helper()
	if err != nil || fh.Type != packets.Connack || len(body) < 2 {
		t.Fatalf("want a CONNACK, got %s % x %v", packets.PacketNames[fh.Type], body, err)
	}
	return body[1]
}

// downMsg is a message a device received.
type downMsg struct{ topic, payload string }

// watcher is a paho device subscribed to its whole down/ tree.
type watcher struct {
	*device
	got chan downMsg
}

// mustWatch connects id (MQTT 3.1.1) and subscribes to down/#.
func mustWatch(t *testing.T, addr, id, secret string) *watcher {
	t.Helper()
	d, err := connect(t, addr, id, secret)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	w := &watcher{device: d, got: make(chan downMsg, 64)}
	tok := d.c.Subscribe(broker.TopicPrefix+id+"/down/#", 1, func(_ paho.Client, m paho.Message) {
		w.got <- downMsg{m.Topic(), string(m.Payload())}
	})
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return w
}

// until returns what the device received before the reply to a message
// it sends now: mochi queues a client's messages in order, so anything
// sent to it before is received before that reply.
func (w *watcher) until(t *testing.T, id string) []downMsg {
	t.Helper()
	tok := w.c.Publish(broker.UpTopic(id, "no-such-type"), 1, false, []byte(`{"event_id":"mark"}`))
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish the mark: %v", tok.Error())
	}
	var before []downMsg
	for {
		select {
		case m := <-w.got:
			if m.topic == broker.DownTopic(id, "reply") && bytes.Contains([]byte(m.payload), []byte(`"mark"`)) {
				return before
			}
			before = append(before, m)
		case <-time.After(waitTimeout):
			t.Fatal("no reply to the mark")
		}
	}
}
