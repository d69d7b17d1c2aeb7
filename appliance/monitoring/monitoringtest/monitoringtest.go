// Package monitoringtest runs the monitoring Service on real cluster nodes
// inside a test, for the tests of the monitoring package and of what is
// built on the Service (the broker, the console). Each node is a real
// cluster.Node (clustertest: real Raft over real TCP, data under
// t.TempDir()) hosting the monitoring FSM, with the Service over it and, if
// asked, the deadline scheduler: what an appliance wires, without the
// broker, the console and the HTTP API, which a test adds itself.
//
// MustService gives one node of a single-node cluster; MustCluster gives N
// nodes, with Kill, Stop and Restart of a node. When the test ends, the
// schedulers stop, then the nodes still running are killed.
//
// The monitoring package's own internal tests cannot import this package
// (the import would be a cycle); its tests of the Service on a cluster live
// in package monitoring_test and use it.
package monitoringtest

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// Options say how the nodes are built. The zero value is a Service without
// a scheduler, on clustertest's configuration.
type Options struct {
	// Scheduler, if set, runs a deadline scheduler with this configuration
	// on every node, as the appliance does: only the leader's acts. Its
	// Logger defaults to clustertest.Logger. Without one, no deadline fires
	// unless the test fires it.
	Scheduler *monitoring.SchedulerConfig
	// Setup, if set, is called with each new Service before its scheduler
	// starts and before the test gets it: the place to replace its clock
	// (Now) or its ID source (NewID) without a data race.
	Setup func(*monitoring.Service)
	// Tweak, if set, changes each node's cluster configuration
	// (clustertest.NodeConfig) before its first start.
	Tweak func(*cluster.Config)
	// DataDirs, if set, is the directory that holds the nodes' data
	// directories (node0, node1, ...), such as a small file system
	// (clustertest.MustTmpfs): for the tests of the HTTP surface, which
	// do not name the cluster's configuration.
	DataDirs string
	// MinFreeBytes, if set, is each node's free-space floor
	// (cluster.Config.MinFreeBytes).
	MinFreeBytes int64
}

// tweak is Tweak with DataDirs and MinFreeBytes applied first.
func (o Options) tweak() func(*cluster.Config) {
	if o.DataDirs == "" && o.MinFreeBytes == 0 {
		return o.Tweak
	}
	i := 0
	return func(c *cluster.Config) {
		if o.DataDirs != "" {
			c.DataDir = filepath.Join(o.DataDirs, "node"+strconv.Itoa(i))
			i++
		}
		if o.MinFreeBytes != 0 {
			c.MinFreeBytes = o.MinFreeBytes
		}
		if o.Tweak != nil {
			o.Tweak(c)
		}
	}
}

// Node is one start of a node: the cluster member, the state machine it
// hosts, the Service over them and the scheduler if any. A restart makes a
// new Node for the same index.
type Node struct {
	// Cluster is the cluster member: Raft, the state, forwarding to the
	// leader, the cluster's status.
	Cluster *cluster.Node
	// FSM is the state machine the member hosts.
	FSM *monitoring.FSM
	// Service is the monitoring Service over Cluster and FSM.
	Service *monitoring.Service
	// Scheduler is the deadline scheduler, nil unless Options.Scheduler
	// is set.
	Scheduler *monitoring.Scheduler
}

// ID returns the node's cluster ID.
func (n *Node) ID() string { return n.Cluster.ID() }

// WaitApplied waits until the node has applied everything the cluster had
// committed when it was called (broker.Config.WaitApplied).
func (n *Node) WaitApplied(ctx context.Context) error { return n.Cluster.WaitApplied(ctx) }

// WaitReplicas waits, within ctx, until every voter that answers has
// applied what this node has, and says how many voters have it
// (broker.Config.WaitReplicas).
func (n *Node) WaitReplicas(ctx context.Context) (confirmed, voters int) {
	return n.Cluster.WaitReplicas(ctx)
}

// close stops the scheduler, before its node goes.
func (n *Node) close() {
	if n.Scheduler != nil {
		n.Scheduler.Close()
	}
}

// Cluster is N nodes, each a Node. Methods fail the test on error; call
// them from the test's goroutine.
type Cluster struct {
	t     testing.TB
	opts  Options
	c     *clustertest.Cluster[*monitoring.FSM]
	nodes []*Node // nil while down
}

// MustService starts a single-node cluster and returns its node, leading.
func MustService(t testing.TB, opts Options) *Node {
	t.Helper()
	return MustCluster(t, 1, opts).Node(0)
}

// MustCluster starts n nodes (clustertest.MustCluster: the first
// bootstraps, the others join it) and returns once all are voters and
// agree on a leader.
func MustCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, c: clustertest.MustCluster(t, n, monitoring.NewFSM, opts.tweak())}
	// Registered after the cluster's own cleanup, so it runs first: the
	// schedulers stop before their nodes.
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				n.close()
			}
		}
	})
	c.nodes = make([]*Node, n)
	for i := range n {
		c.serve(i)
	}
	return c
}

// Restart starts node i (again) on its data directory, with a new FSM,
// Service and scheduler, and returns it. It does not wait for a leader.
func (c *Cluster) Restart(i int) *Node {
	c.t.Helper()
	c.c.Restart(i)
	return c.serve(i)
}

// serve makes the Service, and the scheduler if asked, of running node i.
func (c *Cluster) serve(i int) *Node {
	c.t.Helper()
	cn, fsm := c.c.Node(i), c.c.StateMachine(i)
	n := &Node{Cluster: cn, FSM: fsm, Service: monitoring.NewService(cn, fsm, clustertest.Logger())}
	if c.opts.Setup != nil {
		c.opts.Setup(n.Service)
	}
	if sc := c.opts.Scheduler; sc != nil {
		cfg := *sc
		if cfg.Logger == nil {
			cfg.Logger = clustertest.Logger()
		}
		n.Scheduler = monitoring.NewScheduler(n.Service, cn.IsLeader, cfg)
		if err := n.Scheduler.Open(context.Background()); err != nil {
			c.t.Fatalf("open the scheduler of node %d: %v", i, err)
		}
	}
	c.nodes[i] = n
	return n
}

// Kill stops node i's scheduler, then the node abruptly
// (clustertest.Cluster.Kill): no leadership transfer. A node that is down
// is left alone.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if n := c.nodes[i]; n != nil {
		n.close()
		c.c.Kill(i)
		c.nodes[i] = nil
	}
}

// Stop stops node i's scheduler, then closes the node gracefully
// (clustertest.Cluster.Stop): a leader hands over leadership first. A node
// that is down is left alone.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if n := c.nodes[i]; n != nil {
		n.close()
		c.c.Stop(i)
		c.nodes[i] = nil
	}
}

// Len returns the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i, nil while it is down.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Nodes returns every node by index, nil for those down. A restart makes
// a new Node: take Nodes again after one.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// DataDir returns node i's data directory.
func (c *Cluster) DataDir(i int) string { return c.c.Config(i).DataDir }

// WaitForLeader waits until one running node leads and every running node
// agrees on it, and returns the leader's index.
func (c *Cluster) WaitForLeader() int {
	c.t.Helper()
	return c.c.WaitForLeader()
}

// Leader waits for a leader and returns it.
func (c *Cluster) Leader() *Node {
	c.t.Helper()
	return c.nodes[c.c.WaitForLeader()]
}

// Followers waits for a leader and returns the indexes of the running nodes
// that do not lead.
func (c *Cluster) Followers() []int {
	c.t.Helper()
	return c.c.Followers()
}

// WaitConverged waits until every running node has applied the leader's
// last applied index.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	c.c.WaitConverged()
}
