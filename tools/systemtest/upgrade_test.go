package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// Figures of the rolling upgrade test.
const (
	// upgradeDevices publish alarms throughout, one every upgradeEvery.
	upgradeDevices = 4
	upgradeEvery   = 50 * time.Millisecond
	// upgradeSettle is how long the load runs between two steps, so that
	// each step's gap is measured against a steady stream of PUBACKs.
	upgradeSettle = 2 * time.Second
	// upgradeDrain bounds the devices' last events after the load stops.
	upgradeDrain = 60 * time.Second
)

// upgradeGap is one step of the upgrade, the longest time in it with no
// PUBACK to any device (the cluster could not commit), and the longest an
// alarm of the step waited from its first PUBLISH to its PUBACK (what a
// device saw, its reconnection to another node included).
type upgradeGap struct {
	step     string
	gap      time.Duration
	worstAck time.Duration
}

// TestUpgrade_RollingFromThePreviousCommit runs a three-node cluster on the
// previous commit's vigil (VIGIL_UPGRADE_FROM, default HEAD~1), with
// devices raising alarms over MQTT (QoS 1, each resent until PUBACKed, to
// another node when its own stops), and upgrades it to this tree's vigil
// one node at a time as docs/install.md says: each follower, then the
// leader, each stopped with SIGTERM and started again on the same data
// directory with the new binary. Then the new leader is stopped with
// SIGTERM and, for comparison, killed with SIGKILL. It checks that every
// PUBACKed alarm is on every node exactly once and that the three nodes'
// state hashes agree, and logs each step's longest time without a PUBACK
// (docs/install.md, "Upgrading"). make upgrade-test runs it.
func TestUpgrade_RollingFromThePreviousCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds two vigils and runs three processes")
	}
	if os.Getenv("VIGIL_UPGRADE_TEST") == "" {
		t.Skip("the rolling upgrade test builds the previous commit too: run it with make upgrade-test (VIGIL_UPGRADE_TEST=1)")
	}
	from := os.Getenv("VIGIL_UPGRADE_FROM")
	if from == "" {
		from = "HEAD~1"
	}
	oldBin := mustBuildRevision(t, from)
	newBin := mustBuildVigil(t)
	c := mustStartCluster(t, oldBin, 3,
		"VIGIL_BROKER_ALARMS_PER_MINUTE=60000", "VIGIL_BROKER_ALARM_BURST=10000",
		"VIGIL_BROKER_MESSAGES_PER_MINUTE=60000", "VIGIL_BROKER_MESSAGE_BURST=10000")

	leader := c.Leader()
	mustWrite(t, c, leader, "/api/v1/organisations", vapi.OrganisationRequest{
		Command: vapi.Command{ID: "up-org", Actor: "systemtest"},
		Org:     vapi.OrganisationBody{ID: "up", Name: "Upgrade Trust"},
	}, nil)
	secrets := map[string]string{}
	for k := range upgradeDevices {
		w, d := fmt.Sprintf("w-up%d", k), fmt.Sprintf("d-up%d", k)
		mustWrite(t, c, leader, "/api/v1/workers", vapi.WorkerRequest{
			Command: vapi.Command{ID: "up-" + w, Actor: "systemtest"},
			Worker:  vapi.WorkerBody{ID: w, Name: "Worker " + w, OrgID: "up"},
		}, nil)
		mustWrite(t, c, leader, "/api/v1/devices", vapi.DeviceRequest{
			Command: vapi.Command{ID: "up-" + d, Actor: "systemtest"},
			Device:  vapi.DeviceBody{ID: d, Kind: monitoring.DevicePhoneApp, OrgID: "up", WorkerID: w},
		}, nil)
		var sec vapi.DeviceSecretResponse
		mustWrite(t, c, leader, "/api/v1/devices/"+d+"/secret", vapi.Command{ID: "up-secret-" + d, Actor: "systemtest"}, &sec)
		secrets[d] = sec.Secret
	}
	c.waitConverged(convergeTimeout, 0) // every node knows the secrets

	load := &deviceLoad{c: c, stop: make(chan struct{})}
	for k := range upgradeDevices {
		d := fmt.Sprintf("d-up%d", k)
		load.wg.Add(1)
		go load.device(t, d, secrets[d], k%len(c.nodes))
	}
	clustertest.PollUntil(t, 30*time.Second, "PUBACKs from every device", func() bool { return load.count() >= 3*upgradeDevices })

	var gaps []upgradeGap
	step := func(name string, i int, bin string, kill bool) {
		t.Helper()
		time.Sleep(upgradeSettle) // a steady stream before the step
		start := time.Now()
		wasLeader, newBinary := i == c.Leader(), c.nodes[i].bin == newBin
		logged := logSize(t, c.nodes[i].logPath)
		if kill {
			c.nodes[i].kill()
		} else {
			c.nodes[i].stop()
		}
		// A leader of this tree stopped cleanly says whom it handed over to.
		if wasLeader && newBinary && !kill && !strings.Contains(logSince(t, c.nodes[i].logPath, logged), "handed leadership over") {
			t.Errorf("%s led and was stopped with SIGTERM, but did not log handing leadership over", c.nodes[i].name)
		}
		c.nodes[i].bin = bin
		c.nodes[i].start()
		c.mustCatchUp(i)
		time.Sleep(upgradeSettle) // the stream is steady again
		g := upgradeGap{step: fmt.Sprintf("%s (%s)", name, c.nodes[i].name)}
		g.gap, g.worstAck = load.longestGap(start, time.Now())
		gaps = append(gaps, g)
		t.Logf("%s: longest time without a PUBACK %s; longest wait for one alarm's PUBACK %s",
			g.step, g.gap.Round(time.Millisecond), g.worstAck.Round(time.Millisecond))
	}
	followers := c.Followers()
	step("upgrade a follower, SIGTERM", followers[0], newBin, false)
	step("upgrade the other follower, SIGTERM", followers[1], newBin, false)
	step("upgrade the leader last, SIGTERM (old binary's shutdown)", c.Leader(), newBin, false)
	for range 2 {
		step("restart the new leader, SIGTERM (hands leadership over first)", c.Leader(), newBin, false)
		step("for comparison: SIGKILL the leader", c.Leader(), newBin, true)
	}

	close(load.stop)
	if err := waitDone(load.done(), upgradeDrain); err != nil {
		t.Fatalf("the devices' last events: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The three agree, and every PUBACKed alarm is on each exactly once.
	hashes := c.mustAgree()
	acked := load.ackedEvents()
	for i := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var resp vapi.DiagCommandsResponse
		err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/diag/commands?prefix=CmdRaiseAlarm/dev/d-up", &resp)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, cmd := range resp.Commands {
			if cmd.Refused != "" {
				t.Fatalf("%s refused %s: %s", c.nodes[i].name, cmd.ID, cmd.Refused)
			}
			got[cmd.ID] = true
		}
		for _, id := range acked {
			if !got["CmdRaiseAlarm/dev/"+id] {
				t.Fatalf("%s lost alarm %s, which was PUBACKed", c.nodes[i].name, id)
			}
		}
	}
	t.Logf("%d alarms PUBACKed, all on the three nodes; state hash %s at index %s", len(acked), hashes[0].Hash[:16], fmt.Sprint(hashes[0].AppliedIndex))
	var b strings.Builder
	for _, g := range gaps {
		fmt.Fprintf(&b, "\n  %-75s %8s %8s", g.step, g.gap.Round(time.Millisecond), g.worstAck.Round(time.Millisecond))
	}
	t.Logf("availability gaps from %s to this tree (longest time without a PUBACK; longest wait for one alarm's PUBACK):%s", from, b.String())
}

// mustBuildRevision builds the vigil of the git revision rev (from
// git archive, in a temporary directory) and returns its path.
func mustBuildRevision(t *testing.T, rev string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("the upgrade test needs git to read the previous commit: apt-get install git")
	}
	// The repository's root is the product's module (this test runs in
	// the tools module, inside it).
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v (the upgrade test runs inside the repository)", err)
	}
	root := strings.TrimSpace(string(top))
	sha, err := exec.Command("git", "-C", root, "rev-parse", "--short", rev).Output()
	if err != nil {
		t.Fatalf("git rev-parse %s: %v (the upgrade test needs the repository's history: a full clone)", rev, err)
	}
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive --format=tar %s | tar -x -C %q", root, rev, dir))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, "vigil-"+strings.TrimSpace(string(sha)))
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin,
		"-ldflags", "-X github.com/vigilarc/vigil/appliance.Version="+strings.TrimSpace(string(sha)), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of %s: %v\n%s", rev, err, out)
	}
	return bin
}

// logSize is the size of the log at path.
func logSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// logSince is what the log at path holds after its first from bytes.
func logSince(t *testing.T, path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[min(from, int64(len(b))):])
}

// mustCatchUp waits until node i answers, knows the leader, and has
// applied what the others had applied when it started.
func (c *testCluster) mustCatchUp(i int) {
	c.t.Helper()
	var want uint64
	for j := range c.nodes {
		if j == i {
			continue
		}
		if st, err := c.api.status(c.http[j]); err == nil && st.AppliedIndex > want {
			want = st.AppliedIndex
		}
	}
	clustertest.PollUntil(c.t, convergeTimeout, fmt.Sprintf("%s to catch up to index %d", c.nodes[i].name, want), func() bool {
		c.mustAllRunning()
		st, err := c.api.status(c.http[i])
		return err == nil && st.LeaderID != "" && st.AppliedIndex >= want
	})
}

// mustAgree waits until the three nodes are at the same applied index with
// the same state hash, and returns their states.
func (c *testCluster) mustAgree() []vapi.DiagStateResponse {
	c.t.Helper()
	states := make([]vapi.DiagStateResponse, len(c.nodes))
	clustertest.PollUntil(c.t, convergeTimeout, "the three nodes at one applied index with one state hash", func() bool {
		for i := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
			err := c.api.getJSON(ctx, "http://"+c.http[i]+"/api/v1/diag/state", &states[i])
			cancel()
			if err != nil || states[i].AppliedIndex != states[0].AppliedIndex || states[i].Hash != states[0].Hash {
				return false
			}
		}
		return true
	})
	return states
}

// deviceLoad is devices raising alarms, each resent until PUBACKed.
type deviceLoad struct {
	c    *testCluster
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	acks  []time.Time     // when each PUBACK came, in order
	waits []time.Duration // how long each alarm waited for its PUBACK
	acked []string        // "<device>/<event ID>" of each PUBACKed alarm
}

// device publishes alarms as device d, preferring node first, until stop;
// each event is resent, with its event ID, until PUBACKed, to the next
// node when the connection is lost.
func (l *deviceLoad) device(t *testing.T, d, secret string, first int) {
	defer l.wg.Done()
	node := first
	var cl paho.Client
	defer func() {
		if cl != nil {
			cl.Disconnect(0)
		}
	}()
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		case <-time.After(upgradeEvery):
		}
		eventID := fmt.Sprintf("up-%d", seq)
		payload, _ := json.Marshal(map[string]any{"event_id": eventID, "ts": time.Now().UTC().Format(time.RFC3339Nano), "alarm_type": "red_alert"})
		first := time.Now()
		deadline := first.Add(outboxBudget)
		for {
			if time.Now().After(deadline) {
				t.Errorf("%s: event %s not PUBACKed within %s", d, eventID, outboxBudget)
				return
			}
			if cl == nil {
				var err error
				if cl, err = connectDevice(l.c.mqtt[node], d, secret, nil); err != nil {
					cl = nil
					node = (node + 1) % len(l.c.nodes)
					time.Sleep(pollInterval)
					continue
				}
			}
			tok := cl.Publish(broker.UpTopic(d, "alarm"), 1, false, payload)
			if tok.WaitTimeout(mqttTimeout) && tok.Error() == nil {
				l.mu.Lock()
				now := time.Now()
				l.acks = append(l.acks, now)
				l.waits = append(l.waits, now.Sub(first))
				l.acked = append(l.acked, d+"/"+eventID)
				l.mu.Unlock()
				break
			}
			cl.Disconnect(0)
			cl = nil
			node = (node + 1) % len(l.c.nodes)
		}
	}
}

func (l *deviceLoad) done() <-chan struct{} {
	ch := make(chan struct{})
	go func() { l.wg.Wait(); close(ch) }()
	return ch
}

func (l *deviceLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

func (l *deviceLoad) ackedEvents() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

// longestGap is the longest time between from and to with no PUBACK, and
// the longest wait of an alarm PUBACKed in that time.
func (l *deviceLoad) longestGap(from, to time.Time) (gap, worst time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := from
	for i, at := range l.acks {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			break
		}
		gap = max(gap, at.Sub(last))
		worst = max(worst, l.waits[i])
		last = at
	}
	return max(gap, to.Sub(last)), worst
}
