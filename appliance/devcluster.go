package appliance

// vigil devcluster: three real vigil serve processes on loopback, for
// development and for make run. Each child is this same executable, with its
// own data directory, cluster port and HTTP port; they form one cluster with
// bootstrap-expect, exactly as three appliances would.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of vigil devcluster.
const (
	DefaultDevDir         = "./data/devcluster"
	DefaultDevClusterPort = 7001
	DefaultDevHTTPPort    = 8081
	DefaultDevMQTTPort    = 1883
	devNodes              = 3
	// devStopTimeout is how long devcluster waits for a child to stop after
	// SIGTERM before it kills it.
	devStopTimeout = 15 * time.Second
)

type devclusterOptions struct {
	dir         string
	clusterPort int
	httpPort    int
	mqttPort    int
	logLevel    string
}

func devclusterFlags(out io.Writer) (*flag.FlagSet, *devclusterOptions) {
	o := &devclusterOptions{}
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.dir, "dir", DefaultDevDir, "`directory` that holds the three nodes' data directories")
	fs.IntVar(&o.clusterPort, "cluster-port", DefaultDevClusterPort, "cluster `port` of the first node; the others use the next two")
	fs.IntVar(&o.httpPort, "http-port", DefaultDevHTTPPort, "HTTP `port` of the first node; the others use the next two")
	fs.IntVar(&o.mqttPort, "mqtt-port", DefaultDevMQTTPort, "MQTT `port` of the first node; the others use the next two; 0 for any free ports")
	fs.StringVar(&o.logLevel, "log-level", DefaultLogLevel, "log level of the nodes: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: vigil devcluster [flags]

Runs a three-node Vigil cluster on 127.0.0.1 for development: three vigil
serve processes, each with its own data directory under --dir, forming one
cluster with bootstrap-expect. Their logs are prefixed with the node name.
Ctrl-C stops all three cleanly; data is kept for the next run. Delete --dir
to start afresh.

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
	cmd         *exec.Cmd
	done        chan struct{}
	err         error
}

func (c *cli) devcluster(ctx context.Context, args []string) error {
	fs, o := devclusterFlags(c.stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if _, err := parseLevel(o.logLevel); err != nil {
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
			mqttAddr:    "127.0.0.1:0",
			done:        make(chan struct{}),
		}
		if o.mqttPort != 0 {
			n.mqttAddr = "127.0.0.1:" + strconv.Itoa(o.mqttPort+i)
		}
		n.dataDir = filepath.Join(o.dir, n.name)
		if err := os.MkdirAll(n.dataDir, 0o750); err != nil {
			return fmt.Errorf("cannot create data directory: %w", err)
		}
		nodes[i] = n
		peers = append(peers, n.clusterAddr)
	}

	var outMu sync.Mutex
	started := nodes[:0:0]
	for _, n := range nodes {
		n.cmd = exec.Command(exe, "serve",
			"--data-dir", n.dataDir,
			"--node-id", n.name,
			"--cluster-addr", n.clusterAddr,
			"--http-addr", n.httpAddr,
			"--mqtt-addr", n.mqttAddr,
			"--mqtt-ws-addr", "",
			"--bootstrap-expect", strings.Join(peers, ","),
			"--log-level", o.logLevel,
		)
		// The children ignore the terminal's Ctrl-C (their own process
		// group): devcluster stops them in order, and a second Ctrl-C
		// still reaches devcluster.
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		n.cmd.Env = devEnv(os.Environ())
		n.cmd.Stdout = &prefixWriter{mu: &outMu, w: c.stdout, prefix: n.name + " | "}
		n.cmd.Stderr = &prefixWriter{mu: &outMu, w: c.stderr, prefix: n.name + " | "}
		if err := n.cmd.Start(); err != nil {
			stopDevNodes(started, c.stderr)
			return fmt.Errorf("cannot start %s: %w", n.name, err)
		}
		go func() {
			n.err = n.cmd.Wait()
			close(n.done)
		}()
		started = append(started, n)
	}

	outMu.Lock()
	fmt.Fprintf(c.stdout, "vigil devcluster: three nodes on loopback, data in %s\n", o.dir)
	for _, n := range nodes {
		fmt.Fprintf(c.stdout, "  %s  api http://%s  cluster %s  data %s  pid %d\n",
			n.name, n.httpAddr, n.clusterAddr, n.dataDir, n.cmd.Process.Pid)
	}
	fmt.Fprintf(c.stdout, "Status: vigil status --addr http://%s   Stop: Ctrl-C\n", nodes[0].httpAddr)
	outMu.Unlock()

	// Run until Ctrl-C, or until a node exits on its own (a port in use, a
	// bad data directory): a development cluster with a dead node would
	// only hide the problem.
	var failed *devNode
	select {
	case <-ctx.Done():
	case failed = <-firstDone(nodes):
	}
	stopDevNodes(nodes, c.stderr)
	if failed != nil {
		return fmt.Errorf("%s exited (%v); stopped the others", failed.name, failed.err)
	}
	fmt.Fprintln(c.stdout, "vigil devcluster: all nodes stopped")
	return nil
}

// devEnv drops VIGIL_ variables, which would otherwise override the flags
// devcluster gives each child.
func devEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// firstDone returns a channel that receives the first node to exit.
func firstDone(nodes []*devNode) <-chan *devNode {
	ch := make(chan *devNode, len(nodes))
	for _, n := range nodes {
		go func() {
			<-n.done
			ch <- n
		}()
	}
	return ch
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
