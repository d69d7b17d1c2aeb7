package appliance

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

func mustWriteFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestConfig_DefaultsAreASingleNodeAppliance(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if !c.Cluster.bootstrap() {
		t.Fatal("defaults do not bootstrap a single-node cluster")
	}
	cc := c.clusterConfig(nil)
	if cc.DataDir != "./data" || cc.BindAddr != "127.0.0.1:7000" || !cc.Bootstrap {
		t.Fatalf("cluster config from defaults = %+v", cc)
	}
}

func TestConfig_LayersOverrideInOrder(t *testing.T) {
	path := mustWriteFile(t, `
data_dir: /from/file
http_addr: 127.0.0.1:9000
log_level: warn
cluster:
  bind_addr: 127.0.0.1:7100
  heartbeat_timeout: 800ms
  election_timeout: 900ms
  join: [10.0.0.1:7000]
`)
	env := envFrom(map[string]string{
		"VIGIL_CONFIG":                    path,
		"VIGIL_HTTP_ADDR":                 "127.0.0.1:9001",
		"VIGIL_CLUSTER_ELECTION_TIMEOUT":  "1s",
		"VIGIL_CLUSTER_SNAPSHOT_INTERVAL": "", // empty: ignored
	})
	var out bytes.Buffer
	c, err := loadServeConfig([]string{"--log-level", "debug", "--data-dir=/from/flag"}, env, &out)
	if err != nil {
		t.Fatalf("loadServeConfig: %v\n%s", err, out.String())
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir (flag over file)", c.DataDir, "/from/flag"},
		{"http_addr (env over file)", c.HTTPAddr, "127.0.0.1:9001"},
		{"log_level (flag over file)", c.LogLevel, "debug"},
		{"cluster.bind_addr (file)", c.Cluster.BindAddr, "127.0.0.1:7100"},
		{"cluster.heartbeat_timeout (file)", c.Cluster.HeartbeatTimeout, 800 * time.Millisecond},
		{"cluster.election_timeout (env over file)", c.Cluster.ElectionTimeout, time.Second},
		{"cluster.snapshot_interval (default)", c.Cluster.SnapshotInterval, DefaultConfig().Cluster.SnapshotInterval},
		{"cluster.join (file)", strings.Join(c.Cluster.Join, ","), "10.0.0.1:7000"},
		{"bootstrap (a joining node does not)", c.Cluster.bootstrap(), false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// The start mode is one choice: a layer that sets any of bootstrap,
// bootstrap_expect and join replaces the others from below.
func TestConfig_StartModeIsOneChoicePerLayer(t *testing.T) {
	path := mustWriteFile(t, "cluster:\n  join: [10.0.0.1:7000]\n")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantJoin   []string
		wantExpect []string
		wantBoot   bool
	}{
		{name: "file alone", wantJoin: []string{"10.0.0.1:7000"}},
		{name: "env replaces file",
			env:        map[string]string{"VIGIL_CLUSTER_BOOTSTRAP_EXPECT": "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"},
			wantExpect: []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}},
		{name: "flag replaces env and file",
			env:      map[string]string{"VIGIL_CLUSTER_JOIN": "10.0.0.9:7000"},
			args:     []string{"--bootstrap"},
			wantBoot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"VIGIL_CONFIG": path}
			for k, v := range tt.env {
				env[k] = v
			}
			var out bytes.Buffer
			c, err := loadServeConfig(tt.args, envFrom(env), &out)
			if err != nil {
				t.Fatalf("loadServeConfig: %v\n%s", err, out.String())
			}
			if !slices.Equal(c.Cluster.Join, tt.wantJoin) || !slices.Equal(c.Cluster.BootstrapExpect, tt.wantExpect) ||
				c.Cluster.bootstrap() != tt.wantBoot {
				t.Fatalf("join=%v expect=%v bootstrap=%v; want join=%v expect=%v bootstrap=%v",
					c.Cluster.Join, c.Cluster.BootstrapExpect, c.Cluster.bootstrap(), tt.wantJoin, tt.wantExpect, tt.wantBoot)
			}
		})
	}
}

// Every mistake is refused with the name of the setting at fault.
func TestConfig_ErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env       map[string]string
		args      []string
		wantField string
	}{
		{name: "unknown key in file", file: "cluster:\n  bind_adr: 127.0.0.1:7000\n", wantField: "bind_adr"},
		{name: "bad yaml", file: "data_dir: [\n", wantField: "config file"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantField: "log_level"},
		{name: "http addr without port", args: []string{"--http-addr", "127.0.0.1"}, wantField: "http_addr"},
		{name: "bad duration from env", env: map[string]string{"VIGIL_CLUSTER_HEARTBEAT_TIMEOUT": "soon"}, wantField: "VIGIL_CLUSTER_HEARTBEAT_TIMEOUT"},
		{name: "wildcard bind without advertise", args: []string{"--cluster-addr", "0.0.0.0:7000"}, wantField: "cluster.advertise_addr"},
		{name: "election shorter than heartbeat", env: map[string]string{"VIGIL_CLUSTER_ELECTION_TIMEOUT": "100ms"}, wantField: "cluster.election_timeout"},
		{name: "lease longer than heartbeat", env: map[string]string{"VIGIL_CLUSTER_LEADER_LEASE_TIMEOUT": "1s"}, wantField: "cluster.leader_lease_timeout"},
		{name: "max append entries too big", env: map[string]string{"VIGIL_CLUSTER_MAX_APPEND_ENTRIES": "5000"}, wantField: "cluster.max_append_entries"},
		{name: "expect list without self", args: []string{"--bootstrap-expect", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"}, wantField: "cluster.bootstrap_expect"},
		{name: "expect list with a duplicate", args: []string{"--bootstrap-expect", "127.0.0.1:7000,127.0.0.1:7000"}, wantField: "listed twice"},
		{name: "bootstrap and join in one file", file: "cluster:\n  bootstrap: true\n  join: [10.0.0.1:7000]\n", wantField: "cluster.bootstrap"},
		{name: "empty data dir", args: []string{"--data-dir", " "}, wantField: "data_dir"},
		{name: "node name with a right-to-left override", args: []string{"--node-name", "node\u202eevil"}, wantField: "node_name"},
		{name: "replica wait beyond the commit timeout", env: map[string]string{"VIGIL_BROKER_REPLICA_WAIT": "6s"}, wantField: "broker.replica_wait"},
		{name: "no messages a minute", env: map[string]string{"VIGIL_BROKER_MESSAGES_PER_MINUTE": "0"}, wantField: "broker.messages_per_minute"},
		{name: "messages a minute beyond the bound", env: map[string]string{"VIGIL_BROKER_MESSAGES_PER_MINUTE": "1000000"}, wantField: "broker.messages_per_minute"},
		{name: "negative message burst", file: "broker:\n  message_burst: -1\n", wantField: "broker.message_burst"},
		{name: "alarm rate above the message rate", file: "broker:\n  messages_per_minute: 30\n  alarms_per_minute: 31\n", wantField: "broker.alarms_per_minute"},
		{name: "alarm burst above the message burst", env: map[string]string{"VIGIL_BROKER_ALARM_BURST": "101"}, wantField: "broker.alarm_burst"},
		{name: "no alarm burst", env: map[string]string{"VIGIL_BROKER_ALARM_BURST": "0"}, wantField: "broker.alarm_burst"},
		{name: "flood quiet too short", env: map[string]string{"VIGIL_BROKER_FLOOD_QUIET": "10ms"}, wantField: "broker.flood_quiet"},
		{name: "stray argument", args: []string{"now"}, wantField: `unexpected argument "now"`},
		{name: "trusted proxy not an address", file: "console:\n  trusted_proxies: [proxy.example.org]\n", wantField: "console.trusted_proxies"},
		{name: "an SMTP security mode unknown", env: map[string]string{"VIGIL_NOTIFY_SMTP_SECURITY": "ssl"}, wantField: "notify.smtp.security"},
		{name: "a relay without a sender", env: map[string]string{"VIGIL_NOTIFY_SMTP_HOST": "relay.example.org"}, wantField: "notify.smtp.from"},
		{name: "a webhook without a secret", file: "notify:\n  webhooks:\n    - name: oncall\n      url: https://hooks.example.org/v\n",
			wantField: "notify.webhooks[0].secret"},
		{name: "webhooks from the environment", env: map[string]string{"VIGIL_NOTIFY_WEBHOOKS": "oncall"}, wantField: "VIGIL_NOTIFY_WEBHOOKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.file != "" {
				env["VIGIL_CONFIG"] = mustWriteFile(t, tt.file)
			}
			var out bytes.Buffer
			_, err := loadServeConfig(tt.args, envFrom(env), &out)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if errors.Is(err, ErrUsage) {
				msg = out.String() // the usage error went to the output with the flag set's usage
			}
			if !strings.Contains(msg, tt.wantField) {
				t.Fatalf("error %q does not name %q", msg, tt.wantField)
			}
		})
	}
}

func TestConfig_KeysAndEnvNames(t *testing.T) {
	keys := ConfigKeys()
	for _, want := range []string{"data_dir", "node_id", "http_addr", "log_level", "cluster.bind_addr", "cluster.bootstrap_expect", "cluster.trailing_logs"} {
		if !slices.Contains(keys, want) {
			t.Errorf("ConfigKeys() lacks %q: %v", want, keys)
		}
	}
	if slices.Contains(keys, "logger") {
		t.Error("ConfigKeys() includes the Logger, which is not configuration")
	}
	if got := EnvName("cluster.bind_addr"); got != "VIGIL_CLUSTER_BIND_ADDR" {
		t.Errorf("EnvName = %q", got)
	}
	// Every key can be set from the environment.
	env := map[string]string{}
	for _, k := range keys {
		env[EnvName(k)] = map[string]string{
			"cluster.bootstrap": "false", "log_level": "error",
		}[k]
	}
	c := DefaultConfig()
	env["VIGIL_CLUSTER_TRAILING_LOGS"] = "77"
	env["VIGIL_NODE_ID"] = "node-a"
	if err := c.applyEnv(envFrom(env)); err != nil {
		t.Fatalf("applyEnv: %v", err)
	}
	if c.Cluster.TrailingLogs != 77 || c.NodeID != "node-a" || c.LogLevel != "error" || c.Cluster.bootstrap() {
		t.Fatalf("applyEnv result: %+v", c)
	}
}

// mustTLSFiles writes a certificate for 127.0.0.1 and its key as PEM
// files, signed by a throwaway CA, and returns their paths.
func mustTLSFiles(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	ca, err := provisioning.NewCA("test-cluster", now)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.IssueNode(name, provisioning.NodeNames{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := n.Key.PEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, n.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// The MQTT TLS listeners are off unless configured, and a TLS setting
// that cannot work is refused naming the field and the file.
func TestConfig_BrokerTLSRefusals(t *testing.T) {
	cert, key := mustTLSFiles(t, "a")
	otherCert, _ := mustTLSFiles(t, "b")
	garbage := mustWriteFile(t, "not PEM\n")
	missing := filepath.Join(t.TempDir(), "missing.pem")

	d := DefaultConfig().Broker
	if d.TLSAddr != "" || d.WSSAddr != "" || d.TLSCertFile != "" || d.TLSKeyFile != "" {
		t.Fatalf("default broker TLS settings %+v, want none", d)
	}
	for _, tc := range []struct {
		name                string
		addr, wss, crt, key string
		want                []string // in the error; none means accepted
	}{
		{name: "tls address with its files", addr: ":8883", crt: cert, key: key},
		{name: "wss address with its files", wss: "127.0.0.1:8884", crt: cert, key: key},
		// Without files, the listeners present the node's certificate
		// from the cluster CA.
		{name: "tls address without files", addr: ":8883"},
		{name: "wss address without files", wss: ":8884"},
		{name: "tls address without key", addr: ":8883", crt: cert, want: []string{"broker.tls_key_file", cert}},
		{name: "tls address without port", addr: "127.0.0.1", crt: cert, key: key, want: []string{"broker.tls_addr"}},
		{name: "certificate without address", crt: cert, key: key, want: []string{"broker.tls_cert_file", cert, "neither"}},
		{name: "key without certificate", key: key, want: []string{"broker.tls_cert_file", "broker.tls_key_file", key}},
		{name: "unreadable certificate", addr: ":8883", crt: missing, key: key, want: []string{"broker.tls_cert_file", missing, "cannot be read"}},
		{name: "unreadable key", addr: ":8883", crt: cert, key: missing, want: []string{"broker.tls_key_file", missing, "cannot be read"}},
		{name: "certificate not PEM", addr: ":8883", crt: garbage, key: key, want: []string{"broker.tls_cert_file", garbage}},
		{name: "key of another certificate", addr: ":8883", crt: otherCert, key: key, want: []string{"broker.tls_cert_file", otherCert, key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"VIGIL_BROKER_TLS_ADDR": tc.addr, "VIGIL_BROKER_WSS_ADDR": tc.wss,
				"VIGIL_BROKER_TLS_CERT_FILE": tc.crt, "VIGIL_BROKER_TLS_KEY_FILE": tc.key,
			}
			_, err := loadServeConfig(nil, envFrom(env), &bytes.Buffer{})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FieldError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
	// The flags set the same fields.
	c, err := loadServeConfig([]string{"--mqtt-tls-addr", "127.0.0.1:8883", "--mqtt-wss-addr", "127.0.0.1:8884",
		"--mqtt-tls-cert", cert, "--mqtt-tls-key", key}, envFrom(nil), &bytes.Buffer{})
	if err != nil || c.Broker.TLSAddr != "127.0.0.1:8883" || c.Broker.WSSAddr != "127.0.0.1:8884" ||
		c.Broker.TLSCertFile != cert || c.Broker.TLSKeyFile != key {
		t.Fatalf("from flags: %+v, %v", c.Broker, err)
	}
}

// The notifications' settings come from the file, the webhooks with them,
// and the relay's scalars may be overridden from the environment.
func TestConfig_NotifyFromTheFile(t *testing.T) {
	path := mustWriteFile(t, `
notify:
  smtp:
    host: mail.example.org
    port: 465
    security: tls
    username: vigil
    password_file: /etc/vigil/smtp-password
    from: vigil@example.org
  webhooks:
    - name: sms-gateway
      url: https://sms.example.org/hooks/vigil
      secret_file: /etc/vigil/sms.secret
  console_url: https://vigil.example.org
  max_backoff: 5m
`)
	var out bytes.Buffer
	c, err := loadServeConfig(nil, envFrom(map[string]string{"VIGIL_CONFIG": path, "VIGIL_NOTIFY_SMTP_HOST": "relay.example.org"}), &out)
	if err != nil {
		t.Fatalf("loadServeConfig: %v\n%s", err, out.String())
	}
	n := c.Notify
	if n.SMTP.Host != "relay.example.org" || n.SMTP.Port != 465 || n.SMTP.Security != "tls" || n.SMTP.From != "vigil@example.org" ||
		n.SMTP.PasswordFile != "/etc/vigil/smtp-password" || len(n.Webhooks) != 1 || n.Webhooks[0].Name != "sms-gateway" ||
		n.Webhooks[0].SecretFile != "/etc/vigil/sms.secret" || n.ConsoleURL != "https://vigil.example.org" ||
		n.MaxBackoff != 5*time.Minute || n.MinBackoff != DefaultConfig().Notify.MinBackoff {
		t.Fatalf("notify = %+v", n)
	}
}
