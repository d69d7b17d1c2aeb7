// Package netnstest gives a test network namespaces on one Ethernet
// bridge: separate network stacks on one machine, so that multicast
// discovery, and later whole appliances forming a cluster, can be tested as
// on a LAN, each with its own address and its own port 5353.
//
// It needs root and iproute2's ip; New skips the test without them. The
// bridge lives in a namespace of its own (the hub), not the host's: the
// host's firewall (Docker's FORWARD policy, br_netfilter) then cannot drop
// the bridged traffic, and the names of the bridge and its ports cannot
// collide with the host's or another test's. Every namespace is named
// vg<pid>-<seq>-<n>, and deleted when the test ends, failed or not; New
// also deletes those that a killed test process left behind.
package netnstest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// Iface is the name of each namespace's interface on the bridge.
	Iface = "eth0"
	// bridge is the bridge's name in the hub namespace.
	bridge = "br0"
	// staleAfter is how old a namespace of a process that is gone must be
	// before New deletes it.
	staleAfter = 15 * time.Minute
)

// Net is a set of network namespaces, each with one interface (Iface) on
// a shared bridge, an address in one /24 of 10.77.0.0/16, and a route for
// multicast (224.0.0.0/4) on Iface; they have no default route.
type Net struct {
	// Names are the namespaces' names, for ip netns exec.
	Names []string
	// IPs are their addresses: namespace Names[i] has IPs[i].
	IPs []net.IP

	t   testing.TB
	hub string
}

var (
	seq       atomic.Int64
	sweepOnce sync.Once
)

// Available says why namespaces cannot be made here, or nil if they can.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("network namespaces need iproute2's ip: %w", err)
	}
	return nil
}

// New makes n namespaces on one bridge, or skips t when it cannot (not
// root, no ip command, namespaces not permitted). They are deleted, and
// the processes left in them killed, when t ends.
func New(t testing.TB, n int) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	sweepOnce.Do(sweep)

	prefix := fmt.Sprintf("vg%d-%d-", os.Getpid(), seq.Add(1))
	nw := &Net{t: t, hub: prefix + "hub"}
	if out, err := run("ip", "netns", "add", nw.hub); err != nil {
		t.Skipf("cannot make a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(nw.remove)

	subnet := 1 + rand.IntN(254) // each Net's bridge is its own LAN: this only eases reading
	nw.must("ip", "-n", nw.hub, "link", "add", bridge, "type", "bridge")
	nw.forwardMulticast()
	nw.must("ip", "-n", nw.hub, "link", "set", bridge, "up")
	for i := range n {
		ns := prefix + strconv.Itoa(i)
		nw.must("ip", "netns", "add", ns)
		nw.Names = append(nw.Names, ns)
		port := "v" + strconv.Itoa(i)
		ip := net.IPv4(10, 77, byte(subnet), byte(i+1)).To4()
		nw.IPs = append(nw.IPs, ip)
		nw.must("ip", "-n", nw.hub, "link", "add", port, "type", "veth", "peer", "name", Iface, "netns", ns)
		nw.must("ip", "-n", nw.hub, "link", "set", port, "master", bridge, "up")
		nw.must("ip", "-n", ns, "addr", "add", ip.String()+"/24", "dev", Iface)
		nw.must("ip", "-n", ns, "link", "set", Iface, "multicast", "on", "up")
		nw.must("ip", "-n", ns, "link", "set", "lo", "up")
		// No default route: multicast needs its own to leave by Iface.
		nw.must("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", Iface)
	}
	return nw
}

// Command returns a command that runs name with args in namespace i (with
// ip netns exec, which then execs it: the command's process is name's).
func (nw *Net) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nw.Names[i], name}, args...)...)
}

// Unplug takes namespace i off the bridge, as if its cable were pulled.
func (nw *Net) Unplug(i int) {
	nw.t.Helper()
	nw.must("ip", "-n", nw.hub, "link", "set", "v"+strconv.Itoa(i), "down")
}

// Plug puts namespace i back on the bridge.
func (nw *Net) Plug(i int) {
	nw.t.Helper()
	nw.must("ip", "-n", nw.hub, "link", "set", "v"+strconv.Itoa(i), "up")
}

// forwardMulticast turns the bridge's IGMP snooping off, so that it floods
// multicast to every port instead of waiting for membership reports that
// no querier asks for.
func (nw *Net) forwardMulticast() {
	nw.t.Helper()
	if _, err := run("ip", "-n", nw.hub, "link", "set", bridge, "type", "bridge", "mcast_snooping", "0"); err == nil {
		return
	}
	// An older ip: the same switch in the hub's sysfs, if the kernel has it.
	path := filepath.Join("/sys/class/net", bridge, "bridge/multicast_snooping")
	nw.must("ip", "netns", "exec", nw.hub, "sh", "-c", "if [ -e "+path+" ]; then echo 0 > "+path+"; fi")
}

// remove kills what still runs in the namespaces and deletes them; the
// bridge and the veth pairs go with them.
func (nw *Net) remove() {
	for _, ns := range append(slices.Clone(nw.Names), nw.hub) {
		killAll(ns)
		if out, err := run("ip", "netns", "del", ns); err != nil {
			nw.t.Logf("netnstest: cannot delete namespace %s: %v: %s", ns, err, out)
		}
	}
}

func (nw *Net) must(name string, args ...string) {
	nw.t.Helper()
	if out, err := run(name, args...); err != nil {
		nw.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// killAll kills, by their IDs, the processes still in namespace ns: this
// test's children, as nothing else runs in a namespace it made.
func killAll(ns string) {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
}

var ours = regexp.MustCompile(`^vg([0-9]+)-[0-9]+-([0-9]+|hub)$`)

// sweep deletes the namespaces of test processes that are gone (killed by
// a test timeout, which runs no cleanup), once they are staleAfter old.
func sweep() {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := ours.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", m[1])); err == nil {
			continue // its process still runs
		}
		st, err := os.Stat(filepath.Join("/run/netns", f[0]))
		if err != nil || time.Since(st.ModTime()) < staleAfter {
			continue
		}
		killAll(f[0])
		_, _ = run("ip", "netns", "del", f[0])
	}
}

func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
