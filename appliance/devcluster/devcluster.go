// Package devcluster is the vigil devcluster command: a three-node Vigil
// cluster on one machine, to develop against, to try the product or to
// train on it (make run). It is a development and evaluation tool, not part
// of the product's runtime: an appliance never runs it.
//
// It starts three real vigil serve processes on loopback. Each child is
// this same executable, with its own data directory, cluster port and HTTP
// port; they form one cluster with bootstrap-expect, exactly as three
// appliances would, with the trust devcluster gives their data
// directories on the first run (trust.go). With --demo (make run) it then provisions invented
// customers, workers and devices and runs the device simulator against the
// three brokers until Ctrl-C (demo.go in appliance/sim holds the data).
//
// It talks to the nodes only as any client does, over their HTTP API and
// their local set-up API, and so imports neither the appliance nor the
// cluster. The conventions it shares with the other vigil commands (how
// flags are parsed, how a command-line mistake is reported, log levels and
// loggers) come from the command line through Env.
package devcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// Defaults of vigil devcluster.
const (
	DefaultDir         = "./data/devcluster"
	DefaultClusterPort = 7001
	DefaultHTTPPort    = 8081
	DefaultMQTTPort    = 1883
	devNodes           = 3
	// devStopTimeout is how long devcluster waits for a child to stop after
	// SIGTERM before it kills it.
	devStopTimeout = 15 * time.Second
	// devStartGrace: a node that exits this soon after devcluster started
	// it failed to start (a port in use, a bad data directory), and
	// devcluster stops; later, the other two go on serving.
	devStartGrace = 10 * time.Second
	// maxDemoDevices bounds --demo-devices: a demo, not a load test.
	maxDemoDevices = 500
	// demoLeaderTimeout bounds the demo's wait for the cluster's first
	// leader.
	demoLeaderTimeout = time.Minute
	// demoSummaryEvery is how often the demo prints what its devices did.
	demoSummaryEvery = 30 * time.Second
)

// Env is what vigil devcluster needs from the vigil command line.
type Env struct {
	// Stdout and Stderr are the command's outputs; the nodes' output goes
	// to them too, each line prefixed with the node's name.
	Stdout, Stderr io.Writer
	// Stdin, if set, is read for the key that starts stopped nodes again
	// ("r" and Enter).
	Stdin io.Reader
	// ParseArgs parses the flags of fs in args, before, between or after
	// the positional arguments, and returns the positional ones. Its error
	// for a bad flag is the one UsageError returns; for -h, flag.ErrHelp.
	ParseArgs func(fs *flag.FlagSet, args []string) ([]string, error)
	// UsageError prints a command-line mistake and the usage of fs to fs's
	// output, and returns the error on which vigil exits with status 2.
	UsageError func(fs *flag.FlagSet, format string, a ...any) error
	// CheckLogLevel returns an error that says what is allowed when level
	// is not a log level of vigil serve.
	CheckLogLevel func(level string) error
	// NewLogger returns a text logger on w at the named level.
	NewLogger func(w io.Writer, level string) *slog.Logger
	// DefaultLogLevel is the default of --log-level, the nodes' log level.
	DefaultLogLevel string
	// EnvPrefix begins the environment variables that configure vigil
	// serve; the nodes do not inherit them, which would override the flags
	// devcluster gives each.
	EnvPrefix string
}

// Usage prints the help of vigil devcluster, its flags and their
// defaults, to w.
func Usage(w io.Writer, env Env) {
	fs, _ := devclusterFlags(w, env.DefaultLogLevel)
	fs.Usage()
}

type devclusterOptions struct {
	dir           string
	clusterPort   int
	httpPort      int
	mqttPort      int
	logLevel      string
	demo          bool
	demoDevices   int
	demoAlarmRate float64
	demoReset     bool
}

func devclusterFlags(out io.Writer, defaultLogLevel string) (*flag.FlagSet, *devclusterOptions) {
	o := &devclusterOptions{}
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.dir, "dir", DefaultDir, "`directory` that holds the three nodes' data directories")
	fs.IntVar(&o.clusterPort, "cluster-port", DefaultClusterPort, "cluster `port` of the first node; the others use the next two")
	fs.IntVar(&o.httpPort, "http-port", DefaultHTTPPort, "HTTP `port` of the first node; the others use the next two")
	fs.IntVar(&o.mqttPort, "mqtt-port", DefaultMQTTPort, "MQTT `port` of the first node; the others use the next two; 0 for any free ports")
	fs.StringVar(&o.logLevel, "log-level", defaultLogLevel, "log level of the nodes: debug, info, warn or error (warn with --demo unless given)")
	fs.BoolVar(&o.demo, "demo", false, "once the cluster is up, provision demo customers, workers and devices and run the device simulator (make run)")
	fs.IntVar(&o.demoDevices, "demo-devices", sim.DefaultDemoDevices, "number of simulated `devices` with --demo")
	fs.Float64Var(&o.demoAlarmRate, "demo-alarm-rate", sim.DefaultDemoAlarmRate, "random alarms per device per `hour` with --demo")
	fs.BoolVar(&o.demoReset, "demo-reset", false, "with --demo, make new console passwords, API token and device secrets and PINs instead of keeping the last run's")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil devcluster [flags]

Runs a three-node Vigil cluster on 127.0.0.1 for development: three vigil
serve processes, each with its own data directory under --dir, forming one
cluster with bootstrap-expect. On the first run it makes the cluster's CA
and each node's certificate (<data dir>/tls), as vigil init and vigil join
would. Their logs are prefixed with the node name. Ctrl-C stops all three
cleanly; data is kept for the next run. Delete --dir to start afresh.

With --demo, once the cluster has a leader, it makes an admin API token
(written to --dir/api-token.txt), creates three invented customers
(community nursing, housing, social care) with workers, PINs and devices
through the API, and simulates the devices on the three brokers: sessions,
check-ins, heartbeats, locations and occasional alarms (see docs/sim.md). It
prints the API URLs to watch; the device credentials are written to
--dir/demo-credentials.json, the console accounts to
--dir/console-accounts.txt. Ctrl-C stops the simulator, then the nodes.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, o
}

// devNode is one child process.
type devNode struct {
	name        string
	dataDir     string
	clusterAddr string
	httpAddr    string
	mqttAddr    string
	args        []string // vigil serve's, to start it again
	cmd         *exec.Cmd
	done        chan struct{} // closed when this run of cmd exits
	err         error
}

// start starts the node's process (again), with the executable exe and
// env; exits receives the node when this run ends.
func (n *devNode) start(exe string, env []string, stdout, stderr io.Writer, exits chan<- *devNode) error {
	n.cmd = exec.Command(exe, n.args...)
	// The children ignore the terminal's Ctrl-C (their own process
	// group): devcluster stops them in order, and a second Ctrl-C still
	// reaches devcluster.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = env, stdout, stderr
	n.done, n.err = make(chan struct{}), nil
	if err := n.cmd.Start(); err != nil {
		close(n.done)
		return err
	}
	cmd, done := n.cmd, n.done
	go func() {
		err := cmd.Wait()
		n.err = err
		close(done)
		exits <- n
	}()
	return nil
}

func (n *devNode) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Command runs vigil devcluster with args (after "devcluster") until ctx
// ends, a node exits on its own or the demo fails, and then stops the
// nodes. It returns what the vigil command line reports: an error from
// env.UsageError or env.ParseArgs for a command-line mistake, flag.ErrHelp
// after -h, or why the cluster stopped early.
func Command(ctx context.Context, args []string, env Env) error {
	fs, o := devclusterFlags(env.Stderr, env.DefaultLogLevel)
	usageErr := env.UsageError
	pos, err := env.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if err := env.CheckLogLevel(o.logLevel); err != nil {
		return usageErr(fs, "--log-level: %v", err)
	}
	for name, p := range map[string]int{"--cluster-port": o.clusterPort, "--http-port": o.httpPort} {
		if p < 1 || p+devNodes-1 > 65535 {
			return usageErr(fs, "%s %d is not a port from 1 to %d", name, p, 65535-devNodes+1)
		}
	}
	if o.clusterPort < o.httpPort+devNodes && o.httpPort < o.clusterPort+devNodes {
		return usageErr(fs, "--cluster-port %d and --http-port %d ranges overlap", o.clusterPort, o.httpPort)
	}
	if o.mqttPort != 0 {
		if o.mqttPort < 1 || o.mqttPort+devNodes-1 > 65535 {
			return usageErr(fs, "--mqtt-port %d is not 0 or a port from 1 to %d", o.mqttPort, 65535-devNodes+1)
		}
		for name, p := range map[string]int{"--cluster-port": o.clusterPort, "--http-port": o.httpPort} {
			if o.mqttPort < p+devNodes && p < o.mqttPort+devNodes {
				return usageErr(fs, "--mqtt-port %d and %s %d ranges overlap", o.mqttPort, name, p)
			}
		}
	}
	switch {
	case o.demoDevices < 1 || o.demoDevices > maxDemoDevices:
		return usageErr(fs, "--demo-devices %d is not from 1 to %d", o.demoDevices, maxDemoDevices)
	case o.demoAlarmRate < 0:
		return usageErr(fs, "--demo-alarm-rate %g must not be negative", o.demoAlarmRate)
	}
	if o.demo && !flagGiven(fs, "log-level") {
		o.logLevel = "warn" // the demo's own lines would drown in request logs
	}
	var mqttPorts []int
	if o.mqttPort == 0 {
		// Chosen here rather than by each node, so that devcluster knows
		// them: it prints them and the demo's devices connect to them.
		if mqttPorts, err = freeLoopbackPorts(devNodes); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the vigil executable to start the nodes: %w", err)
	}

	nodes := make([]*devNode, devNodes)
	var peers []string
	for i := range nodes {
		n := &devNode{
			name:        fmt.Sprintf("node%d", i+1),
			clusterAddr: "127.0.0.1:" + strconv.Itoa(o.clusterPort+i),
			httpAddr:    "127.0.0.1:" + strconv.Itoa(o.httpPort+i),
			done:        make(chan struct{}),
		}
		if o.mqttPort != 0 {
			n.mqttAddr = "127.0.0.1:" + strconv.Itoa(o.mqttPort+i)
		} else {
			n.mqttAddr = "127.0.0.1:" + strconv.Itoa(mqttPorts[i])
		}
		n.dataDir = filepath.Join(o.dir, n.name)
		if err := os.MkdirAll(n.dataDir, 0o750); err != nil {
			return fmt.Errorf("cannot create data directory: %w", err)
		}
		nodes[i] = n
		peers = append(peers, n.clusterAddr)
	}
	made, err := ensureTrust(nodes, o.dir)
	if err != nil {
		return err
	}
	if made {
		fmt.Fprintf(env.Stdout, "vigil devcluster: made a cluster CA and the three nodes' certificates in each <data dir>/%s\n", provisioning.TrustDir)
	}

	var outMu sync.Mutex
	started := nodes[:0:0]
	childEnv := devEnv(os.Environ(), env.EnvPrefix)
	exits := make(chan *devNode, 2*devNodes)
	outs := map[*devNode][2]io.Writer{}
	for _, n := range nodes {
		n.args = []string{"serve",
			"--data-dir", n.dataDir,
			"--node-id", n.name,
			"--cluster-addr", n.clusterAddr,
			"--http-addr", n.httpAddr,
			"--mqtt-addr", n.mqttAddr,
			"--mqtt-ws-addr", "",
			"--bootstrap-expect", strings.Join(peers, ","),
			"--log-level", o.logLevel,
		}
		outs[n] = [2]io.Writer{&prefixWriter{mu: &outMu, w: env.Stdout, prefix: n.name + " | "},
			&prefixWriter{mu: &outMu, w: env.Stderr, prefix: n.name + " | "}}
		if err := n.start(exe, childEnv, outs[n][0], outs[n][1], exits); err != nil {
			stopDevNodes(started, env.Stderr)
			return fmt.Errorf("cannot start %s: %w", n.name, err)
		}
		started = append(started, n)
	}
	startedAt := time.Now()

	outMu.Lock()
	fmt.Fprintf(env.Stdout, "vigil devcluster: three nodes on loopback, data in %s\n", o.dir)
	for _, n := range nodes {
		fmt.Fprintf(env.Stdout, "  %s  api http://%s  mqtt %s  cluster %s  data %s  pid %d\n",
			n.name, n.httpAddr, n.mqttAddr, n.clusterAddr, n.dataDir, n.cmd.Process.Pid)
	}
	fmt.Fprintf(env.Stdout, "Status: %s status --data-dir %s   Stop: Ctrl-C\n", shellPath(exe), nodes[0].dataDir)
	fmt.Fprintf(env.Stdout, "A node that stops (try: kill -9 <pid>) leaves the other two serving. Start it again: type r and Enter, or kill -HUP %d\n", os.Getpid())
	outMu.Unlock()

	// The demo stops first on Ctrl-C: its devices drain their outboxes
	// while the brokers still run.
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	var demoDone chan error // nil without --demo: never ready
	if o.demo {
		demoDone = make(chan error, 1)
		d := &devDemo{o: o, nodes: nodes, out: &prefixWriter{mu: &outMu, w: env.Stdout, prefix: "demo  | "},
			logger: env.NewLogger(&prefixWriter{mu: &outMu, w: env.Stderr, prefix: "demo  | "}, "warn")}
		go func() { demoDone <- d.run(demoCtx) }()
	}

	// Run until Ctrl-C. A node that exits on its own in its first
	// seconds (a port in use, a bad data directory) stops everything: a
	// development cluster that never formed would only hide the problem.
	// One that exits later (killed, crashed) leaves the other two serving,
	// as an appliance's loss would; r and Enter, or SIGHUP, starts every
	// stopped node again. So does a demo that fails.
	restart := make(chan string, 1)
	if env.Stdin != nil {
		go readRestartKeys(env.Stdin, restart)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	restartStopped := func(why string) {
		outMu.Lock()
		defer outMu.Unlock()
		stopped := false
		for _, n := range nodes {
			if n.running() {
				continue
			}
			stopped = true
			if err := n.start(exe, childEnv, outs[n][0], outs[n][1], exits); err != nil {
				fmt.Fprintf(env.Stderr, "vigil devcluster: cannot start %s again: %v\n", n.name, err)
				continue
			}
			fmt.Fprintf(env.Stdout, "vigil devcluster: started %s again (%s), pid %d; it catches up from the others\n", n.name, why, n.cmd.Process.Pid)
		}
		if !stopped {
			fmt.Fprintln(env.Stdout, "vigil devcluster: every node is running")
		}
	}
	var failed *devNode
	var demoErr error
	demoOver := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case n := <-exits:
			if time.Since(startedAt) < devStartGrace {
				failed = n
				break loop
			}
			up := 0
			for _, m := range nodes {
				if m.running() {
					up++
				}
			}
			outMu.Lock()
			fmt.Fprintf(env.Stdout, "vigil devcluster: %s exited (%v); %d of %d nodes run", n.name, n.err, up, devNodes)
			if up*2 > devNodes {
				fmt.Fprintf(env.Stdout, ": the cluster keeps serving.")
			} else {
				fmt.Fprintf(env.Stdout, ": no majority, so nothing can be saved until a node is back.")
			}
			fmt.Fprintf(env.Stdout, " Start it again: type r and Enter, or kill -HUP %d\n", os.Getpid())
			outMu.Unlock()
		case k := <-restart:
			restartStopped("key " + k)
		case <-hup:
			restartStopped("SIGHUP")
		case demoErr = <-demoDone:
			demoOver = true
			break loop
		}
	}
	stopDemo()
	if demoDone != nil && !demoOver {
		demoErr = <-demoDone
	}
	stopDevNodes(nodes, env.Stderr)
	switch {
	case failed != nil:
		return fmt.Errorf("%s exited (%v); stopped the others", failed.name, failed.err)
	case demoErr != nil:
		return fmt.Errorf("demo: %w; stopped the nodes", demoErr)
	}
	fmt.Fprintln(env.Stdout, "vigil devcluster: all nodes stopped")
	return nil
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// freeLoopbackPorts returns n distinct loopback ports that were free a
// moment ago.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		defer ln.Close() // held until all are chosen, so that they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// devEnv drops the variables that begin with prefix (VIGIL_), which would
// otherwise override the flags devcluster gives each child.
func devEnv(env []string, prefix string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// shellPath is how to type the executable exe in the current directory:
// relative when it is below it ("./bin/vigil"), else as it is.
func shellPath(exe string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			return "./" + rel
		}
	}
	return exe
}

// readRestartKeys sends on restart each line of in that asks to start the
// stopped nodes again ("r"), until in ends.
func readRestartKeys(in io.Reader, restart chan<- string) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if k := strings.TrimSpace(sc.Text()); strings.EqualFold(k, "r") {
			select {
			case restart <- k:
			default:
			}
		}
	}
}

// stopDevNodes sends SIGTERM to every running node and waits, killing any
// that has not stopped after devStopTimeout. Nodes stop one after another,
// so each graceful close can hand leadership to a node still running.
func stopDevNodes(nodes []*devNode, errw io.Writer) {
	for _, n := range nodes {
		select {
		case <-n.done:
			continue
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(devStopTimeout):
			fmt.Fprintf(errw, "vigil devcluster: %s did not stop within %s; killing it\n", n.name, devStopTimeout)
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		var ee *exec.ExitError
		if n.err != nil && !errors.As(n.err, &ee) {
			fmt.Fprintf(errw, "vigil devcluster: %s: %v\n", n.name, n.err)
		}
	}
}

// prefixWriter writes each line with a prefix, whole lines at a time, so
// that the three nodes' output does not interleave mid-line.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// devDemo is the live demo of --demo: demo data through node1's API, then
// the simulator against the three brokers.
type devDemo struct {
	o      *devclusterOptions
	nodes  []*devNode
	out    io.Writer
	logger *slog.Logger // the simulator's
}

// run waits for a leader, provisions the demo and runs the simulator until
// ctx ends. It returns nil when ctx ended it.
func (d *devDemo) run(ctx context.Context) error {
	err := d.simulate(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *devDemo) simulate(ctx context.Context) error {
	api := "http://" + d.nodes[0].httpAddr
	if err := waitDevLeader(ctx, d.nodes[0]); err != nil {
		return err
	}
	run := strconv.FormatInt(time.Now().UnixMilli(), 36)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	// The token, the console's passwords and the devices' secrets and PINs
	// of an earlier run are kept, so that yesterday's commands still work,
	// unless --demo-reset: then new ones, and the old ones stop working.
	tokPath := filepath.Join(d.o.dir, "api-token.txt")
	credPath := filepath.Join(d.o.dir, "demo-credentials.json")
	token := ""
	if !d.o.demoReset {
		token = keptToken(ctx, api, tokPath)
	}
	if token == "" {
		var err error
		if token, err = createDemoToken(ctx, d.nodes[0].httpAddr, d.nodes[0].dataDir, tokPath, "devcluster-"+run); err != nil {
			return err
		}
	}
	var creds []sim.Credential
	if !d.o.demoReset {
		creds = keptCredentials(ctx, api, token, credPath, d.o.demoDevices)
	}
	if creds != nil {
		fmt.Fprintf(d.out, "reusing the %d demo devices, their secrets and PINs of the last run (%s; --demo-reset makes new ones)\n", len(creds), credPath)
	} else {
		fmt.Fprintf(d.out, "provisioning %d demo workers and devices through %s\n", d.o.demoDevices, api)
		var err error
		if creds, err = sim.ProvisionDemo(ctx, sim.API{URL: api, Token: token}, run, d.o.demoDevices, rng); err != nil {
			return err
		}
	}
	// Each broker checks secrets against its own node's state: wait until
	// every node has applied what node1 applied.
	if err := waitDevApplied(ctx, d.nodes); err != nil {
		return err
	}
	accPath := filepath.Join(d.o.dir, "console-accounts.txt")
	accounts, err := createDemoAccounts(ctx, d.nodes[0].httpAddr, d.nodes[0].dataDir, accPath, d.o.demoReset)
	if err != nil {
		return err
	}
	if err := sim.WriteCredentials(credPath, creds); err != nil {
		return err
	}
	var brokers []string
	for _, n := range d.nodes {
		brokers = append(brokers, n.mqttAddr)
	}
	cfg := sim.DemoConfig(brokers, creds, d.o.demoAlarmRate)
	cfg.Run, cfg.Seed = run, 1
	cfg.Logger = d.logger
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	var ports []string
	for _, n := range d.nodes {
		ports = append(ports, n.httpAddr[strings.LastIndexByte(n.httpAddr, ':')+1:])
	}
	fmt.Fprintf(d.out, "%d simulated lone workers (community nursing, housing, social care) on the brokers %s: "+
		"sessions, check-ins, heartbeats, locations and about %g alarms per device per hour\n",
		len(creds), strings.Join(brokers, ", "), d.o.demoAlarmRate)
	fmt.Fprintf(d.out, "the API needs a token: an admin one is in %s (TOKEN=$(cat %s))\n", tokPath, tokPath)
	for _, l := range []struct{ what, path string }{
		{"open alarms", "/api/v1/alarms"},
		{"running sessions", "/api/v1/sessions"},
		{"workers", "/api/v1/workers"},
		{"devices", "/api/v1/devices"},
		{"an alarm and its timeline", "/api/v1/alarms/<alarm id>"},
	} {
		fmt.Fprintf(d.out, "  %-26s curl -s -H \"Authorization: Bearer $TOKEN\" %s%s\n", l.what+":", api, l.path)
	}
	fmt.Fprintf(d.out, "  (any node answers: ports %s)\n", strings.Join(ports, ", "))
	fmt.Fprintf(d.out, "operator console: %s/ui/ (any node)\n", api)
	for _, a := range accounts {
		fmt.Fprintf(d.out, "  sign in as %-10s password %s  (%s)\n", a.ID, a.Password, a.Role)
	}
	fmt.Fprintf(d.out, "  the same accounts:         %s\n", accPath)
	fmt.Fprintf(d.out, "  device secrets and PINs:   %s\n", credPath)
	fmt.Fprintf(d.out, "  admin API token:           %s\n", tokPath)

	stop := make(chan struct{})
	ticks := make(chan struct{})
	go func() {
		defer close(ticks)
		t := time.NewTicker(demoSummaryEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sim.WriteSummary(d.out, s.Summary())
			}
		}
	}()
	err = s.Run(ctx)
	close(stop)
	<-ticks
	fmt.Fprintln(d.out, "simulator stopped")
	sim.WriteSummary(d.out, s.Summary())
	return err
}

// keptToken returns the API token an earlier run wrote to path if the
// cluster still takes it, else "".
func keptToken(ctx context.Context, api, path string) string {
	b, err := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	if err != nil || tok == "" {
		return ""
	}
	var st ui.ClusterStatus
	if getStatus(ctx, &http.Client{Timeout: 5 * time.Second}, api, tok, &st) != nil {
		return ""
	}
	return tok
}

// keptCredentials returns the demo devices' credentials an earlier run
// wrote to path, if there are n of them and the cluster still knows every
// device, else nil.
func keptCredentials(ctx context.Context, api, token, path string, n int) []sim.Credential {
	creds, err := sim.ReadCredentials(path)
	if err != nil || len(creds) != n {
		return nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, c := range creds {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/devices/"+c.DeviceID, nil)
		if err != nil {
			return nil
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil
		}
	}
	return creds
}

// waitDevLeader waits until node n knows a leader.
func waitDevLeader(ctx context.Context, n *devNode) error {
	return pollDevStatus(ctx, n, "a leader", func(st ui.ClusterStatus) bool { return st.LeaderID != "" })
}

// waitDevApplied waits until every node has applied the index the first
// one has applied.
func waitDevApplied(ctx context.Context, nodes []*devNode) error {
	var index uint64
	err := pollDevStatus(ctx, nodes[0], "node1's status", func(st ui.ClusterStatus) bool {
		index = st.AppliedIndex
		return true
	})
	for _, n := range nodes[1:] {
		if err != nil {
			return err
		}
		err = pollDevStatus(ctx, n, fmt.Sprintf("%s to apply index %d", n.name, index),
			func(st ui.ClusterStatus) bool { return st.AppliedIndex >= index })
	}
	return err
}

// pollDevStatus asks node n for its status until cond holds, for at most
// demoLeaderTimeout. It authorises itself with the node's setup token,
// which works before the cluster has a leader to replicate an API token.
func pollDevStatus(ctx context.Context, n *devNode, what string, cond func(ui.ClusterStatus) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(demoLeaderTimeout)
	for {
		var st ui.ClusterStatus
		tok, err := auth.ReadSetupToken(n.dataDir) // written anew when the node starts
		if err == nil {
			err = getStatus(ctx, client, "http://"+n.httpAddr, tok, &st)
		}
		if err == nil && cond(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s (last error: %v)", demoLeaderTimeout, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getStatus reads the status of the node whose HTTP API is at base
// (GET /api/v1/cluster/status) into st, authorised by token.
func getStatus(ctx context.Context, client *http.Client, base, token string, st *ui.ClusterStatus) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/cluster/status", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("cannot read reply from %s: %w", base, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("%s (HTTP %d from %s)", msg, resp.StatusCode, base)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("cannot decode status from %s: %w", base, err)
	}
	return nil
}
