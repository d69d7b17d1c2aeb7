package chaos

// One vigil process in its namespace: started with ip netns exec (which
// execs vigil in place, so the process ID is vigil's and signals reach it
// directly), SIGKILLed, SIGSTOPped and SIGCONTed, started again.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/tools/chaos/powerfs"
)

// Ports of every node, on its own address.
const (
	ClusterPort = 7000
	HTTPPort    = 8080
	MQTTPort    = 1883
)

// exitTimeout is how long a process may take to vanish after SIGKILL.
const exitTimeout = 15 * time.Second

// node is one slot of the cluster: a namespace and an address, and the
// vigil process that runs there. A wipe replaces the process by a new
// member with a new ID and data directory in the same slot.
type node struct {
	slot    int
	name    string // n1, n2, n3
	ns      string // its namespace
	ip      string
	vigil   string // the executable
	id      string // the current member's node ID
	gen     int    // 0 for the first member of the slot, then one per replacement
	dataDir string // inside the disk's mount
	logPath string
	// diskOpts mount the node's disk: a powerfs whose power the harness
	// can cut, mounted for the whole run; disk is the current mount.
	diskOpts powerfs.Options
	disk     *powerfs.FS
	args     []string // of vigil serve, for the current member

	run    *procRun
	paused bool
}

// procRun is one run of the process.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's result, set before done closes
}

func (n *node) clusterAddr() string { return fmt.Sprintf("%s:%d", n.ip, ClusterPort) }
func (n *node) httpAddr() string    { return fmt.Sprintf("%s:%d", n.ip, HTTPPort) }
func (n *node) mqttAddr() string    { return fmt.Sprintf("%s:%d", n.ip, MQTTPort) }

// url is the node's HTTPS API: its address is not loopback, so it speaks
// HTTPS (http_tls auto) with its certificate from the cluster CA.
func (n *node) url() string { return "https://" + n.httpAddr() }

// configArgs are the flags that configure the node's current member, for
// vigil serve and vigil join alike.
func (n *node) configArgs() []string {
	return []string{
		"--data-dir", n.dataDir,
		"--node-id", n.id,
		"--cluster-addr", n.clusterAddr(),
		"--http-addr", n.httpAddr(),
		"--mqtt-addr", n.mqttAddr(),
		"--mqtt-ws-addr", "",
		"--log-level", "info",
	}
}

// serveArgs returns the arguments of vigil serve for the node's current
// member: form the cluster with bootstrap-expect (the first members), or,
// with none, run a member that joined with vigil join, which recorded the
// members to dial in its data directory (a replacement).
func (n *node) serveArgs(bootstrap []string) []string {
	args := append([]string{"serve"}, n.configArgs()...)
	if len(bootstrap) > 0 {
		args = append(args, "--bootstrap-expect", strings.Join(bootstrap, ","))
	}
	return args
}

// start starts the process in its namespace, its output appended to its log.
func (n *node) start() error {
	if n.running() {
		return fmt.Errorf("%s is already running", n.name)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== chaos %s: starting %s (%s) in %s: %s\n", time.Now().Format(time.RFC3339Nano), n.name, n.id, n.ns, strings.Join(n.args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.ns, n.vigil}, n.args...)...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The nodes die with the harness, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", n.name, err)
	}
	r := &procRun{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	n.run, n.paused = r, false
	return nil
}

// running reports whether the process runs (paused counts as running).
func (n *node) running() bool {
	if n.run == nil {
		return false
	}
	select {
	case <-n.run.done:
		return false
	default:
		return true
	}
}

// exitState describes how the last run ended, for messages.
func (n *node) exitState() string {
	if n.run == nil {
		return "never started"
	}
	select {
	case <-n.run.done:
		return fmt.Sprintf("%v (%v)", n.run.cmd.ProcessState, n.run.err)
	default:
		return "running"
	}
}

// kill sends SIGKILL and waits until the process has gone.
func (n *node) kill() error {
	if !n.running() {
		return nil
	}
	_ = n.run.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.run.done:
		n.paused = false
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("%s (pid %d) still runs %s after SIGKILL", n.name, n.run.cmd.Process.Pid, exitTimeout)
	}
}

// pause sends SIGSTOP.
func (n *node) pause() error {
	if !n.running() {
		return fmt.Errorf("%s is not running: %s", n.name, n.exitState())
	}
	if err := n.run.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.paused = true
	return nil
}

// resume sends SIGCONT.
func (n *node) resume() error {
	if !n.running() {
		return fmt.Errorf("%s is not running: %s", n.name, n.exitState())
	}
	if err := n.run.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.paused = false
	return nil
}

// wipe removes the data directory, durably: a new disk; the process must
// not run.
func (n *node) wipe() error {
	if n.running() {
		return errors.New("cannot wipe the data of a running node")
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	return syncPath(n.diskOpts.Mountpoint)
}

// plainDisks is set when there is no FUSE: the nodes' disks are then plain
// directories, and mountDisk only makes them.
var plainDisks bool

// mountDisk mounts the node's disk, taking whatever it holds as durable.
func (n *node) mountDisk() error {
	if n.disk != nil {
		return fmt.Errorf("%s's disk is already mounted", n.name)
	}
	if plainDisks {
		return os.MkdirAll(n.diskOpts.Mountpoint, 0o755)
	}
	d, err := powerfs.Mount(n.diskOpts)
	if err != nil {
		return fmt.Errorf("cannot mount %s's disk: %w", n.name, err)
	}
	n.disk = d
	return nil
}

// unmountDisk unmounts the node's disk in order, keeping what it holds;
// the process must not run.
func (n *node) unmountDisk() error {
	if n.disk == nil {
		return nil
	}
	d := n.disk
	n.disk = nil
	return d.Unmount()
}

// powerOff cuts the power of the node's disk: whatever was not synced is
// lost, and added to loss. Kill the process first; mountDisk powers the
// disk on again.
func (n *node) powerOff(loss *powerfs.Loss) error {
	if n.running() {
		return fmt.Errorf("cannot cut the power of %s's disk while it runs", n.name)
	}
	if n.disk == nil {
		return fmt.Errorf("%s's disk is not mounted", n.name)
	}
	d := n.disk
	n.disk = nil
	l, err := d.PowerOff()
	loss.Files += l.Files
	loss.Bytes += l.Bytes
	if err != nil {
		return fmt.Errorf("cannot cut the power of %s's disk: %w", n.name, err)
	}
	return nil
}

// syncTree syncs every file and directory under root, deepest first, the
// way a careful installer leaves a disk it provisioned.
func syncTree(root string) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		if err := syncPath(paths[i]); err != nil {
			return err
		}
	}
	return syncPath(filepath.Dir(root))
}

// syncPath fsyncs one file or directory.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// childEnv is this process's environment without VIGIL_ variables, which
// would override the flags the harness gives, and with the per-device
// alarm limit raised: after a fault a device sends what it held back, and
// a refusal by the limit (a rate_limited reply to a PUBACKed event) would
// read as a refused event. The limits are tested in broker/, not here.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, appliance.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return append(env,
		appliance.EnvName("broker.alarms_per_minute")+"=600",
		appliance.EnvName("broker.alarm_burst")+"=100")
}
