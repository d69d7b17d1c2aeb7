package imagetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/broker"
)

// Figures of one device of the load.
const (
	// connectTimeout bounds one MQTT connect over TLS.
	connectTimeout = 5 * time.Second
	// pubackTimeout bounds the wait for one PUBACK: longer than the
	// broker's commit timeout (5 s), after which it drops the connection.
	pubackTimeout = 12 * time.Second
	// alarmBudget is how long a device keeps resending one alarm: an
	// election, a reconnect to another node, several times over.
	alarmBudget = 60 * time.Second
	// retryPause is the pause before the next node is tried.
	retryPause = 200 * time.Millisecond
)

// sentAlarm is one alarm of the load and what became of it.
type sentAlarm struct {
	device, eventID string
	sent, acked     time.Time // first sent; PUBACKed (zero if never)
	attempts        int
}

// brokerAddrs gives the host address of each node's MQTT over TLS
// listener, asked of compose; forget drops a node's after it restarts.
type brokerAddrs struct {
	p  *project
	mu sync.Mutex
	m  map[string]string
}

func (b *brokerAddrs) get(service string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.m[service]; ok {
		return s, nil
	}
	s, err := b.p.hostAddr(service, 8883)
	if err == nil {
		b.m[service] = s
	}
	return s, err
}

func (b *brokerAddrs) forget(service string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, service)
}

// device is a real device of the protocol (docs/device-protocol.md) with
// an outbox of one: it publishes an alarm QoS 1 and, until it has the
// PUBACK, resends it with the same event ID, to the next node when its
// node fails it.
type device struct {
	id, secret string
	node       int // index in nodes of the node it uses
	pool       *x509.CertPool
	brokers    *brokerAddrs
	c          paho.Client
}

// connect connects the device to its node, over TLS.
func (d *device) connect() error {
	addr, err := d.brokers.get(nodes[d.node])
	if err != nil {
		return err
	}
	opts := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(d.id).SetUsername(d.id).SetPassword(d.secret).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).SetTLSConfig(&tls.Config{RootCAs: d.pool, MinVersion: tls.VersionTLS12})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(connectTimeout+time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect %s to %s: %v", d.id, nodes[d.node], tok.Error())
	}
	d.c = c
	return nil
}

// drop closes the connection and moves the device on to the next node.
func (d *device) drop() {
	if d.c != nil {
		d.c.Disconnect(0)
		d.c = nil
	}
	d.node = (d.node + 1) % len(nodes)
}

// raise publishes a test alarm until it is PUBACKed or alarmBudget has
// passed, and returns what became of it.
func (d *device) raise(eventID string) *sentAlarm {
	a := &sentAlarm{device: d.id, eventID: eventID, sent: time.Now()}
	b, _ := json.Marshal(map[string]any{"event_id": eventID, "ts": a.sent.UTC().Format(time.RFC3339Nano), "alarm_type": "test"})
	for time.Since(a.sent) < alarmBudget {
		if d.c == nil || !d.c.IsConnectionOpen() {
			if err := d.connect(); err != nil {
				d.drop()
				time.Sleep(retryPause)
				continue
			}
		}
		a.attempts++
		tok := d.c.Publish(broker.UpTopic(d.id, "alarm"), 1, false, b)
		if tok.WaitTimeout(pubackTimeout) && tok.Error() == nil {
			a.acked = time.Now()
			return a
		}
		d.drop()
		time.Sleep(retryPause)
	}
	return a
}

// close disconnects the device.
func (d *device) close() {
	if d.c != nil {
		d.c.Disconnect(100)
		d.c = nil
	}
}
