package monitoring

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/cluster"
)

// A command under a rules version newer than the node knows stops the node
// (a newer leader during a rolling upgrade): applied under older rules it
// would diverge without a word. The same command under the known versions
// is applied as before.
func TestFSM_NewerRulesPanic(t *testing.T) {
	for typ, known := range rulesKnown {
		t.Run(typ.String(), func(t *testing.T) {
			db := mustOpenDB(t)
			txn := db.NewTransaction(true)
			defer txn.Discard()
			body := fmt.Sprintf(`{"rules":%d}`, known+1)
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("Apply did not stop on %s under rules %d", typ, known+1)
				}
				msg := fmt.Sprint(r)
				if !strings.Contains(msg, "entry 9") || !strings.Contains(msg, fmt.Sprintf("rules version %d", known+1)) || !strings.Contains(msg, "upgrade it") {
					t.Fatalf("panic message %q does not name the entry, the version and what to do", msg)
				}
			}()
			NewFSM().Apply(txn, cluster.Entry{Index: 9, Data: append([]byte{byte(typ)}, body...)})
		})
	}
	// Known versions, and commands with no version, are not stopped.
	for _, body := range []string{`{"rules":0}`, `{}`, `{"note":"the \"rules\" of the site"}`} {
		if _, _, newer := rulesTooNew(CmdLogAction, []byte(body)); newer {
			t.Fatalf("%s was taken for newer rules", body)
		}
	}
	if _, _, newer := rulesTooNew(CmdRaiseAlarm, []byte(`{"rules":1}`)); newer {
		t.Fatal("a command type without versions was checked for them")
	}
}

// rulesCmdTypes maps each command body type that has a Rules field to the
// command types whose body it is.
var rulesCmdTypes = map[string][]CmdType{
	"sessionActionCmd": {CmdSessionAction},
	"AcknowledgeCmd":   {CmdAcknowledge},
	"logActionCmd":     {CmdLogAction},
	"CloseAlarmCmd":    {CmdCloseAlarm, CmdCloseAlarmConfirmed},
	"deviceStatusCmd":  {CmdDeviceStatus},
	"audioChunkCmd":    {CmdAudioChunk},
}

// The table of known rules versions is what the Service proposes: every
// `Rules: X` the package's code sets on a command is the table's version
// for that command's type. A new version the Service sets but the table
// lacks would stop every node on its first command.
func TestFSM_RulesKnownAreTheServicesNewest(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	consts := map[string]int{}
	type use struct {
		typ, val, at string
	}
	var uses []use
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) && strings.HasPrefix(name.Name, "Rules") {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok {
							v, _ := strconv.Atoi(lit.Value)
							consts[name.Name] = v
						}
					}
				}
			case *ast.CompositeLit:
				tn, ok := n.Type.(*ast.Ident)
				if !ok {
					return true
				}
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Rules" {
						v, _ := kv.Value.(*ast.Ident)
						if v == nil {
							t.Fatalf("%s: Rules is set to an expression; use a Rules constant", fset.Position(kv.Pos()))
						}
						uses = append(uses, use{tn.Name, v.Name, fset.Position(kv.Pos()).String()})
					}
				}
			}
			return true
		})
	}
	if len(uses) < len(rulesCmdTypes) {
		t.Fatalf("found %d places that set Rules, fewer than the %d command bodies with versions", len(uses), len(rulesCmdTypes))
	}
	for _, u := range uses {
		types, ok := rulesCmdTypes[u.typ]
		if !ok {
			t.Fatalf("%s: %s carries Rules: add it to rulesCmdTypes here and its newest version to rulesKnown (fsm.go)", u.at, u.typ)
		}
		v, ok := consts[u.val]
		if !ok {
			t.Fatalf("%s: Rules is set to %s, not a Rules constant", u.at, u.val)
		}
		for _, typ := range types {
			if known, ok := rulesKnown[typ]; !ok || v != known {
				t.Fatalf("%s: the Service proposes %s under %s (%d), but rulesKnown (fsm.go) has %d: set %s to %s",
					u.at, u.typ, u.val, v, known, typ, u.val)
			}
		}
	}
}
