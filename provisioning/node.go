package provisioning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// uriScheme is the scheme of the URI SANs that name clusters and nodes.
const uriScheme = "vigil"

// clusterURI is vigil://<cluster-id>: the name a CA certificate carries.
func clusterURI(clusterID string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: clusterID}
}

// nodeURI is vigil://<cluster-id>/node/<node-id>: the name a node
// certificate carries.
func nodeURI(clusterID, nodeID string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: clusterID, Path: "/node/" + nodeID}
}

// identity returns the cluster, and the node if any, that a certificate
// names in its vigil:// URI SAN. A certificate must name exactly one.
func identity(c *x509.Certificate) (clusterID, nodeID string, err error) {
	var found []*url.URL
	for _, u := range c.URIs {
		if u.Scheme == uriScheme {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return "", "", ErrNoIdentity
	}
	u := found[0]
	if checkID("cluster ID", u.Host) != nil {
		return "", "", ErrNoIdentity
	}
	if u.Path == "" {
		return u.Host, "", nil
	}
	node, ok := strings.CutPrefix(u.Path, "/node/")
	if !ok || checkID("node ID", node) != nil {
		return "", "", ErrNoIdentity
	}
	return u.Host, node, nil
}

// NodeIdentity returns the node ID of a node certificate of the cluster
// clusterID: ErrWrongCluster for another cluster's, ErrNoIdentity for a
// certificate that names no node.
func NodeIdentity(c *x509.Certificate, clusterID string) (string, error) {
	cluster, node, err := identity(c)
	switch {
	case err != nil:
		return "", err
	case cluster != clusterID:
		return "", fmt.Errorf("%w: it names cluster %q, this is %q", ErrWrongCluster, cluster, clusterID)
	case node == "":
		return "", ErrNoIdentity
	}
	return node, nil
}

// NodeKey is a node's private key. It never leaves the appliance that
// made it: a joining node sends a certificate request, not its key.
type NodeKey struct{ key *ecdsa.PrivateKey }

// NewNodeKey makes a node's ECDSA P-256 key.
func NewNodeKey() (*NodeKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot make the node key: %w", err)
	}
	return &NodeKey{key: k}, nil
}

// LoadNodeKey reads a node key from PEM.
func LoadNodeKey(b []byte) (*NodeKey, error) {
	k, err := parseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return &NodeKey{key: k}, nil
}

// PEM is the key as PEM, for the node's data directory (mode 0600).
func (k *NodeKey) PEM() ([]byte, error) { return keyPEM(k.key) }

// NodeNames are the names and addresses a node's certificate is valid
// for, as browsers and devices reach it (its host name, a site name, its
// LAN addresses).
type NodeNames struct {
	DNS []string
	IPs []net.IP
}

// Request makes the certificate request that a node sends to the CA to
// join: it proves the node holds the key, and carries the names it asks
// for. The CA decides the identity, not the request.
func (k *NodeKey) Request(names NodeNames) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{"Vigil"}}, DNSNames: names.DNS, IPAddresses: names.IPs,
	}, k.key)
	if err != nil {
		return nil, fmt.Errorf("cannot make the certificate request: %w", err)
	}
	return der, nil
}

// MaxNames bounds the names a certificate request may ask for.
const MaxNames = 32

// SignRequest signs a node certificate for node nodeID from a certificate
// request (Request), valid from now for NodeLifetime, for both ends of a
// TLS connection. It refuses a request whose signature does not check, or
// that asks for too many names.
func (ca *CA) SignRequest(csrDER []byte, nodeID string, now time.Time) (*x509.Certificate, error) {
	if ca.key == nil {
		return nil, errors.New("this appliance does not hold the CA key")
	}
	if err := checkID("node ID", nodeID); err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("certificate request: the key is a %T, not an ECDSA key", csr.PublicKey)
	}
	if n := len(csr.DNSNames) + len(csr.IPAddresses); n > MaxNames {
		return nil, fmt.Errorf("certificate request: %d names, more than %d", n, MaxNames)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Vigil"}, CommonName: nodeID},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(NodeLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		URIs:         []*url.URL{nodeURI(ca.ClusterID, nodeID)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the node certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// IssueNode makes a key and a signed certificate for node nodeID in one
// step: for the first appliance, which holds the CA.
func (ca *CA) IssueNode(nodeID string, names NodeNames, now time.Time) (*NodeCert, error) {
	k, err := NewNodeKey()
	if err != nil {
		return nil, err
	}
	csr, err := k.Request(names)
	if err != nil {
		return nil, err
	}
	c, err := ca.SignRequest(csr, nodeID, now)
	if err != nil {
		return nil, err
	}
	return &NodeCert{Cert: c, Key: k}, nil
}

// NodeCert is a node's certificate with its key.
type NodeCert struct {
	Cert *x509.Certificate
	Key  *NodeKey
}

// CertPEM is the node certificate as PEM.
func (n *NodeCert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.Cert.Raw})
}

// TLSCertificate is the pair as crypto/tls takes it.
func (n *NodeCert) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{n.Cert.Raw}, PrivateKey: n.Key.key, Leaf: n.Cert}
}

// LoadNodeCert reads a node certificate and its key from PEM.
func LoadNodeCert(certPEM, keyPEM []byte) (*NodeCert, error) {
	c, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	k, err := LoadNodeKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !k.key.PublicKey.Equal(c.PublicKey) {
		return nil, errors.New("node certificate: it is not the certificate of the node key")
	}
	return &NodeCert{Cert: c, Key: k}, nil
}
