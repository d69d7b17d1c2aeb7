package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/provisioning"
)

// The node's trust (provisioning/DESIGN.md): its certificate from the
// cluster's CA, kept in data_dir/tls. The cluster port speaks mutual TLS
// with it, always: a peer must present a certificate of this cluster's CA
// that names a current member. A single appliance that starts with no
// trust makes its own cluster CA (the first boot); a node that is to form
// or join a cluster of several must be given its trust first, by vigil
// init and vigil join.

// nodeIdentity returns the ID the node runs under: the one its data
// directory keeps (node-id, or its certificate), else node_id, else a new
// UUID. It only reads.
func nodeIdentity(cfg Config, trust *provisioning.Trust) (string, error) {
	kept := ""
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "node-id")); err == nil {
		kept = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("cannot read the node ID: %w", err)
	}
	if trust != nil {
		if kept != "" && kept != trust.NodeID() {
			return "", fmt.Errorf("the node certificate in %s names node %q, but the data directory is node %q's",
				filepath.Join(cfg.DataDir, provisioning.TrustDir), trust.NodeID(), kept)
		}
		kept = trust.NodeID()
	}
	switch {
	case kept != "" && cfg.NodeID != "" && cfg.NodeID != kept:
		return "", fieldErr("node_id", cfg.NodeID, "does not match %q, which the data directory %s belongs to", kept, cfg.DataDir)
	case kept != "":
		return kept, nil
	case cfg.NodeID != "":
		return cfg.NodeID, nil
	}
	return uuid.NewString(), nil
}

// loadTrust reads the node's trust; nil, nil when it has none yet.
func loadTrust(dataDir string) (*provisioning.Trust, error) {
	t, err := provisioning.LoadTrust(dataDir)
	if errors.Is(err, provisioning.ErrNoTrust) {
		return nil, nil
	}
	return t, err
}

// peerTrust holds the trust that the cluster port's TLS uses. The
// configurations given to the cluster read it at each handshake, so the
// node can make its trust in Open (a first boot) after New built the
// cluster node, and a renewed certificate takes effect on the next
// connection.
type peerTrust struct {
	mu     sync.RWMutex
	trust  *provisioning.Trust
	server *tls.Config
	client *tls.Config
	allow  func(nodeID string) error
	// watch, set with allow, records the configuration's members as they
	// change, until stop closes (memberCheck).
	watch func(stop <-chan struct{})
}

// set installs t.
func (p *peerTrust) set(t *provisioning.Trust) {
	// No allow here: the member check is VerifyPeer (verifyPeer), which
	// the cluster runs after every handshake and again on open
	// connections; PeerTLS checks the chain and the node's name.
	s, c := provisioning.PeerTLS(t.CA, t.Node, nil)
	p.mu.Lock()
	p.trust, p.server, p.client = t, s, c
	p.mu.Unlock()
}

func (p *peerTrust) get() (*provisioning.Trust, *tls.Config, *tls.Config) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.trust, p.server, p.client
}

var errNoTrust = errors.New("this node has no cluster certificate yet")

// verifyPeer asks the member check about the node that a connection's
// certificate names: the cluster asks it again about open connections, so
// a removed member loses those too.
func (p *peerTrust) verifyPeer(cs tls.ConnectionState) error {
	t, _, _ := p.get()
	if t == nil {
		return errNoTrust
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	id, err := provisioning.NodeIdentity(cs.PeerCertificates[0], t.CA.ClusterID)
	if err != nil {
		return err
	}
	if p.allow == nil {
		return nil
	}
	if err := p.allow(id); err != nil {
		return fmt.Errorf("node %s: %w", id, err)
	}
	return nil
}

// serverTLS is the cluster port's server configuration: TLS 1.3 and a
// client certificate required, both checked by the configuration of the
// trust in place (provisioning.PeerTLS).
func (p *peerTrust) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if _, s, _ := p.get(); s != nil {
				return s, nil
			}
			return nil, errNoTrust
		},
	}
}

// clientTLS is what the node dials its peers with.
func (p *peerTrust) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // VerifyConnection checks the chain and the node, not the address
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			_, _, c := p.get()
			if c == nil {
				return nil, errNoTrust
			}
			return &c.Certificates[0], nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, _, c := p.get()
			if c == nil {
				return errNoTrust
			}
			return c.VerifyConnection(cs)
		},
	}
}

// memberCheck is the cluster port's answer to "may node id talk to us?":
// no only for a node this node has seen leave the cluster (a removed
// member, whose certificate is still signed by the cluster CA and cannot
// be revoked); yes for a current member, and for a node it has never seen
// in a configuration: a member newer than this node's log, or a joiner
// with a token, both holding a certificate of the cluster CA, which the
// handshake has checked.
//
// Its first version refused every node outside this node's latest
// configuration. A node that is behind reads an old configuration from
// its log, and so refused the newer members, the leader among them: it
// could never catch up (a replacement appliance joined while the log
// still held the cluster's history, and refused the leader for good). The
// members this node has seen are kept in data_dir/cluster-members, so a
// removal still counts after a restart.
//
// The members are recorded at every check, and by watch, which reads the
// configuration every memberWatchEvery: a member that joined and was
// removed between two checks would otherwise never be seen.
func memberCheck(configuration func() ([]cluster.Server, error), dataDir string, logger *slog.Logger) (check func(id string) error, watch func(stop <-chan struct{})) {
	seen := &seenMembers{path: filepath.Join(dataDir, seenMembersFile), logger: logger}
	seen.load()
	watch = func(stop <-chan struct{}) {
		t := time.NewTicker(memberWatchEvery)
		defer t.Stop()
		for {
			if servers, err := configuration(); err == nil {
				seen.add(servers)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}
	return func(id string) error {
		servers, err := configuration()
		if err != nil {
			if errors.Is(err, cluster.ErrNoLeader) {
				return nil // Raft is starting: the port is served before it exists
			}
			return fmt.Errorf("cannot read the cluster's members: %w", err)
		}
		seen.add(servers)
		if len(servers) == 0 || slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.ID == id }) {
			return nil
		}
		if seen.has(id) {
			return errors.New("it is not a member of this cluster any more (removed)")
		}
		return nil
	}, watch
}

// memberWatchEvery is how often memberCheck's watch reads the
// configuration.
const memberWatchEvery = 100 * time.Millisecond

// writeFileSynced writes path through a synced temporary file renamed
// into place, and syncs the directory, so that the new file survives a
// power cut.
func writeFileSynced(path string, data []byte) error {
	if err := provisioning.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// seenMembersFile holds the IDs of the nodes a node has seen in its
// cluster's configuration, one per line.
const seenMembersFile = "cluster-members"

// seenMembers are the node IDs seen in the cluster's configuration, kept
// on disk.
type seenMembers struct {
	path   string
	logger *slog.Logger
	mu     sync.Mutex
	ids    map[string]bool
}

func (m *seenMembers) load() {
	m.ids = map[string]bool{}
	b, err := os.ReadFile(m.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.logger.Warn("cannot read the members seen before; a member removed before this start is not refused", logKeyError, err)
		}
		return
	}
	for _, id := range strings.Fields(string(b)) {
		m.ids[id] = true
	}
}

func (m *seenMembers) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[id]
}

// add records the servers of a configuration; it writes the file, synced,
// when one is new.
func (m *seenMembers) add(servers []cluster.Server) {
	m.mu.Lock()
	defer m.mu.Unlock()
	added := false
	for _, s := range servers {
		if !m.ids[s.ID] {
			m.ids[s.ID], added = true, true
		}
	}
	if !added {
		return
	}
	ids := slices.Sorted(maps.Keys(m.ids))
	if err := writeFileSynced(m.path, []byte(strings.Join(ids, "\n")+"\n")); err != nil {
		m.logger.Warn("cannot keep the members seen; a member removed now is refused until a restart only", logKeyError, err)
	}
}

// nodeNames are the names and addresses the node's certificate is made
// for: its host name, localhost, the host of its cluster and HTTP
// addresses, and the addresses of its interfaces, so that browsers and
// devices reach it by any of them.
func nodeNames(cfg Config) provisioning.NodeNames {
	var names provisioning.NodeNames
	addDNS := func(h string) {
		if h != "" && net.ParseIP(h) == nil && !slices.Contains(names.DNS, h) && len(names.DNS) < 8 {
			names.DNS = append(names.DNS, h)
		}
	}
	addIP := func(ip net.IP) {
		if ip != nil && !ip.IsUnspecified() && !slices.ContainsFunc(names.IPs, ip.Equal) && len(names.IPs) < 16 {
			names.IPs = append(names.IPs, ip)
		}
	}
	for _, s := range cfg.SiteNames {
		addDNS(s)
	}
	if h, err := os.Hostname(); err == nil {
		addDNS(h)
	}
	addDNS("localhost")
	for _, a := range []string{cfg.Cluster.AdvertiseAddr, cfg.Cluster.BindAddr, cfg.HTTPAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); ip != nil {
				addIP(ip)
			} else {
				addDNS(h)
			}
		}
	}
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.IPv6loopback)
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				addIP(ipn.IP)
			}
		}
	}
	return names
}

// firstBootTrust makes the trust of a single appliance starting for the
// first time: a new cluster CA and its certificate, saved in its data
// directory.
func firstBootTrust(cfg Config, nodeID string) (*provisioning.Trust, error) {
	t, err := provisioning.InitTrust(uuid.NewString(), nodeID, nodeNames(cfg), time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, dataDirMode); err != nil {
		return nil, fmt.Errorf("cannot make data_dir %s: %w", cfg.DataDir, err)
	}
	if err := t.Save(cfg.DataDir); err != nil {
		return nil, err
	}
	return t, nil
}

// Certificate renewal (rotation without downtime). A node that holds the
// CA key renews its own certificate once two thirds of its life have
// passed: a new key and certificate, saved whole, then used from the next
// handshake on every port; connections open on the old one go on until
// they close. Peers accept both, as both are the CA's and name the node.
const (
	renewCheckInterval = time.Hour
	renewAfterFraction = 3 // renew when less than 1/renewAfterFraction of the life is left
)

// renewDue reports whether a certificate from notBefore to notAfter should
// be renewed at now.
func renewDue(notBefore, notAfter, now time.Time) bool {
	return notAfter.Sub(now) < notAfter.Sub(notBefore)/renewAfterFraction
}

// renewCertificate renews the node's certificate when it is due and the
// node holds the CA key; it returns whether it did.
func (n *Node) renewCertificate(now time.Time) (bool, error) {
	t, _, _ := n.trust.get()
	missing := missingNames(t, n.cfg.SiteNames)
	if t == nil || !renewDue(t.Node.Cert.NotBefore, t.Node.Cert.NotAfter, now) && len(missing) == 0 {
		return false, nil
	}
	if !t.CA.CanSign() {
		if len(missing) > 0 {
			return false, fmt.Errorf("the node certificate does not name site_names %s, and this node does not hold the CA key to make one that does", strings.Join(missing, ", "))
		}
		return false, fmt.Errorf("the node certificate ends on %s and this node does not hold the CA key to renew it: join it again with a token", certExpiry(t.Node.Cert))
	}
	nc, err := t.CA.IssueNode(t.NodeID(), nodeNames(n.cfg), now)
	if err != nil {
		return false, err
	}
	renewed := &provisioning.Trust{CA: t.CA, Node: nc}
	if err := renewed.Save(n.cfg.DataDir); err != nil {
		return false, err
	}
	n.trust.set(renewed)
	n.logger.Info("renewed this node's certificate", "was_until", certExpiry(t.Node.Cert), "now_until", certExpiry(nc.Cert),
		"names", strings.Join(nc.Cert.DNSNames, ","), "added", strings.Join(missing, ","))
	return true, nil
}

// missingNames are the site names the node's certificate does not name.
func missingNames(t *provisioning.Trust, names []string) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, s := range names {
		if !slices.ContainsFunc(t.Node.Cert.DNSNames, func(d string) bool { return strings.EqualFold(d, s) }) {
			out = append(out, s)
		}
	}
	return out
}

// renewLoop checks the certificate at start and every renewCheckInterval.
func (n *Node) renewLoop(done <-chan struct{}) {
	tick := time.NewTicker(renewCheckInterval)
	defer tick.Stop()
	for {
		if _, err := n.renewCertificate(time.Now()); err != nil {
			n.logger.Warn("cannot renew this node's certificate", logKeyError, err)
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// certExpiry says when t's node certificate ends, for the log.
func certExpiry(c *x509.Certificate) string { return c.NotAfter.UTC().Format(time.DateOnly) }
