// Package clustertest runs real Vigil cluster nodes inside a test: real Raft
// over real TCP on 127.0.0.1, each node on its own data directory under
// t.TempDir(), hosting a state machine the test supplies. It is the second
// testing tier of ARCHITECTURE.md ("three real nodes in one process"), shared
// by every package whose tests need a cluster, so that none keeps its own
// copy of the set-up (after rqlite's cluster/servicetest).
//
// MustCluster starts N nodes, the first bootstrapping and the others joining
// it; a Cluster then finds the leader and the followers, kills, stops and
// restarts nodes, and kills whatever still runs when the test ends. PollUntil
// is how a test waits: never with a bare sleep.
//
// The cluster package's own internal tests cannot import this package (the
// import would be a cycle); its tests of the exported API live in package
// cluster_test and use it.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster"
)

// Timeouts of the waits a Cluster does for the test: generous, for a loaded
// two-core machine running the race detector.
const (
	// LeaderTimeout bounds WaitForLeader and WaitForVoters.
	LeaderTimeout = 20 * time.Second
	// ConvergeTimeout bounds WaitConverged.
	ConvergeTimeout = 20 * time.Second
	// pollInterval is how often PollUntil checks its condition.
	pollInterval = 10 * time.Millisecond
)

// PollUntil calls cond until it returns true, and fails the test, naming
// what it waited for, if timeout passes first.
func PollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free just now,
// for a listener whose address must be known before it opens (a peer list).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Logger returns a logger for the nodes and for what the test builds on
// them: silent, unless the environment variable VIGIL_TEST_LOG is set, when
// it writes everything from debug level up to standard error.
func Logger() *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// NodeConfig returns a node configuration on dir and addr with timeouts
// fast enough for loopback: elections within a second.
func NodeConfig(dir, addr string) cluster.Config {
	return cluster.Config{
		DataDir:            dir,
		BindAddr:           addr,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		StatusInterval:     100 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		Logger:             Logger(),
	}
}

// member is one node of a Cluster: its configuration, and while it runs,
// the node and its state machine.
type member[S cluster.StateMachine] struct {
	cfg  cluster.Config
	sm   S             // the state machine of the latest start
	node *cluster.Node // nil while down
}

// Cluster is N real nodes in this process, node i hosting a state machine of
// type S. Methods fail the test on error; call them from the test's
// goroutine. Indexes are the order nodes were added in, from 0.
type Cluster[S cluster.StateMachine] struct {
	t     testing.TB
	dir   string // holds every node's data directory
	newSM func() S
	nodes []*member[S]
}

// NewCluster returns a cluster without nodes: add them with Add and start
// them with Restart or StartAll. newSM makes a node's state machine, anew on
// every start, as a restarted process would. Nodes still running when the
// test ends are killed.
func NewCluster[S cluster.StateMachine](t testing.TB, newSM func() S) *Cluster[S] {
	t.Helper()
	// Data directories are made under this one, not with t.TempDir later:
	// cleanups run last registered first, so a directory made after the
	// cleanup below would be removed under running nodes.
	c := &Cluster[S]{t: t, dir: t.TempDir(), newSM: newSM}
	t.Cleanup(c.killAll)
	return c
}

// MustCluster starts n nodes hosting state machines from newSM: the first
// bootstraps, the others join it. tweak, if set, changes each node's
// configuration (NodeConfig) before its first start. It returns once all n
// are voters and every node knows the same leader.
func MustCluster[S cluster.StateMachine](t testing.TB, n int, newSM func() S, tweak func(*cluster.Config)) *Cluster[S] {
	t.Helper()
	c := NewCluster(t, newSM)
	for i := range n {
		cfg := c.NewConfig()
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{c.nodes[0].cfg.BindAddr}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.Restart(c.Add(cfg))
		if i == 0 {
			c.WaitForLeader()
		}
	}
	c.WaitForVoters(n)
	c.WaitForLeader()
	return c
}

// NewConfig returns the configuration of a new node for c: NodeConfig on a
// new data directory and a free port, neither bootstrapping nor joining.
func (c *Cluster[S]) NewConfig() cluster.Config {
	c.t.Helper()
	d, err := os.MkdirTemp(c.dir, "node")
	if err != nil {
		c.t.Fatal(err)
	}
	return NodeConfig(d, FreeAddr(c.t))
}

// Add adds a node with cfg, not started, and returns its index.
func (c *Cluster[S]) Add(cfg cluster.Config) int {
	c.nodes = append(c.nodes, &member[S]{cfg: cfg})
	return len(c.nodes) - 1
}

// Len returns the number of nodes, running or not.
func (c *Cluster[S]) Len() int { return len(c.nodes) }

// Node returns node i, nil while it is down.
func (c *Cluster[S]) Node(i int) *cluster.Node { return c.nodes[i].node }

// StateMachine returns the state machine node i was last started with.
func (c *Cluster[S]) StateMachine(i int) S { return c.nodes[i].sm }

// Config returns node i's configuration.
func (c *Cluster[S]) Config(i int) cluster.Config { return c.nodes[i].cfg }

// open starts node i and returns the node and its state machine.
func (c *Cluster[S]) open(i int) (*cluster.Node, S, error) {
	sm := c.newSM()
	n, err := cluster.New(c.nodes[i].cfg, sm)
	if err != nil {
		return nil, sm, fmt.Errorf("new node %d: %w", i, err)
	}
	if err := n.Open(context.Background()); err != nil {
		return nil, sm, fmt.Errorf("open node %d: %w", i, err)
	}
	return n, sm, nil
}

// Restart starts node i (again) on its data directory and address, with a
// new state machine, and returns it. It does not wait for a leader.
func (c *Cluster[S]) Restart(i int) *cluster.Node {
	c.t.Helper()
	m := c.nodes[i]
	if m.node != nil {
		c.t.Fatalf("node %d is running", i)
	}
	n, sm, err := c.open(i)
	if err != nil {
		c.t.Fatal(err)
	}
	m.node, m.sm = n, sm
	return n
}

// StartAll starts every node that is down, all at once, as appliances
// powered on together (for nodes configured with BootstrapExpect, which
// wait for one another). It does not wait for a leader.
func (c *Cluster[S]) StartAll() {
	c.t.Helper()
	type started struct {
		node *cluster.Node
		sm   S
		err  error
	}
	out := make([]started, len(c.nodes))
	var wg sync.WaitGroup
	for i, m := range c.nodes {
		if m.node != nil {
			continue
		}
		wg.Go(func() {
			n, sm, err := c.open(i)
			out[i] = started{n, sm, err}
		})
	}
	wg.Wait()
	var failed error
	for i, s := range out {
		if s.node != nil {
			c.nodes[i].node, c.nodes[i].sm = s.node, s.sm
		}
		if s.err != nil && failed == nil {
			failed = s.err
		}
	}
	if failed != nil {
		c.t.Fatal(failed)
	}
}

// Kill stops node i abruptly (cluster.Node.Kill): no leadership transfer.
// A node that is down is left alone.
func (c *Cluster[S]) Kill(i int) {
	c.t.Helper()
	m := c.nodes[i]
	if m.node == nil {
		return
	}
	// A crash reports nothing: whatever closing the stores said is moot.
	_ = m.node.Kill()
	m.node = nil
}

// Stop closes node i gracefully (cluster.Node.Close): a leader hands over
// leadership first. A node that is down is left alone.
func (c *Cluster[S]) Stop(i int) {
	c.t.Helper()
	m := c.nodes[i]
	if m.node == nil {
		return
	}
	if err := m.node.Close(); err != nil {
		c.t.Errorf("close node %d: %v", i, err)
	}
	m.node = nil
}

func (c *Cluster[S]) killAll() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// WaitForLeader waits until one running node leads and every running node
// agrees on it, and returns the leader's index.
func (c *Cluster[S]) WaitForLeader() int {
	c.t.Helper()
	idx := -1
	PollUntil(c.t, LeaderTimeout, "a leader all running nodes agree on", func() bool {
		idx = -1
		for i, m := range c.nodes {
			if m.node != nil && m.node.IsLeader() {
				idx = i
			}
		}
		if idx < 0 {
			return false
		}
		for _, m := range c.nodes {
			if m.node == nil {
				continue
			}
			if id, _ := m.node.Leader(); id != c.nodes[idx].node.ID() {
				return false
			}
		}
		return true
	})
	return idx
}

// Leader waits for a leader (WaitForLeader) and returns it.
func (c *Cluster[S]) Leader() *cluster.Node {
	c.t.Helper()
	return c.nodes[c.WaitForLeader()].node
}

// Followers waits for a leader and returns the indexes of the running nodes
// that do not lead.
func (c *Cluster[S]) Followers() []int {
	c.t.Helper()
	l := c.WaitForLeader()
	var out []int
	for i, m := range c.nodes {
		if i != l && m.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitForVoters waits until the leader's configuration has n voters.
func (c *Cluster[S]) WaitForVoters(n int) {
	c.t.Helper()
	PollUntil(c.t, LeaderTimeout, fmt.Sprintf("%d voters", n), func() bool {
		for _, m := range c.nodes {
			if m.node == nil || !m.node.IsLeader() {
				continue
			}
			voters := 0
			for _, mb := range m.node.Status().Members {
				if mb.Voter {
					voters++
				}
			}
			return voters == n
		}
		return false
	})
}

// WaitConverged waits until every running node has applied the leader's
// last applied index.
func (c *Cluster[S]) WaitConverged() {
	c.t.Helper()
	target := c.Leader().AppliedIndex()
	PollUntil(c.t, ConvergeTimeout, fmt.Sprintf("all nodes applied %d", target), func() bool {
		for _, m := range c.nodes {
			if m.node != nil && m.node.AppliedIndex() < target {
				return false
			}
		}
		return true
	})
}

// MustTmpfs mounts a tmpfs of size bytes on a new directory, a small file
// system for the tests of a full disk, and unmounts it when the test ends,
// after the nodes on it are stopped (cleanups run last registered first:
// call it before starting them). It skips the test where mounting is not
// allowed (not root, or in a container without the right).
func MustTmpfs(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs for a small file system: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Still busy: lazily, so the temporary directory can go.
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// CloseWithin runs stop, and fails the test if it has not returned
// within d, printing where this process's goroutines wait: a close that
// hangs would otherwise hold the test binary until its timeout, and the
// whole dump printed then is too long to read in a CI log. The dump keeps
// the goroutines in Vigil's code and its servers' (mochi, raft, badger,
// net/http), each cut to its first frames.
func CloseWithin(t testing.TB, what string, d time.Duration, stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); stop() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Errorf("%s did not close within %s; its goroutines:\n%s", what, d, Goroutines(8))
	}
}

// Goroutines returns the stacks of this process's goroutines that pass
// through Vigil's code, mochi, raft or badger, each cut to its first
// frames (function and file:line), without arguments.
func Goroutines(frames int) string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "vigilarc/vigil") && !strings.Contains(g, "mochi-mqtt") &&
			!strings.Contains(g, "hashicorp/raft") && !strings.Contains(g, "dgraph-io/badger") {
			continue
		}
		if strings.Contains(g, "clustertest.Goroutines") {
			continue
		}
		lines := strings.Split(g, "\n")
		out.WriteString(lines[0] + "\n")
		kept := 0
		for i := 1; i+1 < len(lines) && kept < frames; i += 2 {
			fn := lines[i]
			if p := strings.LastIndex(fn, "("); p > 0 {
				fn = fn[:p]
			}
			loc := strings.TrimSpace(lines[i+1])
			if p := strings.LastIndex(loc, " +0x"); p > 0 {
				loc = loc[:p]
			}
			if p := strings.LastIndex(loc, "/"); p > 0 {
				loc = loc[p+1:]
			}
			fmt.Fprintf(&out, "\t%s %s\n", fn, loc)
			kept++
		}
	}
	return out.String()
}

// MustFill fills the file system of dir with a file until only free bytes
// are left, and returns a function that removes the file again (it is also
// removed when the test ends).
func MustFill(t testing.TB, dir string, free uint64) (release func()) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := st.Bavail * uint64(st.Bsize)
	if avail <= free {
		t.Fatalf("%s has %d bytes free, not more than %d", dir, avail, free)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, avail-free), 0o600); err != nil {
		t.Fatal(err)
	}
	release = func() {
		if err := os.Remove(filler); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Error(err)
		}
	}
	t.Cleanup(release)
	return release
}
