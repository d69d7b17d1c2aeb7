package appliance_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// box is one appliance of a test installation: its addresses and data
// directory, as IT would configure it.
type box struct {
	dir, clusterAddr, httpAddr string
	node                       *appliance.Node
}

func newBox(t *testing.T) *box {
	return &box{dir: t.TempDir(), clusterAddr: clustertest.FreeAddr(t), httpAddr: clustertest.FreeAddr(t)}
}

// flags are the command-line flags that configure b.
func (b *box) flags() []string {
	return []string{"--data-dir", b.dir, "--cluster-addr", b.clusterAddr, "--http-addr", b.httpAddr, "--http-tls", "on",
		"--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", ""}
}

// serve opens b's node with the configuration of its flags.
func (b *box) serve(t *testing.T) {
	t.Helper()
	cfg := appliancetest.Config(t)
	cfg.DataDir, cfg.Cluster.BindAddr, cfg.HTTPAddr, cfg.HTTPTLS = b.dir, b.clusterAddr, b.httpAddr, "on"
	b.node = appliancetest.MustNode(t, &cfg)
}

var tokenRE = regexp.MustCompile(provisioning.JoinTokenPrefix + `[A-Za-z0-9_-]+`)

func voters(t *testing.T, n *appliance.Node) int {
	servers, err := n.Cluster().Configuration()
	if err != nil {
		return 0
	}
	v := 0
	for _, s := range servers {
		if s.Voter {
			v++
		}
	}
	return v
}

// peerDial opens a connection to a cluster port as a peer with tr would,
// and returns the error of the handshake and the protocol byte's echo.
func peerDial(addr string, client *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, client)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte{1}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := conn.Read(b); err != nil {
		return err
	}
	return nil
}

// Three appliances become one cluster the way IT sets them up: vigil init
// on the first, which prints a join token; vigil serve; vigil join with the
// token on the others, then vigil serve. The cluster port then speaks
// mutual TLS only with members: no certificate, another cluster's, or a
// removed member's gets nothing; a used-up token is refused; and the
// console's port redirects plain HTTP to HTTPS.
func TestTrust_InitJoinServe(t *testing.T) {
	boxes := []*box{newBox(t), newBox(t), newBox(t)}
	code, out, errOut := runCLI(t, nil, append([]string{"init", "--expect", "3"}, boxes[0].flags()...)...)
	if code != appliance.ExitOK {
		t.Fatalf("init: exit %d: %s %s", code, out, errOut)
	}
	token := tokenRE.FindString(out)
	if token == "" || !strings.Contains(out, "Join token for 2 appliance(s)") || !strings.Contains(out, "vigil join") {
		t.Fatalf("init printed no join token for two: %s", out)
	}
	if code, _, errOut := runCLI(t, nil, append([]string{"init"}, boxes[0].flags()...)...); code == appliance.ExitOK || !strings.Contains(errOut, "already holds the trust") {
		t.Fatalf("a second init: exit %d, %s", code, errOut)
	}
	boxes[0].serve(t)
	first := boxes[0].node

	for _, b := range boxes[1:] {
		code, out, errOut := runCLI(t, nil, append([]string{"join", token}, b.flags()...)...)
		if code != appliance.ExitOK || !strings.Contains(out, "has joined cluster") {
			t.Fatalf("join: exit %d: %s %s", code, out, errOut)
		}
		b.serve(t)
	}
	clustertest.PollUntil(t, 30*time.Second, "three voters on every node", func() bool {
		for _, b := range boxes {
			if voters(t, b.node) != 3 {
				return false
			}
		}
		return true
	})
	// A write through the last to join is on the first.
	if _, err := boxes[2].node.Service().PutOrganisation(context.Background(), "org-trust", "test", monitoring.Organisation{ID: "org-north", Name: "North Council"}); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 10*time.Second, "the organisation on the first node", func() bool {
		_, err := first.Service().Organisation("org-north")
		return err == nil
	})

	// The token let two appliances join: a third use is refused.
	extra := newBox(t)
	code, _, errOut = runCLI(t, nil, append([]string{"join", token}, extra.flags()...)...)
	if code == appliance.ExitOK || !strings.Contains(errOut, "used 2 of 2 times") {
		t.Fatalf("a used-up token: exit %d, %s", code, errOut)
	}
	// A token changed to allow more uses is refused by its secret.
	tok, _ := provisioning.ParseJoinToken(token)
	tok.Uses = 16
	code, _, errOut = runCLI(t, nil, append([]string{"join", tok.String()}, extra.flags()...)...)
	if code == appliance.ExitOK || !strings.Contains(errOut, "secret is wrong") {
		t.Fatalf("a changed token: exit %d, %s", code, errOut)
	}
	// Nothing of the refused joins is left in the cluster.
	if servers, _ := first.Cluster().Configuration(); len(servers) != 3 {
		t.Fatalf("after refused joins the cluster has %d servers", len(servers))
	}

	// The cluster port: a member's certificate is let in.
	trust := func(b *box) *provisioning.Trust {
		tr, err := provisioning.LoadTrust(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	_, member := provisioning.PeerTLS(trust(boxes[1]).CA, trust(boxes[1]).Node, nil)
	if err := peerDial(boxes[0].clusterAddr, member); err != nil {
		t.Fatalf("a member refused: %v", err)
	}
	// No certificate: refused at the handshake.
	if err := peerDial(boxes[0].clusterAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil {
		t.Fatal("a peer with no certificate was let in")
	}
	// Another cluster's CA, naming this cluster and a member's ID: refused.
	forgedCA, _ := provisioning.NewCA(trust(boxes[0]).CA.ClusterID, time.Now())
	forged, _ := forgedCA.IssueNode(trust(boxes[1]).NodeID(), provisioning.NodeNames{}, time.Now())
	_, forgedClient := provisioning.PeerTLS(forgedCA, forged, nil)
	forgedClient.VerifyConnection = nil // the outsider does not check the server either
	if err := peerDial(boxes[0].clusterAddr, forgedClient); err == nil {
		t.Fatal("a certificate of another CA was let in")
	}
	// The extra appliance's data directory holds no trust: its failed joins
	// wrote nothing.
	if _, err := provisioning.LoadTrust(extra.dir); !errors.Is(err, provisioning.ErrNoTrust) {
		t.Fatalf("a refused joiner kept trust: %v", err)
	}

	// A removed member's valid certificate stops working, and the
	// connections it already had are closed.
	removed := boxes[2]
	removedTrust := trust(removed)
	_, removedClient := provisioning.PeerTLS(removedTrust.CA, removedTrust.Node, nil)
	open, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", boxes[0].clusterAddr, removedClient)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte{1}); err != nil { // the cluster RPC's protocol byte
		t.Fatal(err)
	}
	if _, err := open.Read(make([]byte, 1)); err != nil {
		t.Fatalf("a member's connection was not accepted: %v", err)
	}
	// vigil replace-node on the first appliance: a member that still
	// answers is not removed; once it is down, it is, and a token for its
	// replacement is printed.
	replace := []string{"replace-node", removedTrust.NodeID(), "--data-dir", boxes[0].dir, "--addr", "https://" + boxes[0].httpAddr}
	if code, _, errOut := runCLI(t, nil, replace...); code == appliance.ExitOK || !strings.Contains(errOut, "still answers") {
		t.Fatalf("replace-node of a live member: exit %d, %s", code, errOut)
	}
	removed.node.Close()
	var replaceOut string
	clustertest.PollUntil(t, 20*time.Second, "replace-node once the member is down", func() bool {
		code, out, _ := runCLI(t, nil, replace...)
		replaceOut = out
		return code == appliance.ExitOK
	})
	replacementToken := tokenRE.FindString(replaceOut)
	if !strings.Contains(replaceOut, "removed from cluster") || replacementToken == "" {
		t.Fatalf("replace-node printed %s", replaceOut)
	}
	clustertest.PollUntil(t, 10*time.Second, "the removed member refused by both", func() bool {
		return peerDial(boxes[0].clusterAddr, removedClient) != nil && peerDial(boxes[1].clusterAddr, removedClient) != nil
	})
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the removed member's open connection was not closed: %v", err)
	}

	// The replacement joins with that token and the cluster has three
	// voters again.
	replacement := newBox(t)
	if code, out, errOut := runCLI(t, nil, append([]string{"join", replacementToken}, replacement.flags()...)...); code != appliance.ExitOK {
		t.Fatalf("the replacement's join: exit %d: %s %s", code, out, errOut)
	}
	replacement.serve(t)
	clustertest.PollUntil(t, 30*time.Second, "three voters with the replacement", func() bool {
		servers, err := first.Cluster().Configuration()
		return err == nil && len(servers) == 3 && voters(t, first) == 3 &&
			slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.ID == replacement.node.Cluster().ID() })
	})

	// The console's port: HTTPS with the node's certificate from the
	// cluster CA, and plain HTTP redirected to it.
	pool := x509.NewCertPool()
	pool.AddCert(trust(boxes[0]).CA.Cert)
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := secure.Get("https://" + boxes[0].httpAddr + "/ui/login")
	if err != nil {
		t.Fatalf("the console over HTTPS with the cluster CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the console over HTTPS: %s", resp.Status)
	}
	// Operator PCs fetch the CA to install from /ui/ca.crt.
	resp, err = secure.Get("https://" + boxes[0].httpAddr + "/ui/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	caBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(caBody) != string(trust(boxes[0]).CA.CertPEM()) {
		t.Fatalf("/ui/ca.crt: %s, %d bytes", resp.Status, len(caBody))
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = plain.Get("http://" + boxes[0].httpAddr + "/ui/alarms?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+boxes[0].httpAddr+"/ui/alarms?x=1" {
		t.Fatalf("plain HTTP: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if !strings.HasPrefix(first.ConsoleURL(), "https://") {
		t.Fatalf("console URL %s", first.ConsoleURL())
	}
}

// A node told to form or join a cluster of several, with no trust of its
// own, refuses to start and says what to run; a single appliance's first
// boot makes its own CA.
func TestTrust_NodeWithoutTrust(t *testing.T) {
	cfg := appliancetest.Config(t)
	cfg.Cluster.BindAddr = clustertest.FreeAddr(t)
	cfg.Cluster.BootstrapExpect = []string{cfg.Cluster.BindAddr, "127.0.0.1:1", "127.0.0.1:2"}
	n, err := appliance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vigil init") || !strings.Contains(err.Error(), "cluster.bootstrap_expect") {
		t.Fatalf("open without trust: %v", err)
	}

	single := appliancetest.MustNode(t, nil)
	tr, err := provisioning.LoadTrust(single.DataDir())
	if err != nil || tr.NodeID() != single.Cluster().ID() || !tr.CA.CanSign() {
		t.Fatalf("a first boot's trust: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(single.DataDir(), provisioning.TrustDir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v", err)
	}
}

// The MQTT over TLS listener, with no certificate file configured,
// presents the node's certificate from the cluster CA: a device that
// trusts only that CA (the ca_cert of its enrolment bundle) verifies it by
// the address it dials, and speaks MQTT inside.
func TestTrust_MQTTOverTLSWithTheNodeCertificate(t *testing.T) {
	cfg := appliancetest.Config(t)
	cfg.Broker.TLSAddr = "127.0.0.1:0"
	n := appliancetest.MustNode(t, &cfg)
	caPEM, err := os.ReadFile(filepath.Join(n.DataDir(), provisioning.TrustDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	addr := n.Broker().TLSAddr()
	host, _, _ := net.SplitHostPort(addr)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
	if err != nil {
		t.Fatalf("a device trusting the cluster CA cannot verify the broker: %v", err)
	}
	defer conn.Close()
	// MQTT 3.1.1 CONNECT of an unknown device: the broker answers CONNACK
	// with "bad user name or password" (4) inside TLS.
	connect := []byte{0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30, 0, 5, 'd', 'e', 'v', '-', 'x', 0, 5, 'd', 'e', 'v', '-', 'x', 0, 2, 'n', 'o'}
	connect[1] = byte(len(connect) - 2)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(connect); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("no CONNACK over TLS: %v", err)
	}
	if ack[0] != 0x20 || ack[3] == 0 {
		t.Fatalf("CONNACK % x, want a refusal of the unknown device", ack)
	}
	// The node registers the listener, so enrolment bundles carry it.
	clustertest.PollUntil(t, 10*time.Second, "the TLS listener registered", func() bool {
		cn, err := n.Service().ConsoleNode(n.Cluster().ID())
		return err == nil && slices.Contains(cn.MQTT, "mqtts://"+addr)
	})
}

// A node whose certificate has less than a third of its life left renews
// it when it starts (and hourly after): a new certificate of the same CA,
// naming the same node, saved and presented from the next handshake.
func TestTrust_CertificateRenewed(t *testing.T) {
	cfg := appliancetest.Config(t)
	old := time.Now().Add(-300 * 24 * time.Hour)
	ca, err := provisioning.NewCA("c-renew", old)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.ProvisionNode("node-renew", cfg.DataDir, provisioning.NodeNames{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, old); err != nil {
		t.Fatal(err)
	}
	before, _ := provisioning.LoadTrust(cfg.DataDir)
	cfg.HTTPTLS = "on"
	n := appliancetest.MustNode(t, &cfg)
	after, err := provisioning.LoadTrust(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if after.NodeID() != "node-renew" || n.Cluster().ID() != "node-renew" || after.CA.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("renewed trust names %s of CA %s", after.NodeID(), after.CA.Fingerprint())
	}
	if !after.Node.Cert.NotAfter.After(before.Node.Cert.NotAfter.Add(200 * 24 * time.Hour)) {
		t.Fatalf("the certificate was not renewed: it ends %s (was %s)", after.Node.Cert.NotAfter, before.Node.Cert.NotAfter)
	}
	conn, err := tls.Dial("tcp", n.HTTPAddr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(after.Node.Cert) {
		t.Fatalf("HTTPS presents the certificate ending %s, not the renewed one", got.NotAfter)
	}
}

// With a certificate from the customer's own CA on the console's port,
// browsers get that one, and a joining appliance, which asks for the
// cluster's chain with ALPN, still gets the CA its token pins.
func TestTrust_CustomerCertificateAndJoin(t *testing.T) {
	now := time.Now()
	customer, err := provisioning.NewCA("customer-it", now)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := customer.IssueNode("console", provisioning.NodeNames{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "console.crt"), filepath.Join(dir, "console.key")
	keyPEM, _ := cc.Key.PEM()
	if os.WriteFile(certFile, cc.CertPEM(), 0o644) != nil || os.WriteFile(keyFile, keyPEM, 0o600) != nil {
		t.Fatal("cannot write the customer's certificate")
	}
	cfg := appliancetest.Config(t)
	cfg.HTTPTLS, cfg.HTTPTLSCertFile, cfg.HTTPTLSKeyFile = "on", certFile, keyFile
	n := appliancetest.MustNode(t, &cfg)

	browser, err := tls.Dial("tcp", n.HTTPAddr(), &tls.Config{RootCAs: customer.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a browser trusting the customer's CA: %v", err)
	}
	browser.Close()

	tr, err := provisioning.LoadTrust(n.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := provisioning.NewJoinToken(tr.CA, []string{n.HTTPAddr()}, 0, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := tls.Dial("tcp", n.HTTPAddr(), provisioning.JoinClientTLS(tok))
	if err != nil {
		t.Fatalf("a joiner pinning the cluster CA: %v", err)
	}
	defer joiner.Close()
	if got := joiner.ConnectionState().PeerCertificates[0]; !got.Equal(tr.Node.Cert) {
		t.Fatalf("the joiner was shown %s, not the node's certificate", got.Subject)
	}
}

// A join token in the configuration (cluster.join_token) joins a new
// appliance on its first vigil serve, unattended; on later starts, with
// its certificate in place, the used-up token is ignored.
func TestTrust_JoinTokenInTheConfiguration(t *testing.T) {
	first, second := newBox(t), newBox(t)
	code, out, errOut := runCLI(t, nil, append([]string{"init", "--expect", "2"}, first.flags()...)...)
	token := tokenRE.FindString(out)
	if code != appliance.ExitOK || token == "" {
		t.Fatalf("init: exit %d: %s %s", code, out, errOut)
	}
	first.serve(t)
	env := map[string]string{"VIGIL_CLUSTER_JOIN_TOKEN": token}
	serve := func() (stop func() int) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var out, errOut appliancetest.Buffer
		go func() {
			done <- appliance.RunCLI(ctx, &out, &errOut, appliance.EnvFrom(env), append([]string{"vigil", "serve"}, second.flags()...))
		}()
		return func() int {
			cancel()
			select {
			case code := <-done:
				if code != appliance.ExitOK {
					t.Logf("serve: %s %s", out.String(), errOut.String())
				}
				return code
			case <-time.After(30 * time.Second):
				t.Fatal("vigil serve did not stop")
				return -1
			}
		}
	}
	stop := serve()
	clustertest.PollUntil(t, 30*time.Second, "two voters", func() bool { return voters(t, first.node) == 2 })
	if code := stop(); code != appliance.ExitOK {
		t.Fatalf("serve with a join token exited %d", code)
	}
	// Again, with the token used up: it starts from its own trust.
	stop = serve()
	clustertest.PollUntil(t, 30*time.Second, "the second node back", func() bool {
		st := first.node.Cluster().Status()
		for _, m := range st.Members {
			if !m.Self && !m.Reachable {
				return false
			}
		}
		return len(st.Members) == 2
	})
	if code := stop(); code != appliance.ExitOK {
		t.Fatalf("the restart with a used-up token exited %d", code)
	}
	// A token in the configuration that is not a token is refused by name,
	// without echoing it.
	code, _, errOut = runCLI(t, map[string]string{"VIGIL_CLUSTER_JOIN_TOKEN": "vjt1_not-a-token-secret"}, append([]string{"serve"}, newBox(t).flags()...)...)
	if code == appliance.ExitOK || !strings.Contains(errOut, "cluster.join_token") || strings.Contains(errOut, "not-a-token-secret") {
		t.Fatalf("a bad join_token: exit %d, %s", code, errOut)
	}
}

// The join endpoint is open to anyone on the LAN: whatever an outsider
// posts gets a refusal that names the problem, and changes nothing.
func TestTrust_JoinEndpointRefusesRubbish(t *testing.T) {
	cfg := appliancetest.Config(t)
	cfg.HTTPTLS = "on"
	n := appliancetest.MustNode(t, &cfg)
	tr, err := provisioning.LoadTrust(n.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tr.CA.Pool(), ServerName: "127.0.0.1"}}}
	url := "https://" + n.HTTPAddr() + provisioning.JoinPath
	other, _ := provisioning.NewCA(tr.CA.ClusterID, time.Now())
	foreign, _ := provisioning.NewJoinToken(other, nil, 0, 0, time.Now())
	good, _ := provisioning.NewJoinToken(tr.CA, nil, 0, 0, time.Now())
	for _, tc := range []struct {
		name, method, body string
		status             int
		says               string
	}{
		{"a GET", http.MethodGet, "", http.StatusMethodNotAllowed, "POST"},
		{"not JSON", http.MethodPost, "<xml/>", http.StatusBadRequest, "not a join request"},
		{"an unknown field", http.MethodPost, `{"token":"x","admin":true}`, http.StatusBadRequest, "unknown field"},
		{"not a token", http.MethodPost, `{"token":"hello"}`, http.StatusBadRequest, "not a valid join token"},
		{"another CA's token", http.MethodPost, `{"token":"` + foreign.String() + `"}`, http.StatusForbidden, "pins another CA"},
		{"a good token, a member's ID", http.MethodPost, `{"token":"` + good.String() + `","node_id":"` + n.Cluster().ID() +
			`","cluster_addr":"10.9.9.9:7000","csr":"AAAA"}`, http.StatusConflict, "already a member"},
		{"a good token, a wildcard address", http.MethodPost, `{"token":"` + good.String() + `","node_id":"n-x","cluster_addr":"0.0.0.0:7000","csr":"AAAA"}`,
			http.StatusBadRequest, "wildcard"},
		{"a good token, a request that is not a CSR", http.MethodPost, `{"token":"` + good.String() + `","node_id":"n-x","cluster_addr":"10.9.9.9:7000","csr":"AAAA"}`,
			http.StatusBadRequest, "certificate request"},
		{"too big", http.MethodPost, `{"token":"` + strings.Repeat("A", provisioning.MaxJoinMessage) + `"}`, http.StatusBadRequest, "too large"},
	} {
		req, _ := http.NewRequest(tc.method, url, strings.NewReader(tc.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, resp.StatusCode, body, tc.status, tc.says)
		}
	}
	if servers, _ := n.Cluster().Configuration(); len(servers) != 1 {
		t.Fatalf("the configuration has %d servers after rubbish", len(servers))
	}
	if uses, _ := n.Service().JoinTokenUses(); len(uses) != 0 {
		t.Fatalf("rubbish counted token uses: %+v", uses)
	}
}

// A site name added to the configuration (site_names) is put in the
// node's certificate at the next start: browsers reach the console by it.
func TestTrust_SiteNameAddedToTheCertificate(t *testing.T) {
	cfg := appliancetest.Config(t)
	cfg.HTTPTLS = "on"
	n := appliancetest.MustNode(t, &cfg)
	n.Close()
	cfg.SiteNames = []string{"vigil.council.example"}
	cfg.HTTPAddr = "127.0.0.1:0"
	n = appliancetest.MustNode(t, &cfg)
	tr, err := provisioning.LoadTrust(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tr.Node.Cert.DNSNames, "vigil.council.example") {
		t.Fatalf("the certificate names %v", tr.Node.Cert.DNSNames)
	}
	conn, err := tls.Dial("tcp", n.HTTPAddr(), &tls.Config{RootCAs: tr.CA.Pool(), ServerName: "vigil.council.example"})
	if err != nil {
		t.Fatalf("a browser reaching it by the site name: %v", err)
	}
	conn.Close()
	// A name that is not a DNS name is refused by name.
	cfg.SiteNames = []string{"vigil council"}
	if _, err := appliance.New(cfg); err == nil || !strings.Contains(err.Error(), "site_names") {
		t.Fatalf("a bad site name: %v", err)
	}
}
