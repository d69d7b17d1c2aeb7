package discovery

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"

	"github.com/vigilarc/vigil/provisioning/discovery/netnstest"
)

// The tests across namespaces run this test binary inside them, in a role
// that helperEnv names, with a JSON argument in helperArgEnv.
const (
	helperEnv    = "VIGIL_DISCOVERY_HELPER"
	helperArgEnv = "VIGIL_DISCOVERY_ARG"
)

// rawAnnouncement is announced with zeroconf directly, bypassing the rules
// Advertise checks: what a stranger on the LAN may send.
type rawAnnouncement struct {
	Instance string
	Port     int
	TXT      []string
}

// browseResult is what the browsing helper prints.
type browseResult struct {
	Peers   []Peer
	Dropped int
}

// TestHelperProcess is not a test: it is this binary run by the tests
// below inside a namespace, in the role helperEnv names.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	if err := helper(role, []byte(os.Getenv(helperArgEnv))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helper plays a role. An announcer prints "ready", then obeys its input
// ("update <cluster> <state>"), and withdraws and exits at its end (or
// after two minutes, should its parent be gone).
func helper(role string, arg []byte) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	switch role {
	case "advertise":
		var a Announcement
		if err := json.Unmarshal(arg, &a); err != nil {
			return err
		}
		ad, err := Advertise(a, logger)
		if err != nil {
			return err
		}
		defer ad.Close()
		return obey(func(cmd []string) error {
			if len(cmd) != 3 || cmd[0] != "update" {
				return fmt.Errorf("unknown command %q", cmd)
			}
			return ad.Update(cmd[1], cmd[2])
		})
	case "advertise-raw":
		var r rawAnnouncement
		if err := json.Unmarshal(arg, &r); err != nil {
			return err
		}
		ips := addresses(mustInterfaces())
		s, err := zeroconf.RegisterProxy(r.Instance, Service, Domain, r.Port, r.Instance, ips, r.TXT, nil)
		if err != nil {
			return err
		}
		defer s.Shutdown()
		return obey(func(cmd []string) error { return fmt.Errorf("unknown command %q", cmd) })
	case "browse":
		var b struct {
			ClusterID string
			Wait      time.Duration
		}
		if err := json.Unmarshal(arg, &b); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.Wait)
		defer cancel()
		peers, dropped, err := browse(ctx, b.ClusterID, nil, logger)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(browseResult{Peers: peers, Dropped: dropped})
	}
	return fmt.Errorf("unknown role %q", role)
}

func mustInterfaces() []net.Interface {
	ifaces, err := interfaces(nil)
	if err != nil {
		panic(err)
	}
	return ifaces
}

// obey prints "ready", runs each line of input with do, answering "ok" or
// the error, and returns at the input's end.
func obey(do func(cmd []string) error) error {
	fmt.Println("ready")
	lines := make(chan string)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if err := do(strings.Fields(line)); err != nil {
				fmt.Println("error:", err)
			} else {
				fmt.Println("ok")
			}
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("no word from the parent for two minutes")
		}
	}
}

// announcer is a helper announcing in a namespace.
type announcer struct {
	in  io.WriteCloser
	out *bufio.Reader
	cmd *exec.Cmd
}

// helperCmd runs this binary in namespace i in role with arg, its errors
// and logs going to t's log.
func helperCmd(t *testing.T, nw *netnstest.Net, i int, role string, arg any) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(arg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := nw.Command(i, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperArgEnv+"="+string(b))
	cmd.Stderr = logWriter{t, fmt.Sprintf("%s in %d: ", role, i)}
	return cmd
}

// startAnnouncer starts an announcing helper in namespace i and waits for
// it to be ready; it is stopped when t ends.
func startAnnouncer(t *testing.T, nw *netnstest.Net, i int, role string, arg any) *announcer {
	t.Helper()
	cmd := helperCmd(t, nw, i, role, arg)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &announcer{in: in, out: bufio.NewReader(out), cmd: cmd}
	t.Cleanup(func() { a.stop(t) })
	a.expect(t, "ready")
	return a
}

func (a *announcer) expect(t *testing.T, want string) {
	t.Helper()
	line, err := a.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		t.Fatalf("announcer said %q (%v), want %q", line, err, want)
	}
}

func (a *announcer) update(t *testing.T, clusterID, state string) {
	t.Helper()
	fmt.Fprintf(a.in, "update %s %s\n", clusterID, state)
	a.expect(t, "ok")
}

// stop ends the input, so the helper withdraws its announcement and exits
// cleanly (a race the detector found would fail it); it is killed if it
// takes longer than ten seconds. Safe to call twice.
func (a *announcer) stop(t *testing.T) {
	t.Helper()
	if a.cmd.ProcessState != nil {
		return
	}
	a.in.Close()
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("announcer: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
		t.Errorf("announcer did not stop within 10s")
	}
}

// browseIn browses from namespace i for wait.
func browseIn(t *testing.T, nw *netnstest.Net, i int, clusterID string, wait time.Duration) browseResult {
	t.Helper()
	cmd := helperCmd(t, nw, i, "browse", map[string]any{"ClusterID": clusterID, "Wait": wait})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browsing in namespace %d: %v", i, err)
	}
	var r browseResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("browsing in namespace %d printed %q: %v", i, out, err)
	}
	return r
}

// browseInUntil browses from namespace i until ok holds.
func browseInUntil(t *testing.T, nw *netnstest.Net, i int, clusterID string, ok func(browseResult) bool) browseResult {
	t.Helper()
	var r browseResult
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
		if r = browseIn(t, nw, i, clusterID, 1500*time.Millisecond); ok(r) {
			return r
		}
	}
	t.Fatalf("after 20s, namespace %d found %+v", i, r)
	return r
}

type logWriter struct {
	t      *testing.T
	prefix string
}

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Three namespaces on one bridge, each its own host on a LAN: node a of
// the cluster in 0; in 1, node b of another cluster and two strangers
// whose announcements break the rules; the browser in 2.
func TestBrowse_AcrossNamespaces(t *testing.T) {
	nw := netnstest.New(t, 3)
	cluster := newClusterID(t)
	a := Announcement{ClusterID: cluster, NodeID: "node-a", Name: "vigil-a", State: StateMember, Port: 8443, ClusterPort: 7000}
	adA := startAnnouncer(t, nw, 0, "advertise", a)
	startAnnouncer(t, nw, 1, "advertise", Announcement{ClusterID: "other-cluster", NodeID: "node-b", State: StateMember, Port: 8443, ClusterPort: 7000})
	startAnnouncer(t, nw, 1, "advertise-raw", rawAnnouncement{Instance: "bad-1", Port: 8443,
		TXT: []string{"v=1", "node=node with spaces", "cluster=" + cluster, "state=member"}})
	startAnnouncer(t, nw, 1, "advertise-raw", rawAnnouncement{Instance: "bad-2", Port: 8443,
		TXT: []string{"v=1", "node=" + strings.Repeat("x", 200), "cluster=" + cluster, "state=member"}})

	start := time.Now()
	r := browseInUntil(t, nw, 2, cluster, func(r browseResult) bool { return len(r.Peers) > 0 && r.Dropped == 2 })
	t.Logf("namespace 2 found %+v in %v", r, time.Since(start).Round(time.Millisecond))
	if len(r.Peers) != 1 {
		t.Fatalf("browsing for the cluster found %+v, want node-a alone", r.Peers)
	}
	p := r.Peers[0]
	if p.NodeID != a.NodeID || p.ClusterID != cluster || p.Name != a.Name || p.State != a.State ||
		p.Port != a.Port || p.ClusterPort != a.ClusterPort {
		t.Errorf("found %+v for %+v", p, a)
	}
	if len(p.Addrs) != 1 || !p.Addrs[0].Equal(nw.IPs[0]) {
		t.Errorf("node-a's addresses are %v, want namespace 0's %v", p.Addrs, nw.IPs[0])
	}

	// Any cluster: node b too, the strangers still dropped.
	r = browseInUntil(t, nw, 2, "", func(r browseResult) bool { return len(r.Peers) == 2 && r.Dropped == 2 })
	if b := byNode(r.Peers)["node-b"]; b.ClusterID != "other-cluster" || len(b.Addrs) != 1 || !b.Addrs[0].Equal(nw.IPs[1]) {
		t.Errorf("found node-b as %+v, want cluster other-cluster at %v", b, nw.IPs[1])
	}

	// An update is seen; a withdrawn node is not.
	adA.update(t, cluster, StateJoining)
	browseInUntil(t, nw, 2, cluster, func(r browseResult) bool {
		return len(r.Peers) == 1 && r.Peers[0].State == StateJoining
	})
	adA.stop(t)
	browseInUntil(t, nw, 2, cluster, func(r browseResult) bool { return len(r.Peers) == 0 })
}
