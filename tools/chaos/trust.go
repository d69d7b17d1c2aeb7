package chaos

// The nodes' trust, given as IT gives it: the three first members get
// their certificates from one new cluster CA before their first start (the
// data directories an operator prepares, as vigil init and vigil join
// would leave them); a replacement joins with a join token, vigil join run
// in its namespace, and then starts with vigil serve. The harness reaches
// the nodes' HTTPS (their addresses are not loopback) trusting the CA, as
// an operator's PC with the CA installed does.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

const (
	// joinTimeout bounds one vigil join; vigil join gives up on its own
	// after two minutes.
	joinTimeout = 150 * time.Second
	// joinTokenTTL is the life of a replacement's join token: it is used at
	// once.
	joinTokenTTL = 10 * time.Minute
)

// nodeNames are the names node n's certificate is made for: its address,
// where the harness and the other nodes reach its HTTPS, and loopback.
func nodeNames(n *node) provisioning.NodeNames {
	return provisioning.NodeNames{DNS: []string{"localhost"}, IPs: []net.IP{net.ParseIP(n.ip), net.IPv4(127, 0, 0, 1)}}
}

// newHTTPClient returns the harness's client of the nodes' HTTPS, trusting
// the cluster CA.
func newHTTPClient(ca *provisioning.CA, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// provisionTrust gives each node's data directory its trust: the CA with
// its key and the node's certificate.
func (c *Cluster) provisionTrust() error {
	for _, n := range c.nodes {
		if err := c.ca.ProvisionNode(n.id, n.dataDir, nodeNames(n), time.Now()); err != nil {
			return fmt.Errorf("cannot give %s its trust: %w", n.name, err)
		}
	}
	return nil
}

// join gives node n's new member its trust as IT would: a join token from
// the CA for the members' HTTPS (vigil token join on a member makes the
// same), then vigil join with it in n's namespace, with the flags n then
// serves with. Its output goes to n's log.
func (c *Cluster) join(ctx context.Context, n *node) error {
	var addrs []string
	for _, o := range c.others(n) {
		addrs = append(addrs, o.httpAddr())
	}
	tok, err := provisioning.NewJoinToken(c.ca, addrs, joinTokenTTL, 1, time.Now())
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append([]string{"join", tok.String()}, n.configArgs()...)
	fmt.Fprintf(logf, "=== chaos %s: vigil join for %s (%s) in %s with a token for %s\n",
		time.Now().Format(time.RFC3339Nano), n.name, n.id, n.ns, strings.Join(addrs, ", "))
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, n.vigil}, args...)...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("vigil join of %s (%s) failed: %w (its log: %s)", n.name, n.id, err, n.logPath)
	}
	return nil
}
