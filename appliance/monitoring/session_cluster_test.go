package monitoring

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

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

// testNodeConfig is a cluster node config for tests: fast timeouts for
// loopback.
func testNodeConfig(dir, addr string) cluster.Config {
	return cluster.Config{
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

// svcNode is one cluster node with the monitoring FSM, Service and
// Scheduler.
type svcNode struct {
	cfg   cluster.Config
	node  *cluster.Node
	fsm   *FSM
	svc   *Service
	sched *Scheduler
}

// start opens the node and, unless noScheduler, its scheduler.
func (n *svcNode) start(t *testing.T, noScheduler bool) {
	t.Helper()
	n.fsm = NewFSM()
	node, err := cluster.New(n.cfg, n.fsm)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	if err := node.Open(context.Background()); err != nil {
		t.Fatalf("open node: %v", err)
	}
	n.node = node
	n.svc = NewService(node, n.fsm, testLogger())
	if !noScheduler {
		n.sched = NewScheduler(n.svc, node.IsLeader, SchedulerConfig{Interval: 50 * time.Millisecond, Logger: testLogger()})
		if err := n.sched.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// stop closes the scheduler and the node.
func (n *svcNode) stop() {
	if n.sched != nil {
		n.sched.Close()
		n.sched = nil
	}
	if n.node != nil {
		n.node.Close()
		n.node = nil
	}
}

// mustServiceCluster starts size nodes (the first bootstraps, the others
// join it) and waits until all are voters and agree on a leader. Nodes are
// closed when the test ends.
func mustServiceCluster(t *testing.T, size int, noScheduler bool) []*svcNode {
	t.Helper()
	dir := t.TempDir()
	var nodes []*svcNode
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	for i := 0; i < size; i++ {
		d, err := os.MkdirTemp(dir, "node")
		if err != nil {
			t.Fatal(err)
		}
		n := &svcNode{cfg: testNodeConfig(d, freeAddr(t))}
		if i == 0 {
			n.cfg.Bootstrap = true
		} else {
			n.cfg.Join = []string{nodes[0].cfg.BindAddr}
		}
		nodes = append(nodes, n)
		n.start(t, noScheduler)
		if i == 0 {
			pollUntil(t, 20*time.Second, "the first node to lead", n.node.IsLeader)
		}
	}
	pollUntil(t, 30*time.Second, "every node to know the same leader with all voters", func() bool {
		lead := ""
		for _, n := range nodes {
			id, _ := n.node.Leader()
			if id == "" || (lead != "" && id != lead) {
				return false
			}
			lead = id
		}
		voters := 0
		for _, m := range nodes[0].node.Status().Members {
			if m.Voter {
				voters++
			}
		}
		return voters == size
	})
	return nodes
}

// leaderOf returns the index of the running node that leads, or -1.
func leaderOf(nodes []*svcNode) int {
	for i, n := range nodes {
		if n.node != nil && n.node.IsLeader() {
			return i
		}
	}
	return -1
}

// countAlarms returns the alarms of type typ for session sessionID in a
// node's state.
func countAlarms(t *testing.T, n *svcNode, typ AlarmType, sessionID string) int {
	t.Helper()
	c := 0
	err := n.node.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, pAlarm, true, func(_, val []byte) (bool, error) {
			a, err := decodeResponse[Alarm](val)
			if err != nil {
				return false, err
			}
			if a.Type == typ && a.SessionID == sessionID {
				c++
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("count alarms: %v", err)
	}
	return c
}

// TestSessionCluster_ExpiresWhileLeaderDies runs three nodes on real TCP,
// each with its FSM, Service and Scheduler. A session of 2 s (grace 1 s)
// is started; just before it runs out, the leader's scheduler and node are
// closed. The survivors elect a leader whose scheduler fires the overdue
// deadline and then the grace deadline: exactly one missed-check-in alarm
// is raised, within failover time plus grace (plus slack for the test).
//
// In one process a node cannot be SIGKILLed, and cluster.Node.Close hands
// leadership over before it stops, which is kinder than a kill. What
// matters here is the same: the node that led when the deadline was set
// is gone when it falls due, and nothing it held in memory survives.
// Crash-stop is covered by the cluster package's Kill helper and by the
// fault-injection tier.
func TestSessionCluster_ExpiresWhileLeaderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test")
	}
	nodes := mustServiceCluster(t, 3, false)
	ctx := context.Background()
	svc := nodes[1].svc // any node: writes are forwarded to the leader
	const (
		duration = 2 * time.Second
		grace    = time.Second
	)
	if _, err := svc.PutOrganisation(ctx, "org", "admin", Organisation{ID: "o1", Name: "Trust", Grace: grace}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w1", "admin", Worker{ID: "w1", Name: "Ann", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "d1", "admin", Device{ID: "d1", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w1"}); err != nil {
		t.Fatal(err)
	}
	s, err := svc.StartSession(ctx, "start", "device:d1", StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: duration})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		pollUntil(t, 5*time.Second, "the session on every node", func() bool {
			_, err := n.svc.Session("s1")
			return err == nil
		})
	}

	lead := leaderOf(nodes)
	if lead < 0 {
		t.Fatal("no leader")
	}
	// Until 800 ms before the timer runs out (the wall clock is the
	// condition: the Service stamps commands with it), so that the node,
	// whose Close hands leadership over first, is gone when it does.
	pollUntil(t, duration+time.Second, "800 ms before the session is due", func() bool {
		return time.Now().After(s.NextDue.Add(-800 * time.Millisecond))
	})
	if s, _ := nodes[lead].svc.Session("s1"); s.Status != SessionActive {
		t.Fatalf("the session was %s before the leader went", s.Status)
	}
	nodes[lead].stop()
	if left := time.Until(s.NextDue); left > 0 {
		t.Logf("closed leader node %d %s before the session was due", lead, left.Round(time.Millisecond))
	} else {
		t.Logf("leader node %d took until %s after the session was due to close", lead, (-left).Round(time.Millisecond))
	}

	var survivors []*svcNode
	for i, n := range nodes {
		if i != lead {
			survivors = append(survivors, n)
		}
	}
	const failover, slack = 2 * time.Second, 3 * time.Second
	limit := time.Until(s.NextDue.Add(grace + failover + slack))
	pollUntil(t, limit, "a missed check-in alarm on every survivor within failover + grace", func() bool {
		for _, n := range survivors {
			if countAlarms(t, n, AlarmMissedCheckIn, "s1") < 1 {
				return false
			}
		}
		return true
	})
	t.Logf("alarm on every survivor %s after the session was due", time.Since(s.NextDue).Round(time.Millisecond))

	for _, n := range survivors {
		if c := countAlarms(t, n, AlarmMissedCheckIn, "s1"); c != 1 {
			t.Fatalf("node %s has %d missed check-in alarms, want exactly 1", n.node.ID(), c)
		}
		got, _ := n.svc.Session("s1")
		if got.Status != SessionAlarm || got.AlarmID != deadlineAlarmID("session/s1/2/grace") {
			t.Fatalf("node %s: session %s, alarm %q", n.node.ID(), got.Status, got.AlarmID)
		}
		// Nothing of the session is left to fire, so no second alarm can
		// follow (the alarm's acknowledgement deadlines may be pending).
		due, err := n.svc.Due(time.Now().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.Kind != DeadlineAckOverdue {
				t.Fatalf("node %s: deadline left %+v", n.node.ID(), d)
			}
		}
	}

	// The old leader comes back, catches up, and agrees: one alarm.
	nodes[lead].start(t, false)
	pollUntil(t, 20*time.Second, "the restarted node to catch up", func() bool {
		s, err := nodes[lead].svc.Session("s1")
		return err == nil && s.Status == SessionAlarm
	})
	if c := countAlarms(t, nodes[lead], AlarmMissedCheckIn, "s1"); c != 1 {
		t.Fatalf("restarted node has %d missed check-in alarms", c)
	}
}
