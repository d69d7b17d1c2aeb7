package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	vapi "github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
)

// Timeouts of the helpers, generous for a loaded two-core machine running
// other packages' tests at the same time.
const (
	// buildTimeout bounds go build of the vigil binary.
	buildTimeout = 5 * time.Minute
	// leaderTimeout bounds the wait for a leader after a start or a kill.
	leaderTimeout = 30 * time.Second
	// stopTimeout is how long a node may take to exit after SIGTERM.
	stopTimeout = 20 * time.Second
	// killTimeout is how long a node may take to vanish after SIGKILL.
	killTimeout = 10 * time.Second
	// pollInterval is how often a retry loop tries again.
	pollInterval = 25 * time.Millisecond
	// statusTimeout bounds one status or read request.
	statusTimeout = 5 * time.Second
	// logTailLines is how much of each node's log a failed test prints.
	logTailLines = 60
)

// vigilBuild is the binary built once for the whole package.
var vigilBuild struct {
	once sync.Once
	dir  string // temporary directory holding it, removed by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if vigilBuild.dir != "" {
		os.RemoveAll(vigilBuild.dir)
	}
	os.Exit(code)
}

// mustBuildVigil builds the vigil command (the module's root package) once
// per test binary and returns the executable's path.
func mustBuildVigil(t *testing.T) string {
	t.Helper()
	vigilBuild.once.Do(func() {
		vigilBuild.path, vigilBuild.err = buildVigil()
	})
	if vigilBuild.err != nil {
		t.Fatalf("cannot build vigil: %v", vigilBuild.err)
	}
	return vigilBuild.path
}

func buildVigil() (string, error) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("cannot find the go command: %w", err)
	}
	out, err := exec.Command(gocmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD is %q: not inside the vigil module", gomod)
	}
	dir, err := os.MkdirTemp("", "vigil-systemtest-")
	if err != nil {
		return "", err
	}
	vigilBuild.dir = dir
	bin := filepath.Join(dir, "vigil")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gocmd, "build", "-buildvcs=false", "-o", bin, "github.com/vigilarc/vigil")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// mustFreeAddrs returns n distinct loopback addresses whose ports were free
// a moment ago.
func mustFreeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot find a free port: %v", err)
		}
		defer ln.Close() // held until all are chosen, so that they differ
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// childEnv is this process's environment without VIGIL_ variables, which
// would otherwise override the flags the tests give, plus MQTT listeners
// on free ports (several nodes share one host), plus extra.
func childEnv(extra ...string) []string {
	env := []string{"VIGIL_BROKER_TCP_ADDR=127.0.0.1:0", "VIGIL_BROKER_WS_ADDR=127.0.0.1:0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, appliance.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// proc is one vigil process that may be started, killed and started again
// with the same arguments. Its stdout and stderr go to logPath, which keeps
// the output of every run.
type proc struct {
	t       *testing.T
	name    string
	bin     string
	args    []string
	dir     string // working directory; "" is the test's
	env     []string
	logPath string

	run *procRun // the current or last run; nil before the first start
}

// procRun is one run of a proc.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// start starts the process. It fails the test if the process is running.
func (p *proc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("%s is already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("cannot open the log of %s: %v", p.name, err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== systemtest %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), p.name, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir, cmd.Env = p.dir, p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("cannot start %s: %v", p.name, err)
	}
	r := &procRun{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.run = r
}

// running reports whether the process is running.
func (p *proc) running() bool {
	if p.run == nil {
		return false
	}
	select {
	case <-p.run.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.t.Helper()
	if !p.running() {
		return
	}
	_ = p.run.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.run.done:
	case <-time.After(killTimeout):
		p.t.Fatalf("%s (pid %d) still runs %s after SIGKILL", p.name, p.run.cmd.Process.Pid, killTimeout)
	}
}

// stop sends SIGTERM and fails the test unless the process exits with code
// 0 within stopTimeout; it kills the process if it has not exited by then.
func (p *proc) stop() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("%s is not running: %v", p.name, p.run.cmdState())
	}
	start := time.Now()
	_ = p.run.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.run.done:
	case <-time.After(stopTimeout):
		p.kill()
		p.t.Fatalf("%s did not exit within %s of SIGTERM; killed it", p.name, stopTimeout)
	}
	if code := p.run.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("%s exited with %v after SIGTERM, want exit code 0", p.name, p.run.cmdState())
		return
	}
	p.t.Logf("%s exited with code 0, %s after SIGTERM", p.name, time.Since(start).Round(time.Millisecond))
}

func (r *procRun) cmdState() string {
	select {
	case <-r.done:
		return fmt.Sprintf("%v (%v)", r.cmd.ProcessState, r.err)
	default:
		return "running"
	}
}

// logTail returns the last lines of the process's log, leaving out the
// successful request lines that would otherwise fill it.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, `msg="http request"`) && (strings.Contains(l, "status=201") || strings.Contains(l, "status=200")) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep[max(0, len(keep)-logTailLines):], "\n")
}

// dumpLogsOnFailure registers a cleanup that, if the test failed, kills
// the processes and prints the tail of each one's log. Register it after
// the processes' directories, so that it runs before they are removed.
func dumpLogsOnFailure(t *testing.T, procs ...*proc) {
	t.Helper()
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if !t.Failed() {
			return
		}
		for _, p := range procs {
			t.Logf("---- last lines of %s's log (%s), successful requests left out ----\n%s", p.name, p.logPath, p.logTail())
		}
	})
}

// api talks to the nodes' HTTP APIs. Every request carries a token: the
// API token set in token, else the setup token of the node at the
// request's address, read from the data directory registered for it
// (registerNode) at each request, since a node writes a new one when it
// starts.
type api struct {
	http  *http.Client
	token string
}

func newAPI(timeout time.Duration) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &api{http: &http.Client{Timeout: timeout, Transport: tr}}
}

func (a *api) close() { a.http.CloseIdleConnections() }

// nodeDataDirs maps the HTTP address of each node a test started to its
// data directory.
var nodeDataDirs sync.Map // string -> string

// registerNode records the data directory of the node at httpAddr, until
// the test ends.
func registerNode(t *testing.T, httpAddr, dataDir string) {
	nodeDataDirs.Store(httpAddr, dataDir)
	t.Cleanup(func() { nodeDataDirs.Delete(httpAddr) })
}

// authorise sets the Authorization header of req (see api).
func (a *api) authorise(req *http.Request) {
	tok := a.token
	if tok == "" {
		dir, ok := nodeDataDirs.Load(req.URL.Host)
		if !ok {
			return
		}
		b, err := os.ReadFile(filepath.Join(dir.(string), auth.SetupTokenFileName))
		if err != nil {
			return // not written yet: the node refuses, and the caller retries
		}
		tok = strings.TrimSpace(string(b))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
}

// getJSON decodes the 200 reply to GET url into v.
func (a *api) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	a.authorise(req)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// status returns the node's view of the cluster.
func (a *api) status(httpAddr string) (cluster.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var st cluster.Status
	err := a.getJSON(ctx, "http://"+httpAddr+"/api/v1/cluster/status", &st)
	return st, err
}

// records returns the node's diagnostic records, read locally.
func (a *api) records(httpAddr string) ([]monitoring.DiagRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var resp vapi.DiagRecordsResponse
	if err := a.getJSON(ctx, "http://"+httpAddr+"/api/v1/diag/records?consistency="+vapi.ConsistencyLocal, &resp); err != nil {
		return nil, err
	}
	if resp.Consistency != vapi.ConsistencyLocal {
		return nil, fmt.Errorf("read from %s has consistency %q, want %q", httpAddr, resp.Consistency, vapi.ConsistencyLocal)
	}
	return resp.Records, nil
}

// postRecord sends one diagnostic record command and returns the HTTP
// status with the decoded reply (for 201) or the error body. Status 0 with
// an error means there was no complete reply.
func (a *api) postRecord(ctx context.Context, httpAddr string, r vapi.DiagRecordRequest) (int, vapi.DiagRecordResponse, string, error) {
	var out vapi.DiagRecordResponse
	body, err := json.Marshal(r)
	if err != nil {
		return 0, out, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/api/v1/diag/records", bytes.NewReader(body))
	if err != nil {
		return 0, out, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	a.authorise(req)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, out, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		// As good as no reply: the node went down while answering.
		return 0, out, "", fmt.Errorf("cannot read the HTTP %d reply: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, out, string(bytes.TrimSpace(b)), nil
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return resp.StatusCode, out, string(b), fmt.Errorf("cannot decode 201 reply %q: %w", b, err)
	}
	return resp.StatusCode, out, "", nil
}

// testCluster is three vigil serve processes on loopback, formed with
// --bootstrap-expect, each with its own data directory and log.
type testCluster struct {
	t     *testing.T
	nodes []*proc
	http  []string // HTTP address of each node, by index
	mqtt  []string // MQTT TCP address of each node, by index, fixed across restarts
	api   *api
	// token is an admin API token made once the cluster formed: unlike a
	// node's setup token, it holds across restarts, on every node.
	token string
}

// mustStartCluster starts n nodes, with the VIGIL_ variables in env if
// any, and waits until they have formed one cluster with a leader that all
// of them agree on.
func mustStartCluster(t *testing.T, bin string, n int, env ...string) *testCluster {
	t.Helper()
	addrs := mustFreeAddrs(t, 3*n)
	clusterAddrs, httpAddrs, mqttAddrs := addrs[:n], addrs[n:2*n], addrs[2*n:]
	root := t.TempDir()
	c := &testCluster{t: t, http: httpAddrs, mqtt: mqttAddrs, api: newAPI(statusTimeout)}
	t.Cleanup(c.api.close)
	dirs := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("node%d", i+1)
		dirs[name] = filepath.Join(root, name)
	}
	appliancetest.Provision(t, dirs) // their trust, as vigil init and vigil join give it
	for i := range n {
		name := fmt.Sprintf("node%d", i+1)
		registerNode(t, httpAddrs[i], filepath.Join(root, name))
		c.nodes = append(c.nodes, &proc{
			t:    t,
			name: name,
			bin:  bin,
			args: []string{"serve",
				"--data-dir", filepath.Join(root, name),
				"--node-id", name,
				"--cluster-addr", clusterAddrs[i],
				"--http-addr", httpAddrs[i],
				"--mqtt-addr", mqttAddrs[i],
				"--bootstrap-expect", strings.Join(clusterAddrs, ","),
				"--log-level", "info",
			},
			env:     childEnv(env...),
			logPath: filepath.Join(root, name+".log"),
		})
	}
	dumpLogsOnFailure(t, c.nodes...)
	for _, p := range c.nodes {
		p.start()
	}
	leader := c.WaitForLeader()
	clustertest.PollUntil(t, leaderTimeout, fmt.Sprintf("%d voters on the leader", n), func() bool {
		c.mustAllRunning()
		st, err := c.api.status(c.http[leader])
		return err == nil && len(st.Members) == n && st.State == "Leader"
	})
	c.token = mustMakeToken(t, c.http[leader], "systemtest")
	c.api.token = c.token
	return c
}

// mustMakeToken makes an admin API token named name through the local
// setup API of the node at httpAddr (registerNode), as vigil token create
// does, and returns it.
func mustMakeToken(t *testing.T, httpAddr, name string) string {
	t.Helper()
	dir, ok := nodeDataDirs.Load(httpAddr)
	if !ok {
		t.Fatalf("no data directory registered for %s", httpAddr)
	}
	setup, err := auth.ReadSetupToken(dir.(string))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(console.SetupTokenRequest{Name: name, Role: monitoring.RoleAdmin})
	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+console.Prefix+"/setup/tokens", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+setup)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: requestTimeout}).Do(req)
	if err != nil {
		t.Fatalf("cannot make an API token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var made monitoring.NewAPIToken
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &made) != nil || made.Secret == "" {
		t.Fatalf("cannot make an API token: HTTP %d %s", resp.StatusCode, b)
	}
	return made.Secret
}

// mustAllRunning fails the test if a node that should run has exited.
func (c *testCluster) mustAllRunning(except ...int) {
	c.t.Helper()
	for i, p := range c.nodes {
		if p.run != nil && !p.running() && !contains(except, i) {
			c.t.Fatalf("%s exited unexpectedly: %s", p.name, p.run.cmdState())
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// statuses returns the status of each running node, by index; nil for a
// node that is down or does not answer.
func (c *testCluster) statuses() []*cluster.Status {
	out := make([]*cluster.Status, len(c.nodes))
	for i, p := range c.nodes {
		if !p.running() {
			continue
		}
		if st, err := c.api.status(c.http[i]); err == nil {
			out[i] = &st
		}
	}
	return out
}

// WaitForLeader waits until one running node is leader and every running
// node names it, and returns its index.
func (c *testCluster) WaitForLeader() int {
	c.t.Helper()
	leader := -1
	clustertest.PollUntil(c.t, leaderTimeout, "a leader that every running node agrees on", func() bool {
		leader = c.agreedLeader()
		return leader >= 0
	})
	return leader
}

func (c *testCluster) agreedLeader() int {
	leader, leaderID := -1, ""
	for i, st := range c.statuses() {
		if !c.nodes[i].running() {
			continue
		}
		switch {
		case st == nil, st.LeaderID == "":
			return -1
		case leaderID == "":
			leaderID = st.LeaderID
		case st.LeaderID != leaderID:
			return -1
		}
		if st.State == "Leader" {
			if st.NodeID != leaderID {
				return -1
			}
			leader = i
		}
	}
	return leader
}

// Leader returns the index of the leader, waiting for one.
func (c *testCluster) Leader() int { return c.WaitForLeader() }

// Followers returns the indexes of the running nodes that do not lead.
func (c *testCluster) Followers() []int {
	c.t.Helper()
	l := c.WaitForLeader()
	var out []int
	for i, p := range c.nodes {
		if i != l && p.running() {
			out = append(out, i)
		}
	}
	return out
}

// Kill stops node i at once with SIGKILL.
func (c *testCluster) Kill(i int) {
	c.t.Helper()
	c.nodes[i].kill()
}

// Restart starts node i again, on its data directory and ports.
func (c *testCluster) Restart(i int) {
	c.t.Helper()
	c.nodes[i].start()
}

// waitConverged waits until every node has applied the same index, at
// least min, and returns that index.
func (c *testCluster) waitConverged(timeout time.Duration, min uint64) uint64 {
	c.t.Helper()
	seen := make([]string, len(c.nodes)) // what each node said last
	defer func() {
		if c.t.Failed() {
			c.t.Logf("applied indexes last seen: %s", strings.Join(seen, ", "))
		}
	}()
	var applied uint64
	clustertest.PollUntil(c.t, timeout, fmt.Sprintf("every node to apply the same index, at least %d", min), func() bool {
		c.mustAllRunning()
		ok := true
		for i := range c.nodes {
			st, err := c.api.status(c.http[i])
			if err != nil {
				seen[i] = fmt.Sprintf("%s: %v", c.nodes[i].name, err)
				ok = false
				continue
			}
			seen[i] = fmt.Sprintf("%s: %d", c.nodes[i].name, st.AppliedIndex)
			if i == 0 {
				applied = st.AppliedIndex
			}
			ok = ok && st.AppliedIndex >= min && st.AppliedIndex == applied
		}
		return ok
	})
	return applied
}
