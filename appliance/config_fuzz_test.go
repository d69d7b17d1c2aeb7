package appliance

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The configuration file is the operator's, but it is YAML typed by hand:
// LoadConfig must refuse what it cannot read, never panic. What it reads
// reads the same when written out again, and Validate refuses it, if at
// all, with a *FieldError naming a real setting.
func FuzzLoadConfig(f *testing.F) {
	def, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(def),
		"",
		"data_dir: /var/lib/vigil\nhttp_addr: 0.0.0.0:8443\nlog_level: warn\n",
		"cluster:\n  bind_addr: 127.0.0.1:7100\n  heartbeat_timeout: 800ms\n  election_timeout: 900ms\n  join: [10.0.0.1:7000]\n",
		"cluster:\n  bootstrap_expect: [10.0.0.1:7000, 10.0.0.2:7000, 10.0.0.3:7000]\n",
		"broker:\n  tcp_addr: 127.0.0.1:1883\n  commit_timeout: 5s\n  replica_wait: 0s\n",
		"cluster:\n  bootstrap: true\n  snapshot_interval: -1s\n",
		"data_dir: [1, 2]\n",
		"nope: 1\n",
		"a: &a [*a, *a]\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	keys := ConfigKeys()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "vigil.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		noEnv := func(string) (string, bool) { return "", false }
		c, err := LoadConfig(path, noEnv)
		if err != nil {
			if !strings.Contains(err.Error(), "config") {
				t.Fatalf("refusal %q does not say it is the config file", err)
			}
			return
		}
		if verr := c.Validate(); verr != nil {
			var fe *FieldError
			if !errors.As(verr, &fe) || !slices.ContainsFunc(keys, func(k string) bool { return fe.Field == k || strings.HasPrefix(fe.Field, k) }) {
				t.Fatalf("Validate refused with %#v, which names no setting", verr)
			}
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("cannot write the config out again: %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := LoadConfig(path, noEnv)
		if err != nil {
			t.Fatalf("the config written out again is refused: %v\n%s", err, out)
		}
		// Compared as YAML: an empty list reads back as empty, not nil.
		if out2, err := yaml.Marshal(again); err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("the config written out again reads as\n%s\nnot\n%s", out2, out)
		}
	})
}
