package provisioning

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// PeerTLS returns the TLS configurations of the cluster port for node: the
// server's, which requires a client certificate, and the client's. Both
// ends check the other's certificate against the cluster's CA alone (not
// the system's roots), that it names a node of this cluster, and then ask
// allow, when it is not nil, whether that node may talk to this one (the
// caller refuses a removed member there). Addresses play no part: a peer
// is who its certificate says.
func PeerTLS(ca *CA, node *NodeCert, allow func(nodeID string) error) (server, client *tls.Config) {
	verify := peerVerifier(ca, allow)
	cert := chainCertificate(node, ca)
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verify(cs, x509.ExtKeyUsageClientAuth)
		},
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool(),
		// The server is checked by its chain and its node name in
		// VerifyConnection, not by the address dialled: a member keeps
		// its certificate when its address changes.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verify(cs, x509.ExtKeyUsageServerAuth)
		},
	}
	return server, client
}

// peerVerifier checks a peer's certificate chain against ca, its node
// identity in ca's cluster, and allow.
func peerVerifier(ca *CA, allow func(nodeID string) error) func(tls.ConnectionState, x509.ExtKeyUsage) error {
	roots := ca.Pool()
	return func(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage},
			CurrentTime: time.Now()}); err != nil {
			return fmt.Errorf("the peer's certificate is not from this cluster's CA: %w", err)
		}
		id, err := NodeIdentity(leaf, ca.ClusterID)
		if err != nil {
			return err
		}
		if allow != nil {
			if err := allow(id); err != nil {
				return fmt.Errorf("node %s: %w", id, err)
			}
		}
		return nil
	}
}

// chainCertificate is node's certificate with the CA's after it, so that a
// joiner that pins the CA by fingerprint sees it in the handshake.
func chainCertificate(node *NodeCert, ca *CA) tls.Certificate {
	c := node.TLSCertificate()
	c.Certificate = append(c.Certificate, ca.Cert.Raw)
	return c
}

// ServerTLS is the configuration of an HTTPS listener on node, with no
// client certificate asked for: operators' browsers and a joining
// appliance connect to it. It presents the CA after the node's
// certificate.
func ServerTLS(ca *CA, node *NodeCert) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{chainCertificate(node, ca)}}
}

// JoinALPN is the application protocol a joining appliance offers, so that
// a member's HTTPS listener presents the cluster's chain to it even when
// the listener has a certificate of the customer's own CA for browsers.
const JoinALPN = "vigil-join/1"

// JoinClientTLS is the configuration a joining appliance, which has no
// certificate yet, uses to reach a member: it trusts the member only if
// the chain it presents ends in the CA whose fingerprint the join token
// carries, and its certificate names a node of the token's cluster.
func JoinClientTLS(t *JoinToken) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{JoinALPN},
		InsecureSkipVerify: true, // checked below against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if c.IsCA && Fingerprint(c) == t.CAFingerprint {
					ca = c
				}
			}
			if ca == nil {
				return ErrFingerprint
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the member's certificate is not from the pinned CA: %w", err)
			}
			_, err := NodeIdentity(cs.PeerCertificates[0], t.ClusterID)
			return err
		},
	}
}
