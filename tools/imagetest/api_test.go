package imagetest

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// requestTimeout bounds one API request: longer than a node's apply
// timeout, so that the node answers first.
const requestTimeout = 15 * time.Second

// nodeAPI calls the REST API of the project's nodes at their published
// HTTPS ports, trusting the cluster CA and authorised by an API token.
type nodeAPI struct {
	p     *project
	http  *http.Client
	token string

	mu    sync.Mutex
	addrs map[string]string // service -> host:port of its HTTPS, asked of compose
}

// mustCA fetches the cluster CA from node1's console (GET /ui/ca.crt, as
// an operator PC does) and checks it against the fingerprint vigil init
// printed, as docs/install.md tells IT to: a certificate pool of it.
func mustCA(t *testing.T, p *project, fingerprint string) *x509.CertPool {
	t.Helper()
	// Not yet trusted: the certificate is checked against the fingerprint
	// below before anything else is sent.
	insecure := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	addr, err := p.hostAddr("node1", 8443)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := insecure.Get("https://" + addr + "/ui/ca.crt")
	if err != nil {
		t.Fatalf("GET /ui/ca.crt: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	blk, _ := pem.Decode(b)
	if resp.StatusCode != http.StatusOK || blk == nil {
		t.Fatalf("GET /ui/ca.crt: %d %q", resp.StatusCode, b)
	}
	sum := sha256.Sum256(blk.Bytes)
	got := strings.ToUpper(hex.EncodeToString(sum[:]))
	if want := strings.ReplaceAll(fingerprint, ":", ""); got != want {
		t.Fatalf("the console's CA has fingerprint %s, vigil init printed %s", got, want)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("the CA certificate does not parse")
	}
	return pool
}

func newNodeAPI(p *project, pool *x509.CertPool, token string) *nodeAPI {
	return &nodeAPI{p: p, token: token, addrs: map[string]string{}, http: &http.Client{Timeout: requestTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
}

// addr returns the host address of service's HTTPS, asking compose the
// first time and after forget.
func (a *nodeAPI) addr(service string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.addrs[service]; ok {
		return s, nil
	}
	s, err := a.p.hostAddr(service, 8443)
	if err == nil {
		a.addrs[service] = s
	}
	return s, err
}

// forget drops what addr knows of service: a container started again is
// published on other host ports.
func (a *nodeAPI) forget(service string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.addrs, service)
}

// do sends a request to service's node and decodes a 2xx reply's JSON into
// out.
func (a *nodeAPI) do(service, method, path string, body, out any) error {
	addr, err := a.addr(service)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, service, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on %s: %d %s", method, path, service, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, service, err)
	}
	return nil
}

// mustPost writes through service's node and fails the test on an error.
func (a *nodeAPI) mustPost(t *testing.T, service, path string, body, out any) {
	t.Helper()
	if err := a.do(service, http.MethodPost, path, body, out); err != nil {
		t.Fatal(err)
	}
}
