package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// testCA is a throwaway certificate authority for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial big.Int

func nextSerial() *big.Int {
	serial.Add(&serial, big.NewInt(1))
	return new(big.Int).Set(&serial)
}

func mustCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// mustNodeCert issues a certificate for a node named cn, valid as server and
// client on 127.0.0.1.
func (ca *testCA) mustNodeCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// withTLS returns a tweak that gives a node mutual TLS with a certificate
// named cn from ca, and verify as its VerifyPeer.
func withTLS(t *testing.T, ca *testCA, cn string, verify func(tls.ConnectionState) error) func(*cluster.Config) {
	t.Helper()
	cert := ca.mustNodeCert(t, cn)
	return func(cfg *cluster.Config) {
		cfg.ServerTLS = &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.pool,
			MinVersion:   tls.VersionTLS13,
		}
		cfg.ClientTLS = &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      ca.pool,
			MinVersion:   tls.VersionTLS13,
		}
		cfg.VerifyPeer = verify
	}
}

// mustTLSCluster starts n nodes with mutual TLS, node i's certificate named
// node-i, each node refusing what verify refuses.
func mustTLSCluster(t *testing.T, n int, ca *testCA, verify func(tls.ConnectionState) error) *clustertest.Cluster[*kvSM] {
	t.Helper()
	i := 0
	return mustCluster(t, n, func(cfg *cluster.Config) {
		withTLS(t, ca, fmt.Sprintf("node-%d", i), verify)(cfg)
		i++
	})
}

// logRecorder is a slog handler that keeps every record, for tests that
// wait for a node to say something.
type logRecorder struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecorder() logRecorder { return logRecorder{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logRecorder) WithGroup(string) slog.Handler            { return l }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.recs = append(*l.recs, r.Clone())
	return nil
}

// find returns the text of each record at level whose message contains msg,
// with its attributes.
func (l logRecorder) find(level slog.Level, msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if r.Level != level || !strings.Contains(r.Message, msg) {
			continue
		}
		s := r.Message
		r.Attrs(func(a slog.Attr) bool {
			s += " " + a.String()
			return true
		})
		out = append(out, s)
	}
	return out
}

// waitLogged waits until l has a record at level containing msg and all of
// want, and returns it.
func (l logRecorder) waitLogged(t *testing.T, level slog.Level, msg string, want ...string) string {
	t.Helper()
	var got string
	clustertest.PollUntil(t, 10*time.Second, fmt.Sprintf("a %s log %q with %q", level, msg, want), func() bool {
		for _, s := range l.find(level, msg) {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(s, w)
			}
			if ok {
				got = s
				return true
			}
		}
		return false
	})
	return got
}

// outsider is a raft.StreamLayer that dials the cluster port as an
// outsider would: dial makes the connection, which then says it speaks Raft.
type outsider struct {
	dial func(addr string) (net.Conn, error)
}

func (o outsider) Accept() (net.Conn, error) { return nil, errors.New("outsider accepts nothing") }
func (o outsider) Close() error              { return nil }
func (o outsider) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (o outsider) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := o.dial(string(addr))
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{1}); err != nil { // the Raft protocol byte
		c.Close()
		return nil, err
	}
	return c, nil
}

func plainDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// tlsDial returns a dial that speaks TLS trusting ca and presents cert, if
// not nil, whatever CAs the server asks for.
func tlsDial(ca *testCA, cert *tls.Certificate) func(string) (net.Conn, error) {
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return func(addr string) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	}
}

// attack sends node at addr the AppendEntries of a would-be leader with a
// far higher term, through raft's own transport over dial, and returns the
// error the transport reports.
func attack(t *testing.T, dial func(string) (net.Conn, error), addr string, term uint64) error {
	t.Helper()
	trans := raft.NewNetworkTransport(outsider{dial}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax,
			ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
		Term:              term,
		PrevLogEntry:      0,
		LeaderCommitIndex: 1 << 40,
	}
	var resp raft.AppendEntriesResponse
	return trans.AppendEntries("node", raft.ServerAddress(addr), req, &resp)
}

// snapshot is what an attack must not change: each node's term and applied
// index, and the commands its state machine applied.
func snapshot(c *clustertest.Cluster[*kvSM]) []string {
	var out []string
	for i := range c.Len() {
		st := c.Node(i).Status()
		out = append(out, fmt.Sprintf("node %d: term %d applied %d commands %d",
			i, st.Term, st.AppliedIndex, c.StateMachine(i).applies.Load()))
	}
	return out
}

func TestClusterTLS_FormsClusterAndApplies(t *testing.T) {
	ca := mustCA(t, "vigil cluster CA")
	var mu sync.Mutex
	seen := map[string]bool{} // peers' certificate names VerifyPeer saw
	c := mustTLSCluster(t, 3, ca, func(cs tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		seen[cs.PeerCertificates[0].Subject.CommonName] = true
		return nil
	})
	f := c.Node(c.Followers()[0])
	res := mustApply(t, f, "cmd-tls", "alarm-1", "raised")
	if string(res.Response) != fmt.Sprintf("ok %d", res.Index) {
		t.Fatalf("result through a follower: %+v (%q)", res, res.Response)
	}
	c.WaitConverged()
	for i := range c.Len() {
		if v, ok := kvGet(t, c.Node(i), "alarm-1"); !ok || v != "raised" {
			t.Fatalf("node %d: %q %v", i, v, ok)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 3 {
		if !seen[fmt.Sprintf("node-%d", i)] {
			t.Errorf("VerifyPeer never saw node-%d's certificate (saw %v)", i, seen)
		}
	}
}

// TestClusterTLS_OutsiderGetsNothing is issue 15: one AppendEntries with a
// higher term from an outsider made it the leader of every node.
func TestClusterTLS_OutsiderGetsNothing(t *testing.T) {
	t.Run("control: without TLS the outsider is obeyed", func(t *testing.T) {
		c := mustCluster(t, 1, nil)
		term := c.Node(0).Status().Term
		if err := attack(t, plainDial, c.Node(0).Addr(), term+100); err != nil {
			t.Fatalf("attack on a plain port: %v", err)
		}
		if got := c.Node(0).Status().Term; got != term+100 {
			t.Fatalf("term %d after the attack, want %d: the control no longer shows the attack", got, term+100)
		}
	})

	ca := mustCA(t, "vigil cluster CA")
	other := mustCA(t, "another CA")
	logs := newLogRecorder()
	i := 0
	c := mustCluster(t, 3, func(cfg *cluster.Config) {
		withTLS(t, ca, fmt.Sprintf("node-%d", i), nil)(cfg)
		if i == 0 {
			cfg.Logger = slog.New(logs)
		}
		i++
	})
	mustApply(t, c.Leader(), "before", "k", "v")
	c.WaitConverged()
	before := snapshot(c)

	strange := other.mustNodeCert(t, "node-1") // a member's name, the wrong CA
	attacks := []struct {
		name string
		dial func(string) (net.Conn, error)
	}{
		{"plain TCP", plainDial},
		{"TLS without a certificate", tlsDial(ca, nil)},
		{"TLS with a certificate from another CA", tlsDial(ca, &strange)},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			for n := range c.Len() {
				err := attack(t, a.dial, c.Node(n).Addr(), 1<<30)
				if err == nil {
					t.Fatalf("node %d answered the outsider's AppendEntries", n)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("node %d kept the outsider waiting instead of closing: %v", n, err)
				}
			}
		})
	}
	t.Run("raw bytes", func(t *testing.T) {
		for _, proto := range []byte{1, 2} {
			conn, err := net.Dial("tcp", c.Node(1).Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The protocol byte, then what could pass for a request.
			if _, err := conn.Write(append([]byte{proto}, "\x00\x85\xa4Term\xce\x40\x00\x00\x00"...)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Read(make([]byte, 64))
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("protocol byte %d: the node did not close the connection: %v", proto, err)
			}
		}
	})

	if after := snapshot(c); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("the outsider changed the cluster:\nbefore %v\nafter  %v", before, after)
	}
	if id, _ := c.Node(0).Leader(); id == "intruder" {
		t.Fatal("the outsider is the leader")
	}
	// Node 0 refused 3 connections; one warning says so, the rest go to
	// the debug level.
	if w := logs.find(slog.LevelWarn, "TLS connections refused"); len(w) != 1 {
		t.Errorf("%d warnings about refused connections, want 1: %q", len(w), w)
	}
	d := logs.find(slog.LevelDebug, "TLS connection refused")
	if len(d) != len(attacks) || !strings.Contains(d[len(d)-1], "unknown authority") {
		t.Errorf("%d refusals logged at debug level, want %d, the last for the unknown CA: %q", len(d), len(attacks), d)
	}
}

// TestClusterTLS_VerifyPeerRefuses: a certificate from the cluster's CA that
// VerifyPeer refuses (a removed member's) cannot connect, whichever side
// refuses it.
func TestClusterTLS_VerifyPeerRefuses(t *testing.T) {
	refuse := func(cn string) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if cs.PeerCertificates[0].Subject.CommonName == cn {
				return fmt.Errorf("%s was removed", cn)
			}
			return nil
		}
	}
	tests := []struct {
		name          string
		members       func(tls.ConnectionState) error // the cluster's VerifyPeer
		joiner        func(tls.ConnectionState) error // the joining node's
		joinerLogWant string                          // in the joiner's "cannot join yet"
	}{
		{"the accepting side refuses", refuse("node-removed"), nil, "refused this node's certificate"},
		{"the dialling side refuses", nil, refuse("node-0"), "refused by verify_peer: node-0 was removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := mustCA(t, "vigil cluster CA")
			c := mustTLSCluster(t, 1, ca, tt.members)
			mustApply(t, c.Leader(), "before", "k", "v") // and the leader's no-op before it
			before := snapshot(c)
			logs := newLogRecorder()
			cfg := c.NewConfig()
			cfg.Join = []string{c.Node(0).Addr()}
			withTLS(t, ca, "node-removed", tt.joiner)(&cfg)
			cfg.Logger = slog.New(logs)
			j := c.Restart(c.Add(cfg))
			logs.waitLogged(t, slog.LevelWarn, "cannot join yet", tt.joinerLogWant)
			if got := c.Node(0).Voters(); got != 1 {
				t.Fatalf("%d voters, want 1: the refused node joined", got)
			}
			if id, _ := j.Leader(); id != "" {
				t.Fatalf("the refused node knows leader %s", id)
			}
			if after := snapshot(c)[0]; after != before[0] {
				t.Fatalf("the cluster changed: %s, was %s", after, before[0])
			}
		})
	}
}

// TestClusterTLS_MismatchFailsClearly: a node with TLS and a node without
// cannot talk, and each says why at once rather than hang.
func TestClusterTLS_MismatchFailsClearly(t *testing.T) {
	ca := mustCA(t, "vigil cluster CA")
	tests := []struct {
		name       string
		member     func(*cluster.Config)
		joiner     func(*cluster.Config)
		joinerSays string
		memberSays string
	}{
		{"TLS node joins a plain cluster", nil, withTLS(t, ca, "node-1", nil),
			"cannot complete TLS handshake", "a peer speaks TLS but this node has no TLS configured"},
		{"plain node joins a TLS cluster", withTLS(t, ca, "node-0", nil), nil,
			"no answer from", "TLS connections refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			memberLogs, joinerLogs := newLogRecorder(), newLogRecorder()
			c := mustCluster(t, 1, func(cfg *cluster.Config) {
				if tt.member != nil {
					tt.member(cfg)
				}
				cfg.Logger = slog.New(memberLogs)
			})
			cfg := c.NewConfig()
			cfg.Join = []string{c.Node(0).Addr()}
			if tt.joiner != nil {
				tt.joiner(&cfg)
			}
			cfg.Logger = slog.New(joinerLogs)
			start := time.Now()
			c.Restart(c.Add(cfg))
			said := joinerLogs.waitLogged(t, slog.LevelWarn, "cannot join yet", tt.joinerSays)
			memberLogs.waitLogged(t, slog.LevelWarn, tt.memberSays)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the mismatch took %s to show: %s", d, said)
			}
			if got := c.Node(0).Voters(); got != 1 {
				t.Fatalf("%d voters, want 1", got)
			}
		})
	}
}

func TestConfig_ValidateTLS(t *testing.T) {
	ca := mustCA(t, "vigil cluster CA")
	cert := ca.mustNodeCert(t, "node-0")
	server := func() *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}
	}
	client := func() *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}
	}
	accept := func(tls.ConnectionState) error { return nil }
	tests := []struct {
		name   string
		tweak  func(*cluster.Config)
		errHas string // "" for a valid configuration
	}{
		{"no TLS", func(*cluster.Config) {}, ""},
		{"mutual TLS", func(c *cluster.Config) { c.ServerTLS, c.ClientTLS, c.VerifyPeer = server(), client(), accept }, ""},
		{"custom verification of servers", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ClientTLS.RootCAs, c.ClientTLS.InsecureSkipVerify = nil, true
			c.ClientTLS.VerifyConnection = accept
		}, ""},
		{"server only", func(c *cluster.Config) { c.ServerTLS = server() }, "client_tls"},
		{"client only", func(c *cluster.Config) { c.ClientTLS = client() }, "server_tls"},
		{"verify_peer without TLS", func(c *cluster.Config) { c.VerifyPeer = accept }, "verify_peer"},
		{"client certificates not required", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ServerTLS.ClientAuth = tls.NoClientCert
		}, "server_tls.ClientAuth"},
		{"client certificates requested, not verified", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ServerTLS.ClientAuth = tls.RequireAnyClientCert
		}, "server_tls.ClientAuth"},
		{"client certificates verified if given", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ServerTLS.ClientAuth = tls.VerifyClientCertIfGiven
		}, "server_tls.ClientAuth"},
		{"no client CAs", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ServerTLS.ClientCAs = nil
		}, "server_tls.ClientCAs"},
		{"no server certificate", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ServerTLS.Certificates = nil
		}, "server_tls has no certificate"},
		{"no client certificate", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ClientTLS.Certificates = nil
		}, "client_tls has no certificate"},
		{"servers not verified", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ClientTLS.InsecureSkipVerify = true
		}, "client_tls.InsecureSkipVerify"},
		{"no root CAs", func(c *cluster.Config) {
			c.ServerTLS, c.ClientTLS = server(), client()
			c.ClientTLS.RootCAs = nil
		}, "client_tls.RootCAs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cluster.Config{DataDir: t.TempDir(), BindAddr: "127.0.0.1:0"}
			tt.tweak(&cfg)
			err := cfg.Validate()
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.errHas != "" && err == nil:
				t.Fatalf("accepted, want an error naming %s", tt.errHas)
			case tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas):
				t.Fatalf("error %q does not name %s", err, tt.errHas)
			}
		})
	}
}
