package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

func TestCluster_ElectsOneLeader(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.WaitForLeader()
	st := c.Node(l).Status()
	if st.State != "Leader" || len(st.Members) != 3 {
		t.Fatalf("leader status: state %s, %d members", st.State, len(st.Members))
	}
	leaders := 0
	for i := range c.Len() {
		if c.Node(i).IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders, want 1", leaders)
	}
	// Every node comes to hear from every peer over the cluster RPC.
	clustertest.PollUntil(t, 10*time.Second, "peers' last contact on every node", func() bool {
		for i := range c.Len() {
			for _, m := range c.Node(i).Status().Members {
				if !m.Reachable || m.LastContactMS < 0 {
					return false
				}
			}
		}
		return true
	})
}

func TestCluster_ApplyForwardedFromFollower(t *testing.T) {
	c := mustCluster(t, 3, nil)
	f := c.Node(c.Followers()[0])
	res := mustApply(t, f, "cmd-1", "alarm-1", "raised")
	if res.Index == 0 || string(res.Response) != fmt.Sprintf("ok %d", res.Index) {
		t.Fatalf("result from follower: %+v (%q)", res, res.Response)
	}
	// A linearizable read on the follower sees its own write at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitApplied(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := kvGet(t, f, "alarm-1"); !ok || v != "raised" {
		t.Fatalf("follower read after WaitApplied: %q %v", v, ok)
	}
	c.WaitConverged()
	for i := range c.Len() {
		if v, ok := kvGet(t, c.Node(i), "alarm-1"); !ok || v != "raised" {
			t.Fatalf("node %d: %q %v", i, v, ok)
		}
	}
}

func TestCluster_CommandIDMakesApplyIdempotent(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.Leader()
	f := c.Node(c.Followers()[0])
	first := mustApply(t, f, "evt-42", "k", "v1")
	tests := []struct {
		name string
		via  *cluster.Node
	}{{"replay on follower", f}, {"replay on leader", l}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again := mustApply(t, tt.via, "evt-42", "k", "v2")
			if !again.Duplicate || again.Index != first.Index || string(again.Response) != string(first.Response) {
				t.Fatalf("replay = %+v, want duplicate of %+v", again, first)
			}
		})
	}
	c.WaitConverged()
	for i := range c.Len() {
		if v, _ := kvGet(t, c.Node(i), "k"); v != "v1" {
			t.Fatalf("node %d: k=%q, the replay was applied", i, v)
		}
		if n := c.StateMachine(i).applies.Load(); n != 1 {
			t.Fatalf("node %d: state machine applied %d commands, want 1", i, n)
		}
	}
}

func TestCluster_RefusalIsReturnedAndRemembered(t *testing.T) {
	c := mustCluster(t, 3, nil)
	for _, via := range []*cluster.Node{c.Leader(), c.Node(c.Followers()[0])} {
		for attempt := 0; attempt < 2; attempt++ {
			_, err := via.Apply(context.Background(), "refuse-1", []byte("refuse alarm already closed"))
			var refused *cluster.RefusedError
			if !errors.As(err, &refused) || refused.Reason != "alarm already closed" {
				t.Fatalf("attempt %d via %s: err = %v, want refusal", attempt, via.ID(), err)
			}
		}
	}
	c.WaitConverged()
	for i := range c.Len() {
		if n := c.StateMachine(i).applies.Load(); n != 1 {
			t.Fatalf("node %d applied the refused command %d times, want 1", i, n)
		}
	}
}

func TestCluster_CommandTooLarge(t *testing.T) {
	c := mustCluster(t, 1, nil)
	_, err := c.Leader().Apply(context.Background(), "big", make([]byte, cluster.MaxCommandSize+1))
	if !errors.Is(err, cluster.ErrCommandTooLarge) {
		t.Fatalf("err = %v, want ErrCommandTooLarge", err)
	}
}

func TestCluster_LeaderKilledLosesNothing(t *testing.T) {
	c := mustCluster(t, 3, nil)
	old := c.WaitForLeader()
	var acked []string
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("before-%d", i)
		mustApply(t, c.Node(i%3), id, id, "x")
		acked = append(acked, id)
	}
	c.Kill(old)
	killed := time.Now()
	newLeader := c.WaitForLeader()
	if newLeader == old {
		t.Fatal("the killed node is still leader")
	}
	t.Logf("new leader elected %s after the kill", time.Since(killed))
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("after-%d", i)
		mustApply(t, c.Node(c.Followers()[0]), id, id, "y")
		acked = append(acked, id)
	}
	c.Restart(old)
	c.WaitConverged()
	for i := range c.Len() {
		for _, k := range acked {
			if _, ok := kvGet(t, c.Node(i), k); !ok {
				t.Fatalf("node %d lost acknowledged %s", i, k)
			}
		}
		if n := kvCount(t, c.Node(i)); n != len(acked) {
			t.Fatalf("node %d has %d keys, want %d", i, n, len(acked))
		}
	}
}

func TestCluster_ApplyWaitsThroughLostQuorum(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.WaitForLeader()
	fs := c.Followers()
	c.Kill(fs[0])
	c.Kill(fs[1])
	// With no quorum, a short deadline ends without success and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err := c.Node(l).Apply(ctx, "q-1", []byte("set q 1"))
	cancel()
	if !errors.Is(err, cluster.ErrNoLeader) && !errors.Is(err, cluster.ErrUnknownOutcome) {
		t.Fatalf("apply without quorum: %v, want ErrNoLeader or ErrUnknownOutcome", err)
	}
	// A call with a longer deadline waits, and succeeds once a quorum is back.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.Node(l).Apply(ctx, "q-2", []byte("set q 2"))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the call start waiting
	c.Restart(fs[0])
	if err := <-done; err != nil {
		t.Fatalf("apply across the outage: %v", err)
	}
	c.Restart(fs[1])
	c.WaitConverged()
	for i := range c.Len() {
		if v, _ := kvGet(t, c.Node(i), "q"); v != "2" && v != "1" {
			t.Fatalf("node %d: q=%q", i, v)
		}
	}
}

func TestCluster_SnapshotTruncatesLogAndLateNodeCatchesUp(t *testing.T) {
	c := mustCluster(t, 3, func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 1 << 30 // snapshots only when asked
		cfg.SnapshotInterval = time.Hour
		cfg.TrailingLogs = 50
	})
	l := c.Leader()
	for i := 0; i < 500; i++ {
		mustApply(t, l, fmt.Sprintf("s-%d", i), fmt.Sprintf("k%03d", i), "v")
	}
	c.WaitConverged()
	for i := range c.Len() {
		if err := c.Node(i).Snapshot(); err != nil {
			t.Fatalf("snapshot on node %d: %v", i, err)
		}
		first, _ := c.Node(i).Logs().FirstIndex()
		last, _ := c.Node(i).Logs().LastIndex()
		if first <= 1 || last-first+1 > 60 {
			t.Fatalf("node %d log not truncated: first %d last %d", i, first, last)
		}
	}
	// A node that joins now cannot get the early entries from the log: it
	// must be sent the snapshot.
	cfg := c.NewConfig()
	cfg.Join = []string{c.Config(0).BindAddr}
	late := c.Restart(c.Add(cfg))
	c.WaitForVoters(4)
	c.WaitConverged()
	if n := kvCount(t, late); n != 500 {
		t.Fatalf("late node has %d keys, want 500", n)
	}
	if lt := c.StateMachine(3).loads.Load(); lt < 2 {
		t.Fatalf("late node loaded state %d times: it did not restore a snapshot", lt)
	}
	if a := c.StateMachine(3).applies.Load(); a >= 500 {
		t.Fatalf("late node applied %d commands itself: it replayed the log, not the snapshot", a)
	}
}

func TestCluster_RestartReplaysOnlyTheTail(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.Leader()
	for i := 0; i < 200; i++ {
		mustApply(t, l, fmt.Sprintf("a-%d", i), fmt.Sprintf("a%d", i), "v")
	}
	c.WaitConverged()
	f := c.Followers()[0]
	c.Stop(f)
	for i := 0; i < 30; i++ {
		mustApply(t, c.Leader(), fmt.Sprintf("b-%d", i), fmt.Sprintf("b%d", i), "v")
	}
	n := c.Restart(f)
	c.WaitConverged()
	if got := c.StateMachine(f).applies.Load(); got != 30 {
		t.Fatalf("restarted node applied %d commands, want only the 30 it missed", got)
	}
	if k := kvCount(t, n); k != 230 {
		t.Fatalf("restarted node has %d keys, want 230", k)
	}
}

func TestCluster_StateRebuiltFromSnapshotWhenStateLost(t *testing.T) {
	c := mustCluster(t, 1, func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 1 << 30
		cfg.SnapshotInterval = time.Hour
		cfg.TrailingLogs = 10
	})
	for i := 0; i < 100; i++ {
		mustApply(t, c.Leader(), fmt.Sprintf("x-%d", i), fmt.Sprintf("x%d", i), "v")
	}
	if err := c.Leader().Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	// The state directory is lost; the log below the snapshot is gone too.
	wipeState(t, c.Config(0).DataDir)
	n := c.Restart(0)
	c.WaitForLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitApplied(ctx); err != nil {
		t.Fatal(err)
	}
	if k := kvCount(t, n); k != 100 {
		t.Fatalf("after losing the state: %d keys, want 100", k)
	}
}

func wipeState(t *testing.T, dataDir string) {
	t.Helper()
	db, err := badger.Open(cluster.BadgerOptions(dataDir+"/state", true, clustertest.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropAll(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCluster_BootstrapExpectThreeNodes(t *testing.T) {
	c := clustertest.NewCluster(t, newKV)
	var cfgs []cluster.Config
	var addrs []string
	for range 3 {
		cfg := c.NewConfig()
		cfgs = append(cfgs, cfg)
		addrs = append(addrs, cfg.BindAddr)
	}
	for _, cfg := range cfgs {
		cfg.BootstrapExpect = addrs
		c.Add(cfg)
	}
	// Start them in parallel, as three appliances powered on together.
	c.StartAll()
	c.WaitForVoters(3)
	mustApply(t, c.Node(2), "hello", "hello", "world")
	c.WaitConverged()
	// Node IDs are kept in the data directory, not derived from addresses.
	id := c.Node(1).ID()
	c.Stop(1)
	if c.Restart(1).ID() != id {
		t.Fatal("node ID changed across a restart")
	}
}

func TestCluster_GracefulCloseTransfersLeadership(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.WaitForLeader()
	removedID := c.Node(l).ID()
	start := time.Now()
	c.Stop(l)
	nl := c.WaitForLeader()
	t.Logf("leadership moved in %s", time.Since(start))
	// The administrator sees the old appliance unreachable, and removes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clustertest.PollUntil(t, 5*time.Second, "the stopped node to be shown unreachable", func() bool {
		for _, m := range c.Node(nl).Status().Members {
			if m.ID == removedID {
				return !m.Reachable
			}
		}
		return false
	})
	f := c.Followers()[0]
	if err := c.Node(f).Remove(ctx, removedID); err != nil {
		t.Fatalf("remove through a follower: %v", err)
	}
	clustertest.PollUntil(t, 5*time.Second, "two voters", func() bool { return c.Leader().Voters() == 2 })
	mustApply(t, c.Node(f), "after-remove", "k", "v")
}

// A write through a follower is visible in that follower's local state as
// soon as Apply returns.
func TestCluster_ForwardedWriteReadableOnTheFollower(t *testing.T) {
	c := mustCluster(t, 3, func(cfg *cluster.Config) { cfg.CommitTimeout = 200 * time.Millisecond })
	c.WaitForLeader()
	f := c.Node(c.Followers()[0])
	for i := range 10 {
		key := fmt.Sprintf("ryw-%d", i)
		mustApply(t, f, key, key, "v")
		if _, ok := kvGet(t, f, key); !ok {
			t.Fatalf("write %d through the follower not readable there when Apply returned", i)
		}
	}
}
