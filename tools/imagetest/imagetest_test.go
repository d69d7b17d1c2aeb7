package imagetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
	vapi "github.com/vigilarc/vigil/ui/api"
)

// Figures of the test.
const (
	// formTimeout bounds the wait for the three containers to form the
	// cluster, each a voter.
	formTimeout = 90 * time.Second
	// devices is how many devices publish alarms; each uses a node of its
	// own to begin with (device i: node i mod 3).
	devices = 6
	// alarmsPerDevice is how many alarms each raises: under the broker's
	// burst of 20, so that no alarm meets the rate limit.
	alarmsPerDevice = 14
	// alarmEvery is the pause between two alarms of one device.
	alarmEvery = 2 * time.Second
	// killAfter is when, from the load's start, the leader's container is
	// killed; downFor how long it stays down before docker start.
	killAfter = 6 * time.Second
	downFor   = 8 * time.Second
	// settleTimeout bounds the wait for the three nodes to agree after
	// the load.
	settleTimeout = 60 * time.Second
	// devicePrefix begins the test devices' IDs.
	devicePrefix = "img-d"
)

// TestImage_ComposeClusterKeepsEveryAckedAlarmThroughAKill sets up the
// three-node compose cluster from the image as docs/install.md tells IT
// to, provisions devices through the REST API, and has them publish alarms
// over MQTT over TLS while the leader's container is killed (docker kill)
// and started again (docker start). Afterwards every alarm a node
// PUBACKed is on every node exactly once, raised once, and the three
// nodes' state hashes agree.
func TestImage_ComposeClusterKeepsEveryAckedAlarmThroughAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: runs three containers")
	}
	image := os.Getenv("VIGIL_IMAGE")
	if image == "" {
		t.Skip("set VIGIL_IMAGE to an image built by make image, or run make image-test")
	}
	p := newProject(t, image)
	if _, err := p.docker("image", "inspect", image); err != nil {
		t.Fatalf("image %s is not on this host: make image builds it\n%v", image, err)
	}
	start := time.Now()

	// The first start, as docs/install.md says: init on node1's volume,
	// then up with its join token.
	initOut := p.mustCompose("run", "--rm", "node1", "init", "--expect", "3")
	token, fingerprint := parseInit(t, initOut)
	p.env = append(p.env, "VIGIL_JOIN_TOKEN="+token)
	p.mustCompose("up", "-d")

	// An admin API token, made inside node1's container as the node's
	// user, with the node's setup token (docs/install.md, "API tokens").
	var apiToken string
	clustertest.PollUntil(t, formTimeout, "vigil token create in node1's container", func() bool {
		out, err := p.compose("exec", "-T", "node1", "vigil", "token", "create", "--name", "imagetest", "--role", "admin")
		apiToken = strings.TrimSpace(out)
		return err == nil && strings.HasPrefix(apiToken, "vgt_")
	})
	api := newNodeAPI(p, mustCA(t, p, fingerprint), apiToken)
	clustertest.PollUntil(t, formTimeout, "three voters in step, on every node", func() bool {
		for _, n := range nodes {
			var st cluster.Status
			if api.do(n, http.MethodGet, "/api/v1/cluster/status", nil, &st) != nil || !threeVoters(st) {
				return false
			}
		}
		return true
	})
	t.Logf("the cluster formed in %s", time.Since(start).Round(time.Second))

	devs := mustProvision(t, api)
	brokers := &brokerAddrs{p: p, m: map[string]string{}}
	for _, d := range devs {
		d.brokers = brokers
	}

	// The load, and the kill of the leader meanwhile.
	loadStart := time.Now()
	var wg sync.WaitGroup
	results := make([][]*sentAlarm, len(devs))
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.close()
			time.Sleep(time.Duration(i) * alarmEvery / devices) // spread the devices out
			for k := range alarmsPerDevice {
				results[i] = append(results[i], d.raise(fmt.Sprintf("%s-a%02d", d.id, k+1)))
				time.Sleep(alarmEvery)
			}
		}()
	}
	time.Sleep(killAfter)
	victim := leaderService(t, api)
	id := p.container(victim)
	if _, err := p.docker("kill", id); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("killed %s, the leader, %s into the load", victim, killedAt.Sub(loadStart).Round(100*time.Millisecond))
	time.Sleep(downFor)
	if _, err := p.docker("start", id); err != nil {
		t.Fatal(err)
	}
	api.forget(victim)
	brokers.forget(victim)
	t.Logf("started %s again after %s", victim, time.Since(killedAt).Round(100*time.Millisecond))
	wg.Wait()
	loadTook := time.Since(loadStart)

	var all []*sentAlarm
	for _, r := range results {
		all = append(all, r...)
	}
	acked, unacked, maxGap, maxWait := figures(all, loadStart)

	views := mustSettle(t, api)
	lost := checkAlarms(t, views, acked)
	t.Logf("image %s: %d alarms from %d devices in %s; %d acknowledged, %d never acknowledged, %d acknowledged alarms lost; "+
		"longest time without an acknowledgement %s, longest wait for one alarm's PUBACK %s; the nodes agree at applied index %d, state hash %.12s; %s in all",
		image, len(all), len(devs), loadTook.Round(100*time.Millisecond), len(acked), unacked, lost,
		maxGap.Round(10*time.Millisecond), maxWait.Round(10*time.Millisecond), views[0].state.AppliedIndex, views[0].state.Hash,
		time.Since(start).Round(time.Second))
	if unacked > 0 {
		t.Errorf("%d alarms were never acknowledged in %s of resending, though two of three nodes were up all along", unacked, alarmBudget)
	}
}

// parseInit returns the join token and the CA fingerprint that vigil init
// printed.
func parseInit(t *testing.T, out string) (token, fingerprint string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "vjt1_"):
			token = l
		case strings.HasSuffix(l, "SHA-256 fingerprint") && i+1 < len(lines):
			fingerprint = strings.TrimSpace(lines[i+1])
		}
	}
	if token == "" || fingerprint == "" {
		t.Fatalf("vigil init printed no join token or no fingerprint:\n%s", out)
	}
	return token, fingerprint
}

// threeVoters reports whether st shows three voters, all reachable, with
// a leader.
func threeVoters(st cluster.Status) bool {
	if st.LeaderID == "" || len(st.Members) != 3 {
		return false
	}
	for _, m := range st.Members {
		if !m.Voter || (!m.Self && !m.Reachable) {
			return false
		}
	}
	return true
}

// leaderService returns the service whose node leads the cluster.
func leaderService(t *testing.T, api *nodeAPI) string {
	t.Helper()
	for _, n := range nodes {
		var st cluster.Status
		if err := api.do(n, http.MethodGet, "/api/v1/cluster/status", nil, &st); err == nil && st.State == "Leader" {
			return n
		}
	}
	t.Fatal("no node says it leads")
	return ""
}

// mustProvision makes an organisation, a worker and the devices, with
// their secrets, through node1's API, as an integration would.
func mustProvision(t *testing.T, api *nodeAPI) []*device {
	t.Helper()
	api.mustPost(t, "node1", "/api/v1/organisations", vapi.OrganisationRequest{Command: vapi.Command{ID: "img-org"},
		Org: vapi.OrganisationBody{ID: "img", Name: "Container Trust"}}, nil)
	var devs []*device
	for i := range devices {
		w, id := fmt.Sprintf("img-w%d", i+1), fmt.Sprintf("%s%d", devicePrefix, i+1)
		api.mustPost(t, "node1", "/api/v1/workers", vapi.WorkerRequest{Command: vapi.Command{ID: "img-" + w},
			Worker: vapi.WorkerBody{ID: w, Name: fmt.Sprintf("Worker %d", i+1), OrgID: "img"}}, nil)
		api.mustPost(t, "node1", "/api/v1/devices", vapi.DeviceRequest{Command: vapi.Command{ID: "img-" + id},
			Device: vapi.DeviceBody{ID: id, Kind: monitoring.DevicePhoneApp, OrgID: "img", WorkerID: w}}, nil)
		var sec vapi.DeviceSecretResponse
		api.mustPost(t, "node1", "/api/v1/devices/"+id+"/secret", vapi.Command{ID: "img-sec-" + id}, &sec)
		if sec.Secret == "" {
			t.Fatalf("device %s got no secret", id)
		}
		devs = append(devs, &device{id: id, secret: sec.Secret, node: i % len(nodes), pool: api.http.Transport.(*http.Transport).TLSClientConfig.RootCAs})
	}
	return devs
}

// figures returns the acknowledged alarms, how many were never
// acknowledged, the longest time in the load without an acknowledgement
// (from its start to its last), and the longest wait for one PUBACK.
func figures(all []*sentAlarm, loadStart time.Time) (acked []*sentAlarm, unacked int, maxGap, maxWait time.Duration) {
	var times []time.Time
	for _, a := range all {
		if a.acked.IsZero() {
			unacked++
			continue
		}
		acked = append(acked, a)
		times = append(times, a.acked)
		maxWait = max(maxWait, a.acked.Sub(a.sent))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	prev := loadStart
	for _, at := range times {
		maxGap = max(maxGap, at.Sub(prev))
		prev = at
	}
	return acked, unacked, maxGap, maxWait
}

// nodeView is what one node holds at the end.
type nodeView struct {
	name     string
	state    vapi.DiagStateResponse
	commands map[string]monitoring.DiagCommand // the test devices' alarm commands, by command ID
	alarms   []monitoring.DiagAlarm            // the test devices' alarms
}

// mustSettle waits until the three nodes have applied the same entries,
// with the same state hash, and returns what each holds.
func mustSettle(t *testing.T, api *nodeAPI) []*nodeView {
	t.Helper()
	views := make([]*nodeView, len(nodes))
	var last string
	deadline := time.Now().Add(settleTimeout)
	for {
		agree := true
		for i, n := range nodes {
			v := &nodeView{name: n}
			if err := api.do(n, http.MethodGet, "/api/v1/diag/state", nil, &v.state); err != nil {
				last, agree = err.Error(), false
				break
			}
			views[i] = v
		}
		if agree {
			for _, v := range views[1:] {
				if v.state != (vapi.DiagStateResponse{NodeID: v.state.NodeID, AppliedIndex: views[0].state.AppliedIndex, Hash: views[0].state.Hash}) {
					agree = false
					last = fmt.Sprintf("%s at %d (%.12s), %s at %d (%.12s)", views[0].name, views[0].state.AppliedIndex, views[0].state.Hash,
						v.name, v.state.AppliedIndex, v.state.Hash)
				}
			}
		}
		if agree {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes do not agree after %s: %s", settleTimeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, v := range views {
		var cmds vapi.DiagCommandsResponse
		if err := api.do(v.name, http.MethodGet, "/api/v1/diag/commands?prefix="+raisePrefix(), nil, &cmds); err != nil {
			t.Fatal(err)
		}
		v.commands = map[string]monitoring.DiagCommand{}
		for _, c := range cmds.Commands {
			v.commands[c.ID] = c
		}
		var als vapi.DiagAlarmsResponse
		if err := api.do(v.name, http.MethodGet, "/api/v1/diag/alarms", nil, &als); err != nil {
			t.Fatal(err)
		}
		for _, a := range als.Alarms {
			if strings.HasPrefix(a.Alarm.DeviceID, devicePrefix) {
				v.alarms = append(v.alarms, a)
			}
		}
		if cmds.AppliedIndex != v.state.AppliedIndex || als.AppliedIndex != v.state.AppliedIndex {
			t.Fatalf("%s applied more after the nodes agreed (%d, then %d and %d): nothing should write now",
				v.name, v.state.AppliedIndex, cmds.AppliedIndex, als.AppliedIndex)
		}
	}
	return views
}

// raisePrefix begins the command IDs of the test devices' alarms: the
// Service's command type, then the broker's dev/<device>/<event ID>.
func raisePrefix() string { return monitoring.CmdRaiseAlarm.String() + "/dev/" + devicePrefix }

// reporter is the part of testing.T that checkAlarms reports through.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// checkAlarms checks that every acknowledged alarm is on every node
// exactly once, raised once, and that no node holds an alarm of the test
// devices that no applied alarm command made. It returns how many
// acknowledged alarms some node lacks.
func checkAlarms(t reporter, views []*nodeView, acked []*sentAlarm) (lost int) {
	t.Helper()
	missing := map[string]bool{}
	for _, v := range views {
		byID := map[string][]monitoring.DiagAlarm{}
		for _, a := range v.alarms {
			byID[a.Alarm.ID] = append(byID[a.Alarm.ID], a)
		}
		made := map[string]bool{}
		for _, c := range v.commands {
			var al monitoring.Alarm
			if c.Refused == "" && json.Unmarshal(c.Response, &al) == nil && al.ID != "" {
				made[al.ID] = true
			}
		}
		for _, a := range acked {
			c, ok := v.commands[monitoring.CmdRaiseAlarm.String()+"/dev/"+a.device+"/"+a.eventID]
			if !ok {
				missing[a.eventID] = true
				t.Errorf("%s: alarm %s of %s was acknowledged but is not recorded", v.name, a.eventID, a.device)
				continue
			}
			var al monitoring.Alarm
			if c.Refused != "" || json.Unmarshal(c.Response, &al) != nil || al.ID == "" {
				t.Errorf("%s: alarm %s of %s was acknowledged but refused: %q %s", v.name, a.eventID, a.device, c.Refused, c.Response)
				continue
			}
			switch got := byID[al.ID]; {
			case len(got) == 0:
				missing[a.eventID] = true
				t.Errorf("%s: alarm %s (event %s of %s) is not among the alarms", v.name, al.ID, a.eventID, a.device)
			case len(got) > 1 || got[0].Raised != 1:
				t.Errorf("%s: alarm %s (event %s of %s) is there %d times, raised %d times", v.name, al.ID, a.eventID, a.device, len(got), got[0].Raised)
			}
		}
		for id := range byID {
			if !made[id] {
				t.Errorf("%s: alarm %s of a test device was made by no alarm command of theirs", v.name, id)
			}
		}
		if len(byID) != len(made) {
			t.Errorf("%s holds %d alarms of the test devices, but applied %d of their alarm commands", v.name, len(byID), len(made))
		}
	}
	return len(missing)
}
