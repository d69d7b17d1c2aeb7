package main

// The arrows of ARCHITECTURE.md, checked: this test walks every package of
// the product's module (tools/ is a module of its own) and fails on an
// import that the design forbids. When it fails, move the code, or change
// ARCHITECTURE.md first and this table with it.

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/vigilarc/vigil"

// forbidden lists, per package path prefix (relative to the module, "" for
// the module's root), the Vigil packages (prefixes) it must never import.
// withTests also holds the package's tests to the rule; testsMay names the
// packages (prefixes) under never that the tests may import all the same.
var forbidden = []struct {
	from      string
	never     []string
	withTests bool
	testsMay  []string
	why       string
}{
	{"cluster", []string{""}, false, nil,
		"the cluster knows nothing of Vigil: it replicates opaque commands"},
	{"appliance/monitoring", []string{"broker", "ui", "appliance/sim", "appliance/devcluster"}, true, nil,
		"the domain is called by the broker and the console, never the other way"},
	{"broker", []string{"cluster", "ui"}, false, nil,
		"the broker reaches the cluster only through the monitoring Service and what the appliance supplies"},
	// The tests wait and take ports with clustertest's PollUntil and
	// FreeAddr, as every tier does; the cluster itself they reach only
	// through monitoringtest and uitest.
	{"ui", []string{"cluster"}, true, []string{"cluster/clustertest"},
		"the HTTP surface reaches the cluster only through the Service and ui.Cluster, which the appliance supplies"},
	{"ui", []string{"broker"}, true, nil,
		"the console and the broker are siblings: both call the Service"},
	{"provisioning", []string{"cluster", "broker", "ui", "appliance/monitoring"}, false, nil,
		"provisioning makes certificates and TLS settings; the appliance hands them to the parts (its tests try them on a real cluster port)"},
	// Of Vigil, discovery imports provisioning alone (and zeroconf): the
	// appliance wires it, and its namespace tests run the package itself.
	{"provisioning/discovery", []string{"cluster", "broker", "ui", "appliance"}, true, nil,
		"discovery only announces and browses; the appliance decides what a found peer is for"},
	{"internal/strictjson", []string{""}, true, nil,
		"the strict JSON decoder is a leaf that the API and the device protocol share"},
	{"appliance/sim", []string{"cluster"}, false, nil,
		"the simulator is a client: it talks to the appliances over MQTT and HTTP"},
}

// Every package but main must not import the appliance's root: it is the
// composition root, the top of the house.
const top = "appliance"

// topTest is the test helper that opens whole appliances
// (appliancetest): the one package besides main that imports the top.
const topTest = "appliance/appliancetest"

func TestArchitecture_ForbiddenImports(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		name := d.Name()
		if rel != "" && (strings.HasPrefix(name, ".") || name == "testdata" || name == "data" || name == "bin") {
			return filepath.SkipDir
		}
		if rel != "" {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (tools/)
			}
		}
		p, err := build.ImportDir(path, build.ImportComment)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		pkgs++
		check(t, rel, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pkgs < 10 {
		t.Fatalf("walked %d packages: the walk is broken", pkgs)
	}
}

// check reports each forbidden import of the package in directory rel.
func check(t *testing.T, rel string, p *build.Package) {
	t.Helper()
	own := func(imports []string) []string {
		var out []string
		for _, imp := range imports {
			if imp == modulePath {
				out = append(out, "")
			} else if r, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				out = append(out, r)
			}
		}
		return out
	}
	imports := own(p.Imports)
	tests := own(append(append([]string(nil), p.TestImports...), p.XTestImports...))
	if rel != "" && rel != top && rel != topTest {
		for _, imp := range imports {
			if imp == top {
				t.Errorf("%s imports %s: only main (and its test helper appliancetest) may import the composition root", rel, top)
			}
		}
	}
	for _, rule := range forbidden {
		if !under(rel, rule.from) {
			continue
		}
		check := slices.Clone(imports)
		if rule.withTests {
			for _, imp := range tests {
				if !slices.ContainsFunc(rule.testsMay, func(may string) bool { return under(imp, may) }) {
					check = append(check, imp)
				}
			}
		}
		for _, imp := range check {
			if under(imp, rule.from) {
				continue // its own packages, such as a package's test helpers
			}
			for _, never := range rule.never {
				if under(imp, never) {
					t.Errorf("%s imports %s: %s", show(rel), show(imp), rule.why)
				}
			}
		}
	}
}

// under reports whether package rel is prefix or below it; every package
// is under "".
func under(rel, prefix string) bool {
	return prefix == "" || rel == prefix || strings.HasPrefix(rel, prefix+"/")
}

func show(rel string) string {
	if rel == "" {
		return modulePath
	}
	return rel
}
