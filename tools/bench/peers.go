package main

// The peers a user would pick instead of Vigil, run on loopback by the
// bench: a Mosquitto broker (QoS 1, no persistence: the floor for broker
// overhead) and a three-member etcd cluster (one put per alarm, each
// committed on a quorum's disks: the nearest peer with the same
// durability). make bench installs both from Debian's packages when they
// are missing (tools/bench/peers.sh).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// peerDirs are searched for the peers' binaries besides $PATH: Debian
// installs mosquitto in /usr/sbin, which is not on an ordinary user's
// $PATH.
var peerDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

// findBinary returns the path of the executable name, from $PATH or
// peerDirs.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range peerDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s on $PATH or in %s (make bench installs it: apt-get install %s)", name, strings.Join(peerDirs, ", "), debianPackage[name])
}

// debianPackage names the package that holds each peer's binary.
var debianPackage = map[string]string{"mosquitto": "mosquitto", "etcd": "etcd-server"}

// binaryVersion returns the first line of what bin prints for args.
func binaryVersion(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// peerVersion returns name and the version number in a peer's version
// line ("mosquitto version 2.0.11", "etcd Version: 3.4.23").
func peerVersion(name, line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return name + " (version unknown)"
	}
	return name + " " + f[len(f)-1]
}

// proc is a process the bench starts and stops: a peer, or a Vigil node
// (node embeds it).
type proc struct {
	name    string
	logPath string // the process's stderr and stdout
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	killed  bool          // the bench killed or stopped it on purpose
}

// startProc starts bin with args, its output appended to logPath; should
// the bench die, the kernel stops it.
func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, logPath: logPath}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.launch(cmd); err != nil {
		return nil, err
	}
	return p, nil
}

// launch starts cmd as p's process (again, after it exited), its output
// appended to p's log, in its own process group so that a Ctrl-C at the
// terminal reaches only the bench, which then stops it.
func (p *proc) launch(cmd *exec.Cmd) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open %s's log: %w", p.name, err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s (%s): %w", p.name, cmd.Path, err)
	}
	p.cmd, p.done, p.killed = cmd, make(chan struct{}), false
	done := p.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return nil
}

func (p *proc) running() bool {
	if p == nil || p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM, and SIGKILL after stopTimeout.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		fmt.Fprintf(os.Stderr, "bench: %s did not stop within %s; killing it\n", p.name, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports a process that died although the bench did not stop it.
func (p *proc) exited() error {
	if p != nil && p.cmd != nil && !p.killed && !p.running() {
		return fmt.Errorf("%s exited on its own (%v); its log is %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, logTail(p.logPath))
	}
	return nil
}

// mosquitto is one Mosquitto broker on 127.0.0.1.
type mosquitto struct {
	bin, version string
	addr         string
	conf         string
	p            *proc
}

// mosquittoConf is the broker's configuration: one listener on loopback,
// anonymous clients (the simulated devices' user names and secrets are
// ignored), no persistence (Mosquitto's default: it keeps messages in
// memory and never syncs them to disk), no limits on connections or
// queues beyond its defaults.
const mosquittoConf = `# written by vigil bench
listener %d 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
`

// newMosquitto writes a configuration in dir for a broker on a free port;
// it starts nothing.
func newMosquitto(dir string) (*mosquitto, error) {
	bin, err := findBinary("mosquitto")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	m := &mosquitto{bin: bin, version: peerVersion("Mosquitto", binaryVersion(bin, "-h")), addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(m.conf, fmt.Appendf(nil, mosquittoConf, ports[0]), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write mosquitto.conf: %w", err)
	}
	return m, nil
}

// start starts the broker and waits until it accepts connections.
func (m *mosquitto) start(ctx context.Context) error {
	p, err := startProc("mosquitto", filepath.Join(filepath.Dir(m.conf), "mosquitto.log"), m.bin, "-c", m.conf)
	if err != nil {
		return err
	}
	m.p = p
	return pollUntil(ctx, startTimeout, func() bool { return dialOK(m.addr) || !p.running() })
}

func (m *mosquitto) stop() {
	if m != nil {
		m.p.stop()
	}
}

// etcdMember is one etcd process of the peer cluster.
type etcdMember struct {
	name, dataDir      string
	clientURL, peerURL string
	p                  *proc
	logPath            string
}

// etcdCluster is three etcd members on 127.0.0.1, each with its own data
// directory, with etcd's default timing (100 ms heartbeats, 1 s election
// timeout) and fsync on every commit, as etcd always does.
type etcdCluster struct {
	bin, version string
	members      []*etcdMember
	initial      string // --initial-cluster
}

// newEtcdCluster chooses ports and directories under dir; it starts
// nothing.
func newEtcdCluster(dir string) (*etcdCluster, error) {
	bin, err := findBinary("etcd")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * clusterSize)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{bin: bin, version: peerVersion("etcd", binaryVersion(bin, "--version"))}
	var initial []string
	for i := range clusterSize {
		m := &etcdMember{
			name:      fmt.Sprintf("etcd%d", i+1),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		m.dataDir = filepath.Join(dir, m.name)
		m.logPath = filepath.Join(dir, m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	return c, nil
}

// start starts member m, with its data directory if it has one (etcd
// then ignores the initial cluster flags).
func (c *etcdCluster) start(m *etcdMember) error {
	// The flags of etcd 3.4 (Debian 12's etcd-server), also valid for 3.5.
	p, err := startProc(m.name, m.logPath, c.bin,
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "vigil-bench",
		"--logger", "zap",
		"--log-level", "warn",
	)
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// startAll starts every member and waits until one leads.
func (c *etcdCluster) startAll(ctx context.Context) error {
	for _, m := range c.members {
		if err := c.start(m); err != nil {
			return err
		}
	}
	_, err := c.waitLeader(ctx, startTimeout)
	return err
}

func (c *etcdCluster) stop() {
	if c == nil {
		return
	}
	for _, m := range c.members {
		m.p.stop()
	}
}

func (c *etcdCluster) pids() []int {
	var out []int
	for _, m := range c.members {
		if m.p.running() {
			out = append(out, m.p.pid())
		}
	}
	return out
}

func (c *etcdCluster) endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.clientURL)
	}
	return out
}

func (c *etcdCluster) exited() error {
	var errs []error
	for _, m := range c.members {
		errs = append(errs, m.p.exited())
	}
	return errors.Join(errs...)
}

// newEtcdClient returns an etcd client for endpoints, logging nothing.
func newEtcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// waitLeader waits until every running member names the same leader,
// which is running, and returns it.
func (c *etcdCluster) waitLeader(ctx context.Context, timeout time.Duration) (*etcdMember, error) {
	cli, err := newEtcdClient(c.endpoints())
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var leader *etcdMember
	err = pollUntil(ctx, timeout, func() bool {
		leader = nil
		var id uint64
		for _, m := range c.members {
			if !m.p.running() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := cli.Status(sctx, m.clientURL)
			cancel()
			if err != nil || st.Leader == 0 || (id != 0 && st.Leader != id) {
				return false
			}
			id = st.Leader
			if st.Leader == st.Header.MemberId {
				leader = m
			}
		}
		return leader != nil && leader.p.running()
	})
	if err != nil {
		return nil, fmt.Errorf("no etcd leader that all running members agree on: %w; %v", err, c.exited())
	}
	return leader, nil
}

// others returns every member but m.
func (c *etcdCluster) others(m *etcdMember) []*etcdMember {
	var out []*etcdMember
	for _, o := range c.members {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// dialOK reports whether a TCP connection to addr succeeds.
func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
