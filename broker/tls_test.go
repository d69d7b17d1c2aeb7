package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// tlsNode is a real single node whose gateway also listens for MQTT over
// TLS and over secure WebSocket, with a certificate for 127.0.0.1 signed by
// a throwaway CA.
type tlsNode struct {
	*testNode
	tlsAddr, wssAddr string
	caFile           string         // the CA certificate, PEM, for mosquitto's --cafile
	client           *tls.Config    // trusts the CA
	roots            *x509.CertPool // the CA alone
}

// mustTLSNode opens a tlsNode.
func mustTLSNode(t *testing.T) *tlsNode {
	t.Helper()
	now := time.Now()
	ca, err := provisioning.NewCA("test-cluster", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueNode("n1", provisioning.NodeNames{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	wss := clustertest.FreeAddr(t)
	n := mustNodeWith(t, func(cfg *broker.Config) {
		cfg.TLSAddr, cfg.WSSAddr, cfg.TLS = "127.0.0.1:0", wss, provisioning.ServerTLS(ca, cert)
	}, nil)
	return &tlsNode{
		testNode: n, tlsAddr: n.Broker().TLSAddr(), wssAddr: wss, caFile: caFile,
		client: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}, roots: ca.Pool(),
	}
}

// Debian's mosquitto clients, given the CA with --cafile, reach the
// gateway over TLS with a device's credentials: an alarm is committed,
// PUBACKed and answered, and the ACL holds as on plain TCP.
func TestBroker_TLSMosquittoClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the mosquitto clients against a real gateway")
	}
	mustMosquitto(t)
	n := mustTLSNode(t)
	other := mustFixture(t, n.Service, "tm-other")
	for _, protocol := range []string{"mqttv311", "mqttv5"} {
		t.Run(protocol, func(t *testing.T) {
			f := mustFixture(t, n.Service, "tm-"+protocol)
			d := newMosquittoDevice(t, n.tlsAddr, f.device, f.secret, protocol)
			d.flags = []string{"--cafile", n.caFile}

			t.Run("alarm", func(t *testing.T) {
				before := n.Broker().Stats().Committed
				topic, r, raw := d.request(t, "alarm", `{"event_id": "t-0001", "ts": "2025-01-02T15:04:05Z", "alarm_type": "red_alert"}`)
				var res struct {
					AlarmID string `json:"alarm_id"`
				}
				if topic != broker.DownTopic(f.device, "reply") || !r.OK || r.EventID != "t-0001" ||
					json.Unmarshal(r.Result, &res) != nil || res.AlarmID == "" {
					t.Fatalf("on %s: %s, want an ok reply with the alarm ID", topic, raw)
				}
				if got := n.Broker().Stats().Committed; got != before+1 {
					t.Fatalf("%d events committed, want %d", got, before+1)
				}
				// mosquitto_pub exits 0 only once its QoS 1 message is
				// PUBACKed.
				if _, out, err := d.run(t, "mosquitto_pub", "-q", "1", "-t", broker.UpTopic(f.device, "alarm"),
					"-m", `{"event_id": "t-0002", "ts": "2025-01-02T15:04:05Z", "alarm_type": "red_alert"}`); err != nil {
					t.Fatalf("mosquitto_pub over TLS: %v %s", err, out)
				}
				if got := n.Broker().Stats().Committed; got != before+2 {
					t.Fatalf("%d events committed, want %d", got, before+2)
				}
			})

			t.Run("publish to another device refused", func(t *testing.T) {
				before := n.Broker().Stats().ACLRefused
				open, _ := n.Service.OpenAlarms()
				_, out, err := d.run(t, "mosquitto_pub", "-q", "1", "-t", broker.UpTopic(other.device, "alarm"),
					"-m", `{"event_id": "t-0003", "ts": "2025-01-02T15:04:05Z", "alarm_type": "red_alert"}`)
				switch {
				case protocol == "mqttv311" && err == nil:
					t.Fatalf("mosquitto_pub to another device succeeded: %s", out)
				case protocol == "mqttv5" && !strings.Contains(out, "Not authorized"):
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

// A paho device over tls:// and over wss:// authenticates, and its alarm
// is committed before the PUBACK and answered ok.
func TestBroker_TLSAlarmCommittedAndReplied(t *testing.T) {
	n := mustTLSNode(t)
	for i, url := range []string{"tls://" + n.tlsAddr, "wss://" + n.wssAddr} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			f := mustFixture(t, n.Service, "tp"+strings.SplitN(url, ":", 2)[0])
			d := mustDialTLS(t, url, f.device, f.secret, n.client)
			event := "tp-a" + strings.SplitN(url, ":", 2)[0]
			d.publish(f.device, "alarm", map[string]any{"event_id": event, "ts": ts(), "alarm_type": "red_alert"})
			open, err := n.Service.OpenAlarms()
			if err != nil || len(open) != i+1 {
				t.Fatalf("right after the PUBACK: open alarms %+v (%v), want %d", open, err, i+1)
			}
			r, raw := d.reply()
			if !r.OK || r.EventID != event {
				t.Fatalf("reply %s, want ok for %s", raw, event)
			}
		})
	}
	if s := n.Broker().Stats(); s.Committed != 2 || s.AuthRefused != 0 {
		t.Fatalf("stats %+v, want 2 committed and no refusal", s)
	}
}

// The TLS listeners refuse what is not TLS, and a client that does not
// trust the CA refuses them: no CONNECT reaches the gateway.
func TestBroker_TLSRefusals(t *testing.T) {
	n := mustTLSNode(t)
	f := mustFixture(t, n.Service, "tr")

	t.Run("plain MQTT to the TLS port", func(t *testing.T) {
		if _, err := dial(t, "tcp://"+n.tlsAddr, f.device, f.secret); err == nil {
			t.Fatal("plain MQTT client connected to the TLS listener")
		}
	})
	t.Run("plain WebSocket to the WSS port", func(t *testing.T) {
		if _, err := dial(t, "ws://"+n.wssAddr, f.device, f.secret); err == nil {
			t.Fatal("plain WebSocket client connected to the secure WebSocket listener")
		}
	})
	untrusting := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	for _, url := range []string{"tls://" + n.tlsAddr, "wss://" + n.wssAddr} {
		t.Run("client not trusting the CA on "+url, func(t *testing.T) {
			_, err := dialTLS(t, url, f.device, f.secret, untrusting)
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("connect without trusting the CA: %v, want a certificate error", err)
			}
		})
	}
	t.Run("TLS 1.1", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.tlsAddr,
			&tls.Config{RootCAs: n.roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.1 handshake accepted")
		}
	})
	if s := n.Broker().Stats(); s.AuthRefused != 0 || s.Connected != 0 {
		t.Fatalf("stats %+v, want no CONNECT seen", s)
	}
	// The right client still connects.
	if _, err := dialTLS(t, "tls://"+n.tlsAddr, f.device, f.secret, n.client); err != nil {
		t.Fatalf("connect with the CA trusted: %v", err)
	}
}

// The device ACL holds over TLS as on plain TCP: a device may not publish
// to another device's topics or subscribe outside its own.
func TestBroker_TLSACLRefusals(t *testing.T) {
	n := mustTLSNode(t)
	f := mustFixture(t, n.Service, "tx")
	g := mustFixture(t, n.Service, "ty")
	if _, err := dialTLS(t, "tls://"+n.tlsAddr, f.device, g.secret, n.client); err == nil {
		t.Fatal("connected over TLS with another device's secret")
	}
	if s := n.Broker().Stats(); s.AuthRefused != 1 {
		t.Fatalf("stats %+v, want 1 refused login", s)
	}

	d := mustDialTLS(t, "tls://"+n.tlsAddr, f.device, f.secret, n.client)
	tok := d.c.Subscribe("vigil/v1/d/+/down/#", 1, nil)
	tok.WaitTimeout(10 * time.Second)
	if res := tok.(interface{ Result() map[string]byte }).Result(); res["vigil/v1/d/+/down/#"] != 0x80 {
		t.Fatalf("subscribe outside own space: %v", res)
	}
	// QoS 1 to another device's topic: MQTT 3.1.1 has no refusal code,
	// so mochi drops the connection.
	d.c.Publish(broker.UpTopic(g.device, "alarm"), 1, false, []byte(`{"event_id":"z","ts":"`+ts()+`","alarm_type":"red_alert"}`))
	select {
	case <-d.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("connection kept after publishing to another device's topic")
	}
	if s := n.Broker().Stats(); s.ACLRefused != 2 {
		t.Fatalf("stats %+v, want 2 ACL refusals", s)
	}
	if open, _ := n.Service.OpenAlarms(); len(open) != 0 {
		t.Fatalf("%d alarms raised through a refused publish", len(open))
	}
}

// A TLS listener without a certificate is refused by Validate and by Open,
// naming the field.
func TestBroker_TLSListenerNeedsConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   broker.Config
		field string
	}{
		{"TLSAddr", broker.Config{TLSAddr: "127.0.0.1:0"}, "TLSAddr"},
		{"WSSAddr", broker.Config{WSSAddr: "127.0.0.1:0"}, "WSSAddr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "Config.TLS") {
				t.Fatalf("Validate: %v, want an error naming %s and Config.TLS", err, tc.field)
			}
			b := broker.New(tc.cfg, nil, nil)
			if err := b.Open(t.Context()); err == nil || !strings.Contains(err.Error(), tc.field) {
				b.Close()
				t.Fatalf("Open: %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if err := (broker.Config{TCPAddr: "127.0.0.1:0"}).Validate(); err != nil {
		t.Fatalf("plain configuration: %v", err)
	}
}
