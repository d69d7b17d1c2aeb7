package appliance_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilarc/vigil/appliance/appliancetest"
)

// TestNode_DataDirIsPrivate: the state, the Raft log, the snapshots (with
// the PIN hashes) and the trust are the node's user's alone, even in a
// data directory made 0755 by someone else with a file 0644 from an older
// version in it.
func TestNode_DataDirIsPrivate(t *testing.T) {
	cfg := appliancetest.Config(t)
	if err := os.Chmod(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(cfg.DataDir, "old-notes")
	if err := os.WriteFile(old, []byte("left by an older version\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil { // whatever the test's umask
		t.Fatal(err)
	}
	n := appliancetest.MustNode(t, &cfg)
	if _, _, err := n.Service().PutDiagRecord(context.Background(), "c1", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := n.Cluster().Snapshot(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(cfg.DataDir, path)
		seen[filepath.Dir(rel)] = true
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: open to the group or others", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"snapshots", "state", "raft", "tls"} {
		if !seen[dir] {
			t.Errorf("no file under %s/: the walk saw %v", dir, seen)
		}
	}
}
