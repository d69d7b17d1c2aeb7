package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
)

// pollUntil calls cond until it is true, failing the test after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t *testing.T, clusterAddr string) appliance.Config {
	cfg := appliance.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.BindAddr = clusterAddr
	cfg.Cluster.HeartbeatTimeout = 300 * time.Millisecond
	cfg.Cluster.ElectionTimeout = 300 * time.Millisecond
	cfg.Cluster.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.Cluster.CommitTimeout = 5 * time.Millisecond
	cfg.Broker.TCPAddr, cfg.Broker.WSAddr = "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// mustNode opens a real single-node appliance; fix, if set, runs before
// Open (to replace the Service's clock).
func mustNode(t *testing.T, fix func(*appliance.Node)) *appliance.Node {
	t.Helper()
	return mustNodeWith(t, nil, fix)
}

// mustNodeWith is mustNode with tweak, if set, applied to the test
// configuration first (to add a listener, say).
func mustNodeWith(t *testing.T, tweak func(*appliance.Config), fix func(*appliance.Node)) *appliance.Node {
	t.Helper()
	cfg := testConfig(t, "127.0.0.1:0")
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := appliance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fix != nil {
		fix(n)
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
	return n
}

// mustThreeNodes opens three appliances that bootstrap one cluster.
func mustThreeNodes(t *testing.T) []*appliance.Node {
	t.Helper()
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	nodes := make([]*appliance.Node, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range nodes {
		cfg := testConfig(t, addrs[i])
		cfg.Cluster.BootstrapExpect = addrs
		n, err := appliance.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Close() })
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.Open(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 20*time.Second, "a leader known to all", func() bool {
		for _, n := range nodes {
			if id, _ := n.Cluster().Leader(); id == "" {
				return false
			}
		}
		return true
	})
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
	d := &device{t: t, replies: make(chan []byte, 64), session: make(chan []byte, 64), lost: make(chan error, 1)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetPassword(secret).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetConnectTimeout(10 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case d.lost <- err:
			default:
			}
		})
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
	d, err := dial(t, url, id, secret)
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
