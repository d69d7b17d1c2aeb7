package appliance_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// mustThreeNodes opens three appliances formed from prepared data
// directories (cluster.bootstrap_expect), on plain HTTP, and waits for a
// leader known to all.
func mustThreeNodes(t *testing.T) []*appliance.Node {
	t.Helper()
	addrs := []string{clustertest.FreeAddr(t), clustertest.FreeAddr(t), clustertest.FreeAddr(t)}
	cfgs := make([]appliance.Config, 3)
	dirs := map[string]string{}
	for i := range cfgs {
		cfgs[i] = appliancetest.Config(t)
		cfgs[i].Cluster.BindAddr = addrs[i]
		cfgs[i].Cluster.BootstrapExpect = addrs
		dirs[fmt.Sprintf("node%d", i+1)] = cfgs[i].DataDir
	}
	appliancetest.Provision(t, dirs)
	nodes := make([]*appliance.Node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range nodes {
		n, err := appliance.New(cfgs[i])
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { clustertest.CloseWithin(t, "an appliance", appliancetest.CloseTimeout, func() { n.Close() }) })
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.Open(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	clustertest.PollUntil(t, 30*time.Second, "a leader known to all", func() bool {
		for _, n := range nodes {
			if id, _ := n.Cluster().Leader(); id == "" {
				return false
			}
		}
		return true
	})
	return nodes
}

var (
	backupIndexRE = regexp.MustCompile(`applied index:\s+(\d+)`)
	backupHashRE  = regexp.MustCompile(`state hash:\s+([0-9a-f]{64})`)
)

func writeKey(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.key")
	if err := os.WriteFile(p, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A backup taken over the API while alarms are being raised holds the
// state at one applied index: restored into a new appliance (vigil init,
// vigil restore, vigil serve) it has the backup's recorded state hash and
// every alarm raised at or before that index, and none after; two more
// appliances join it with the token and the three agree. A wrong key, a
// truncated file and a data directory that holds state are refused, and a
// stopped node's data directory gives the same state as its API did.
func TestBackup_UnderLoadRestoredIntoANewCluster(t *testing.T) {
	src := mustThreeNodes(t)
	ctx := context.Background()
	svc := src[0].Service()
	if _, err := svc.PutOrganisation(ctx, "org", "admin", monitoring.Organisation{ID: "o1", Name: "Trust"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		w, d := fmt.Sprintf("w%d", i), fmt.Sprintf("d%d", i)
		if _, err := svc.PutWorker(ctx, w, "admin", monitoring.Worker{ID: w, Name: "Worker " + w, OrgID: "o1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutDevice(ctx, d, "admin", monitoring.Device{ID: d, Kind: monitoring.DeviceDedicated, OrgID: "o1", WorkerID: w}); err != nil {
			t.Fatal(err)
		}
	}

	// The load: four devices' alarms through the three nodes, each
	// recorded once the node acknowledged it.
	var (
		mu     sync.Mutex
		raised = map[string]string{} // command ID -> alarm ID
		count  atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := src[i%3].Service()
			d := fmt.Sprintf("d%d", i)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load/%s/%d", d, seq)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				a, err := n.RaiseAlarm(cctx, id, "device:"+d, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: d})
				cancel()
				if err != nil {
					t.Errorf("raising %s: %v", id, err)
					return
				}
				mu.Lock()
				raised[id] = a.ID
				mu.Unlock()
				count.Add(1)
			}
		}()
	}
	clustertest.PollUntil(t, 30*time.Second, "20 alarms raised", func() bool { return count.Load() >= 20 })

	key := writeKey(t, "a passphrase the operator keeps in the safe")
	file := filepath.Join(t.TempDir(), "vigil.backup")
	before := count.Load()
	code, out, errOut := runCLI(t, nil, "backup", "--addr", "http://"+src[1].HTTPAddr(), "--data-dir", src[1].DataDir(),
		"--key-file", key, "--out", file)
	if code != appliance.ExitOK {
		t.Fatalf("backup: exit %d: %s %s", code, out, errOut)
	}
	clustertest.PollUntil(t, 30*time.Second, "more alarms raised after the backup", func() bool { return count.Load() >= before+20 })
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("backup: %s; %d alarms raised before it began, %d in all", strings.TrimSpace(out), before, count.Load())

	// What the file holds, read with the key.
	code, out, errOut = runCLI(t, nil, "backup", "inspect", "--key-file", key, file)
	if code != appliance.ExitOK || !strings.Contains(out, "matches the state in the file") || !strings.Contains(out, "source:         api") {
		t.Fatalf("inspect: exit %d: %s %s", code, out, errOut)
	}
	m := backupIndexRE.FindStringSubmatch(out)
	h := backupHashRE.FindStringSubmatch(out)
	if m == nil || h == nil {
		t.Fatalf("inspect printed no index or hash: %s", out)
	}
	index, _ := strconv.ParseUint(m[1], 10, 64)
	hash := h[1]

	// The backup's alarms: those whose raise was applied at or before its
	// index, by the cluster's record of each command.
	_, cmds, err := src[1].Service().DiagCommands("CmdRaiseAlarm/load/")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(cmds) != len(raised) {
		t.Fatalf("the cluster recorded %d raise commands, the load %d", len(cmds), len(raised))
	}
	in, after := map[string]bool{}, map[string]bool{}
	for _, c := range cmds {
		alarmID := raised[strings.TrimPrefix(c.ID, "CmdRaiseAlarm/")]
		if c.Index <= index {
			in[alarmID] = true
		} else {
			after[alarmID] = true
		}
	}
	mu.Unlock()
	if len(in) < int(before) || len(after) == 0 {
		t.Fatalf("%d alarms at or before the backup's index %d (%d were acknowledged before it began), %d after", len(in), index, before, len(after))
	}

	// Refusals: a wrong key, a truncated file, a data directory with state.
	wrong := writeKey(t, "not the passphrase in the safe")
	if code, _, errOut := runCLI(t, nil, "backup", "inspect", "--key-file", wrong, file); code == appliance.ExitOK || !strings.Contains(errOut, "wrong key") {
		t.Fatalf("inspect with a wrong key: exit %d, %s", code, errOut)
	}
	whole, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.backup")
	if err := os.WriteFile(cut, whole[:len(whole)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := newBox(t)
	if code, _, errOut := runCLI(t, nil, append([]string{"restore", "--key-file", key, cut}, fresh.flags()...)...); code == appliance.ExitOK || !strings.Contains(errOut, "truncated") {
		t.Fatalf("restore of a truncated file: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, append([]string{"restore", "--key-file", wrong, file}, fresh.flags()...)...); code == appliance.ExitOK || !strings.Contains(errOut, "wrong key") {
		t.Fatalf("restore with a wrong key: exit %d, %s", code, errOut)
	}
	if has, err := cluster.HasState(fresh.dir); err != nil || has {
		t.Fatalf("refused restores left state in the data directory (%v)", err)
	}

	// The restore, as IT does it: vigil init on the new first appliance,
	// vigil restore, vigil serve; then vigil join the two others.
	boxes := []*box{fresh, newBox(t), newBox(t)}
	code, out, errOut = runCLI(t, nil, append([]string{"init", "--expect", "3"}, boxes[0].flags()...)...)
	if code != appliance.ExitOK {
		t.Fatalf("init: exit %d: %s %s", code, out, errOut)
	}
	token := tokenRE.FindString(out)
	code, out, errOut = runCLI(t, nil, append([]string{"restore", "--key-file", key, file}, boxes[0].flags()...)...)
	if code != appliance.ExitOK || !strings.Contains(out, "applied index "+m[1]) {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, append([]string{"restore", "--key-file", key, file}, boxes[0].flags()...)...); code == appliance.ExitOK || !strings.Contains(errOut, "already holds a node's state") {
		t.Fatalf("a second restore into the same directory: exit %d, %s", code, errOut)
	}
	boxes[0].serve(t)
	st, err := boxes[0].node.Service().DiagState()
	if err != nil {
		t.Fatal(err)
	}
	if st.AppliedIndex != index || hex.EncodeToString(st.Hash) != hash {
		t.Fatalf("the restored node is at index %d hash %x; the backup at %d hash %s", st.AppliedIndex, st.Hash, index, hash)
	}
	for id := range in {
		if _, err := boxes[0].node.Service().Alarm(id); err != nil {
			t.Fatalf("alarm %s, raised before the backup's index, is not in the restored cluster: %v", id, err)
		}
	}
	for id := range after {
		if _, err := boxes[0].node.Service().Alarm(id); err == nil {
			t.Fatalf("alarm %s, raised after the backup's index, is in the restored cluster", id)
		}
	}

	for _, b := range boxes[1:] {
		code, out, errOut := runCLI(t, nil, append([]string{"join", token}, b.flags()...)...)
		if code != appliance.ExitOK {
			t.Fatalf("join: exit %d: %s %s", code, out, errOut)
		}
		b.serve(t)
	}
	clustertest.PollUntil(t, 60*time.Second, "three voters agreeing on the state", func() bool {
		var first *monitoring.DiagState
		for _, b := range boxes {
			if voters(t, b.node) != 3 {
				return false
			}
			s, err := b.node.Service().DiagState()
			if err != nil {
				return false
			}
			if first == nil {
				first = &s
			} else if s.AppliedIndex != first.AppliedIndex || hex.EncodeToString(s.Hash) != hex.EncodeToString(first.Hash) {
				return false
			}
		}
		return true
	})
	// A write on the restored cluster goes on from the backup's index.
	if _, err := boxes[2].node.Service().RaiseAlarm(ctx, "after-restore", "device:d0", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d0"}); err != nil {
		t.Fatalf("raising an alarm on the restored cluster: %v", err)
	}

	// A stopped node's data directory: the same state its API served.
	stoppedDir := src[2].DataDir()
	want, err := src[2].Service().DiagState()
	if err != nil {
		t.Fatal(err)
	}
	src[2].Close()
	stoppedFile := filepath.Join(t.TempDir(), "stopped.backup")
	code, out, errOut = runCLI(t, nil, "backup", "--stopped", "--data-dir", stoppedDir, "--key-file", key, "--out", stoppedFile)
	if code != appliance.ExitOK {
		t.Fatalf("backup --stopped: exit %d: %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "backup", "inspect", "--key-file", key, stoppedFile)
	if code != appliance.ExitOK || !strings.Contains(out, "source:         data_dir") {
		t.Fatalf("inspect of the stopped node's backup: exit %d: %s", code, out)
	}
	m, h = backupIndexRE.FindStringSubmatch(out), backupHashRE.FindStringSubmatch(out)
	if m == nil || h == nil {
		t.Fatalf("inspect printed no index or hash: %s", out)
	}
	if got, _ := strconv.ParseUint(m[1], 10, 64); got < want.AppliedIndex || got == want.AppliedIndex && h[1] != hex.EncodeToString(want.Hash) {
		t.Fatalf("the stopped node's backup is at index %d hash %s; its API said %d hash %x", got, h[1], want.AppliedIndex, want.Hash)
	}

	// Over a data directory that holds state only with --force, which
	// keeps the node's ID and trust; the node then starts with the
	// backup's state.
	stopped := &box{dir: stoppedDir, clusterAddr: clustertest.FreeAddr(t), httpAddr: clustertest.FreeAddr(t)}
	code, _, errOut = runCLI(t, nil, append([]string{"restore", "--key-file", key, file}, stopped.flags()...)...)
	if code == appliance.ExitOK || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over a node's state: exit %d, %s", code, errOut)
	}
	idBefore, _ := os.ReadFile(filepath.Join(stoppedDir, "node-id"))
	code, out, errOut = runCLI(t, nil, append([]string{"restore", "--force", "--key-file", key, file}, stopped.flags()...)...)
	if code != appliance.ExitOK {
		t.Fatalf("restore --force: exit %d: %s %s", code, out, errOut)
	}
	if idAfter, _ := os.ReadFile(filepath.Join(stoppedDir, "node-id")); string(idAfter) != string(idBefore) || len(idBefore) == 0 {
		t.Fatalf("restore --force changed the node ID from %q to %q", idBefore, idAfter)
	}
	stopped.serve(t)
	if st, err := stopped.node.Service().DiagState(); err != nil || st.AppliedIndex != index || hex.EncodeToString(st.Hash) != hash {
		t.Fatalf("after restore --force the node is at index %d hash %x (%v); the backup at %d hash %s", st.AppliedIndex, st.Hash, err, index, hash)
	}
}
