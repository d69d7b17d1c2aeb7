package systemtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"
)

// mustFreePortRun returns a first port p such that p..p+n-1 were all free a
// moment ago (vigil devcluster takes consecutive ports). They are chosen
// below Linux's ephemeral range (32768-60999): there, any outgoing
// connection of another test could take one between this check and the
// node's bind, which made the test fail now and then on a busy machine.
func mustFreePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(12000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	t.Fatalf("cannot find %d consecutive free ports", n)
	return 0
}

// TestDevcluster_RunsThreeNodesAndStopsOnInterrupt runs what make run runs:
// vigil devcluster must start three processes that form one cluster; a
// node SIGKILLed leaves the other two serving and SIGHUP starts it again;
// and Ctrl-C (SIGINT) must stop all three cleanly.
func TestDevcluster_RunsThreeNodesAndStopsOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs it")
	}
	bin := mustBuildVigil(t)
	base := mustFreePortRun(t, 6)
	clusterPort, httpPort := base, base+3
	dir := t.TempDir()
	started := time.Now()
	p, a := startDevcluster(t, bin, dir, "--log-level", "warn",
		"--cluster-port", strconv.Itoa(clusterPort), "--http-port", strconv.Itoa(httpPort), "--mqtt-port", "0")
	httpAddrs := devclusterHTTPAddrs(httpPort)
	clustertest.PollUntil(t, leaderTimeout, "three nodes agreeing on a leader", func() bool {
		if !p.running() {
			t.Fatalf("vigil devcluster exited: %s", p.run.cmdState())
		}
		leader := ""
		for _, h := range httpAddrs {
			st, err := a.status(h)
			if err != nil || st.LeaderID == "" || len(st.Members) != 3 || (leader != "" && st.LeaderID != leader) {
				return false
			}
			leader = st.LeaderID
		}
		return true
	})
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("node%d", i+1), "node-id")); err != nil {
			t.Errorf("node%d has no data directory of its own: %v", i+1, err)
		}
	}
	log, _ := os.ReadFile(p.logPath)
	for i, h := range httpAddrs {
		if !strings.Contains(string(log), "http://"+h) {
			t.Errorf("devcluster did not print where node%d is (http://%s):\n%s", i+1, h, log)
		}
	}

	// A node killed after the start leaves the other two serving; SIGHUP
	// starts it again, and it rejoins.
	if wait := time.Until(started.Add(12 * time.Second)); wait > 0 {
		time.Sleep(wait) // past devcluster's start-up grace, when an exit means a node failed to start
	}
	pid := nodePID(t, string(log), "node3")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill node3 (pid %d): %v", pid, err)
	}
	clustertest.PollUntil(t, leaderTimeout, "devcluster to say node3 exited and the cluster keeps serving", func() bool {
		if !p.running() {
			t.Fatalf("vigil devcluster exited when node3 was killed: %s", p.run.cmdState())
		}
		b, _ := os.ReadFile(p.logPath)
		return strings.Contains(string(b), "node3 exited") && strings.Contains(string(b), "the cluster keeps serving")
	})
	clustertest.PollUntil(t, leaderTimeout, "node1 and node2 agreeing on a leader without node3", func() bool {
		st1, err1 := a.status(httpAddrs[0])
		st2, err2 := a.status(httpAddrs[1])
		return err1 == nil && err2 == nil && st1.LeaderID != "" && st1.LeaderID != "node3" && st1.LeaderID == st2.LeaderID
	})
	if err := p.run.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, leaderTimeout, "node3 started again and back in the cluster", func() bool {
		st, err := a.status(httpAddrs[2])
		return err == nil && st.LeaderID != "" && len(st.Members) == 3
	})
	if b, _ := os.ReadFile(p.logPath); !strings.Contains(string(b), "started node3 again (SIGHUP)") {
		t.Errorf("devcluster did not say it started node3 again:\n%s", b)
	}

	log = interruptDevcluster(t, p, a, httpAddrs)
	if !strings.Contains(string(log), "all nodes stopped") {
		t.Errorf("devcluster did not report that all nodes stopped:\n%s", log)
	}
}

// nodePID returns the pid devcluster printed for node name in log.
func nodePID(t *testing.T, log, name string) int {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == name && f[len(f)-2] == "pid" {
			pid, err := strconv.Atoi(f[len(f)-1])
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("devcluster printed no pid for %s:\n%s", name, log)
	return 0
}

// startDevcluster starts vigil devcluster --dir dir with args, its log
// dumped if the test fails, and returns it with an API client.
func startDevcluster(t *testing.T, bin, dir string, args ...string) (*proc, *api) {
	t.Helper()
	p := &proc{
		t:       t,
		name:    "devcluster",
		bin:     bin,
		args:    append([]string{"devcluster", "--dir", dir}, args...),
		env:     childEnv(),
		logPath: filepath.Join(t.TempDir(), "devcluster.log"),
	}
	a := newAPI(statusTimeout)
	t.Cleanup(a.close)
	for i, h := range devclusterHTTPAddrs(httpPortOf(args)) {
		registerNode(t, h, filepath.Join(dir, fmt.Sprintf("node%d", i+1)))
	}
	dumpLogsOnFailure(t, p)
	p.start()
	return p, a
}

// httpPortOf returns the value of --http-port in args.
func httpPortOf(args []string) int {
	for i, a := range args {
		if a == "--http-port" && i+1 < len(args) {
			p, _ := strconv.Atoi(args[i+1])
			return p
		}
	}
	return 0
}

// devclusterHTTPAddrs returns the HTTP addresses of devcluster's three
// nodes, the first at httpPort.
func devclusterHTTPAddrs(httpPort int) []string {
	httpAddrs := make([]string, 3)
	for i := range httpAddrs {
		httpAddrs[i] = "127.0.0.1:" + strconv.Itoa(httpPort+i)
	}
	return httpAddrs
}

// interruptDevcluster sends p SIGINT (Ctrl-C), expects it to exit with
// code 0 soon and no node to answer at httpAddrs afterwards, and returns
// its log.
func interruptDevcluster(t *testing.T, p *proc, a *api, httpAddrs []string) []byte {
	t.Helper()
	name := "devcluster"
	if slices.Contains(p.args, "--demo") {
		name += " --demo"
	}
	start := time.Now()
	_ = p.run.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.run.done:
	case <-time.After(3 * stopTimeout):
		t.Fatalf("%s did not exit within %s of SIGINT", name, 3*stopTimeout)
	}
	if code := p.run.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited with %s after SIGINT, want 0", name, p.run.cmdState())
	}
	t.Logf("%s stopped %s after SIGINT", name, time.Since(start).Round(time.Millisecond))
	log, _ := os.ReadFile(p.logPath)
	for i, h := range httpAddrs {
		if _, err := a.status(h); err == nil {
			t.Errorf("node%d still answers at %s after %s exited", i+1, h, name)
		}
	}
	return log
}
