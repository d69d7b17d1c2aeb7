// Package appliancetest opens whole Vigil appliances inside a test: the
// configuration, the cluster member, the broker and the HTTP surface,
// wired by appliance.Node exactly as `vigil serve` wires them, on loopback
// ports and a data directory under t.TempDir(). It is for the tests of
// what drives a whole appliance from outside (the simulator, its command,
// the bench); the tests of the parts use cluster/clustertest,
// appliance/monitoring/monitoringtest and ui/uitest instead.
package appliancetest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// LeaderTimeout bounds the wait for a new single-node cluster to elect
// itself.
const LeaderTimeout = 20 * time.Second

// CloseTimeout bounds a test appliance's close when the test ends: a close
// that hangs fails the test with where it waits (clustertest.CloseWithin).
const CloseTimeout = 2 * time.Minute

// Config returns an appliance configuration for a test: loopback ports
// chosen by the system, the MQTT listener on TCP only, the data under
// t.TempDir(), and silent logs unless VIGIL_TEST_LOG is set.
func Config(t testing.TB) appliance.Config {
	cfg := appliance.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.BindAddr = "127.0.0.1:0"
	cfg.Broker.TCPAddr, cfg.Broker.WSAddr = "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// UnlimitedDevices raises c's per-device rate limits to their bounds, for
// a test whose devices publish back to back to load the node, far faster
// than any device may.
func UnlimitedDevices(c *appliance.Config) {
	c.Broker.MessagesPerMinute, c.Broker.MessageBurst = broker.MaxMessagesPerMinute, broker.MaxBurst
	c.Broker.AlarmsPerMinute, c.Broker.AlarmBurst = broker.MaxMessagesPerMinute, broker.MaxBurst
}

// MustNode opens a single-node appliance on cfg (Config(t) when nil) and
// returns once it leads its cluster. It is closed when the test ends.
func MustNode(t testing.TB, cfg *appliance.Config) *appliance.Node {
	t.Helper()
	c := Config(t)
	if cfg != nil {
		c = *cfg
	}
	n, err := appliance.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clustertest.CloseWithin(t, "the appliance", CloseTimeout, func() { n.Close() }) })
	ctx, cancel := context.WithTimeout(context.Background(), LeaderTimeout)
	defer cancel()
	if _, err := n.Cluster().WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// LoopbackNames are the names of a test node's certificate: it is reached
// on loopback only.
var LoopbackNames = provisioning.NodeNames{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}

// Provision gives the data directories of a new cluster's appliances
// their trust before they first start, as vigil init and vigil join would:
// a new cluster CA, and in each directory (dirs, by node ID) the CA with
// its key and a certificate for that node ID, made for LoopbackNames. The
// appliances then start with cluster.bootstrap_expect, their node ID
// given or read from the certificate. It returns the CA, which can make
// join tokens (provisioning.NewJoinToken) for more appliances.
func Provision(t testing.TB, dirs map[string]string) *provisioning.CA {
	t.Helper()
	ca, err := provisioning.ProvisionNodes(uuid.NewString(), dirs, LoopbackNames, time.Now())
	if err != nil {
		t.Fatalf("cannot provision the nodes' trust: %v", err)
	}
	return ca
}

// Buffer is a bytes.Buffer that a command's outputs and loggers may write
// to from several goroutines while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
