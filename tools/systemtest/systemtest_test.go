package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"

	"github.com/vigilarc/vigil/appliance/monitoring"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// The leader-kill test's figures.
const (
	// numCommands is how many commands the client applies, each with its
	// own ID and its own record key.
	numCommands = 1000
	// numWorkers is how many commands are in flight at once.
	numWorkers = 8
	// killAfterAcks is how many acknowledgements come before the kill.
	killAfterAcks = 200
	// acksWhileDown is how many commands sent after the kill must be
	// acknowledged by the other two nodes before the killed one restarts,
	// about a third of the run: the rest is written while it catches up.
	acksWhileDown = 300
	// clientTimeout bounds the client's whole run.
	clientTimeout = 100 * time.Second
	// convergeTimeout bounds the wait for every node to apply the same index.
	convergeTimeout = 30 * time.Second
)

// TestCluster_LeaderKilledUnderLoadLosesAndRepeatsNothing runs three vigil
// processes, applies numCommands commands through all of them while the
// leader is killed with SIGKILL and later restarted, and then checks every
// node's copy of the journal: each acknowledged command is there exactly
// once, no command is there twice, and the nodes agree record for record.
func TestCluster_LeaderKilledUnderLoadLosesAndRepeatsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs three processes")
	}
	began := time.Now()
	bin := mustBuildVigil(t)
	t.Logf("vigil built (or found built) in %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	c := mustStartCluster(t, bin, 3)
	t.Logf("three nodes formed a cluster in %s", time.Since(began).Round(time.Millisecond))

	client := newLoadClient(c.http, c.token, numCommands)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	clientStart := time.Now()
	go func() {
		defer close(done)
		client.run(ctx, numWorkers)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	clustertest.PollUntil(t, 60*time.Second, fmt.Sprintf("%d acknowledgements", killAfterAcks), func() bool {
		c.mustAllRunning()
		return client.acked.Load() >= killAfterAcks
	})
	leader := c.Leader()
	ackedBefore := client.acked.Load()
	c.Kill(leader)
	// Taken once the process is gone: no attempt sent after this can reach it.
	killedAt := time.Now()
	t.Logf("SIGKILLed the leader %s after %d acknowledgements", c.nodes[leader].name, ackedBefore)

	// The other two nodes elect a leader and go on acknowledging commands
	// sent after the kill; none of them can come from the killed node.
	var sinceKill []ackEvent
	clustertest.PollUntil(t, 30*time.Second, fmt.Sprintf("%d acknowledgements of commands sent after the kill", acksWhileDown), func() bool {
		c.mustAllRunning(leader)
		sinceKill = client.ackedSince(killedAt)
		return len(sinceKill) >= acksWhileDown
	})
	resumedAfter := sinceKill[0].at.Sub(killedAt)
	newLeader := c.WaitForLeader()
	if newLeader == leader {
		t.Fatalf("%s, killed, is reported leader", c.nodes[leader].name)
	}
	c.Restart(leader)
	restartedAt := time.Now()
	newLeaderID := c.nodes[newLeader].name
	var followed string
	clustertest.PollUntil(t, leaderTimeout, fmt.Sprintf("%s to rejoin as a follower", c.nodes[leader].name), func() bool {
		c.mustAllRunning()
		st, err := c.api.status(c.http[leader])
		followed = st.LeaderID
		return err == nil && st.State == "Follower" && st.LeaderID != "" && st.LeaderID != st.NodeID
	})
	rejoinedAfter := time.Since(restartedAt)
	var whileDown int
	for _, e := range client.ackedSince(killedAt) {
		if e.at.Before(restartedAt) {
			whileDown++
			if e.via == leader {
				t.Errorf("a command sent at %s was acknowledged by %s, which was down", e.sentAt.Format(time.StampMilli), c.nodes[leader].name)
			}
		}
	}
	t.Logf("new leader %s; acknowledgements resumed %s after the kill; %d commands acknowledged by the other two nodes during the %s %s was down; "+
		"restarted, it rejoined as a follower of %s within %s",
		newLeaderID, resumedAfter.Round(time.Millisecond), whileDown, restartedAt.Sub(killedAt).Round(time.Millisecond), c.nodes[leader].name,
		followed, rejoinedAfter.Round(time.Millisecond))

	if err := waitDone(done, clientTimeout-time.Since(clientStart)); err != nil {
		t.Fatalf("%v after %s with %d of %d commands acknowledged", err, clientTimeout, client.acked.Load(), numCommands)
	}
	clientTook := time.Since(clientStart)
	var viaRestarted int
	for _, e := range client.ackedSince(restartedAt) {
		if e.via == leader {
			viaRestarted++
		}
	}
	t.Logf("%d commands sent after the restart were acknowledged through %s", viaRestarted, c.nodes[leader].name)

	// What the client saw.
	var acked, duplicates, mostAttempts int
	var highest uint64
	var failures []string
	for _, cmd := range client.cmds {
		mostAttempts = max(mostAttempts, cmd.attempts)
		if !cmd.acked {
			failures = append(failures, fmt.Sprintf("%s (key %s): %s", cmd.id, cmd.key, cmd.failure))
			continue
		}
		acked++
		highest = max(highest, cmd.index)
		if cmd.duplicate {
			duplicates++
		}
	}
	gap, gapFrom := client.longestAckGap()
	t.Logf("client: %d of %d commands acknowledged in %s (%.0f/s) by %d workers; %d retries (%d no reply, %d HTTP 503, %d HTTP 504); "+
		"%d acknowledgements were of an ID already applied; most attempts at one command: %d; longest time without an acknowledgement: %s, starting at kill%+v",
		acked, numCommands, clientTook.Round(time.Millisecond), float64(acked)/clientTook.Seconds(), numWorkers,
		client.retries(), client.connErrs.Load(), client.noLeader.Load(), client.unknown.Load(),
		duplicates, mostAttempts, gap.Round(time.Millisecond), gapFrom.Sub(killedAt).Round(time.Millisecond))
	if acked != numCommands {
		t.Errorf("%d of %d commands were not acknowledged within %s each; the first:\n  %s",
			numCommands-acked, numCommands, commandBudget, strings.Join(failures[:min(len(failures), 10)], "\n  "))
	}

	var followers []string
	for _, i := range c.Followers() {
		followers = append(followers, c.nodes[i].name)
	}
	t.Logf("after the restart: leader %s, followers %s", c.nodes[c.Leader()].name, strings.Join(followers, ", "))

	applied := c.waitConverged(convergeTimeout, highest)
	t.Logf("all three nodes applied index %d (highest acknowledged index %d)", applied, highest)
	checkJournals(t, c, client.cmds, applied)

	// Stop the leader first, so its graceful close hands leadership on,
	// then the others.
	first := c.Leader()
	c.nodes[first].stop()
	for i, p := range c.nodes {
		if i != first {
			p.stop()
		}
	}
	t.Logf("from the start of the cluster to its stop: %s", time.Since(began).Round(time.Millisecond))
}

// checkJournals reads every node's journal locally and checks it against
// what the client was told.
func checkJournals(t *testing.T, c *testCluster, cmds []*command, applied uint64) {
	t.Helper()
	byKey := make(map[string]*command, len(cmds))
	for _, cmd := range cmds {
		byKey[cmd.key] = cmd
	}
	journals := make([][]monitoring.DiagRecord, len(c.nodes))
	var problems []string
	problem := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for i, p := range c.nodes {
		recs, err := c.api.records(c.http[i])
		if err != nil {
			t.Fatalf("cannot read %s's journal: %v", p.name, err)
		}
		journals[i] = recs
		count := make(map[string]int, len(recs))
		for _, r := range recs {
			count[r.Key]++
			cmd, ok := byKey[r.Key]
			switch {
			case !ok:
				problem("%s has a record with unknown key %q: %+v", p.name, r.Key, r)
			case r.Value != cmd.id:
				problem("%s: record %s has value %q, want the command ID %q", p.name, r.Key, r.Value, cmd.id)
			case cmd.acked && r.Index != cmd.index:
				problem("%s: record %s is at index %d, but the client was told %d", p.name, r.Key, r.Index, cmd.index)
			case r.Index > applied:
				problem("%s: record %s is at index %d, beyond the applied index %d", p.name, r.Key, r.Index, applied)
			}
		}
		var unackedPresent int
		for _, cmd := range cmds {
			n := count[cmd.key]
			switch {
			case n > 1:
				problem("%s: command %s was applied %d times", p.name, cmd.id, n)
			case cmd.acked && n == 0:
				problem("%s: acknowledged command %s (index %d) is missing", p.name, cmd.id, cmd.index)
			case !cmd.acked && n == 1:
				unackedPresent++
			}
		}
		t.Logf("%s: %d records, %d of them from unacknowledged commands", p.name, len(recs), unackedPresent)
	}
	for i := 1; i < len(journals); i++ {
		if !slices.Equal(journals[0], journals[i]) {
			problem("%s and %s differ: %s", c.nodes[0].name, c.nodes[i].name, firstDifference(journals[0], journals[i]))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems in the journals; the first:\n  %s", len(problems), strings.Join(problems[:min(len(problems), 20)], "\n  "))
	}
}

func firstDifference(a, b []monitoring.DiagRecord) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("record %d is %+v and %+v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d and %d records", len(a), len(b))
}

// TestServe_DefaultsStartSingleNode runs vigil serve with no configuration
// file and no flags, only the two ports moved by environment variables
// (the default ports may be in use): it must start a one-node cluster that
// takes writes, keep its data in ./data, and exit 0 on SIGTERM.
func TestServe_DefaultsStartSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs it")
	}
	bin := mustBuildVigil(t)
	workDir := t.TempDir()
	addrs := mustFreeAddrs(t, 2)
	httpAddr, clusterAddr := addrs[0], addrs[1]
	p := &proc{
		t:       t,
		name:    "single",
		bin:     bin,
		args:    []string{"serve"},
		dir:     workDir,
		env:     childEnv("VIGIL_HTTP_ADDR="+httpAddr, "VIGIL_CLUSTER_BIND_ADDR="+clusterAddr),
		logPath: filepath.Join(t.TempDir(), "single.log"),
	}
	a := newAPI(statusTimeout)
	t.Cleanup(a.close)
	registerNode(t, httpAddr, filepath.Join(workDir, "data"))
	dumpLogsOnFailure(t, p)
	p.start()

	clustertest.PollUntil(t, leaderTimeout, "the node to lead a one-member cluster", func() bool {
		if !p.running() {
			t.Fatalf("vigil serve exited: %s", p.run.cmdState())
		}
		st, err := a.status(httpAddr)
		return err == nil && st.State == "Leader" && st.LeaderID == st.NodeID && len(st.Members) == 1
	})
	st, err := a.status(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st.Addr != clusterAddr {
		t.Errorf("cluster address is %q, want %q from VIGIL_CLUSTER_BIND_ADDR", st.Addr, clusterAddr)
	}
	if m := st.Members[0]; m.ID != st.NodeID || !m.Voter || !m.Self || m.Addr != clusterAddr {
		t.Errorf("the only member is %+v, want this node (%s at %s) as a voter", m, st.NodeID, clusterAddr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req := vapi.DiagRecordRequest{ID: "single-1", Key: "k1", Value: "v1"}
	var indexes []uint64
	for attempt, wantDup := range []bool{false, true} {
		status, resp, body, err := a.postRecord(ctx, httpAddr, req)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("POST record, attempt %d: HTTP %d %s %v; want 201", attempt+1, status, body, err)
		}
		if resp.Duplicate != wantDup || resp.Index == 0 {
			t.Errorf("POST record, attempt %d: reply %+v, want duplicate %v and an index", attempt+1, resp, wantDup)
		}
		indexes = append(indexes, resp.Index)
	}
	if indexes[0] != indexes[1] {
		t.Errorf("the retry with the same ID reported index %d, the first attempt %d", indexes[1], indexes[0])
	}
	recs, err := a.records(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	want := []monitoring.DiagRecord{{Key: "k1", Value: "v1", Index: indexes[0]}}
	if !slices.Equal(recs, want) {
		t.Errorf("journal is %+v, want %+v", recs, want)
	}

	idFile := filepath.Join(workDir, "data", "node-id")
	b, err := os.ReadFile(idFile)
	if err != nil {
		t.Fatalf("the default data directory ./data has no node ID: %v", err)
	}
	if id := strings.TrimSpace(string(b)); id != st.NodeID || id == "" {
		t.Errorf("%s holds %q, but the node reports ID %q", idFile, id, st.NodeID)
	}

	p.stop()
}
