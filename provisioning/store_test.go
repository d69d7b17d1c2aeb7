package provisioning_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/provisioning"
)

func TestTrust_SavedAndLoaded(t *testing.T) {
	dir := t.TempDir()
	if _, err := provisioning.LoadTrust(dir); !errors.Is(err, provisioning.ErrNoTrust) {
		t.Fatalf("an empty data directory: %v, want ErrNoTrust", err)
	}
	tr, err := provisioning.InitTrust("c-north", "node-a", provisioning.NodeNames{DNS: []string{"vigil-1"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "node.crt": 0o644, "node.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, provisioning.TrustDir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	got, err := provisioning.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID() != "node-a" || got.CA.Fingerprint() != tr.CA.Fingerprint() || !got.CA.CanSign() ||
		!bytes.Equal(got.Node.Cert.Raw, tr.Node.Cert.Raw) {
		t.Fatalf("loaded %s of CA %s (can sign %v)", got.NodeID(), got.CA.Fingerprint(), got.CA.CanSign())
	}

	// The trust of another cluster is not written over.
	other, _ := provisioning.InitTrust("c-south", "node-a", provisioning.NodeNames{}, now)
	if err := other.Save(dir); err == nil || !strings.Contains(err.Error(), "already holds the trust of cluster c-north") {
		t.Fatalf("saving another cluster's trust over it: %v", err)
	}

	// A node certificate that is not the CA's beside it is refused by name.
	if err := os.WriteFile(filepath.Join(dir, provisioning.TrustDir, "node.crt"), other.Node.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := provisioning.LoadTrust(dir); err == nil || !strings.Contains(err.Error(), "node") {
		t.Fatalf("a mismatched node certificate: %v", err)
	}
	// A missing key is named.
	os.Remove(filepath.Join(dir, provisioning.TrustDir, "node.key"))
	if _, err := provisioning.LoadTrust(dir); err == nil || errors.Is(err, provisioning.ErrNoTrust) || !strings.Contains(err.Error(), "node key") {
		t.Fatalf("a missing node key: %v", err)
	}
}

func TestSealCAKey_OpensOnlyWithTheToken(t *testing.T) {
	ca := mustCA(t, "c-north")
	tok, err := provisioning.NewJoinToken(ca, nil, 0, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := provisioning.SealCAKey(ca, tok)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := ca.KeyPEM()
	if bytes.Contains(sealed, keyPEM[40:80]) {
		t.Fatal("the sealed key holds the key in clear")
	}
	got, err := provisioning.OpenCAKey(ca.CertPEM(), sealed, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CanSign() || got.Fingerprint() != ca.Fingerprint() {
		t.Fatal("the opened CA cannot sign, or is another")
	}
	// The opened CA checks the tokens the first one made.
	if err := got.CheckJoinToken(tok, now); err != nil {
		t.Fatal(err)
	}

	other, _ := provisioning.NewJoinToken(ca, nil, 0, 0, now)
	if _, err := provisioning.OpenCAKey(ca.CertPEM(), sealed, other); err == nil {
		t.Error("opened with another token")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := provisioning.OpenCAKey(ca.CertPEM(), sealed, tok); err == nil {
		t.Error("opened after a change")
	}
	if _, err := provisioning.OpenCAKey(ca.CertPEM(), sealed[:5], tok); err == nil {
		t.Error("opened cut short")
	}
	certOnly, _ := provisioning.LoadCA(ca.CertPEM(), nil)
	if _, err := provisioning.SealCAKey(certOnly, tok); err == nil {
		t.Error("sealed without the key")
	}
}
