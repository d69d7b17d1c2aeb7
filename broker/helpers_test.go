package broker_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// testNode is one node of the broker tests: the monitoring Service on a
// real cluster node (monitoringtest) and a gateway over it, wired as the
// appliance wires them (appliance/node.go), on 127.0.0.1:0.
type testNode struct {
	*monitoringtest.Node
	broker *broker.Broker
	close  func() error // stops the gateway, then the node
}

// Broker returns the node's gateway.
func (n *testNode) Broker() *broker.Broker { return n.broker }

// BrokerAddr returns the address of the gateway's TCP listener.
func (n *testNode) BrokerAddr() string { return n.broker.TCPAddr() }

// Close stops the gateway, then the node, gracefully (a leader hands over
// leadership first), as an appliance shutting down does. It returns the
// gateway's error; the node's fails the test.
func (n *testNode) Close() error { return n.close() }

// serviceOptions are the monitoringtest options of the broker tests: a
// deadline scheduler as the appliance runs one, and setup, if set, run on
// each new Service (to replace its clock).
func serviceOptions(setup func(*monitoring.Service)) monitoringtest.Options {
	return monitoringtest.Options{Scheduler: &monitoring.SchedulerConfig{}, Setup: setup}
}

// mustBroker opens a gateway over n's Service, configured as the appliance
// configures it; tweak, if set, changes the configuration first. It is
// closed when the test ends, before the node.
func mustBroker(t *testing.T, n *monitoringtest.Node, tweak func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := broker.Config{
		TCPAddr: "127.0.0.1:0", NodeID: n.ID(),
		WaitApplied: n.WaitApplied, WaitReplicas: n.WaitReplicas,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	b := broker.New(cfg, n.Service, clustertest.Logger())
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// mustNode opens a real single-node cluster with the Service and a gateway;
// setup, if set, runs on the Service before anything uses it (to replace
// its clock).
func mustNode(t *testing.T, setup func(*monitoring.Service)) *testNode {
	t.Helper()
	return mustNodeWith(t, nil, setup)
}

// mustNodeWith is mustNode with tweak, if set, applied to the gateway's
// configuration first (to add a listener, say).
func mustNodeWith(t *testing.T, tweak func(*broker.Config), setup func(*monitoring.Service)) *testNode {
	t.Helper()
	c := monitoringtest.MustCluster(t, 1, serviceOptions(setup))
	n := &testNode{Node: c.Node(0), broker: mustBroker(t, c.Node(0), tweak)}
	n.close = func() error { err := n.broker.Close(); c.Stop(0); return err }
	return n
}

// mustThreeNodes opens a three-node cluster, each node with the Service
// and a gateway, and returns once all agree on a leader.
func mustThreeNodes(t *testing.T) []*testNode {
	t.Helper()
	return mustThreeNodesWith(t, nil)
}

// mustThreeNodesWith is mustThreeNodes with tweak, if set, applied to each
// gateway's configuration first.
func mustThreeNodesWith(t *testing.T, tweak func(*broker.Config)) []*testNode {
	t.Helper()
	c := monitoringtest.MustCluster(t, 3, serviceOptions(nil))
	nodes := make([]*testNode, c.Len())
	for i, mn := range c.Nodes() {
		n := &testNode{Node: mn, broker: mustBroker(t, mn, tweak)}
		n.close = func() error { err := n.broker.Close(); c.Stop(i); return err }
		nodes[i] = n
	}
	return nodes
}

// fixture is one worker with PINs 1111 (safe) and 9999 (duress) and one
// device with a secret.
type fixture struct {
	worker, device, secret string
}

// mustFixture registers a worker and a device through svc, with IDs
// suffixed by tag.
func mustFixture(t *testing.T, svc *monitoring.Service, tag string) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{worker: "w-" + tag, device: "d-" + tag}
	if _, err := svc.PutOrganisation(ctx, "org-"+tag, "admin", monitoring.Organisation{ID: "org-" + tag, Name: "Org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w-"+tag, "admin", monitoring.Worker{ID: f.worker, Name: "Ann", OrgID: "org-" + tag}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetPINs(ctx, "pins-"+tag, "admin", f.worker, "1111", "9999"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d-"+tag, "admin", monitoring.Device{ID: f.device, Kind: monitoring.DevicePhoneApp, OrgID: "org-" + tag, WorkerID: f.worker}); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.secret, err = svc.SetDeviceSecret(ctx, "secret-"+tag, "admin", f.device); err != nil {
		t.Fatal(err)
	}
	return f
}

// device is a paho client that collects what Vigil sends it.
type device struct {
	t       *testing.T
	c       paho.Client
	replies chan []byte
	session chan []byte
	lost    chan error
}

// connect connects to the broker's TCP listener at addr as device id.
func connect(t *testing.T, addr, id, secret string) (*device, error) {
	t.Helper()
	return dial(t, "tcp://"+addr, id, secret)
}

// dial connects as device id, MQTT 3.1.1, to the broker at url
// (tcp://host:port or ws://host:port). It returns the CONNECT's error.
func dial(t *testing.T, url, id, secret string) (*device, error) {
	t.Helper()
	return dialTLS(t, url, id, secret, nil)
}

// dialTLS is dial with tc as the client's TLS configuration, for
// tls://host:port and wss://host:port; nil means paho's default.
func dialTLS(t *testing.T, url, id, secret string, tc *tls.Config) (*device, error) {
	t.Helper()
	d := &device{t: t, replies: make(chan []byte, 64), session: make(chan []byte, 64), lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetPassword(secret).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetConnectTimeout(10 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case d.lost <- err:
			default:
			}
		})
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect to %s timed out", url)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	return d, nil
}

// mustDevice connects to the TCP listener at addr and subscribes to the
// device's down topics.
func mustDevice(t *testing.T, addr, id, secret string) *device {
	t.Helper()
	return mustDial(t, "tcp://"+addr, id, secret)
}

// mustDial connects to the broker at url and subscribes to the device's
// down/reply and down/session.
func mustDial(t *testing.T, url, id, secret string) *device {
	t.Helper()
	return mustDialTLS(t, url, id, secret, nil)
}

// mustDialTLS is mustDial with tc as the client's TLS configuration.
func mustDialTLS(t *testing.T, url, id, secret string, tc *tls.Config) *device {
	t.Helper()
	d, err := dialTLS(t, url, id, secret, tc)
	if err != nil {
		t.Fatalf("connect %s to %s: %v", id, url, err)
	}
	for sub, ch := range map[string]chan []byte{"reply": d.replies, "session": d.session} {
		tok := d.c.Subscribe(broker.DownTopic(id, sub), 1, func(_ paho.Client, m paho.Message) { ch <- m.Payload() })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
	}
	return d
}

// publish sends payload QoS 1 and waits for the PUBACK.
func (d *device) publish(id, typ string, payload any) {
	d.t.Helper()
	b, ok := payload.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(payload); err != nil {
			d.t.Fatal(err)
		}
	}
	tok := d.c.Publish(broker.UpTopic(id, typ), 1, false, b)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: no PUBACK: %v", typ, tok.Error())
	}
}

// reply waits for the next reply.
func (d *device) reply() (broker.Reply, []byte) {
	d.t.Helper()
	select {
	case b := <-d.replies:
		var r broker.Reply
		if err := json.Unmarshal(b, &r); err != nil {
			d.t.Fatalf("reply %s: %v", b, err)
		}
		return r, b
	case <-time.After(15 * time.Second):
		d.t.Fatal("no reply")
	}
	return broker.Reply{}, nil
}

func ts() string { return time.Now().UTC().Format(time.RFC3339) }
