package main

// The loopback cluster: three vigil serve processes, started, killed,
// restarted and stopped by the bench.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
)

const (
	clusterSize = 3
	// stopTimeout is how long a node may take to stop after SIGTERM before
	// it is killed.
	stopTimeout = 15 * time.Second
	// pollInterval is how often the bench asks the nodes for their status
	// while it waits for something.
	pollInterval = 5 * time.Millisecond
)

// node is one vigil serve process; its proc's name is also its node ID.
type node struct {
	proc
	dataDir     string
	clusterAddr string
	httpAddr    string
	mqttAddr    string // the broker's TCP listener, for the gateway section
	mqttTLSAddr string // its MQTT over TLS listener, with the node's certificate
	pprofAddr   string // Go's profiles, served when the cluster's pprof is set
}

// localCluster is three nodes on 127.0.0.1 with data under one directory.
type localCluster struct {
	vigil  string
	nodes  []*node
	peers  string // --bootstrap-expect
	status *http.Client
	// gctrace makes the nodes log each garbage collection (GODEBUG),
	// from which the gateway section reads their live heap.
	gctrace bool
	// pprof makes the nodes serve Go's profiles on pprofAddr.
	pprof bool
	// env is added to the nodes' environment: settings such as
	// VIGIL_BROKER_REPLICA_WAIT (the bench drops the caller's VIGIL_
	// variables).
	env []string
	// apiToken is sent on the bench's API requests to the nodes, from
	// obtainAPIToken once the cluster has first started (api.go).
	apiToken string
}

// newLocalCluster chooses ports and data directories under root and gives
// the directories their trust (a new cluster CA and each node's
// certificate, as vigil init and vigil join would); it starts nothing.
func newLocalCluster(vigil, root string) (*localCluster, error) {
	const perNode = 5
	ports, err := freePorts(perNode * clusterSize)
	if err != nil {
		return nil, err
	}
	c := &localCluster{vigil: vigil, status: &http.Client{Timeout: 2 * time.Second}}
	var peers []string
	for i := range clusterSize {
		n := &node{
			proc:        proc{name: fmt.Sprintf("node%d", i+1)},
			clusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[perNode*i]),
			httpAddr:    fmt.Sprintf("127.0.0.1:%d", ports[perNode*i+1]),
			mqttAddr:    fmt.Sprintf("127.0.0.1:%d", ports[perNode*i+2]),
			pprofAddr:   fmt.Sprintf("127.0.0.1:%d", ports[perNode*i+3]),
			mqttTLSAddr: fmt.Sprintf("127.0.0.1:%d", ports[perNode*i+4]),
		}
		n.dataDir = filepath.Join(root, n.name)
		n.logPath = filepath.Join(root, n.name+".log")
		c.nodes = append(c.nodes, n)
		peers = append(peers, n.clusterAddr)
	}
	c.peers = strings.Join(peers, ",")
	dirs := map[string]string{}
	for _, n := range c.nodes {
		dirs[n.name] = n.dataDir
	}
	names := provisioning.NodeNames{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, err := provisioning.ProvisionNodes("bench", dirs, names, time.Now()); err != nil {
		return nil, fmt.Errorf("cannot give the nodes their trust: %w", err)
	}
	return c, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		defer ln.Close() // held until all are chosen, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start starts n's process, with its existing data directory if any.
func (c *localCluster) start(n *node) error {
	cmd := exec.Command(c.vigil, "serve",
		"--data-dir", n.dataDir,
		"--node-id", n.name,
		"--cluster-addr", n.clusterAddr,
		"--http-addr", n.httpAddr,
		"--mqtt-addr", n.mqttAddr,
		"--mqtt-tls-addr", n.mqttTLSAddr,
		"--mqtt-ws-addr", "",
		"--bootstrap-expect", c.peers,
		"--log-level", "warn",
	)
	cmd.Env = withoutVigilEnv(os.Environ())
	if c.gctrace {
		cmd.Env = withGCTrace(cmd.Env)
	}
	if c.pprof {
		cmd.Env = append(cmd.Env, appliance.EnvName("debug.pprof_addr")+"="+n.pprofAddr)
	}
	cmd.Env = append(cmd.Env, unlimitedDevices()...)
	cmd.Env = append(cmd.Env, c.env...)
	return n.launch(cmd)
}

// unlimitedDevices returns the settings that raise the per-device rate
// limits to their bounds: each bench device publishes its next alarm as
// soon as the last is PUBACKed, far faster than any device may, to measure
// the cluster, not the limits.
func unlimitedDevices() []string {
	return []string{
		appliance.EnvName("broker.messages_per_minute") + "=" + strconv.Itoa(broker.MaxMessagesPerMinute),
		appliance.EnvName("broker.message_burst") + "=" + strconv.Itoa(broker.MaxBurst),
		appliance.EnvName("broker.alarms_per_minute") + "=" + strconv.Itoa(broker.MaxMessagesPerMinute),
		appliance.EnvName("broker.alarm_burst") + "=" + strconv.Itoa(broker.MaxBurst),
	}
}

// withoutVigilEnv drops VIGIL_ variables, which would override the flags.
func withoutVigilEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, appliance.EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// withGCTrace adds gctrace=1 to GODEBUG in env.
func withGCTrace(env []string) []string {
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			env[i] = "GODEBUG=" + strings.TrimPrefix(v+",gctrace=1", ",")
			return env
		}
	}
	return append(env, "GODEBUG=gctrace=1")
}

// stop sends SIGTERM to every running node, one after another so that each
// can hand leadership on, and kills any that has not stopped after
// stopTimeout. It is safe to call twice.
func (c *localCluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// pids returns the process IDs of the running nodes.
func (c *localCluster) pids() []int {
	var out []int
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n.pid())
		}
	}
	return out
}

// exited reports a node that exited although the bench did not stop it.
func (c *localCluster) exited() error {
	for _, n := range c.nodes {
		if err := n.exited(); err != nil {
			return err
		}
	}
	return nil
}

// logTail returns the last lines of the log at path, or, if the process
// panicked, the panic's message and the first lines of its stack.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return strings.Join(lines[i:min(len(lines), i+12)], "\n")
		}
	}
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// nodeStatus asks n for its view of the cluster.
func (c *localCluster) nodeStatus(ctx context.Context, n *node) (cluster.Status, error) {
	var st cluster.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/api/v1/cluster/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := vigilHTTP{client: c.status, apiToken: c.apiToken}.do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status of %s: HTTP %d", n.name, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// byName returns the node with the given node ID, or nil.
func (c *localCluster) byName(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// others returns every node but n.
func (c *localCluster) others(n *node) []*node {
	var out []*node
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// waitLeader waits until a node reports itself leader and every running
// node agrees, and returns the leader.
func (c *localCluster) waitLeader(ctx context.Context, timeout time.Duration) (*node, error) {
	var leader *node
	err := pollUntil(ctx, timeout, func() bool {
		leader = nil
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			st, err := c.nodeStatus(ctx, n)
			if err != nil || st.LeaderID == "" || (leader != nil && leader.name != st.LeaderID) {
				return false
			}
			if leader = c.byName(st.LeaderID); leader == nil || !leader.running() {
				return false
			}
		}
		return leader != nil
	})
	if err != nil {
		return nil, fmt.Errorf("no leader that all running nodes agree on: %w", err)
	}
	return leader, nil
}

// errExited says that a node's process exited while the bench waited on it.
var errExited = errors.New("the process exited")

// waitCaughtUp waits until n has applied everything the leader had
// committed when n first answered. It returns errExited if n dies.
func (c *localCluster) waitCaughtUp(ctx context.Context, n *node, timeout time.Duration) error {
	var target uint64
	exited := false
	err := pollUntil(ctx, timeout, func() bool {
		if !n.running() {
			exited = true
			return true
		}
		st, err := c.nodeStatus(ctx, n)
		if err != nil {
			return false // still starting
		}
		if target == 0 {
			leader := c.byName(st.LeaderID)
			if leader == nil {
				return false
			}
			lst, err := c.nodeStatus(ctx, leader)
			if err != nil || lst.State != "Leader" {
				return false
			}
			target = lst.CommitIndex
		}
		return st.AppliedIndex >= target
	})
	if exited {
		return fmt.Errorf("%s: %w (%v)", n.name, errExited, n.cmd.ProcessState)
	}
	return err
}

var errTimeout = errors.New("timed out")

// pollUntil calls cond every pollInterval until it returns true, ctx ends
// or timeout passes.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", errTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	return nil
}
