package systemtest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
	"github.com/vigilarc/vigil/provisioning/discovery/netnstest"
)

// host is one appliance of the LAN test: a network namespace with its own
// address, and a data directory.
type host struct {
	nw  *netnstest.Net
	i   int
	dir string
	log string
}

func (h *host) ip() string { return h.nw.IPs[h.i].String() }

// flags configure the appliance on its own address, as IT would.
func (h *host) flags() []string {
	return []string{"--data-dir", h.dir, "--cluster-addr", h.ip() + ":7000", "--http-addr", h.ip() + ":8443",
		"--mqtt-addr", h.ip() + ":1883", "--mqtt-ws-addr", ""}
}

// run runs a vigil command in the host's namespace and returns its output.
func (h *host) run(bin string, args ...string) (string, error) {
	out, err := h.nw.Command(h.i, bin, args...).CombinedOutput()
	return string(out), err
}

// serve starts vigil serve in the host's namespace; it is stopped when
// the test ends, or with kill.
func (h *host) serve(t *testing.T, bin string) (kill func()) {
	t.Helper()
	f, err := os.OpenFile(h.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := h.nw.Command(h.i, bin, append([]string{"serve", "--log-level", "debug"}, h.flags()...)...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopTimeout):
			cmd.Process.Kill()
		}
	})
	return func() {
		cmd.Process.Kill()
		<-done
	}
}

// status is the host's node's view of the cluster, through vigil status
// over HTTPS (trusting the CA in its data directory).
func (h *host) status(bin string) (*cluster.Status, error) {
	out, err := h.nw.Command(h.i, bin, "status", "--json", "--addr", "https://"+h.ip()+":8443", "--data-dir", h.dir).Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var st cluster.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return &st, nil
}

func (h *host) logTail() string {
	b, _ := os.ReadFile(h.log)
	lines := strings.Split(string(b), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

var joinTokenRE = regexp.MustCompile(provisioning.JoinTokenPrefix + `[A-Za-z0-9_-]+`)

// Three appliances on one LAN, each with its own address, form a cluster
// the way IT sets them up, with no address typed: vigil init on the first
// prints a join token that carries no address; vigil join on the others
// finds the first with discovery (mDNS) and gets its certificate from it,
// checking the CA the token pins. A fourth host on the same LAN, with no
// token, is refused at the cluster port's handshake and changes nothing.
func TestLAN_ThreeAppliancesFormAClusterWithDiscoveryAndTokens(t *testing.T) {
	nw := netnstest.New(t, 4)
	bin := mustBuildVigil(t)
	hosts := make([]*host, 4)
	for i := range hosts {
		d := t.TempDir()
		hosts[i] = &host{nw: nw, i: i, dir: filepath.Join(d, "data"), log: filepath.Join(d, "vigil.log")}
	}
	defer func() {
		if t.Failed() {
			for _, h := range hosts {
				t.Logf("host %d (%s) log:\n%s", h.i, h.ip(), h.logTail())
			}
		}
	}()

	out, err := hosts[0].run(bin, append([]string{"init", "--expect", "3", "--token-no-addrs"}, hosts[0].flags()...)...)
	token := joinTokenRE.FindString(out)
	if err != nil || token == "" {
		t.Fatalf("init: %v: %s", err, out)
	}
	if tok, err := provisioning.ParseJoinToken(token); err != nil || len(tok.Addrs) != 0 {
		t.Fatalf("the token should carry no address: %v %v", err, tok)
	}
	hosts[0].serve(t, bin)

	kills := make([]func(), 3)
	kills[0] = func() {}
	for i, h := range hosts[1:3] {
		var out string
		var err error
		// The first appliance may still be starting: IT would run join again.
		clustertest.PollUntil(t, 60*time.Second, "a join through discovery", func() bool {
			out, err = h.run(bin, append([]string{"join", token}, h.flags()...)...)
			return err == nil
		})
		if !strings.Contains(out, "found members of cluster") || !strings.Contains(out, hosts[0].ip()+":8443") {
			t.Fatalf("join did not find the first appliance on the LAN: %s", out)
		}
		kills[i+1] = h.serve(t, bin)
	}

	var st *cluster.Status
	clustertest.PollUntil(t, 60*time.Second, "three voters seen by every appliance", func() bool {
		for _, h := range hosts[:3] {
			s, err := h.status(bin)
			if err != nil || len(s.Members) != 3 || s.LeaderID == "" {
				return false
			}
			for _, m := range s.Members {
				if !m.Voter {
					return false
				}
			}
			st = s
		}
		return true
	})
	for _, m := range st.Members {
		if host, _, _ := net.SplitHostPort(m.Addr); host != hosts[0].ip() && host != hosts[1].ip() && host != hosts[2].ip() {
			t.Fatalf("member %s at %s is not one of the three hosts", m.ID, m.Addr)
		}
	}
	termBefore := st.Term

	// The fourth host, with no token, tries the cluster port of each member
	// with no certificate and with a certificate of its own CA naming the
	// cluster and a member: every handshake fails.
	clusterID := ""
	if tr, err := provisioning.LoadTrust(hosts[0].dir); err == nil {
		clusterID = tr.CA.ClusterID
	} else {
		t.Fatal(err)
	}
	for _, h := range hosts[:3] {
		cmd := nw.Command(3, os.Args[0], "-test.run=^TestHelperOutsider$", "-test.v")
		cmd.Env = append(os.Environ(), "VIGIL_OUTSIDER_ADDR="+h.ip()+":7000", "VIGIL_OUTSIDER_CLUSTER="+clusterID,
			"VIGIL_OUTSIDER_MEMBER="+st.Members[0].ID)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "outsider refused") {
			t.Fatalf("the outsider against %s: %v\n%s", h.ip(), err, out)
		}
	}
	// A join token of another CA, naming this cluster, is refused: the
	// members do not present the CA it pins, and no certificate is made.
	other := t.TempDir()
	otherCA, _ := provisioning.NewCA(clusterID, time.Now())
	otherTok, _ := provisioning.NewJoinToken(otherCA, []string{hosts[0].ip() + ":8443"}, 0, 0, time.Now())
	out, err = hosts[3].run(bin, "join", otherTok.String(), "--data-dir", other, "--cluster-addr", hosts[3].ip()+":7000",
		"--http-addr", hosts[3].ip()+":8443")
	if err == nil || !strings.Contains(out, "fingerprint") {
		t.Fatalf("a join with another CA's token: %v: %s", err, out)
	}
	if _, err := provisioning.LoadTrust(other); err == nil {
		t.Fatal("the refused joiner has trust")
	}

	// Nothing changed: still three voters, same term.
	s, err := hosts[0].status(bin)
	if err != nil || len(s.Members) != 3 || s.Term != termBefore {
		t.Fatalf("after the outsider: %v, %d members, term %d (was %d)", err, len(s.Members), s.Term, termBefore)
	}

	// The third appliance dies and is replaced: vigil replace-node on the
	// first removes it and prints a token, on which the fourth host joins.
	// The removed appliance's certificate, still valid, is then refused by
	// both members.
	gone, err := provisioning.LoadTrust(hosts[2].dir)
	if err != nil {
		t.Fatal(err)
	}
	kills[2]()
	var replaceOut string
	clustertest.PollUntil(t, 30*time.Second, "replace-node once the third is down", func() bool {
		replaceOut, err = hosts[0].run(bin, "replace-node", gone.NodeID(), "--data-dir", hosts[0].dir, "--addr", "https://"+hosts[0].ip()+":8443")
		return err == nil
	})
	token = joinTokenRE.FindString(replaceOut)
	if token == "" {
		t.Fatalf("replace-node printed no token: %s", replaceOut)
	}
	for _, h := range hosts[:2] {
		cmd := nw.Command(3, os.Args[0], "-test.run=^TestHelperOutsider$", "-test.v")
		cmd.Env = append(os.Environ(), "VIGIL_OUTSIDER_ADDR="+h.ip()+":7000", "VIGIL_OUTSIDER_CLUSTER="+clusterID,
			"VIGIL_OUTSIDER_MEMBER="+st.Members[0].ID, "VIGIL_OUTSIDER_REMOVED="+hosts[2].dir)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "outsider refused") {
			t.Fatalf("the removed member against %s: %v\n%s", h.ip(), err, out)
		}
	}
	if out, err := hosts[3].run(bin, append([]string{"join", token}, hosts[3].flags()...)...); err != nil {
		t.Fatalf("the replacement's join: %v: %s", err, out)
	}
	hosts[3].serve(t, bin)
	clustertest.PollUntil(t, 60*time.Second, "three voters again, the replacement among them", func() bool {
		s, err := hosts[0].status(bin)
		if err != nil || len(s.Members) != 3 {
			return false
		}
		for _, m := range s.Members {
			if !m.Voter || m.ID == gone.NodeID() {
				return false
			}
		}
		return true
	})
}

// plainRaftLayer is a raft.StreamLayer that dials plain TCP and writes the
// cluster port's Raft byte first: how an outsider speaks Raft to it.
type plainRaftLayer struct{}

func (plainRaftLayer) Accept() (net.Conn, error) {
	return nil, errors.New("the outsider accepts nothing")
}
func (plainRaftLayer) Close() error   { return nil }
func (plainRaftLayer) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 66), Port: 7000} }
func (plainRaftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{1}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// TestHelperOutsider is the outsider of the LAN test, run in its own
// namespace: it speaks to a member's cluster port as a process that is not
// a member would (and, given VIGIL_OUTSIDER_REMOVED, as a removed member
// with its certificate), and prints "outsider refused" if every attempt
// got nothing.
func TestHelperOutsider(t *testing.T) {
	addr := os.Getenv("VIGIL_OUTSIDER_ADDR")
	if addr == "" {
		t.Skip("run by TestLAN_ThreeAppliancesFormAClusterWithDiscoveryAndTokens")
	}
	clusterID, member := os.Getenv("VIGIL_OUTSIDER_CLUSTER"), os.Getenv("VIGIL_OUTSIDER_MEMBER")
	// Answered is true if the member sent anything back after the bytes.
	answered := func(conn net.Conn, send []byte) bool {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write(send); err != nil {
			return false
		}
		n, _ := conn.Read(make([]byte, 64))
		return n > 0
	}
	// 1. Plain TCP, as before the cluster port had TLS: the Raft
	// transport's AppendEntries byte (0) and then the RPC's (a
	// forwarded command), each followed by junk.
	for _, b := range []byte{0, 1, 2, 3} {
		conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if answered(conn, append([]byte{b}, []byte("\x81\xa4Term\xcd\xff\xff")...)) {
			t.Fatalf("plain bytes starting %d got an answer", b)
		}
	}
	// 1b. The attack of issue 15, as it was made: hashicorp/raft's own
	// transport sends an AppendEntries with a far higher term, after the
	// cluster port's Raft byte (1), as a member would before the port had
	// TLS. It gets no answer, and no member's term moves (the parent test
	// checks the terms).
	trans := raft.NewNetworkTransport(&plainRaftLayer{}, 1, 3*time.Second, io.Discard)
	defer trans.Close()
	var resp raft.AppendEntriesResponse
	err := trans.AppendEntries(raft.ServerID(member), raft.ServerAddress(addr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("outsider"), Addr: []byte("10.0.0.66:7000")},
		Term:      1 << 40, LeaderCommitIndex: 1 << 40,
	}, &resp)
	if err == nil {
		t.Fatalf("an AppendEntries from outside was answered: %+v", resp)
	}
	// 2. TLS with no certificate.
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil {
		if answered(conn, []byte{0}) {
			t.Fatal("TLS with no certificate got an answer")
		}
	}
	// 4. A removed member, with its own valid certificate: refused at the
	// handshake, or closed before the protocol byte is answered.
	if dir := os.Getenv("VIGIL_OUTSIDER_REMOVED"); dir != "" {
		tr, err := provisioning.LoadTrust(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, removed := provisioning.PeerTLS(tr.CA, tr.Node, nil)
		if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, removed); err == nil {
			if answered(conn, []byte{1}) {
				t.Fatal("the removed member's certificate got an answer")
			}
		}
	}
	// 3. TLS with a certificate of another CA that names this cluster and
	// a member.
	ca, _ := provisioning.NewCA(clusterID, time.Now())
	nc, _ := ca.IssueNode(member, provisioning.NodeNames{}, time.Now())
	_, client := provisioning.PeerTLS(ca, nc, nil)
	client.VerifyConnection = nil
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, client); err == nil {
		if answered(conn, []byte{0}) {
			t.Fatal("TLS with another CA's certificate got an answer")
		}
	}
	fmt.Println("outsider refused")
}
