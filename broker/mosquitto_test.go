package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/broker"
)

// mosquittoClients are the Debian mosquitto-clients programs the
// device-protocol test runs.
var mosquittoClients = []string{"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"}

// mustMosquitto fails the test when a mosquitto client is missing: CI
// installs them, so a missing one is a broken set-up, not a reason to skip.
func mustMosquitto(t *testing.T) {
	t.Helper()
	for _, c := range mosquittoClients {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run `make deps` (installs Debian's mosquitto-clients; CI does it in .ci/run)", c)
		}
	}
}

// mosquittoDevice runs Debian's mosquitto clients as one device, with the
// connection parameters of docs/device-protocol.md: client ID = username =
// device ID, password = secret.
type mosquittoDevice struct {
	host, port     string
	device, secret string
	protocol       string   // mosquitto's -V: mqttv311 or mqttv5
	flags          []string // more connection flags, such as --cafile
}

func newMosquittoDevice(t *testing.T, addr, device, secret, protocol string) *mosquittoDevice {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &mosquittoDevice{host: host, port: port, device: device, secret: secret, protocol: protocol}
}

// run runs client with the device's connection flags followed by args,
// and returns what it printed on stdout and on stderr, and its exit error.
func (d *mosquittoDevice) run(t *testing.T, client string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"-V", d.protocol, "-h", d.host, "-p", d.port,
		"-i", d.device, "-u", d.device, "-P", d.secret}, d.flags...)
	argv = append(argv, args...)
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, client, argv...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	t.Logf("%s %s\nstdout: %s\nstderr: %s\nexit: %v", client, strings.Join(argv, " "), out.Bytes(), errOut.Bytes(), err)
	return out.String(), errOut.String(), err
}

// request publishes payload QoS 1 to up/<typ> with mosquitto_rr, which
// subscribes to down/reply first and publishes on the same connection (its
// response topic may hold no wildcard, so not down/#), and returns the
// first message Vigil sends back, with its topic.
func (d *mosquittoDevice) request(t *testing.T, typ, payload string) (string, broker.Reply, []byte) {
	t.Helper()
	out, _, err := d.run(t, "mosquitto_rr", "-q", "1", "-W", "20", "-v",
		"-t", broker.UpTopic(d.device, typ), "-e", broker.DownTopic(d.device, "reply"), "-m", payload)
	if err != nil {
		t.Fatalf("mosquitto_rr %s: %v\n%s", typ, err, out)
	}
	topic, raw, ok := strings.Cut(strings.TrimSpace(out), " ")
	if !ok {
		t.Fatalf("mosquitto_rr %s: output %q, want <topic> <payload>", typ, out)
	}
	var r broker.Reply
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	return topic, r, []byte(raw)
}

// Debian's mosquitto clients, used as the protocol document says and
// nothing more, can raise an alarm, get error replies, and are kept out of
// other devices' topics. mosquitto_rr is the device for request and reply:
// the document requires one connection (client ID = device ID) that both
// subscribes to down/# and publishes to up/<type>, which mosquitto_pub and
// mosquitto_sub cannot share.
func TestBroker_MosquittoClientsFollowDeviceProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the mosquitto clients against a real gateway")
	}
	mustMosquitto(t)
	n := mustNode(t, nil)
	other := mustFixture(t, n.Service, "mq-other")

	for _, protocol := range []string{"mqttv311", "mqttv5"} {
		t.Run(protocol, func(t *testing.T) {
			f := mustFixture(t, n.Service, "mq-"+protocol)
			d := newMosquittoDevice(t, n.BrokerAddr(), f.device, f.secret, protocol)

			t.Run("alarm", func(t *testing.T) {
				// The document's example, verbatim.
				topic, r, raw := d.request(t, "alarm", `{"event_id": "a-0001", "ts": "2025-01-02T15:04:05Z", "alarm_type": "red_alert",
     "location": {"lat": 51.5, "lon": -0.12, "accuracy_m": 8, "source": "gps"}}`)
				var res struct {
					AlarmID string `json:"alarm_id"`
				}
				if topic != broker.DownTopic(f.device, "reply") || !r.OK || r.EventID != "a-0001" || r.Type != "alarm" ||
					json.Unmarshal(r.Result, &res) != nil || res.AlarmID == "" {
					t.Fatalf("on %s: %s, want an ok reply with the alarm ID", topic, raw)
				}
				var found bool
				open, err := n.Service.OpenAlarms()
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range open {
					if a.ID == res.AlarmID {
						found = true
						if a.DeviceID != f.device || a.WorkerID != f.worker || a.Type != "red_alert" ||
							a.Location == nil || a.Location.Lat != 51.5 {
							t.Fatalf("alarm %+v", a)
						}
					}
				}
				if !found {
					t.Fatalf("alarm %s not in the open queue (%d open)", res.AlarmID, len(open))
				}
			})

			for _, tc := range []struct {
				name, payload, eventID, code, field string
			}{
				// Unreadable, so the reply cannot carry the event ID.
				{"malformed json", `{"event_id": "a-0002", "ts": "2025-01-02T15:04:05Z", "alarm_type": `, "", broker.CodeMalformedJSON, ""},
				// The document's error example: an alarm without alarm_type.
				{"missing field", `{"event_id": "a-0003", "ts": "2025-01-02T15:04:05Z"}`, "a-0003", broker.CodeMissingField, "alarm_type"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					topic, r, raw := d.request(t, "alarm", tc.payload)
					if topic != broker.DownTopic(f.device, "reply") || r.OK || r.EventID != tc.eventID || r.Type != "alarm" ||
						r.Code != tc.code || r.Field != tc.field || r.Error == "" {
						t.Fatalf("on %s: %s, want event ID %q code %q field %q", topic, raw, tc.eventID, tc.code, tc.field)
					}
				})
			}

			t.Run("publish to another device refused", func(t *testing.T) {
				before := n.Broker().Stats().ACLRefused
				open, _ := n.Service.OpenAlarms()
				_, out, err := d.run(t, "mosquitto_pub", "-q", "1", "-t", broker.UpTopic(other.device, "alarm"),
					"-m", `{"event_id": "a-0004", "ts": "2025-01-02T15:04:05Z", "alarm_type": "red_alert"}`)
				switch {
				case protocol == "mqttv311" && err == nil:
					// MQTT 3.1.1 has no refusal code in a PUBACK: the
					// connection is dropped and mosquitto_pub fails.
					t.Fatalf("mosquitto_pub to another device succeeded: %s", out)
				case protocol == "mqttv5" && !strings.Contains(out, "Not authorized"):
					// MQTT 5 refuses with reason code 0x87 in the PUBACK.
					t.Fatalf("mosquitto_pub to another device: %v %s, want not authorized", err, out)
				}
				if got := n.Broker().Stats().ACLRefused; got != before+1 {
					t.Fatalf("%d refusals counted, want %d", got, before+1)
				}
				if now, _ := n.Service.OpenAlarms(); len(now) != len(open) {
					t.Fatalf("%d open alarms after a refused publish, want %d", len(now), len(open))
				}
			})

			t.Run("subscribe to another device refused", func(t *testing.T) {
				before := n.Broker().Stats().ACLRefused
				_, out, err := d.run(t, "mosquitto_sub", "-q", "1", "-W", "5", "-C", "1",
					"-t", broker.TopicPrefix+other.device+"/down/#")
				if !strings.Contains(out, "All subscription requests were denied") {
					t.Fatalf("mosquitto_sub to another device's topics: %v %s, want denied", err, out)
				}
				if got := n.Broker().Stats().ACLRefused; got != before+1 {
					t.Fatalf("%d refusals counted, want %d", got, before+1)
				}
			})
		})
	}
}
