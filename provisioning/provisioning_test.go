package provisioning_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

var now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, cluster string) *provisioning.CA {
	t.Helper()
	ca, err := provisioning.NewCA(cluster, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustNode(t *testing.T, ca *provisioning.CA, id string) *provisioning.NodeCert {
	t.Helper()
	n, err := ca.IssueNode(id, provisioning.NodeNames{DNS: []string{id + ".site.example"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCA_SignsNodesOfItsCluster(t *testing.T) {
	ca := mustCA(t, "c-north")
	n := mustNode(t, ca, "node-1")
	if _, err := n.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the node certificate does not verify against its CA: %v", err)
	}
	if id, err := provisioning.NodeIdentity(n.Cert, "c-north"); err != nil || id != "node-1" {
		t.Fatalf("identity = %q, %v", id, err)
	}
	if _, err := provisioning.NodeIdentity(n.Cert, "c-south"); !errors.Is(err, provisioning.ErrWrongCluster) {
		t.Fatalf("another cluster's name: %v", err)
	}
	if _, err := provisioning.NodeIdentity(ca.Cert, "c-north"); !errors.Is(err, provisioning.ErrNoIdentity) {
		t.Fatalf("the CA as a node: %v", err)
	}
	if fp := ca.Fingerprint(); len(fp) != 64 || fp != provisioning.Fingerprint(ca.Cert) {
		t.Fatalf("fingerprint %q", fp)
	}
	if got := n.Cert.DNSNames; len(got) != 1 || got[0] != "node-1.site.example" {
		t.Fatalf("names %v", got)
	}

	// The CA goes to disk and back, with and without its key.
	key, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := provisioning.LoadCA(ca.CertPEM(), key)
	if err != nil || !back.CanSign() || back.ClusterID != "c-north" || back.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("LoadCA = %+v, %v", back, err)
	}
	if _, err := back.IssueNode("node-2", provisioning.NodeNames{}, time.Now()); err != nil {
		t.Fatalf("the loaded CA cannot sign: %v", err)
	}
	public, err := provisioning.LoadCA(ca.CertPEM(), nil)
	if err != nil || public.CanSign() {
		t.Fatalf("LoadCA without key = %+v, %v", public, err)
	}
	if _, err := public.IssueNode("node-3", provisioning.NodeNames{}, time.Now()); err == nil {
		t.Fatal("a CA without its key signed")
	}
	otherKey, _ := mustCA(t, "c-north").KeyPEM()
	if _, err := provisioning.LoadCA(ca.CertPEM(), otherKey); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Fatalf("a CA with another key: %v", err)
	}
	if _, err := provisioning.LoadCA(n.CertPEM(), nil); !errors.Is(err, provisioning.ErrNotCA) {
		t.Fatalf("a node certificate as the CA: %v", err)
	}

	// A node certificate and key go to disk and back.
	nk, err := n.Key.PEM()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := provisioning.LoadNodeCert(n.CertPEM(), nk); err != nil || !got.Cert.Equal(n.Cert) {
		t.Fatalf("LoadNodeCert = %v", err)
	}
	other := mustNode(t, ca, "node-9")
	ok, _ := other.Key.PEM()
	if _, err := provisioning.LoadNodeCert(n.CertPEM(), ok); err == nil {
		t.Fatal("a node certificate loaded with another node's key")
	}
}

func TestCA_RefusesBadRequests(t *testing.T) {
	ca := mustCA(t, "c-north")
	k, err := provisioning.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := k.Request(provisioning.NodeNames{DNS: []string{"vigil-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "a/b", "node 1", "n:1", strings.Repeat("x", 129)} {
		if _, err := ca.SignRequest(csr, id, now); err == nil {
			t.Errorf("node ID %q was signed", id)
		}
	}
	tampered := append([]byte(nil), csr...)
	tampered[len(tampered)-5] ^= 0xff
	if _, err := ca.SignRequest(tampered, "node-1", now); err == nil {
		t.Error("a tampered request was signed")
	}
	var many provisioning.NodeNames
	for i := range provisioning.MaxNames + 1 {
		many.DNS = append(many.DNS, fmt.Sprintf("n%d.example", i))
	}
	big, _ := k.Request(many)
	if _, err := ca.SignRequest(big, "node-1", now); err == nil || !strings.Contains(err.Error(), "names") {
		t.Errorf("a request for %d names: %v", len(many.DNS), err)
	}
	if _, err := provisioning.NewCA("bad/cluster", now); err == nil {
		t.Error("a cluster ID with '/' made a CA")
	}
	c, err := ca.SignRequest(csr, "node-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(now.Add(provisioning.NodeLifetime).Truncate(time.Second)) || c.NotBefore.After(now) {
		t.Errorf("validity %s .. %s", c.NotBefore, c.NotAfter)
	}
}

func TestJoinToken_RoundTripAndRefusals(t *testing.T) {
	ca := mustCA(t, "c-north")
	tok, err := provisioning.NewJoinToken(ca, []string{"10.0.0.11:8443", "vigil-2.site.example:8443"}, 0, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	text := tok.String()
	got, err := provisioning.ParseJoinToken("  " + text + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.ClusterID != "c-north" || got.CAFingerprint != ca.Fingerprint() || len(got.Addrs) != 2 || got.ID != tok.ID ||
		got.Secret != tok.Secret || !got.Expires.Equal(now.Add(provisioning.DefaultJoinTokenTTL)) || got.Uses != 1 {
		t.Fatalf("parsed %+v, want %+v", got, tok)
	}
	if got.Expired(now.Add(59*time.Minute)) || !got.Expired(now.Add(time.Hour)) {
		t.Error("expiry")
	}
	if err := ca.CheckJoinToken(got, now); err != nil {
		t.Errorf("the CA refuses its own token: %v", err)
	}
	// Every field the secret vouches for is checked: a token changed in
	// any of them, or made by another CA, is refused.
	other := mustCA(t, "c-north")
	forged, _ := provisioning.NewJoinToken(other, nil, 0, 0, now)
	for _, tc := range []struct {
		name   string
		change func(*provisioning.JoinToken)
		at     time.Time
		says   string
	}{
		{"more uses", func(j *provisioning.JoinToken) { j.Uses = 16 }, now, "secret is wrong"},
		{"later expiry", func(j *provisioning.JoinToken) { j.Expires = j.Expires.Add(time.Hour) }, now, "secret is wrong"},
		{"other ID", func(j *provisioning.JoinToken) { j.ID = "0123456789abcdef" }, now, "secret is wrong"},
		{"other secret", func(j *provisioning.JoinToken) { j.Secret = strings.Repeat("0", 64) }, now, "secret is wrong"},
		{"other CA's token", func(j *provisioning.JoinToken) { *j = *forged }, now, "pins another CA"},
		{"other cluster", func(j *provisioning.JoinToken) { j.ClusterID = "c-south" }, now, "cluster"},
		{"expired", func(*provisioning.JoinToken) {}, now.Add(time.Hour), "expired"},
	} {
		j := *got
		tc.change(&j)
		if err := ca.CheckJoinToken(&j, tc.at); !errors.Is(err, provisioning.ErrBadJoinToken) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.says)
		}
	}
	certOnly, err := provisioning.LoadCA(ca.CertPEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provisioning.NewJoinToken(certOnly, nil, 0, 0, now); err == nil {
		t.Error("a token made without the CA key")
	}
	if err := certOnly.CheckJoinToken(got, now); err == nil {
		t.Error("a token checked without the CA key")
	}
	if _, err := provisioning.NewJoinToken(ca, nil, provisioning.MaxJoinTokenTTL+time.Second, 0, now); err == nil {
		t.Error("a token longer-lived than the limit")
	}
	if _, err := provisioning.NewJoinToken(ca, nil, 0, provisioning.MaxJoinTokenUses+1, now); err == nil {
		t.Error("a token with more uses than the limit")
	}
	if _, err := provisioning.NewJoinToken(ca, []string{"no-port"}, 0, 0, now); err == nil {
		t.Error("a token with an address without a port")
	}

	body := strings.TrimPrefix(text, provisioning.JoinTokenPrefix)
	for _, tc := range []struct{ name, text, says string }{
		{"no prefix", body, "does not begin with"},
		{"cut short", text[:len(text)-7], "not a valid join token"},
		{"not base64", provisioning.JoinTokenPrefix + "!!!", "cut short or changed"},
		{"too long", provisioning.JoinTokenPrefix + strings.Repeat("A", provisioning.MaxJoinTokenLen), "longer than"},
		{"unknown field", enc(`{"c":"c-north","x":1}`), "unknown field"},
		{"bad fingerprint", enc(`{"c":"c-north","f":"abc","i":"0123456789abcdef","s":"` + strings.Repeat("ab", 32) + `","e":1900000000,"n":1}`), "fingerprint"},
		{"bad cluster", enc(`{"c":"a/b","f":"` + ca.Fingerprint() + `","i":"0123456789abcdef","s":"` + strings.Repeat("ab", 32) + `","e":1900000000}`), "cluster ID"},
		{"bad address", enc(`{"c":"c-north","f":"` + ca.Fingerprint() + `","a":["x:0"],"i":"0123456789abcdef","s":"` + strings.Repeat("ab", 32) + `","e":1900000000}`), "address"},
		{"short secret", enc(`{"c":"c-north","f":"` + ca.Fingerprint() + `","i":"0123456789abcdef","s":"ab","e":1900000000}`), "secret"},
		{"no expiry", enc(`{"c":"c-north","f":"` + ca.Fingerprint() + `","i":"0123456789abcdef","s":"` + strings.Repeat("ab", 32) + `"}`), "expiry"},
	} {
		_, err := provisioning.ParseJoinToken(tc.text)
		if !errors.Is(err, provisioning.ErrBadJoinToken) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.says)
		}
	}
}

func enc(js string) string {
	return provisioning.JoinTokenPrefix + b64(js)
}

// handshake runs one TLS handshake over real TCP on loopback and returns
// the server's and the client's errors.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		s := tls.Server(c, server)
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		err = s.Handshake()
		if err == nil {
			// TLS 1.3 finishes the client's side first: read so that a
			// refusal of the client's certificate reaches it.
			_, err = s.Write([]byte("ok"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := tls.Client(c, client)
	_ = cl.SetDeadline(time.Now().Add(5 * time.Second))
	clientErr = cl.Handshake()
	if clientErr == nil {
		buf := make([]byte, 2)
		_, clientErr = cl.Read(buf)
	}
	return <-done, clientErr
}

func TestPeerTLS_OnlyMembersOfTheClusterTalk(t *testing.T) {
	ca := mustCA(t, "c-north")
	a, b := mustNode(t, ca, "node-a"), mustNode(t, ca, "node-b")
	removed := errors.New("not a member")
	allowAll := func(string) error { return nil }
	srvA, _ := provisioning.PeerTLS(ca, a, allowAll)
	_, cliB := provisioning.PeerTLS(ca, b, allowAll)
	if se, ce := handshake(t, srvA, cliB); se != nil || ce != nil {
		t.Fatalf("two members: server %v, client %v", se, ce)
	}

	// An outsider without a certificate gets nothing.
	if se, ce := handshake(t, srvA, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); se == nil || ce == nil {
		t.Fatalf("a client without a certificate: server %v, client %v", se, ce)
	}
	// Nor does a node of another cluster's CA, though its certificate
	// names the same cluster.
	rogueCA := mustCA(t, "c-north")
	rogue := mustNode(t, rogueCA, "node-a")
	_, cliRogue := provisioning.PeerTLS(rogueCA, rogue, allowAll)
	if se, _ := handshake(t, srvA, cliRogue); se == nil || !strings.Contains(se.Error(), "bad certificate") && !strings.Contains(se.Error(), "not from this cluster") {
		t.Fatalf("another CA's node: server %v", se)
	}
	// A client of this CA refuses a server of another.
	srvRogue, _ := provisioning.PeerTLS(rogueCA, rogue, allowAll)
	if _, ce := handshake(t, srvRogue, cliB); ce == nil || !strings.Contains(ce.Error(), "not from this cluster") {
		t.Fatalf("a server of another CA: client %v", ce)
	}
	// A member the caller no longer allows is refused, both ways.
	srvStrict, cliStrict := provisioning.PeerTLS(ca, a, func(id string) error {
		if id == "node-b" {
			return removed
		}
		return nil
	})
	if se, _ := handshake(t, srvStrict, cliB); se == nil || !strings.Contains(se.Error(), "not a member") {
		t.Fatalf("a removed member dialling in: server %v", se)
	}
	srvB, _ := provisioning.PeerTLS(ca, b, allowAll)
	if _, ce := handshake(t, srvB, cliStrict); ce == nil || !strings.Contains(ce.Error(), "not a member") {
		t.Fatalf("dialling a removed member: client %v", ce)
	}
}

func TestJoinClientTLS_PinsTheCA(t *testing.T) {
	ca := mustCA(t, "c-north")
	member := mustNode(t, ca, "node-a")
	tok, err := provisioning.NewJoinToken(ca, []string{"127.0.0.1:8443"}, 0, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if se, ce := handshake(t, provisioning.ServerTLS(ca, member), provisioning.JoinClientTLS(tok)); se != nil || ce != nil {
		t.Fatalf("the pinned CA: server %v, client %v", se, ce)
	}
	// An impostor with its own CA, even one naming the same cluster, is
	// not trusted by a joiner holding the real token.
	fakeCA := mustCA(t, "c-north")
	fake := mustNode(t, fakeCA, "node-a")
	if _, ce := handshake(t, provisioning.ServerTLS(fakeCA, fake), provisioning.JoinClientTLS(tok)); !errors.Is(ce, provisioning.ErrFingerprint) {
		t.Fatalf("an impostor: client %v", ce)
	}
}
