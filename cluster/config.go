package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults, tuned for three appliances on one LAN. hashicorp/raft's own
// defaults (1 s heartbeat and election timeouts) give 1.5-3 s elections;
// these aim for a new leader well inside 1.5 s without flapping on a busy
// two-core appliance.
const (
	DefaultHeartbeatTimeout   = 500 * time.Millisecond
	DefaultElectionTimeout    = 500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 250 * time.Millisecond
	// DefaultCommitTimeout is how long an idle leader waits (a random 1 to
	// 2 times it) before it tells the followers what is committed. A
	// device's PUBACK waits for the followers to apply its event
	// (broker.replica_wait) and a write through a follower for that
	// follower, so on a quiet cluster this is most of an alarm's latency:
	// 5 ms made one device's alarm 12 ms from publish to PUBACK where 20 ms
	// made it 37 ms (make bench QUICK=1 ONLY=ingest, 2026-12-06). The cost
	// is the empty appends: three idle nodes used 20% of one CPU between
	// them at 5 ms against 11 to 13% at 20 ms (26% at 2 ms).
	DefaultCommitTimeout     = 5 * time.Millisecond
	DefaultMaxAppendEntries  = 256
	DefaultSnapshotThreshold = 8192
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultTrailingLogs      = 10240
	DefaultSnapshotRetain    = 2
	DefaultApplyTimeout      = 10 * time.Second
	DefaultDialTimeout       = 2 * time.Second
	DefaultStatusInterval    = time.Second
	DefaultGCInterval        = time.Minute

	// DefaultMinFreeBytes is the free space under which a node refuses
	// writes (Config.MinFreeBytes). Half of it is the headroom kept for
	// what Badger may still write once writes are refused: a memtable's
	// write-ahead file is mapped at 16 MiB, and flushes and compactions of
	// both databases write tables of up to a few tens of MiB.
	DefaultMinFreeBytes = 256 << 20
	// DiskCheckInterval is how often a node reads the free space of its
	// data directory, besides before each command and snapshot.
	DiskCheckInterval = time.Second

	// MaxCommandSize is the largest command Apply accepts. Commands are small
	// records; bulk data (audio) is chunked by the caller.
	MaxCommandSize = 256 << 10
)

// Config configures one cluster node.
type Config struct {
	// DataDir holds the node ID, the Raft log (raft/), the state (state/) and
	// snapshots (snapshots/).
	DataDir string
	// NodeID is used only when the data directory has no node ID yet; a new
	// UUID is made when both are empty.
	NodeID string
	// BindAddr is the TCP address the cluster port listens on (Raft and RPC).
	BindAddr string
	// AdvertiseAddr is the address other nodes dial; defaults to the bound
	// address, which must then not be a wildcard.
	AdvertiseAddr string

	// Bootstrap starts a new single-node cluster if this node has no state.
	Bootstrap bool
	// BootstrapExpect lists the cluster addresses of all initial voters,
	// this node's included. Each node waits until it has reached all of them,
	// then all bootstrap the same configuration.
	BootstrapExpect []string
	// Join lists cluster addresses of existing members to join through when
	// this node has no state.
	Join []string

	// ServerTLS, with ClientTLS, turns on mutual TLS on the cluster port:
	// every accepted connection must complete a TLS handshake with this
	// configuration before it may say anything. It must require and verify
	// client certificates (ClientAuth tls.RequireAndVerifyClientCert, and
	// ClientCAs the cluster's own CA). Both nil, the port is plain TCP.
	ServerTLS *tls.Config
	// ClientTLS is what this node dials its peers with, for Raft and the
	// RPC, when ServerTLS is set: its own certificate, and RootCAs to verify
	// theirs (or InsecureSkipVerify with a VerifyConnection that verifies
	// them itself). An empty ServerName is the host of the address dialled.
	ClientTLS *tls.Config
	// VerifyPeer, if set, is called with the state of every TLS connection
	// once its handshake has verified the peer's certificate, accepted and
	// dialled alike; an error refuses the peer and closes the connection.
	// It lets the caller refuse a certificate that is valid but no longer
	// wanted (a removed member's). It is asked again about every open
	// connection each StatusInterval, and a connection it then refuses is
	// closed. It requires ServerTLS and ClientTLS.
	VerifyPeer func(tls.ConnectionState) error

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	// ApplyTimeout bounds Apply when its context has no deadline.
	ApplyTimeout time.Duration
	// StatusInterval is how often each node asks its peers for their status.
	StatusInterval time.Duration
	// GCInterval is how often Badger garbage collection runs.
	GCInterval time.Duration
	// MinFreeBytes is the free space of the data directory's file system
	// under which the node refuses new commands with ErrDiskFull and takes
	// no snapshot; under half of it the Raft log refuses appends too. Zero
	// means DefaultMinFreeBytes; a negative value turns the check off.
	MinFreeBytes int64

	Logger *slog.Logger
}

// withDefaults fills zero fields from the DefaultX constants.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	def(&c.StatusInterval, DefaultStatusInterval)
	def(&c.GCInterval, DefaultGCInterval)
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = DefaultMaxAppendEntries
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first configuration problem, naming the field.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("cluster: data_dir is required")
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("cluster: bind_addr %q: %w", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("cluster: advertise_addr %q: %w", c.AdvertiseAddr, err)
		}
	}
	n := 0
	for _, set := range []bool{c.Bootstrap, len(c.BootstrapExpect) > 0, len(c.Join) > 0} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("cluster: bootstrap, bootstrap_expect and join are exclusive: choose one")
	}
	for _, a := range append(append([]string(nil), c.BootstrapExpect...), c.Join...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("cluster: peer address %q: %w", a, err)
		}
	}
	if c.MaxAppendEntries < 0 || c.MaxAppendEntries > 1024 {
		return fmt.Errorf("cluster: max_append_entries %d is outside 1..1024", c.MaxAppendEntries)
	}
	return c.validateTLS()
}

// validateTLS refuses a TLS configuration that would let a peer in without
// a certificate from the cluster's CA.
func (c Config) validateTLS() error {
	switch {
	case c.ServerTLS == nil && c.ClientTLS == nil:
		if c.VerifyPeer != nil {
			return errors.New("cluster: verify_peer is set but server_tls and client_tls are not: it is called only on TLS connections")
		}
		return nil
	case c.ServerTLS == nil:
		return errors.New("cluster: client_tls is set but server_tls is not: set both or neither")
	case c.ClientTLS == nil:
		return errors.New("cluster: server_tls is set but client_tls is not: set both or neither")
	}
	s, cl := c.ServerTLS, c.ClientTLS
	if s.ClientAuth != tls.RequireAndVerifyClientCert {
		return fmt.Errorf("cluster: server_tls.ClientAuth is %v: it must be RequireAndVerifyClientCert, or a peer without a certificate from the cluster's CA gets in", s.ClientAuth)
	}
	if s.ClientCAs == nil && s.GetConfigForClient == nil {
		return errors.New("cluster: server_tls.ClientCAs is nil: peers' certificates would be verified against the system's roots, not the cluster's CA")
	}
	if len(s.Certificates) == 0 && s.GetCertificate == nil && s.GetConfigForClient == nil {
		return errors.New("cluster: server_tls has no certificate (Certificates or GetCertificate)")
	}
	if len(cl.Certificates) == 0 && cl.GetClientCertificate == nil {
		return errors.New("cluster: client_tls has no certificate (Certificates or GetClientCertificate): peers would refuse this node")
	}
	if cl.InsecureSkipVerify && cl.VerifyConnection == nil && cl.VerifyPeerCertificate == nil {
		return errors.New("cluster: client_tls.InsecureSkipVerify is set without a VerifyConnection or VerifyPeerCertificate: peers would not be verified")
	}
	if !cl.InsecureSkipVerify && cl.RootCAs == nil {
		return errors.New("cluster: client_tls.RootCAs is nil: peers' certificates would be verified against the system's roots, not the cluster's CA")
	}
	return nil
}
