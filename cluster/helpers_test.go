package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// kvSM is a small real state machine for the cluster tests: "set K V" writes
// kv/K, "refuse R" is refused with reason R.
type kvSM struct {
	applies atomic.Int64 // commands the state machine itself applied
	loads   atomic.Int64
}

func (s *kvSM) Apply(txn *badger.Txn, e Entry) ([]byte, error) {
	f := strings.SplitN(string(e.Data), " ", 3)
	switch {
	case len(f) == 3 && f[0] == "set":
		if err := txn.Set([]byte("kv/"+f[1]), []byte(f[2])); err != nil {
			return nil, err
		}
		s.applies.Add(1)
		return []byte(fmt.Sprintf("ok %d", e.Index)), nil
	case len(f) >= 2 && f[0] == "refuse":
		s.applies.Add(1)
		return nil, errors.New(strings.Join(f[1:], " "))
	}
	panic(fmt.Sprintf("kvSM: bad command %q", e.Data))
}

func (s *kvSM) Loaded(*badger.Txn) error {
	s.loads.Add(1)
	return nil
}

func kvGet(t *testing.T, n *Node, key string) (string, bool) {
	t.Helper()
	var v []byte
	err := n.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("kv/" + key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read %s on %s: %v", key, n.ID(), err)
	}
	return string(v), true
}

func kvCount(t *testing.T, n *Node) int {
	t.Helper()
	c := 0
	err := n.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("kv/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("count on %s: %v", n.ID(), err)
	}
	return c
}

// pollUntil calls cond until it is true, failing the test after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a node config for tests: fast timeouts for loopback.
func testConfig(t *testing.T, dir, addr string) Config {
	t.Helper()
	return Config{
		DataDir:            dir,
		BindAddr:           addr,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		StatusInterval:     100 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		Logger:             testLogger(),
	}
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testNode struct {
	cfg  Config
	sm   *kvSM
	node *Node // nil while killed
}

// testCluster is N real nodes in this process on real TCP.
type testCluster struct {
	t     *testing.T
	dir   string // holds every node's data directory
	nodes []*testNode
}

// newTestCluster returns an empty cluster whose nodes are all killed when
// the test ends. Data directories come from newDir: cleanups run last
// registered first, so a t.TempDir made after this cleanup would be removed
// under running nodes.
func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.closeAll)
	return c
}

// newDir returns a new data directory for a node of c.
func (c *testCluster) newDir() string {
	c.t.Helper()
	d, err := os.MkdirTemp(c.dir, "node")
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// mustCluster starts n nodes: the first bootstraps, the others join it.
func mustCluster(t *testing.T, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := newTestCluster(t)
	for i := 0; i < n; i++ {
		cfg := testConfig(t, c.newDir(), freeAddr(t))
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{c.nodes[0].cfg.BindAddr}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.nodes = append(c.nodes, &testNode{cfg: cfg})
		c.Restart(i)
		if i == 0 {
			c.WaitForLeader()
		}
	}
	c.waitMembers(n)
	return c
}

func (c *testCluster) waitMembers(n int) {
	c.t.Helper()
	pollUntil(c.t, 20*time.Second, fmt.Sprintf("%d voters", n), func() bool {
		l := c.leaderOrNil()
		return l != nil && l.node.voters() == n
	})
}

// Restart starts node i (again) on its data directory and address.
func (c *testCluster) Restart(i int) *Node {
	c.t.Helper()
	tn := c.nodes[i]
	if tn.node != nil {
		c.t.Fatalf("node %d is running", i)
	}
	tn.sm = &kvSM{}
	n, err := New(tn.cfg, tn.sm)
	if err != nil {
		c.t.Fatalf("new node %d: %v", i, err)
	}
	if err := n.Open(context.Background()); err != nil {
		c.t.Fatalf("open node %d: %v", i, err)
	}
	tn.node = n
	return n
}

// Kill stops node i abruptly: no leadership transfer.
func (c *testCluster) Kill(i int) {
	c.t.Helper()
	tn := c.nodes[i]
	if tn.node == nil {
		return
	}
	tn.node.closeOnce.Do(func() { tn.node.closeErr = tn.node.closeResources() })
	tn.node = nil
}

// Stop closes node i gracefully.
func (c *testCluster) Stop(i int) {
	c.t.Helper()
	tn := c.nodes[i]
	if err := tn.node.Close(); err != nil {
		c.t.Errorf("close node %d: %v", i, err)
	}
	tn.node = nil
}

func (c *testCluster) closeAll() {
	for i := range c.nodes {
		if c.nodes[i].node != nil {
			c.Kill(i)
		}
	}
}

func (c *testCluster) leaderOrNil() *testNode {
	for _, tn := range c.nodes {
		if tn.node != nil && tn.node.IsLeader() {
			return tn
		}
	}
	return nil
}

// WaitForLeader waits until one running node leads and all running nodes
// agree on it; it returns the leader's index.
func (c *testCluster) WaitForLeader() int {
	c.t.Helper()
	idx := -1
	pollUntil(c.t, 20*time.Second, "a leader all running nodes agree on", func() bool {
		idx = -1
		for i, tn := range c.nodes {
			if tn.node != nil && tn.node.IsLeader() {
				idx = i
			}
		}
		if idx < 0 {
			return false
		}
		for _, tn := range c.nodes {
			if tn.node == nil {
				continue
			}
			if id, _ := tn.node.Leader(); id != c.nodes[idx].node.ID() {
				return false
			}
		}
		return true
	})
	return idx
}

// Leader returns the leader's node.
func (c *testCluster) Leader() *Node { return c.nodes[c.WaitForLeader()].node }

// Followers returns the indexes of running nodes that do not lead.
func (c *testCluster) Followers() []int {
	l := c.WaitForLeader()
	var out []int
	for i, tn := range c.nodes {
		if i != l && tn.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// mustApply applies a set command through node n.
func mustApply(t *testing.T, n *Node, id, key, val string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, id, []byte("set "+key+" "+val))
	if err != nil {
		t.Fatalf("apply %s on %s: %v", key, n.ID(), err)
	}
	return res
}

// waitConverged waits until every running node has applied the leader's
// last index.
func (c *testCluster) waitConverged() {
	c.t.Helper()
	l := c.Leader()
	target := l.AppliedIndex()
	pollUntil(c.t, 20*time.Second, fmt.Sprintf("all nodes applied %d", target), func() bool {
		for _, tn := range c.nodes {
			if tn.node != nil && tn.node.AppliedIndex() < target {
				return false
			}
		}
		return true
	})
}
