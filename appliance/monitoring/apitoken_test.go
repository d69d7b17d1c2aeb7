package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// testTokenHash returns a valid token hash made from n.
func testTokenHash(n int) string { return HashAPITokenSecret(fmt.Sprint("secret-", n)) }

func (e *dirEnv) apiToken(id string) *APIToken {
	e.t.Helper()
	var t APIToken
	var ok bool
	if err := e.db.View(func(txn *badger.Txn) (err error) { ok, err = getJSON(txn, pAPIToken+id, &t); return err }); err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return &t
}

func TestAPIToken_CreateAndDisable(t *testing.T) {
	e := mustDirEnv(t)
	var pub APIToken
	resp := e.must(CmdCreateAPIToken, createAPITokenCmd{Header: e.hdr(), Token: APIToken{ID: "t1", Name: "backup", Role: RoleSupervisor,
		Hash: testTokenHash(1), CreatedBy: "ignored", Disabled: true}})
	if err := json.Unmarshal(resp, &pub); err != nil || pub.Hash != "" || strings.Contains(string(resp), testTokenHash(1)) {
		t.Fatalf("the response shows the hash or is broken: %s (%v)", resp, err)
	}
	got := e.apiToken("t1")
	if got.Hash != testTokenHash(1) || got.Role != RoleSupervisor || got.CreatedBy != "tester" || !got.CreatedAt.Equal(e.now) || got.Disabled {
		t.Fatalf("stored %+v: want the hash kept, the header's creator and time, not disabled", got)
	}
	if got.Actor() != "token:backup" {
		t.Fatalf("actor %q", got.Actor())
	}

	for _, tc := range []struct {
		name  string
		tok   APIToken
		code  Code
		field string
	}{
		{"empty id", APIToken{Name: "x", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.id"},
		{"id with underscore", APIToken{ID: "a_b", Name: "x", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.id"},
		{"id in capitals", APIToken{ID: "AB", Name: "x", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.id"},
		{"no name", APIToken{ID: "t2", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.name"},
		{"name with a space", APIToken{ID: "t2", Name: "my tool", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.name"},
		{"name too long", APIToken{ID: "t2", Name: strings.Repeat("n", MaxAPITokenNameLen+1), Role: RoleAdmin, Hash: testTokenHash(2)}, CodeInvalid, "token.name"},
		{"unknown role", APIToken{ID: "t2", Name: "x", Role: "root", Hash: testTokenHash(2)}, CodeInvalid, "token.role"},
		{"no hash", APIToken{ID: "t2", Name: "x", Role: RoleAdmin}, CodeInvalid, "token.hash"},
		{"not a hash", APIToken{ID: "t2", Name: "x", Role: RoleAdmin, Hash: "secret"}, CodeInvalid, "token.hash"},
		{"id taken", APIToken{ID: "t1", Name: "other", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeConflict, "token.id"},
		{"name taken", APIToken{ID: "t2", Name: "backup", Role: RoleAdmin, Hash: testTokenHash(2)}, CodeConflict, "token.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.refused(CmdCreateAPIToken, createAPITokenCmd{Header: e.hdr(), Token: tc.tok}, tc.code, tc.field)
		})
	}

	e.now = e.now.Add(time.Hour)
	h := e.hdr()
	h.Actor = "ada"
	e.must(CmdDisableAPIToken, disableAPITokenCmd{Header: h, TokenID: "t1"})
	got = e.apiToken("t1")
	if !got.Disabled || got.DisabledBy != "ada" || !got.DisabledAt.Equal(e.now) {
		t.Fatalf("after disabling: %+v", got)
	}
	// Again: nothing changes, not even the audit log.
	before := e.dump()
	e.now = e.now.Add(time.Hour)
	e.must(CmdDisableAPIToken, disableAPITokenCmd{Header: e.hdr(), TokenID: "t1"})
	if e.dump() != before {
		t.Fatal("disabling a disabled token changed the state")
	}
	e.refused(CmdDisableAPIToken, disableAPITokenCmd{Header: e.hdr(), TokenID: "t9"}, CodeNotFound, "token_id")
	e.refused(CmdDisableAPIToken, disableAPITokenCmd{Header: e.hdr(), TokenID: "T/1"}, CodeInvalid, "token_id")
	// A disabled token keeps its name.
	e.refused(CmdCreateAPIToken, createAPITokenCmd{Header: e.hdr(), Token: APIToken{ID: "t3", Name: "backup", Role: RoleAdmin,
		Hash: testTokenHash(3)}}, CodeConflict, "token.name")
}

func TestParseAPIToken(t *testing.T) {
	for _, tc := range []struct {
		in, id, secret string
		ok             bool
	}{
		{"vgt_0123abcd_c2VjcmV0_with-underscores", "0123abcd", "c2VjcmV0_with-underscores", true},
		{"vgt_abc_", "", "", false},
		{"vgt_abc", "", "", false},
		{"vgt__secret", "", "", false},
		{"vgt_AB_secret", "", "", false},
		{"Bearer vgt_abc_secret", "", "", false},
		{"abc_secret", "", "", false},
		{"vgt_abc_" + strings.Repeat("s", 129), "", "", false},
	} {
		id, secret, err := ParseAPIToken(tc.in)
		if (err == nil) != tc.ok || id != tc.id || secret != tc.secret {
			t.Errorf("ParseAPIToken(%q) = %q, %q, %v", tc.in, id, secret, err)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseAPIToken(%q): %v is not ErrBadToken", tc.in, err)
		}
	}
}

// apiTokenEvery is how often a step of the replicas property also
// generates an API token command.
const apiTokenEvery = 7

// stepAPIToken generates an API token command for the replicas property
// (determinism_test.go): tokens made, some with a name or ID taken or a
// field wrong, and disabled, some twice or unknown. It draws from its own
// random source, so that the other commands stay as they were.
func (g *gen) stepAPIToken() {
	if g.tr == nil {
		g.tr = rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x70c3))
	}
	r := g.tr
	ids := []string{"t1", "t2", "t3", "t4"}
	id := ids[r.IntN(len(ids))]
	hdr := Header{At: g.now, Actor: "ada", Node: fmt.Sprintf("n%d", 1+r.IntN(3))}
	if r.IntN(3) == 0 {
		if r.IntN(6) == 0 {
			id = "T/9"
		}
		g.add(CmdDisableAPIToken, disableAPITokenCmd{Header: hdr, TokenID: id})
		return
	}
	names := []string{"backup", "report", "gateway", "bad name"}
	t := APIToken{ID: id, Name: names[r.IntN(len(names))], Role: OperatorRoles[r.IntN(len(OperatorRoles))],
		Hash: testTokenHash(r.IntN(100))}
	if r.IntN(10) == 0 {
		t.Hash = "not-a-hash"
	}
	g.add(CmdCreateAPIToken, createAPITokenCmd{Header: hdr, Token: t})
}
