package provisioning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Lifetimes of what the CA signs. A node certificate is renewed well
// before it ends (rotation, DESIGN.md); the CA outlives the appliances.
const (
	CALifetime   = 20 * 365 * 24 * time.Hour
	NodeLifetime = 365 * 24 * time.Hour
	// clockSkew back-dates NotBefore, so that a node whose clock is a
	// little behind still accepts a certificate made a moment ago.
	clockSkew = 5 * time.Minute
)

// Sentinel errors of the package.
var (
	// ErrNotCA refuses a certificate that is not a CA's.
	ErrNotCA = errors.New("not a CA certificate")
	// ErrWrongCluster refuses a certificate of another cluster.
	ErrWrongCluster = errors.New("certificate of another cluster")
	// ErrNoIdentity refuses a certificate that names no Vigil node.
	ErrNoIdentity = errors.New("certificate names no Vigil node")
	// ErrFingerprint refuses a CA whose fingerprint is not the pinned one.
	ErrFingerprint = errors.New("the CA's fingerprint is not the one in the join token")
)

// CA is a cluster's certificate authority: its certificate, and its
// private key when this appliance holds it.
type CA struct {
	ClusterID string
	Cert      *x509.Certificate
	key       *ecdsa.PrivateKey // nil on an appliance that does not hold it
}

// NewCA makes the certificate authority of a new cluster: an ECDSA P-256
// key and a self-signed certificate naming the cluster.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	if err := checkID("cluster ID", clusterID); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot make the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Vigil"}, CommonName: "Vigil cluster CA " + clusterID},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{clusterURI(clusterID)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{ClusterID: clusterID, Cert: cert, key: key}, nil
}

// LoadCA reads a CA from its PEM certificate and, when keyPEM is not
// empty, its PEM private key (which must match).
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, ErrNotCA
	}
	cluster, _, err := identity(cert)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca := &CA{ClusterID: cluster, Cert: cert}
	if len(keyPEM) == 0 {
		return ca, nil
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("CA key: it is not the key of the CA certificate")
	}
	ca.key = key
	return ca, nil
}

// CanSign reports whether this appliance holds the CA's key.
func (ca *CA) CanSign() bool { return ca.key != nil }

// Fingerprint is the SHA-256 of the CA certificate, in hex: what a join
// token carries so that the joiner can pin the CA.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is the SHA-256 of a certificate's DER, in lower-case hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// DisplayFingerprint is a hex fingerprint as operating systems show one:
// upper case, in colon-separated pairs ("5C:5F:7C:...").
func DisplayFingerprint(hexFP string) string {
	var b strings.Builder
	for i := 0; i+1 < len(hexFP); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(hexFP[i : i+2]))
	}
	return b.String()
}

// CertPEM is the CA certificate as PEM: what operator PCs and devices
// install to trust the appliances.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the CA's private key as PEM, or nil when this appliance does
// not hold it.
func (ca *CA) KeyPEM() ([]byte, error) {
	if ca.key == nil {
		return nil, nil
	}
	return keyPEM(ca.key)
}

// derivedKey is a key for purpose derived from the CA's private key, which
// must be held: SHA-256 of the purpose and the private scalar.
func (ca *CA) derivedKey(purpose string) []byte {
	d, err := ca.key.Bytes()
	if err != nil {
		panic("provisioning: the CA key has no scalar: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(d)
	return h.Sum(nil)
}

// Pool is a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic("provisioning: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return n
}

// checkID refuses an ID that cannot stand in a vigil:// URI.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", what)
	case len(id) > 128:
		return fmt.Errorf("%s is %d bytes, longer than 128", what, len(id))
	case strings.ContainsAny(id, "/?#@: \t\r\n"):
		return fmt.Errorf("%s %q must not contain '/', '?', '#', '@', ':' or spaces", what, id)
	}
	return nil
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not an ECDSA key", k)
	}
	return ek, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM \"CERTIFICATE\" block")
	}
	return x509.ParseCertificate(blk.Bytes)
}
