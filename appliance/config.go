package appliance

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/notify"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/ui/console"
)

// Defaults of a single-node appliance. Cluster timing defaults come from the
// cluster package, which tunes them for appliances on one LAN.
const (
	DefaultDataDir     = "./data"
	DefaultClusterAddr = "127.0.0.1:7000"
	DefaultHTTPAddr    = "127.0.0.1:8080"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "text"

	// EnvPrefix begins every environment variable that overrides the
	// configuration file: cluster.bind_addr is VIGIL_CLUSTER_BIND_ADDR.
	EnvPrefix = "VIGIL_"
)

// Config is one appliance's configuration.
//
// Values come from, in increasing precedence: DefaultConfig, the YAML file
// given with --config (or VIGIL_CONFIG), VIGIL_ environment variables, and
// the command-line flags of vigil serve. Each layer overrides only the
// fields it sets. Bootstrap, bootstrap_expect and join are one choice: a
// layer that sets any of them replaces all three from the layers below.
type Config struct {
	// DataDir is the directory that holds everything the node keeps: its
	// node ID, the Raft log, the replicated state and snapshots. Losing it
	// loses this node's copy, not the cluster's.
	DataDir string `yaml:"data_dir"`

	// NodeID names the node when its data directory is new. Empty means a
	// new random UUID. Once the directory holds an ID, a different NodeID is
	// an error. IDs are never addresses: an appliance keeps its ID when its
	// address changes.
	NodeID string `yaml:"node_id"`

	// NodeName is the node's readable name, shown beside its ID on the
	// console's cluster page and announced on the LAN. Empty means the
	// host name.
	NodeName string `yaml:"node_name"`

	// HTTPAddr is the host:port of the HTTP surface: the operator console
	// under /ui/ and the REST API under /api/v1, both authenticated
	// (ui/auth), and the endpoint where new appliances join. It speaks
	// HTTPS outside loopback (http_tls).
	HTTPAddr string `yaml:"http_addr"`

	// HTTPTLS says whether http_addr speaks HTTPS: "auto" (the default)
	// does outside loopback, "on" always, "off" never (for a TLS reverse
	// proxy in front). HTTPS uses the node's certificate from the cluster
	// CA unless http_tls_cert_file is set. A plain HTTP request to an HTTPS
	// port is redirected to HTTPS.
	HTTPTLS string `yaml:"http_tls"`

	// HTTPTLSCertFile is the PEM file of a certificate from the customer's
	// own CA for the console and API, followed by any intermediates; empty
	// means the node's certificate from the cluster CA. A joining
	// appliance is always shown the cluster's.
	HTTPTLSCertFile string `yaml:"http_tls_cert_file"`

	// HTTPTLSKeyFile is the PEM file of http_tls_cert_file's key.
	HTTPTLSKeyFile string `yaml:"http_tls_key_file"`

	// SiteNames are more DNS names that browsers and devices reach this
	// appliance by (a site name such as vigil.council.example), put in
	// the node's certificate beside its host name and addresses. A node
	// whose certificate lacks one renews it at start.
	SiteNames []string `yaml:"site_names"`

	// LogLevel is the lowest level logged to stderr: debug, info, warn or
	// error.
	LogLevel string `yaml:"log_level"`

	// LogFormat is how log lines are written: "text" (key=value, the
	// default) or "json" (one JSON object a line, for a log collector).
	LogFormat string `yaml:"log_format"`

	// MetricsAddr is the host:port of a plain HTTP listener that serves
	// Prometheus metrics (/metrics) and the health checks (/healthz,
	// /readyz) without authentication, for the monitoring system; empty
	// (the default) turns it off. What it serves holds no secret (counts,
	// indexes, node IDs), but bind it to the management network or let a
	// firewall admit only the Prometheus host (docs/install.md).
	MetricsAddr string `yaml:"metrics_addr"`

	// Cluster configures the cluster port and Raft.
	Cluster ClusterConfig `yaml:"cluster"`

	// Broker configures the MQTT gateway that devices connect to.
	Broker BrokerConfig `yaml:"broker"`

	// Console configures the operator console served under /ui/ on
	// http_addr (docs/console.md).
	Console ConsoleConfig `yaml:"console"`

	// Discovery configures how appliances find each other on the LAN.
	Discovery DiscoveryConfig `yaml:"discovery"`

	// Notify configures the notifications sent outside Vigil: the
	// installation's SMTP relay, the webhooks organisations' policies
	// name, and the retries (docs/notifications.md). Each node has its
	// own copy; give every node the same.
	Notify notify.Config `yaml:"notify"`

	// Debug holds diagnostic settings; all are off by default.
	Debug DebugConfig `yaml:"debug"`

	// Logger receives the node's logs. It is not read from the file; nil
	// means a text logger on stderr at LogLevel.
	Logger *slog.Logger `yaml:"-"`
}

// ClusterConfig configures how a node talks to its peers and runs Raft.
type ClusterConfig struct {
	// BindAddr is the host:port that the cluster port (Raft and the
	// cluster RPC) listens on.
	BindAddr string `yaml:"bind_addr"`

	// AdvertiseAddr is the host:port that other nodes dial to reach this
	// one. Empty means BindAddr, which must then not be a wildcard such as
	// 0.0.0.0.
	AdvertiseAddr string `yaml:"advertise_addr"`

	// Bootstrap starts a new single-node cluster when the data directory is
	// new. Unset means true when neither BootstrapExpect nor Join is given,
	// which is what a single appliance wants. Set it to false for a node
	// that waits to be added with vigil cluster join.
	Bootstrap *bool `yaml:"bootstrap"`

	// BootstrapExpect lists the cluster addresses (advertise addresses) of
	// all the initial voters, this node's own included, exactly as each
	// node advertises itself. A new node waits until it has reached all of
	// them; then they form the cluster together. Give every initial node the
	// same list.
	BootstrapExpect []string `yaml:"bootstrap_expect"`

	// Join lists cluster addresses of existing members. A new node asks
	// them to add it as a voter until one does.
	Join []string `yaml:"join"`

	// JoinToken is a join token (vigil init or vigil token join printed
	// it). A node with no trust yet joins the token's cluster on its first
	// start, exactly as vigil join would, then serves; once it has its
	// certificate the token is ignored. For unattended installs; keep the
	// file readable by Vigil's user only.
	JoinToken string `yaml:"join_token"`

	// HeartbeatTimeout is how long a follower waits without hearing from
	// the leader before it starts an election.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`

	// ElectionTimeout is how long a candidate waits for votes before it
	// starts another election. At least HeartbeatTimeout.
	ElectionTimeout time.Duration `yaml:"election_timeout"`

	// LeaderLeaseTimeout is how long a leader goes on leading without
	// hearing from a quorum. At most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout"`

	// CommitTimeout is the longest the leader waits before it sends an
	// empty append to move the followers' commit index forward.
	CommitTimeout time.Duration `yaml:"commit_timeout"`

	// ApplyTimeout bounds one write, including waiting for a leader and
	// retries through an election. After it the client gets 503 or 504.
	ApplyTimeout time.Duration `yaml:"apply_timeout"`

	// MaxAppendEntries is the most log entries sent in one append, 1 to 1024.
	MaxAppendEntries int `yaml:"max_append_entries"`

	// SnapshotThreshold is how many new log entries cause a snapshot.
	SnapshotThreshold uint64 `yaml:"snapshot_threshold"`

	// SnapshotInterval is how often the node checks SnapshotThreshold.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`

	// TrailingLogs is how many log entries are kept after a snapshot, so
	// that a follower a little behind catches up from the log rather than
	// from a whole snapshot.
	TrailingLogs uint64 `yaml:"trailing_logs"`

	// MinFreeBytes is the free space of the data directory's file system,
	// in bytes, under which the node refuses writes (the API answers 507,
	// a device gets no PUBACK) and takes no snapshot, until space is freed;
	// under half of it the node does not start. Negative turns the check
	// off. Default 256 MiB (docs/reliability.md, "Disk full").
	MinFreeBytes int64 `yaml:"min_free_bytes"`
}

// DiscoveryConfig configures discovery: each node announces itself on the
// LAN with mDNS (service _vigil._tcp, its cluster ID, node ID, name and
// state), and vigil join looks there for the members of its token's
// cluster when the token's addresses do not answer. A discovered peer is
// only a hint of where to dial: it must still present the CA the token
// pins (provisioning/DESIGN.md). Static addresses always work.
type DiscoveryConfig struct {
	// Mode is "auto" (the default: on unless the cluster port is on
	// loopback), "on" or "off".
	Mode string `yaml:"mode"`

	// Interfaces names the network interfaces to announce on; empty means
	// every multicast interface that is up.
	Interfaces []string `yaml:"interfaces"`
}

// discoveryOn reports whether the node announces itself and looks for
// peers with mDNS.
func (c Config) discoveryOn() bool {
	switch c.Discovery.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	return !isLoopbackAddr(c.Cluster.BindAddr)
}

// BrokerConfig configures the MQTT gateway (docs/device-protocol.md).
type BrokerConfig struct {
	// TCPAddr is the host:port of the plain MQTT listener. Empty, the
	// default, disables it: plain MQTT carries device secrets in clear, so
	// it is only on where the configuration asks for it (and warned of
	// when other machines can reach it).
	TCPAddr string `yaml:"tcp_addr"`

	// WSAddr is the host:port of the plain MQTT over WebSocket listener.
	// Empty, the default, disables it.
	WSAddr string `yaml:"ws_addr"`

	// TLSAddr is the host:port of the MQTT over TLS listener (port 8883 by
	// convention), so that device secrets do not cross the network in
	// clear. Empty, the default, disables it. It presents tls_cert_file,
	// or the node's certificate from the cluster CA when that is empty.
	TLSAddr string `yaml:"tls_addr"`

	// WSSAddr is the host:port of the MQTT over secure WebSocket (wss://)
	// listener. Empty, the default, disables it. It presents the same
	// certificate as tls_addr.
	WSSAddr string `yaml:"wss_addr"`

	// TLSCertFile is the PEM file of the certificate that tls_addr and
	// wss_addr present to devices, followed by any intermediate CA
	// certificates. It is read once, when the node starts.
	TLSCertFile string `yaml:"tls_cert_file"`

	// TLSKeyFile is the PEM file of the private key of tls_cert_file.
	TLSKeyFile string `yaml:"tls_key_file"`

	// CommitTimeout bounds the wait for the cluster to commit a device's
	// alarm or session event; after it the device gets no PUBACK and its
	// connection is dropped, so that it retries.
	CommitTimeout time.Duration `yaml:"commit_timeout"`

	// TelemetryFlush is how often the heartbeats, locations, battery levels
	// and presence gathered from devices are written to the cluster, as one
	// batch (latest wins per device).
	TelemetryFlush time.Duration `yaml:"telemetry_flush"`

	// ListeningInterval is how often a device whose alarm an operator has
	// taken is told so (down/alarm status listening), until it is closed.
	ListeningInterval time.Duration `yaml:"listening_interval"`

	// NodeDownAfter is how long a node must be silent before the leader
	// marks the devices connected through it as disconnected.
	NodeDownAfter time.Duration `yaml:"node_down_after"`

	// ReplicaWait is how long, after an alarm or session event committed on
	// a quorum, the gateway waits for the other healthy nodes to apply it
	// before the PUBACK, so that in a healthy cluster the event is on every
	// node when the device hears it is saved. A node that does not answer
	// in time is not waited for. 0 turns the wait off (PUBACK on quorum).
	ReplicaWait time.Duration `yaml:"replica_wait"`

	// MessagesPerMinute is how many messages of any kind each device may
	// send a minute, after a burst of message_burst; a message beyond it is
	// refused with a rate_limited reply and not recorded. Counted on each
	// node for the devices connected to it (docs/reliability.md, "Limits").
	MessagesPerMinute int `yaml:"messages_per_minute"`

	// MessageBurst is how many messages a device may send at once (a full
	// outbox resent after a failover) before messages_per_minute applies.
	MessageBurst int `yaml:"message_burst"`

	// AlarmsPerMinute is the same as messages_per_minute for the messages
	// that can raise an alarm (alarm, alarm/cancel, session check-in,
	// extend and end, prompt/answer), after a burst of alarm_burst. A resend
	// of an event already recorded is not counted. At most
	// messages_per_minute.
	AlarmsPerMinute int `yaml:"alarms_per_minute"`

	// AlarmBurst is how many alarm messages a device may send at once
	// before alarms_per_minute applies. At most message_burst.
	AlarmBurst int `yaml:"alarm_burst"`

	// FloodQuiet is how long a device must go without a refused message
	// before the next refusal is a new flood, reported to the operators
	// again (one device-flooding alarm per flood).
	FloodQuiet time.Duration `yaml:"flood_quiet"`
}

// ConsoleConfig configures the operator console (docs/console.md).
type ConsoleConfig struct {
	// InsecureCookies sends the console's cookies without the Secure flag,
	// so that a browser keeps them over plain HTTP. Only for development:
	// refused unless http_addr is a loopback address.
	InsecureCookies bool `yaml:"insecure_cookies"`

	// SessionTTL is how long an operator's sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`

	// AllowedOrigins lists origins such as "https://vigil.example.org"
	// accepted on the console's forms besides the request's own host: for
	// a reverse proxy that changes the Host header.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// TrustedProxies lists the reverse proxies in front of the console,
	// as CIDRs ("10.0.0.0/24") or addresses ("127.0.0.1"): only from
	// these is X-Forwarded-For believed for the client's address, which
	// the sign-in limits count and the audit log records. Empty, the
	// default, believes no header.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// PublicURL is the origin browsers reach this node's console at, such
	// as "https://vigil-1.example.org" (a reverse proxy's). A page moves to
	// it when its own node stops. Empty means http:// and http_addr.
	PublicURL string `yaml:"public_url"`
}

func (c ConsoleConfig) validate(httpAddr string) error {
	if c.InsecureCookies {
		if !isLoopbackAddr(httpAddr) {
			return fieldErr("console.insecure_cookies", "true", "is only allowed when http_addr is a loopback address, not %q", httpAddr)
		}
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour {
		return fieldErr("console.session_ttl", c.SessionTTL.String(), "must be from 1m to 168h")
	}
	for _, o := range c.AllowedOrigins {
		if !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") || strings.Count(o, "/") != 2 {
			return fieldErr("console.allowed_origins", o, "must be scheme://host[:port], such as https://vigil.example.org")
		}
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return fieldErr("console.trusted_proxies", p, "must be a CIDR such as 10.0.0.0/24 or an address such as 127.0.0.1")
		}
	}
	if o := strings.TrimSuffix(c.PublicURL, "/"); o != "" {
		if !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") || strings.Count(o, "/") != 2 || strings.ContainsAny(o, " ;,") {
			return fieldErr("console.public_url", c.PublicURL, "must be scheme://host[:port], such as https://vigil-1.example.org")
		}
	}
	return nil
}

// DebugConfig holds diagnostic settings, off by default.
type DebugConfig struct {
	// PprofAddr is a loopback host:port on which the node serves Go's
	// runtime profiles (net/http/pprof, under /debug/pprof/), for the
	// benchmarks. Empty, the default, serves none.
	PprofAddr string `yaml:"pprof_addr"`
}

func (c DebugConfig) validate() error {
	if c.PprofAddr == "" {
		return nil
	}
	if err := checkHostPort("debug.pprof_addr", c.PprofAddr, true); err != nil {
		return err
	}
	if !isLoopbackAddr(c.PprofAddr) {
		return fieldErr("debug.pprof_addr", c.PprofAddr, "must be a loopback address: the profiles show the node's memory")
	}
	return nil
}

// DefaultNodeDownAfter is the default of broker.node_down_after: several
// status rounds, so that a busy node is not taken for a dead one.
const DefaultNodeDownAfter = 10 * time.Second

func (c BrokerConfig) validate() error {
	if c.TCPAddr != "" {
		if err := checkHostPort("broker.tcp_addr", c.TCPAddr, true); err != nil {
			return err
		}
	}
	if c.WSAddr != "" {
		if err := checkHostPort("broker.ws_addr", c.WSAddr, true); err != nil {
			return err
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.CommitTimeout <= 0 {
		return fieldErr("broker.commit_timeout", c.CommitTimeout.String(), "must be positive")
	}
	if c.TelemetryFlush < 10*time.Millisecond || c.TelemetryFlush > time.Minute {
		return fieldErr("broker.telemetry_flush", c.TelemetryFlush.String(), "must be from 10ms to 1m")
	}
	if c.ListeningInterval < 100*time.Millisecond || c.ListeningInterval > 10*time.Minute {
		return fieldErr("broker.listening_interval", c.ListeningInterval.String(), "must be from 100ms to 10m")
	}
	if c.NodeDownAfter < time.Second {
		return fieldErr("broker.node_down_after", c.NodeDownAfter.String(), "must be at least 1s")
	}
	if c.ReplicaWait < 0 || c.ReplicaWait > c.CommitTimeout {
		return fieldErr("broker.replica_wait", c.ReplicaWait.String(), "must be from 0 to broker.commit_timeout")
	}
	return c.validateLimits()
}

// validateLimits checks the per-device rate limits: each within its
// bounds, and the alarm limit no looser than the message limit (every
// alarm message is a message too).
func (c BrokerConfig) validateLimits() error {
	itoa := strconv.Itoa
	switch {
	case c.MessagesPerMinute < 1 || c.MessagesPerMinute > broker.MaxMessagesPerMinute:
		return fieldErr("broker.messages_per_minute", itoa(c.MessagesPerMinute), "must be from 1 to %d", broker.MaxMessagesPerMinute)
	case c.MessageBurst < 1 || c.MessageBurst > broker.MaxBurst:
		return fieldErr("broker.message_burst", itoa(c.MessageBurst), "must be from 1 to %d", broker.MaxBurst)
	case c.AlarmsPerMinute < 1 || c.AlarmsPerMinute > c.MessagesPerMinute:
		return fieldErr("broker.alarms_per_minute", itoa(c.AlarmsPerMinute), "must be from 1 to broker.messages_per_minute (%d)", c.MessagesPerMinute)
	case c.AlarmBurst < 1 || c.AlarmBurst > c.MessageBurst:
		return fieldErr("broker.alarm_burst", itoa(c.AlarmBurst), "must be from 1 to broker.message_burst (%d)", c.MessageBurst)
	case c.FloodQuiet < broker.MinFloodQuiet || c.FloodQuiet > broker.MaxFloodQuiet:
		return fieldErr("broker.flood_quiet", c.FloodQuiet.String(), "must be from %s to %s", broker.MinFloodQuiet, broker.MaxFloodQuiet)
	}
	return nil
}

// validateTLS checks the TLS listeners and their certificate: an address
// needs both files, the files need an address, and the pair must load.
func (c BrokerConfig) validateTLS() error {
	for _, a := range []struct{ field, addr string }{{"broker.tls_addr", c.TLSAddr}, {"broker.wss_addr", c.WSSAddr}} {
		if a.addr == "" {
			continue
		}
		if err := checkHostPort(a.field, a.addr, true); err != nil {
			return err
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return fieldErr("broker.tls_key_file", "", "is required with broker.tls_cert_file %q (or set neither, for the node's certificate from the cluster CA)", c.TLSCertFile)
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return fieldErr("broker.tls_cert_file", "", "is required with broker.tls_key_file %q (or set neither, for the node's certificate from the cluster CA)", c.TLSKeyFile)
	}
	if c.TLSCertFile == "" {
		return nil
	}
	if c.TLSAddr == "" && c.WSSAddr == "" {
		for _, f := range []struct{ field, file string }{{"broker.tls_cert_file", c.TLSCertFile}, {"broker.tls_key_file", c.TLSKeyFile}} {
			if f.file != "" {
				return fieldErr(f.field, f.file, "is set but neither broker.tls_addr nor broker.wss_addr is")
			}
		}
		return nil
	}
	_, err := c.loadTLS()
	return err
}

// loadTLS reads the certificate and key of the TLS listeners. Its error
// names the field of the file at fault.
func (c BrokerConfig) loadTLS() (*tls.Config, error) {
	for _, f := range []struct{ field, file string }{{"broker.tls_cert_file", c.TLSCertFile}, {"broker.tls_key_file", c.TLSKeyFile}} {
		if _, err := os.ReadFile(f.file); err != nil {
			return nil, fieldErr(f.field, f.file, "cannot be read: %v", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fieldErr("broker.tls_cert_file", c.TLSCertFile, "and broker.tls_key_file %q are not a certificate and its key: %v", c.TLSKeyFile, err)
	}
	return &tls.Config{MinVersion: broker.MinTLSVersion, Certificates: []tls.Certificate{pair}}, nil
}

// DefaultConfig returns the configuration of a single-node appliance that
// keeps its data in ./data, listens for peers on 127.0.0.1:7000 and serves
// the API on 127.0.0.1:8080.
func DefaultConfig() Config {
	return Config{
		DataDir:   DefaultDataDir,
		HTTPAddr:  DefaultHTTPAddr,
		LogLevel:  DefaultLogLevel,
		LogFormat: DefaultLogFormat,
		Cluster: ClusterConfig{
			BindAddr:           DefaultClusterAddr,
			HeartbeatTimeout:   cluster.DefaultHeartbeatTimeout,
			ElectionTimeout:    cluster.DefaultElectionTimeout,
			LeaderLeaseTimeout: cluster.DefaultLeaderLeaseTimeout,
			CommitTimeout:      cluster.DefaultCommitTimeout,
			ApplyTimeout:       cluster.DefaultApplyTimeout,
			MaxAppendEntries:   cluster.DefaultMaxAppendEntries,
			SnapshotThreshold:  cluster.DefaultSnapshotThreshold,
			SnapshotInterval:   cluster.DefaultSnapshotInterval,
			TrailingLogs:       cluster.DefaultTrailingLogs,
			MinFreeBytes:       cluster.DefaultMinFreeBytes,
		},
		Console: ConsoleConfig{SessionTTL: console.DefaultSessionTTL},
		Notify:  notify.DefaultConfig(),
		Broker: BrokerConfig{
			// No MQTT listener unless the configuration names one: plain
			// MQTT carries device secrets and alarms in clear, so it is
			// never on by default (docs/install.md).
			TCPAddr:           "",
			WSAddr:            "",
			CommitTimeout:     broker.DefaultCommitTimeout,
			TelemetryFlush:    broker.DefaultTelemetryFlush,
			ListeningInterval: broker.DefaultListeningInterval,
			NodeDownAfter:     DefaultNodeDownAfter,
			ReplicaWait:       broker.DefaultReplicaWait,

			MessagesPerMinute: broker.DefaultMessagesPerMinute,
			MessageBurst:      broker.DefaultMessageBurst,
			AlarmsPerMinute:   broker.DefaultAlarmsPerMinute,
			AlarmBurst:        broker.DefaultAlarmBurst,
			FloodQuiet:        broker.DefaultFloodQuiet,
		},
	}
}

// FieldError is a configuration problem with one field.
type FieldError struct {
	Field  string // the field's YAML path, such as "cluster.bind_addr"
	Value  string // the offending value as given, or "" when it is missing
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("config: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("config: %s %q: %s", e.Field, e.Value, e.Reason)
}

func fieldErr(field, value, format string, a ...any) error {
	return &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, a...)}
}

// Validate returns the first problem in c as a *FieldError naming the field.
func (c Config) Validate() error {
	if strings.TrimSpace(c.DataDir) == "" {
		return fieldErr("data_dir", "", "is required")
	}
	if err := checkHostPort("http_addr", c.HTTPAddr, true); err != nil {
		return err
	}
	if _, hidden := monitoring.HiddenChar(c.NodeName); len(c.NodeName) > 63 || hidden {
		return fieldErr("node_name", c.NodeName, "must be at most 63 characters, none of them control or formatting characters (such as a right-to-left override)")
	}
	if err := c.validateHTTPTLS(); err != nil {
		return err
	}
	if len(c.SiteNames) > 8 {
		return fieldErr("site_names", strings.Join(c.SiteNames, ","), "lists more than 8 names")
	}
	for _, n := range c.SiteNames {
		if !validDNSName(n) {
			return fieldErr("site_names", n, "is not a DNS name (letters, digits, '-' and '.', at most 253 characters)")
		}
	}
	if c.Cluster.JoinToken != "" {
		if _, err := provisioning.ParseJoinToken(c.Cluster.JoinToken); err != nil {
			return fieldErr("cluster.join_token", "", "%v", err)
		}
	}
	switch c.Discovery.Mode {
	case "", "auto", "on", "off":
	default:
		return fieldErr("discovery.mode", c.Discovery.Mode, "must be auto, on or off")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return fieldErr("log_level", c.LogLevel, "%v", err)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fieldErr("log_format", c.LogFormat, "must be text or json")
	}
	if c.MetricsAddr != "" {
		if err := checkHostPort("metrics_addr", c.MetricsAddr, true); err != nil {
			return err
		}
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.Console.validate(c.HTTPAddr); err != nil {
		return err
	}
	if err := c.Debug.validate(); err != nil {
		return err
	}
	if err := c.Notify.Validate(); err != nil {
		var fe *notify.FieldError
		if errors.As(err, &fe) {
			return fieldErr(fe.Field, "", "%s", fe.Reason)
		}
		return err
	}
	return c.Broker.validate()
}

// validDNSName reports whether n is a host name: dot-separated labels of
// letters, digits and '-', not beginning or ending with '-'.
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validateHTTPTLS checks http_tls and the customer's certificate.
func (c Config) validateHTTPTLS() error {
	switch c.HTTPTLS {
	case "", "auto", "on", "off":
	default:
		return fieldErr("http_tls", c.HTTPTLS, "must be auto, on or off")
	}
	if (c.HTTPTLSCertFile == "") != (c.HTTPTLSKeyFile == "") {
		return fieldErr("http_tls_cert_file", c.HTTPTLSCertFile, "and http_tls_key_file go together: set both or neither")
	}
	if c.HTTPTLSCertFile == "" {
		return nil
	}
	if c.HTTPTLS == "off" {
		return fieldErr("http_tls_cert_file", c.HTTPTLSCertFile, "is set but http_tls is off")
	}
	if _, err := tls.LoadX509KeyPair(c.HTTPTLSCertFile, c.HTTPTLSKeyFile); err != nil {
		return fieldErr("http_tls_cert_file", c.HTTPTLSCertFile, "and http_tls_key_file %q are not a certificate and its key: %v", c.HTTPTLSKeyFile, err)
	}
	return nil
}

func (c ClusterConfig) validate() error {
	if err := checkHostPort("cluster.bind_addr", c.BindAddr, true); err != nil {
		return err
	}
	self := c.AdvertiseAddr
	if self == "" {
		if host, _, _ := net.SplitHostPort(c.BindAddr); isWildcard(host) {
			return fieldErr("cluster.advertise_addr", "", "is required when cluster.bind_addr %q is a wildcard", c.BindAddr)
		}
		self = c.BindAddr
	} else {
		if err := checkHostPort("cluster.advertise_addr", c.AdvertiseAddr, false); err != nil {
			return err
		}
		if host, _, _ := net.SplitHostPort(c.AdvertiseAddr); isWildcard(host) {
			return fieldErr("cluster.advertise_addr", c.AdvertiseAddr, "must be an address other nodes can dial, not a wildcard")
		}
	}

	if c.Bootstrap != nil && *c.Bootstrap && len(c.BootstrapExpect) > 0 {
		return fieldErr("cluster.bootstrap", "true", "cannot be combined with cluster.bootstrap_expect: choose one")
	}
	if c.Bootstrap != nil && *c.Bootstrap && len(c.Join) > 0 {
		return fieldErr("cluster.bootstrap", "true", "cannot be combined with cluster.join: choose one")
	}
	if len(c.BootstrapExpect) > 0 && len(c.Join) > 0 {
		return fieldErr("cluster.join", strings.Join(c.Join, ","), "cannot be combined with cluster.bootstrap_expect: choose one")
	}
	for i, a := range c.BootstrapExpect {
		if err := checkHostPort("cluster.bootstrap_expect", a, false); err != nil {
			return err
		}
		if slices.Contains(c.BootstrapExpect[:i], a) {
			return fieldErr("cluster.bootstrap_expect", a, "is listed twice")
		}
	}
	if len(c.BootstrapExpect) > 0 && !slices.Contains(c.BootstrapExpect, self) {
		return fieldErr("cluster.bootstrap_expect", strings.Join(c.BootstrapExpect, ","),
			"must list this node's own cluster address %q, written the same way", self)
	}
	for _, a := range c.Join {
		if err := checkHostPort("cluster.join", a, false); err != nil {
			return err
		}
	}

	// The same rules as hashicorp/raft's ValidateConfig, named after our fields.
	switch {
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return fieldErr("cluster.heartbeat_timeout", c.HeartbeatTimeout.String(), "must be at least 5ms")
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fieldErr("cluster.election_timeout", c.ElectionTimeout.String(), "must be at least cluster.heartbeat_timeout (%s)", c.HeartbeatTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond:
		return fieldErr("cluster.leader_lease_timeout", c.LeaderLeaseTimeout.String(), "must be at least 5ms")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fieldErr("cluster.leader_lease_timeout", c.LeaderLeaseTimeout.String(), "must be at most cluster.heartbeat_timeout (%s)", c.HeartbeatTimeout)
	case c.CommitTimeout < time.Millisecond:
		return fieldErr("cluster.commit_timeout", c.CommitTimeout.String(), "must be at least 1ms")
	case c.ApplyTimeout <= 0:
		return fieldErr("cluster.apply_timeout", c.ApplyTimeout.String(), "must be positive")
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return fieldErr("cluster.max_append_entries", strconv.Itoa(c.MaxAppendEntries), "must be between 1 and 1024")
	case c.SnapshotThreshold < 1:
		return fieldErr("cluster.snapshot_threshold", "0", "must be at least 1")
	case c.SnapshotInterval < 5*time.Millisecond:
		return fieldErr("cluster.snapshot_interval", c.SnapshotInterval.String(), "must be at least 5ms")
	}
	return nil
}

// bootstrap reports whether a new node starts a single-node cluster.
func (c ClusterConfig) bootstrap() bool {
	if c.Bootstrap != nil {
		return *c.Bootstrap
	}
	return len(c.BootstrapExpect) == 0 && len(c.Join) == 0
}

// clusterConfig returns the cluster package's configuration for c.
func (c Config) clusterConfig(logger *slog.Logger) cluster.Config {
	return cluster.Config{
		DataDir:            c.DataDir,
		NodeID:             c.NodeID,
		BindAddr:           c.Cluster.BindAddr,
		AdvertiseAddr:      c.Cluster.AdvertiseAddr,
		Bootstrap:          c.Cluster.bootstrap(),
		BootstrapExpect:    c.Cluster.BootstrapExpect,
		Join:               c.Cluster.Join,
		HeartbeatTimeout:   c.Cluster.HeartbeatTimeout,
		ElectionTimeout:    c.Cluster.ElectionTimeout,
		LeaderLeaseTimeout: c.Cluster.LeaderLeaseTimeout,
		CommitTimeout:      c.Cluster.CommitTimeout,
		MaxAppendEntries:   c.Cluster.MaxAppendEntries,
		SnapshotThreshold:  c.Cluster.SnapshotThreshold,
		SnapshotInterval:   c.Cluster.SnapshotInterval,
		TrailingLogs:       c.Cluster.TrailingLogs,
		MinFreeBytes:       c.Cluster.MinFreeBytes,
		ApplyTimeout:       c.Cluster.ApplyTimeout,
		Logger:             logger,
	}
}

func checkHostPort(field, v string, mayBeZero bool) error {
	if v == "" {
		return fieldErr(field, "", "is required (host:port)")
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fieldErr(field, v, "is not host:port: %v", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fieldErr(field, v, "port %q is not a number from 0 to 65535", port)
	}
	if p == 0 && !mayBeZero {
		return fieldErr(field, v, "needs a port other than 0")
	}
	return nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// LoadConfig returns DefaultConfig overridden by the YAML file at path (none
// when path is empty) and then by VIGIL_ environment variables found with
// lookupEnv (os.LookupEnv in production). Unknown keys in the file are
// errors, so a typo never silently leaves a default in place. It does not
// validate: flags may still override the result.
func LoadConfig(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	c := DefaultConfig()
	if path != "" {
		if err := c.loadFile(path); err != nil {
			return Config{}, err
		}
	}
	if err := c.applyEnv(lookupEnv); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read config file: %w", err)
	}
	decode := func(into *Config) error {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("cannot read config file %s: %w", path, err)
		}
		return nil
	}
	// A first pass into a zero Config tells whether the file chooses the
	// start mode; the second decodes over the layers below, keeping every
	// field the file does not mention.
	var probe Config
	if err := decode(&probe); err != nil {
		return err
	}
	if p := probe.Cluster; p.Bootstrap != nil || p.BootstrapExpect != nil || p.Join != nil {
		c.Cluster.resetMode()
	}
	return decode(c)
}

// modeKeys are the fields that together choose how a new node starts.
var modeKeys = []string{"cluster.bootstrap", "cluster.bootstrap_expect", "cluster.join"}

// resetMode clears the start mode, before a layer sets its own.
func (c *ClusterConfig) resetMode() {
	c.Bootstrap, c.BootstrapExpect, c.Join = nil, nil, nil
}

// ConfigKeys returns the YAML path of every configuration field, such as
// "cluster.bind_addr", in declaration order.
func ConfigKeys() []string {
	var keys []string
	walkFields(reflect.ValueOf(&Config{}).Elem(), "", func(path string, _ reflect.Value) error {
		keys = append(keys, path)
		return nil
	})
	return keys
}

// EnvName returns the environment variable that overrides the field at the
// YAML path key: "cluster.bind_addr" is VIGIL_CLUSTER_BIND_ADDR.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv sets every field whose environment variable is set and not
// empty. Lists are comma-separated; durations are Go durations ("500ms").
func (c *Config) applyEnv(lookupEnv func(string) (string, bool)) error {
	get := func(key string) (string, bool) {
		s, ok := lookupEnv(EnvName(key))
		return s, ok && strings.TrimSpace(s) != ""
	}
	for _, k := range modeKeys {
		if _, ok := get(k); ok {
			c.Cluster.resetMode()
			break
		}
	}
	return walkFields(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) error {
		s, ok := get(path)
		if !ok {
			return nil
		}
		if err := setString(v, s); err != nil {
			return fieldErr(path, s, "from %s: %v", EnvName(path), err)
		}
		return nil
	})
}

// walkFields calls fn with the YAML path and value of every leaf field.
func walkFields(v reflect.Value, prefix string, fn func(path string, v reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "-" || tag == "" {
			continue
		}
		path := prefix + tag
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Duration]() {
			if err := walkFields(f, path+".", fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(path, f); err != nil {
			return err
		}
	}
	return nil
}

// setString parses s into v, by v's type.
func setString(v reflect.Value, s string) error {
	s = strings.TrimSpace(s)
	switch v.Interface().(type) {
	case string:
		v.SetString(s)
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&b))
	case []string:
		v.Set(reflect.ValueOf(splitList(s)))
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetUint(n)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseLevel parses a log level name.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(s) {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return l, errors.New("must be debug, info, warn or error")
	}
	return l, nil
}

// isLoopbackAddr reports whether host:port is on loopback only.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
