package chaos

// The network: one Linux network namespace per node and a hub namespace
// holding a bridge that joins them, all made with iproute2's ip.
//
//	root namespace (the harness, the simulated devices)
//	  vc<pid>r 10.77.0.1/24 ──┐
//	hub namespace             │ veth
//	  bridge br0 ─────────────┤
//	                          ├── veth ── node 1 namespace: eth0 10.77.0.11/24
//	                          ├── veth ── node 2 namespace: eth0 10.77.0.12/24
//	                          └── veth ── node 3 namespace: eth0 10.77.0.13/24
//
// The bridge lives in a namespace of its own, not in the root namespace:
// there, br_netfilter would pass bridged frames through the host's
// iptables FORWARD chain, which Docker and many firewalls set to DROP. The
// hub namespace has no rules, and bridge-nf-call-iptables is turned off in
// it. Traffic from the root namespace to the nodes leaves through its own
// veth and is never forwarded by the host.
//
// Isolating a node sets its veth in the hub down: the node reaches nobody
// and nobody reaches it, devices included. Splitting a node from its peers
// adds nftables rules inside the node's namespace that drop traffic to and
// from the peers' addresses only: devices still reach it, and it still
// accepts their connections, but it cannot reach a quorum.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/tools/chaos/powerfs"
)

// Names of the network's parts. A run's parts carry the harness's process
// ID, so that a later run can tell whether they are stale.
const (
	// nsPrefix begins the name of every namespace the harness makes.
	nsPrefix = "vigil-chaos-"
	// nftTable is the nftables table that splits a node from its peers.
	nftTable = "vigilchaos"
	// DefaultSubnet is the first three octets of the network's /24.
	DefaultSubnet = "10.77.0"
)

// ipCommandTimeout bounds one ip or nft command.
const ipCommandTimeout = 20 * time.Second

// Network is the namespaces, veths and bridge of one run.
type Network struct {
	owner  int    // the process that made it
	subnet string // "10.77.0"
	nodes  int
	up     bool
}

// NewNetwork returns the network of n nodes for this process on subnet (the
// first three octets of a /24); it does no I/O.
func NewNetwork(subnet string, n int) *Network {
	if subnet == "" {
		subnet = DefaultSubnet
	}
	return &Network{owner: os.Getpid(), subnet: subnet, nodes: n}
}

// HostIP is the root namespace's address on the network.
func (nw *Network) HostIP() string { return nw.subnet + ".1" }

// NodeIP is node i's address (i from 0).
func (nw *Network) NodeIP(i int) string { return fmt.Sprintf("%s.%d", nw.subnet, 11+i) }

// Namespace is the name of node i's namespace.
func (nw *Network) Namespace(i int) string { return fmt.Sprintf("%s%d-n%d", nsPrefix, nw.owner, i+1) }

func (nw *Network) hubNS() string    { return fmt.Sprintf("%s%d-hub", nsPrefix, nw.owner) }
func (nw *Network) rootVeth() string { return fmt.Sprintf("vc%dr", nw.owner) }
func (nw *Network) hubVeth(i int) string {
	if i < 0 {
		return fmt.Sprintf("vc%dhr", nw.owner)
	}
	return fmt.Sprintf("vc%dh%d", nw.owner, i+1)
}
func (nw *Network) nodeVeth(i int) string { return fmt.Sprintf("vc%dn%d", nw.owner, i+1) }

// Up makes the network. On failure it removes what it made.
func (nw *Network) Up(ctx context.Context) (err error) {
	if err := CheckTools(); err != nil {
		return err
	}
	if err := nw.checkSubnetFree(ctx); err != nil {
		return err
	}
	nw.up = true
	defer func() {
		if err != nil {
			nw.Down()
		}
	}()
	hub := nw.hubNS()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		// The root namespace's port on the bridge.
		{"link", "add", nw.rootVeth(), "type", "veth", "peer", "name", nw.hubVeth(-1)},
		{"link", "set", nw.hubVeth(-1), "netns", hub},
		{"-n", hub, "link", "set", nw.hubVeth(-1), "master", "br0", "up"},
		{"addr", "add", nw.HostIP() + "/24", "dev", nw.rootVeth()},
		{"link", "set", nw.rootVeth(), "up"},
	}
	for i := range nw.nodes {
		ns := nw.Namespace(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", nw.hubVeth(i), "type", "veth", "peer", "name", nw.nodeVeth(i)},
			[]string{"link", "set", nw.hubVeth(i), "netns", hub},
			[]string{"link", "set", nw.nodeVeth(i), "netns", ns},
			[]string{"-n", hub, "link", "set", nw.hubVeth(i), "master", "br0", "up"},
			[]string{"-n", ns, "link", "set", nw.nodeVeth(i), "name", "eth0"},
			[]string{"-n", ns, "addr", "add", nw.NodeIP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := runIP(ctx, s...); err != nil {
			return err
		}
	}
	// Bridged frames in the hub skip netfilter; harmless where the file is
	// missing (no br_netfilter) or read-only.
	_ = runCmd(ctx, "ip", "netns", "exec", hub, "sh", "-c",
		"f=/proc/sys/net/bridge/bridge-nf-call-iptables; [ -w $f ] && echo 0 > $f || true")
	return nil
}

// checkSubnetFree fails if another interface of the root namespace has an
// address in the subnet: another run, or the host's own network.
func (nw *Network) checkSubnetFree(ctx context.Context) error {
	out, err := outputCmd(ctx, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 4 && strings.HasPrefix(f[3], nw.subnet+".") {
			return fmt.Errorf("interface %s already has %s, in the subnet %s.0/24 this run needs: "+
				"another chaos run may be using it (choose another with -subnet)", strings.TrimSuffix(f[1], ":"), f[3], nw.subnet)
		}
	}
	return nil
}

// Down removes the network: the root veth and the namespaces (their veths
// go with them). It is safe to call more than once, and after a partial Up.
// Processes inside the namespaces must have ended first.
func (nw *Network) Down() error {
	if !nw.up {
		return nil
	}
	nw.up = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if linkExists(ctx, nw.rootVeth()) {
		errs = append(errs, runIP(ctx, "link", "del", nw.rootVeth()))
	}
	names := []string{nw.hubNS()}
	for i := range nw.nodes {
		names = append(names, nw.Namespace(i))
	}
	for _, ns := range names {
		if nsExists(ctx, ns) {
			errs = append(errs, runIP(ctx, "netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// Isolate cuts node i off from everything: its port on the bridge goes
// down.
func (nw *Network) Isolate(ctx context.Context, i int) error {
	return runIP(ctx, "-n", nw.hubNS(), "link", "set", nw.hubVeth(i), "down")
}

// Reconnect undoes Isolate.
func (nw *Network) Reconnect(ctx context.Context, i int) error {
	return runIP(ctx, "-n", nw.hubNS(), "link", "set", nw.hubVeth(i), "up")
}

// Split drops, inside node i's namespace, every packet to or from the other
// nodes' addresses; the root namespace (the devices) still reaches it.
func (nw *Network) Split(ctx context.Context, i int) error {
	var peers []string
	for j := range nw.nodes {
		if j != i {
			peers = append(peers, nw.NodeIP(j))
		}
	}
	set := "{ " + strings.Join(peers, ", ") + " }"
	ruleset := fmt.Sprintf(`table inet %[1]s {
	chain in {
		type filter hook input priority filter; policy accept;
		ip saddr %[2]s drop
	}
	chain out {
		type filter hook output priority filter; policy accept;
		ip daddr %[2]s drop
	}
}
`, nftTable, set)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nw.Namespace(i), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s", nw.Namespace(i), err, bytes.TrimSpace(out))
	}
	return nil
}

// Unsplit undoes Split; it is no error if node i was not split.
func (nw *Network) Unsplit(ctx context.Context, i int) error {
	ns := nw.Namespace(i)
	if err := runCmd(ctx, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", nftTable); err != nil {
		return nil // no table: nothing to undo
	}
	return runCmd(ctx, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", nftTable)
}

// Heal undoes every Isolate and Split.
func (nw *Network) Heal(ctx context.Context) error {
	var errs []error
	for i := range nw.nodes {
		errs = append(errs, nw.Reconnect(ctx, i), nw.Unsplit(ctx, i))
	}
	return errors.Join(errs...)
}

// CheckTools reports what the harness needs and lacks: root, ip and nft.
// The power cuts need /dev/fuse too (haveFUSE).
func CheckTools() error {
	if os.Geteuid() != 0 {
		return errors.New("the chaos harness makes network namespaces: run it as root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install iproute2 nftables): %w", tool, err)
		}
	}
	return nil
}

// haveFUSE reports whether the nodes' disks can be FUSE mounts (powerfs),
// which the power cuts need.
func haveFUSE() bool {
	_, err := os.Stat("/dev/fuse")
	return err == nil
}

// CleanStale removes the namespaces and root veths of earlier runs whose
// harness process is gone (killed before it could clean up), first killing
// any process still inside them. It returns the names it removed.
func CleanStale(ctx context.Context) ([]string, error) {
	out, err := outputCmd(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	// The disks of the nodes of a harness that was killed: their server
	// died with it, so nothing on them answers any more.
	stale, err := powerfs.Stale()
	if err != nil {
		errs = append(errs, err)
	}
	for _, mp := range stale {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("cannot detach %s: %w", mp, err))
			continue
		}
		removed = append(removed, mp)
	}
	owners := map[int]bool{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		name := f[0]
		pidText, _, _ := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || processAlive(pid) {
			continue
		}
		owners[pid] = true
		if pids, err := outputCmd(ctx, "ip", "netns", "pids", name); err == nil {
			for _, p := range strings.Fields(pids) {
				if n, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		if err := runIP(ctx, "netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	for pid := range owners {
		veth := fmt.Sprintf("vc%dr", pid)
		if linkExists(ctx, veth) {
			if err := runIP(ctx, "link", "del", veth); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, veth)
		}
	}
	return removed, errors.Join(errs...)
}

// processAlive reports whether a process with the ID runs.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func linkExists(ctx context.Context, name string) bool {
	return runCmd(ctx, "ip", "link", "show", name) == nil
}

func nsExists(ctx context.Context, name string) bool {
	out, err := outputCmd(ctx, "ip", "netns", "list")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func runIP(ctx context.Context, args ...string) error { return runCmd(ctx, "ip", args...) }

func runCmd(ctx context.Context, name string, args ...string) error {
	_, err := outputCmd(ctx, name, args...)
	return err
}

// outputCmd runs a command and returns its standard output; its error
// carries the standard error.
func outputCmd(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ipCommandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
