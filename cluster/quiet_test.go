package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// logRecord is one captured log record, its attributes as key=value text.
type logRecord struct {
	level slog.Level
	msg   string
	attrs string
}

func (r logRecord) String() string { return fmt.Sprintf("%s %q %s", r.level, r.msg, r.attrs) }

// logCapture keeps every record logged through it, from debug level up.
type logCapture struct {
	mu   sync.Mutex
	recs []logRecord
}

// since returns the records from index i on.
func (c *logCapture) since(i int) []logRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]logRecord(nil), c.recs[min(i, len(c.recs)):]...)
}

func (c *logCapture) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// captureHandler is a slog.Handler writing to a logCapture.
type captureHandler struct {
	c     *logCapture
	attrs string
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.c.mu.Lock()
	h.c.recs = append(h.c.recs, logRecord{level: r.Level, msg: r.Message, attrs: b.String()})
	h.c.mu.Unlock()
	return nil
}

func (h captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return captureHandler{c: h.c, attrs: b.String()}
}

func (h captureHandler) WithGroup(string) slog.Handler { return h }

// mustLoggedCluster starts n nodes, each logging to a capture of its own.
// Their timeouts are those of appliances (cluster.Default...), not the
// tests' shorter ones: under a loaded CPU those make a live member miss a
// leader's lease now and then, a true warning this test would count.
func mustLoggedCluster(t *testing.T, n int) (*clustertest.Cluster[*kvSM], []*logCapture) {
	t.Helper()
	var logs []*logCapture
	c := mustCluster(t, n, func(cfg *cluster.Config) {
		lc := &logCapture{}
		logs = append(logs, lc)
		cfg.Logger = slog.New(captureHandler{c: lc})
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = cluster.DefaultHeartbeatTimeout, cluster.DefaultElectionTimeout
		cfg.LeaderLeaseTimeout = cluster.DefaultLeaderLeaseTimeout
	})
	return c, logs
}

// warnings returns the records at warn level and above.
func warnings(recs []logRecord) []logRecord {
	var out []logRecord
	for _, r := range recs {
		if r.level >= slog.LevelWarn {
			out = append(out, r)
		}
	}
	return out
}

// has reports whether a record at level or above (below, if below is set)
// has a message containing msg and attributes containing attr.
func has(recs []logRecord, level slog.Level, below bool, msg, attr string) bool {
	for _, r := range recs {
		if (r.level >= level) != below && strings.Contains(r.msg, msg) && strings.Contains(r.attrs, attr) {
			return true
		}
	}
	return false
}

// Stopping all three members one after another, as an administrator or
// make run does, logs nothing at warn level or above on any of them: each
// tells the others it is leaving, and Raft's failures to reach it, then
// the last member's elections with nobody to vote, are debug records.
func TestNode_CleanShutdownIsQuiet(t *testing.T) {
	c, logs := mustLoggedCluster(t, 3)
	mustApply(t, c.Leader(), "q1", "k", "v")
	c.WaitConverged() // a member still catching up is warned about
	marks := make([]int, len(logs))
	for i, l := range logs {
		marks[i] = l.len()
	}

	c.Stop(0)
	c.Stop(1)
	// The last member, left alone, keeps trying to reach the others and to
	// win an election: let it, and see that it says so at debug level.
	clustertest.PollUntil(t, 10*time.Second, "the last member's elections, logged at debug level", func() bool {
		recs := logs[2].since(marks[2])
		return has(recs, slog.LevelInfo, true, "election", "system=raft")
	})
	c.Stop(2)

	for i, l := range logs {
		recs := l.since(marks[i])
		if w := warnings(recs); len(w) > 0 {
			t.Errorf("node %d logged %d records at warn level or above in a clean shutdown, first: %v", i, len(w), w[0])
		}
		if !has(recs, slog.LevelInfo, false, "cluster node stopped", "") {
			t.Errorf("node %d did not say it stopped", i)
		}
	}
	last := logs[2].since(marks[2])
	for _, want := range []string{"a member is stopping", "every other member has stopped"} {
		if !has(last, slog.LevelInfo, false, want, "") {
			t.Errorf("the last member did not log %q at info level", want)
		}
	}
	if !has(last, slog.LevelInfo, true, "failed to", "system=raft") {
		t.Error("the last member logged no failure to reach the others, even at debug level: the test saw nothing to quieten")
	}
}

// A member that crashes (Kill: no word to the others) is still an error
// in the others' logs, and so is one that stopped cleanly, came back,
// and then crashed.
func TestNode_CrashStillLogsErrors(t *testing.T) {
	c, logs := mustLoggedCluster(t, 3)
	mustApply(t, c.Leader(), "c0", "k", "v")
	c.WaitConverged() // a member still catching up is warned about
	leader := c.WaitForLeader()
	victim := (leader + 1) % 3
	id := c.Node(victim).ID()

	mark := logs[leader].len()
	c.Stop(victim)
	clustertest.PollUntil(t, 10*time.Second, "the leader's quiet failures to reach the stopped member", func() bool {
		return has(logs[leader].since(mark), slog.LevelInfo, true, "failed to", id)
	})
	if w := warnings(logs[leader].since(mark)); len(w) > 0 {
		t.Errorf("the leader logged %v about a member that stopped cleanly", w[0])
	}

	c.Restart(victim)
	clustertest.PollUntil(t, 10*time.Second, "the leader sees the member back", func() bool {
		return has(logs[leader].since(mark), slog.LevelInfo, false, "a member that had stopped answers again", id)
	})
	mustApply(t, c.Node(leader), "c1", "k", "v")

	mark = logs[leader].len()
	c.Kill(victim)
	clustertest.PollUntil(t, 10*time.Second, "an error or warning about the crashed member", func() bool {
		return has(logs[leader].since(mark), slog.LevelWarn, false, "", id)
	})
}
