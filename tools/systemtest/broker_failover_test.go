package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// Figures of the broker failover test.
const (
	// failoverAttempts is how many alarms are published with a SIGKILL of
	// the node the device is on; the leader is the one killed on odd
	// attempts, a follower on even ones.
	failoverAttempts = 3
	// outboxBudget bounds the resends of one alarm: an election plus the
	// broker's commit timeout (5 s), several times over.
	outboxBudget = 60 * time.Second
	// mqttTimeout bounds one CONNECT, and one wait for a PUBACK (beyond
	// the broker's commit timeout of 5 s).
	mqttTimeout = 15 * time.Second
)

// killOnPublish is a connection that, once a PUBLISH has been written to
// it, calls kill.
type killOnPublish struct {
	net.Conn
	once sync.Once
	kill func()
}

func (k *killOnPublish) Write(b []byte) (int, error) {
	n, err := k.Conn.Write(b)
	if err == nil && len(b) > 0 && b[0]>>4 == 3 { // PUBLISH
		k.once.Do(k.kill)
	}
	return n, err
}

// TestCluster_BrokerNodeKilledMidPublishOneAlarm connects a device to one
// node, SIGKILLs that node as soon as an alarm's PUBLISH is on the wire,
// and resends the alarm, with the same event ID, to the other nodes until
// it is PUBACKed, as docs/device-protocol.md tells devices to. After the
// killed node is back, every node shows exactly one alarm per event.
//
// The device uses a clean session: it keeps its own outbox, as the protocol
// says, and another node never has its MQTT session anyway; with a clean
// session paho also fails the pending token when the connection is lost,
// which is what tells the outbox to resend.
func TestCluster_BrokerNodeKilledMidPublishOneAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs three processes")
	}
	bin := mustBuildVigil(t)
	c := mustStartCluster(t, bin, 3)

	const device = "d-fo"
	leader := c.Leader()
	mustWrite(t, c, leader, "/api/v1/organisations", vapi.OrganisationRequest{
		Command: vapi.Command{ID: "fo-org", Actor: "systemtest"},
		Org:     vapi.OrganisationBody{ID: "fo", Name: "Failover Trust"},
	}, nil)
	mustWrite(t, c, leader, "/api/v1/workers", vapi.WorkerRequest{
		Command: vapi.Command{ID: "fo-worker", Actor: "systemtest"},
		Worker:  vapi.WorkerBody{ID: "w-fo", Name: "Ann Smith", OrgID: "fo"},
	}, nil)
	mustWrite(t, c, leader, "/api/v1/devices", vapi.DeviceRequest{
		Command: vapi.Command{ID: "fo-device", Actor: "systemtest"},
		Device:  vapi.DeviceBody{ID: device, Kind: monitoring.DevicePhoneApp, OrgID: "fo", WorkerID: "w-fo"},
	}, nil)
	var sec vapi.DeviceSecretResponse
	mustWrite(t, c, leader, "/api/v1/devices/"+device+"/secret", vapi.Command{ID: "fo-secret", Actor: "systemtest"}, &sec)
	c.waitConverged(convergeTimeout, 0) // every node knows the secret

	base := time.Now().UTC().Truncate(time.Second)
	want := map[time.Time]string{} // device time -> event ID
	for k := range failoverAttempts {
		target := c.Followers()[0]
		if k%2 == 1 {
			target = c.Leader()
		}
		eventID := fmt.Sprintf("fo-%d", k)
		at := base.Add(time.Duration(k) * time.Second)
		want[at] = eventID
		payload, _ := json.Marshal(map[string]any{"event_id": eventID, "ts": at.Format(time.RFC3339), "alarm_type": "red_alert"})
		role := "follower"
		if k%2 == 1 {
			role = "leader"
		}

		// The first attempt: kill the node the moment the PUBLISH is written.
		killed := make(chan time.Time, 1)
		proc := c.nodes[target].run.cmd.Process
		cl, err := connectDevice(c.mqtt[target], device, sec.Secret, func() {
			killed <- time.Now()
			_ = proc.Signal(syscall.SIGKILL)
		})
		if err != nil {
			t.Fatalf("connect to %s: %v", c.nodes[target].name, err)
		}
		tok := cl.Publish(broker.UpTopic(device, "alarm"), 1, false, payload)
		var killedAt time.Time
		select {
		case killedAt = <-killed:
		case <-time.After(mqttTimeout):
			t.Fatalf("the PUBLISH of %s was not written within %s", eventID, mqttTimeout)
		}
		c.Kill(target) // waits until it is gone
		acked := tok.WaitTimeout(mqttTimeout) && tok.Error() == nil
		cl.Disconnect(0)
		t.Logf("%s: %s %s SIGKILLed right after the PUBLISH; first attempt PUBACKed: %v (%v)",
			eventID, role, c.nodes[target].name, acked, tok.Error())

		// The outbox: resend to the other nodes until PUBACKed.
		if !acked {
			node, tries := mustResend(t, c, target, device, sec.Secret, payload)
			t.Logf("%s: kill -> PUBACK from %s: %s (%d connections tried)",
				eventID, c.nodes[node].name, time.Since(killedAt).Round(time.Millisecond), tries)
		}

		// The killed node comes back and catches up before the next round.
		var min uint64
		for i := range c.nodes {
			if i != target {
				if st, err := c.api.status(c.http[i]); err == nil && st.AppliedIndex > min {
					min = st.AppliedIndex
				}
			}
		}
		c.Restart(target)
		applied := c.waitConverged(convergeTimeout, min)
		t.Logf("%s: %s restarted; all three applied index %d", eventID, c.nodes[target].name, applied)
	}

	// Exactly one alarm per event on every node, the same on all three.
	ids := map[time.Time]string{}
	for i := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		var resp vapi.AlarmsResponse
		err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/alarms", &resp)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		perEvent := map[time.Time][]string{}
		for _, a := range resp.Alarms {
			if a.DeviceID == device {
				perEvent[a.DeviceTime.UTC()] = append(perEvent[a.DeviceTime.UTC()], a.ID)
			}
		}
		if len(perEvent) != len(want) {
			t.Fatalf("%s shows alarms for %d device times, want %d: %v", c.nodes[i].name, len(perEvent), len(want), perEvent)
		}
		for at, eventID := range want {
			got := perEvent[at]
			if len(got) != 1 {
				t.Fatalf("%s shows %d alarms for event %s, want 1: %v", c.nodes[i].name, len(got), eventID, got)
			}
			if first, ok := ids[at]; ok && first != got[0] {
				t.Fatalf("%s shows alarm %s for event %s, another node %s", c.nodes[i].name, got[0], eventID, first)
			}
			ids[at] = got[0]
		}
	}
}

// mustResend sends payload, QoS 1, to the running nodes other than skip in
// turn, a new connection each time, until it is PUBACKed. It returns the
// node that PUBACKed and the number of connections tried.
func mustResend(t *testing.T, c *testCluster, skip int, device, secret string, payload []byte) (int, int) {
	t.Helper()
	deadline := time.Now().Add(outboxBudget)
	var last error
	for tries, i := 1, skip+1; ; tries, i = tries+1, i+1 {
		if time.Now().After(deadline) {
			t.Fatalf("no PUBACK within %s of resending; last: %v", outboxBudget, last)
		}
		node := i % len(c.nodes)
		if node == skip || !c.nodes[node].running() {
			tries--
			continue
		}
		cl, err := connectDevice(c.mqtt[node], device, secret, nil)
		if err != nil {
			last = fmt.Errorf("%s: connect: %w", c.nodes[node].name, err)
			continue
		}
		tok := cl.Publish(broker.UpTopic(device, "alarm"), 1, false, payload)
		ok := tok.WaitTimeout(mqttTimeout)
		cl.Disconnect(0)
		if ok && tok.Error() == nil {
			return node, tries
		}
		last = fmt.Errorf("%s: no PUBACK: %v", c.nodes[node].name, tok.Error())
	}
}

// connectDevice connects an MQTT 3.1.1 client, clean session, no automatic
// reconnection; onPublish, if set, is called once the first PUBLISH has
// been written to the connection.
func connectDevice(addr, device, secret string, onPublish func()) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(device).SetUsername(device).SetPassword(secret).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(mqttTimeout).SetWriteTimeout(mqttTimeout)
	if onPublish != nil {
		opts.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", uri.Host, mqttTimeout)
			if err != nil {
				return nil, err
			}
			return &killOnPublish{Conn: conn, kill: onPublish}, nil
		})
	}
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(mqttTimeout) {
		return nil, fmt.Errorf("connect timed out")
	}
	return cl, tok.Error()
}
