package main

// Idle devices: child processes running the simulator in its idle mode
// (vigil sim --mode idle), each holding up to devicesPerChild devices that
// connect, send heartbeats and report their counters; and the readings of
// a process's memory (conns.go measures with them).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/appliance/sim"
)

const (
	// devicesPerChild is the most devices one child process holds: well
	// under the 20,000 open files a process may have here.
	devicesPerChild = 7000
	// fileMargin is the open files a node keeps for itself beyond one
	// socket per device.
	fileMargin = 256
	// statusEvery is how often a child reports its counters.
	statusEvery = time.Second
	// childSpare is how long a child may outlive the connecting and the
	// settling before it stops by itself.
	childSpare = 10 * time.Minute
	// childConnectsInFlight is how many devices each child connects at
	// once. Each CONNECT costs the node an argon2id hash of 4 MiB; a few
	// at a time keep that garbage from inflating the figure.
	childConnectsInFlight = 4
	// idleKeepAlive is the idle devices' MQTT keep-alive: longer than the
	// heartbeat interval, so the heartbeats keep the connections alive
	// and no PINGREQ is needed.
	idleKeepAlive = 2 * time.Minute
	// baselineSamples RSS readings, a second apart, give the baseline.
	baselineSamples = 5
	// rssEvery is how often RSS is read while the nodes settle.
	rssEvery = 5 * time.Second
	// childStopTimeout is how long a child may take to disconnect its
	// devices once told to stop.
	childStopTimeout = 2 * time.Minute
)

// idlePlan says how to run the memory measurement.
type idlePlan struct {
	// devices is the first step of the connections measurement; with max
	// set, a second step connects as many as the process may hold.
	devices                    int
	max                        bool
	heartbeatMin, heartbeatMax time.Duration
	settle                     time.Duration
}

// readRSS returns the resident set size of process pid (VmRSS) and its
// anonymous part (RssAnon: heap and stacks, not the mapped files).
func readRSS(pid int) (rss, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the RSS of process %d: %w", pid, err)
	}
	found := 0
	for line := range strings.Lines(string(b)) {
		for key, dst := range map[string]*int64{"VmRSS:": &rss, "RssAnon:": &anon} {
			v, ok := strings.CutPrefix(line, key)
			f := strings.Fields(v) // "123456 kB"
			if !ok || len(f) != 2 || f[1] != "kB" {
				continue
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/status: %s %w", pid, key, err)
			}
			*dst, found = kb*1024, found+1
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("no VmRSS or RssAnon in /proc/%d/status", pid)
	}
	return rss, anon, nil
}

// medians returns, for each column of samples (a node's, or RSS and
// anonymous RSS), the median of its values.
func medians(samples [][]int64) []int64 {
	if len(samples) == 0 {
		return nil
	}
	out := make([]int64, len(samples[0]))
	for i := range out {
		var col []int64
		for _, s := range samples {
			col = append(col, s[i])
		}
		slices.Sort(col)
		out[i] = col[len(col)/2]
	}
	return out
}

// gcTrace is what the Go runtime logs at the end of a garbage collection
// with GODEBUG=gctrace=1, in MiB (the runtime's "MB" are 2^20 bytes).
type gcTrace struct {
	ok     bool
	live   int64 // live heap marked
	stacks int64 // goroutine stacks
}

// gcLine matches "132->153->71 MB, 157 MB goal, 14 MB stacks", capturing
// the live heap (71) and the stacks (14).
var gcLine = regexp.MustCompile(`\d+->\d+->(\d+) MB, \d+ MB goal, (\d+) MB stacks`)

// lastGC returns the last garbage collection traced in the log at path.
func lastGC(path string) gcTrace {
	b, err := os.ReadFile(path)
	if err != nil {
		return gcTrace{}
	}
	var t gcTrace
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		if m := gcLine.FindStringSubmatch(line); m != nil {
			live, _ := strconv.ParseInt(m[1], 10, 64)
			stacks, _ := strconv.ParseInt(m[2], 10, 64)
			t = gcTrace{ok: true, live: live, stacks: stacks}
		}
	}
	return t
}

// idleChild is one vigil sim --mode idle process holding a share of the
// idle devices: one process may hold at most RLIMIT_NOFILE open files
// (20,000 on the machines here), one socket per device.
type idleChild struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	mu   sync.Mutex
	last sim.Status // its last status line
}

// status returns the child's last status line.
func (ch *idleChild) status() sim.Status {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.last
}

func (ch *idleChild) exited() bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// childBrokers returns brokers rotated so that a child whose first device
// is device from puts its j-th device, which the simulator places on its
// (j mod n)-th broker, on node (from+j) mod n, as the bench places device
// from+j.
func childBrokers(brokers []string, from int) []string {
	n := len(brokers)
	out := make([]string, n)
	for j := range out {
		out[j] = brokers[(from+j)%n]
	}
	return out
}

// idleChildArgs are the vigil arguments of a child holding the devices in
// the credentials file creds, for at most bound: it stops by itself should
// the bench die without stopping it.
func idleChildArgs(creds string, devices int, brokers []string, plan idlePlan, seed int, bound time.Duration) []string {
	return []string{"sim", "--mode", sim.ModeIdle,
		"--provision=false", "--credentials", creds, "--devices", strconv.Itoa(devices),
		"--brokers", strings.Join(brokers, ","),
		"--heartbeat-interval", plan.heartbeatMin.String(),
		"--heartbeat-jitter", (plan.heartbeatMax - plan.heartbeatMin).String(),
		"--location-interval", "0", "--telemetry-qos", "1",
		"--keepalive", idleKeepAlive.String(),
		"--connect-timeout", deviceConnectTimeout.String(),
		"--connects-in-flight", strconv.Itoa(childConnectsInFlight),
		"--status-every", statusEvery.String(), "--status-json",
		"--duration", bound.String(), "--seed", strconv.Itoa(seed),
		"--log-level", "error",
	}
}

// startIdleChild writes creds to a file in dir and starts vigil sim on
// them, the child's first device being the bench's device from.
func startIdleChild(vigil, dir string, from int, creds []sim.Credential, brokers []string, plan idlePlan, bound time.Duration) (*idleChild, error) {
	path := filepath.Join(dir, fmt.Sprintf("idle-devices-%05d.json", from))
	if err := sim.WriteCredentials(path, creds); err != nil {
		return nil, fmt.Errorf("cannot write the idle devices' credentials: %w", err)
	}
	args := idleChildArgs(path, len(creds), childBrokers(brokers, from), plan, from+1, bound)
	cmd := exec.Command(vigil, args...)
	cmd.Env = withoutVigilEnv(os.Environ())
	cmd.Stderr = os.Stderr
	// Its own process group: a Ctrl-C reaches only the bench, which then
	// stops the child, and the child disconnects its devices. Should the
	// bench die, the kernel sends the child SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start an idle-device child (%s sim): %w", vigil, err)
	}
	ch := &idleChild{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s sim.Status
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				ch.mu.Lock()
				ch.last = s
				ch.mu.Unlock()
			}
		}
		_ = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

// stop sends the child SIGTERM and waits for it to disconnect its devices,
// print its last status and exit; it kills it after childStopTimeout.
func (ch *idleChild) stop() {
	if ch.exited() {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(childStopTimeout):
		progress("gateway: an idle-device child did not stop within %s; killing it", childStopTimeout)
		_ = ch.cmd.Process.Kill()
		<-ch.done
	}
}

// sumStatus adds up the children's last status lines.
func sumStatus(children []*idleChild) sim.Status {
	var total sim.Status
	for _, ch := range children {
		total.Add(ch.status())
	}
	return total
}

// processFileLimit returns the soft open-file limit of process pid, from
// /proc/<pid>/limits.
func processFileLimit(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Max open files            20000                20000                files
		var soft, hard uint64
		if n, _ := fmt.Sscanf(sc.Text(), "Max open files %d %d", &soft, &hard); n == 2 {
			return soft, nil
		}
	}
	return 0, fmt.Errorf("no open-file limit in /proc/%d/limits", pid)
}
