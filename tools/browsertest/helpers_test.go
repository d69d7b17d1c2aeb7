package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// testConfig is an appliance on loopback ports, its cluster on clusterAddr
// with elections within a second, its data under t.TempDir().
func testConfig(t testing.TB, clusterAddr string) appliance.Config {
	cfg := appliance.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.BindAddr = clusterAddr
	cfg.Cluster.HeartbeatTimeout = 300 * time.Millisecond
	cfg.Cluster.ElectionTimeout = 300 * time.Millisecond
	cfg.Cluster.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.Cluster.CommitTimeout = 5 * time.Millisecond
	cfg.Broker.TCPAddr, cfg.Broker.WSAddr = "127.0.0.1:0", ""
	cfg.Broker.TelemetryFlush = 100 * time.Millisecond
	cfg.Logger = clustertest.Logger()
	return cfg
}

// mustNodes opens n appliances forming one cluster, all at once as
// appliances powered on together, and waits until every one knows the
// leader.
func mustNodes(t testing.TB, n int) []*appliance.Node {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = clustertest.FreeAddr(t)
	}
	cfgs := make([]appliance.Config, n)
	dirs := map[string]string{}
	for i := range cfgs {
		cfgs[i] = testConfig(t, addrs[i])
		dirs[fmt.Sprintf("node%d", i+1)] = cfgs[i].DataDir
	}
	if n > 1 {
		// Their trust, as vigil init and vigil join give it; a single
		// appliance makes its own at its first boot.
		appliancetest.Provision(t, dirs)
	}
	nodes := make([]*appliance.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		cfg := cfgs[i]
		if n > 1 {
			cfg.Cluster.BootstrapExpect = addrs
		}
		node, err := appliance.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = node
		t.Cleanup(func() { node.Close() })
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = node.Open(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	clustertest.PollUntil(t, 30*time.Second, "a leader known to all", func() bool {
		for _, n := range nodes {
			if id, _ := n.Cluster().Leader(); id == "" {
				return false
			}
		}
		return true
	})
	return nodes
}

// baseURL is where n serves its console and its API.
func baseURL(n *appliance.Node) string { return "http://" + n.HTTPAddr() }

// adaPassword is the password of the admin the browser tests make.
const adaPassword = "ada administers the appliance"

// device is a real MQTT client of the device protocol.
type device struct {
	t       *testing.T
	id      string
	c       paho.Client
	replies chan broker.Reply
	seq     int
}

// mustDevice connects as a device to the broker at addr and subscribes
// to its replies.
func mustDevice(t *testing.T, addr string, cred uitest.DeviceCred) *device {
	t.Helper()
	d := &device{t: t, id: cred.Device, replies: make(chan broker.Reply, 64)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(cred.Device).SetUsername(cred.Device).
		SetPassword(cred.Secret).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).
		SetConnectTimeout(10 * time.Second)
	d.c = paho.NewClient(opts)
	if tok := d.c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", cred.Device, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	tok := d.c.Subscribe(broker.DownTopic(cred.Device, "reply"), 1, func(_ paho.Client, m paho.Message) {
		var r broker.Reply
		if json.Unmarshal(m.Payload(), &r) == nil {
			d.replies <- r
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return d
}

// send publishes one event QoS 1 (fields plus event_id and ts), waits for
// the PUBACK and the reply, and returns the reply's result.
func (d *device) send(typ string, fields map[string]any) json.RawMessage {
	d.t.Helper()
	d.seq++
	id := fmt.Sprintf("%s-%s-%d", d.id, strings.ReplaceAll(typ, "/", "-"), d.seq)
	m := map[string]any{"event_id": id, "ts": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	tok := d.c.Publish(broker.UpTopic(d.id, typ), 1, false, b)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: no PUBACK: %v", typ, tok.Error())
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-d.replies:
			if r.EventID != id {
				continue
			}
			if !r.OK {
				d.t.Fatalf("%s refused: %s %s %s", typ, r.Code, r.Field, r.Error)
			}
			return r.Result
		case <-deadline:
			d.t.Fatalf("no reply to %s", typ)
		}
	}
}

// alarm raises an alarm and returns its ID.
func (d *device) alarm(typ string, loc map[string]any) string {
	d.t.Helper()
	var r struct {
		AlarmID string `json:"alarm_id"`
	}
	if err := json.Unmarshal(d.send("alarm", map[string]any{"alarm_type": typ, "location": loc}), &r); err != nil || r.AlarmID == "" {
		d.t.Fatalf("alarm reply: %v", err)
	}
	return r.AlarmID
}

// walk sends location telemetry along a short street, ending at the last
// point, and waits until node has recorded the last one.
func (d *device) walk(svc *monitoring.Service, points [][2]float64) {
	d.t.Helper()
	for i, p := range points {
		m := map[string]any{"event_id": fmt.Sprintf("%s-loc-%d", d.id, i), "ts": time.Now().UTC().Format(time.RFC3339),
			"location": map[string]any{"lat": p[0], "lon": p[1], "accuracy_m": 10 + 4*i, "source": "gps"}}
		b, _ := json.Marshal(m)
		tok := d.c.Publish(broker.UpTopic(d.id, "location"), 1, false, b)
		tok.WaitTimeout(5 * time.Second)
		last := p
		clustertest.PollUntil(d.t, 10*time.Second, "the location to be recorded", func() bool {
			dev, err := svc.Device(d.id)
			return err == nil && dev.Location != nil && dev.Location.Lat == last[0] && dev.Location.Lon == last[1]
		})
	}
}

// audio streams seconds of a tone as pcm_s16le 8 kHz mono chunks.
func (d *device) audio(alarmID string, seconds int) {
	d.t.Helper()
	d.audioFrom(alarmID, 0, seconds)
}

// audioFrom streams seconds more of the tone, from chunk from on.
func (d *device) audioFrom(alarmID string, from, seconds int) {
	d.t.Helper()
	const rate = 8000
	for s := from; s < from+seconds; s++ {
		pcm := make([]byte, 2*rate)
		for i := range rate {
			t := float64(s*rate+i) / rate
			v := int16(6000 * math.Sin(2*math.Pi*440*t) * math.Sin(math.Pi*t))
			pcm[2*i], pcm[2*i+1] = byte(v), byte(uint16(v)>>8)
		}
		d.send("audio", map[string]any{"alarm_id": alarmID, "seq": s, "codec": "pcm_s16le",
			"sample_rate": rate, "channels": 1, "data": pcm})
	}
}

// watch subscribes to the device's down/<sub> and returns its payloads.
func (d *device) watch(sub string) <-chan []byte {
	d.t.Helper()
	ch := make(chan []byte, 16)
	tok := d.c.Subscribe(broker.DownTopic(d.id, sub), 1, func(_ paho.Client, m paho.Message) {
		select {
		case ch <- m.Payload():
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe to down/%s: %v", sub, tok.Error())
	}
	return ch
}
