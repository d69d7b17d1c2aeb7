package provisioning

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A node's trust on disk: the directory TrustDir inside its data
// directory holds the CA certificate, the CA key on an appliance that
// holds it, and the node's own certificate and key. Keys are written with
// mode 0600, each file whole (a temporary file renamed into place), so a
// crash never leaves half a key.

// TrustDir is the directory, inside a node's data directory, that holds
// its trust.
const TrustDir = "tls"

// Files of TrustDir.
const (
	caCertFile   = "ca.crt"
	caKeyFile    = "ca.key"
	nodeCertFile = "node.crt"
	nodeKeyFile  = "node.key"
)

// ErrNoTrust says that a data directory holds no trust yet: the appliance
// has not been set up with vigil init or vigil join.
var ErrNoTrust = errors.New("no cluster trust in the data directory (set it up with vigil init or vigil join)")

// Trust is what a node needs to speak to its peers: the cluster CA (with
// its key on an appliance that holds it) and the node's certificate.
type Trust struct {
	CA   *CA
	Node *NodeCert
}

// NodeID is the node ID that the node's certificate names.
func (t *Trust) NodeID() string {
	id, _ := NodeIdentity(t.Node.Cert, t.CA.ClusterID)
	return id
}

// InitTrust makes the trust of the first appliance of a new cluster: a CA
// for clusterID and a certificate for nodeID with names.
func InitTrust(clusterID, nodeID string, names NodeNames, now time.Time) (*Trust, error) {
	ca, err := NewCA(clusterID, now)
	if err != nil {
		return nil, err
	}
	n, err := ca.IssueNode(nodeID, names, now)
	if err != nil {
		return nil, err
	}
	return &Trust{CA: ca, Node: n}, nil
}

// LoadTrust reads the trust kept in dataDir. It returns an error wrapping
// ErrNoTrust when there is none, and a named error when a file is missing
// or does not belong with the others.
func LoadTrust(dataDir string) (*Trust, error) {
	dir := filepath.Join(dataDir, TrustDir)
	read := func(name string, optional bool) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && optional {
			return nil, nil
		}
		return b, err
	}
	caPEM, err := read(caCertFile, false)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoTrust, dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA certificate: %w", err)
	}
	caKey, err := read(caKeyFile, true)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA key: %w", err)
	}
	ca, err := LoadCA(caPEM, caKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	certPEM, err := read(nodeCertFile, false)
	if err != nil {
		return nil, fmt.Errorf("cannot read the node certificate: %w", err)
	}
	keyPEM, err := read(nodeKeyFile, false)
	if err != nil {
		return nil, fmt.Errorf("cannot read the node key: %w", err)
	}
	n, err := LoadNodeCert(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	t := &Trust{CA: ca, Node: n}
	if _, err := NodeIdentity(n.Cert, ca.ClusterID); err != nil {
		return nil, fmt.Errorf("%s: the node certificate: %w", dir, err)
	}
	if err := n.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("%s: the node certificate is not signed by the CA beside it: %w", dir, err)
	}
	return t, nil
}

// Save writes the trust into dataDir, each file whole. It refuses to
// replace trust of another cluster that is already there.
func (t *Trust) Save(dataDir string) error {
	dir := filepath.Join(dataDir, TrustDir)
	if old, err := LoadTrust(dataDir); err == nil && old.CA.Fingerprint() != t.CA.Fingerprint() {
		return fmt.Errorf("%s already holds the trust of cluster %s (CA %s): remove it to start again", dir, old.CA.ClusterID, old.CA.Fingerprint()[:16])
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot make %s: %w", dir, err)
	}
	keyPEM, err := t.Node.Key.PEM()
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{caCertFile, t.CA.CertPEM(), 0o644},
		{nodeCertFile, t.Node.CertPEM(), 0o644},
		{nodeKeyFile, keyPEM, 0o600},
	}
	if t.CA.CanSign() {
		caKey, err := t.CA.KeyPEM()
		if err != nil {
			return err
		}
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{caKeyFile, caKey, 0o600})
	}
	for _, f := range files {
		if err := WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// WriteFile writes data to path through a temporary file, synced and
// renamed into place, so that a crash leaves the old file or the new one.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SealCAKey encrypts the CA's private key for a joining voter, under a key
// derived from the join token's secret (AES-256-GCM), so that the key
// crosses the network inside TLS and, inside that, readable only by the
// holder of the token.
func SealCAKey(ca *CA, t *JoinToken) ([]byte, error) {
	keyPEM, err := ca.KeyPEM()
	if err != nil || keyPEM == nil {
		return nil, errors.New("this appliance does not hold the CA key")
	}
	aead, err := tokenAEAD(t)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, keyPEM, []byte(t.ID)), nil
}

// OpenCAKey decrypts a CA key sealed with SealCAKey and returns the CA
// with it; the key must belong to caCert.
func OpenCAKey(caCert []byte, sealed []byte, t *JoinToken) (*CA, error) {
	aead, err := tokenAEAD(t)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("the sealed CA key is cut short")
	}
	keyPEM, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(t.ID))
	if err != nil {
		return nil, errors.New("cannot open the sealed CA key with this join token")
	}
	return LoadCA(caCert, keyPEM)
}

func tokenAEAD(t *JoinToken) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("vigil ca key transfer v1\x00" + t.Secret))
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// ProvisionNodes makes a new cluster's trust for several appliances at
// once, with no network: a CA for clusterID, and for each node ID a
// certificate, saved with the CA key into its data directory (dataDirs,
// by node ID). It is for a cluster whose data directories one operator
// prepares on one machine: vigil devcluster, and test harnesses that start
// appliances exactly as IT would after vigil init and vigil join. It
// returns the CA.
func ProvisionNodes(clusterID string, dataDirs map[string]string, names NodeNames, now time.Time) (*CA, error) {
	ca, err := NewCA(clusterID, now)
	if err != nil {
		return nil, err
	}
	for id, dir := range dataDirs {
		if err := ca.ProvisionNode(id, dir, names, now); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// ProvisionNode signs a certificate for node nodeID and saves it, with the
// CA (and its key, when held), into the data directory dataDir.
func (ca *CA) ProvisionNode(nodeID, dataDir string, names NodeNames, now time.Time) error {
	n, err := ca.IssueNode(nodeID, names, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	return (&Trust{CA: ca, Node: n}).Save(dataDir)
}
