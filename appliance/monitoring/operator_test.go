package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func init() {
	// Cheap hashes for tests, as pin_test.go does for PINs.
	passwordParams = PINParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// testSessionHash returns a valid session hash made from n.
func testSessionHash(n int) string { return hashSessionToken(fmt.Sprint("token-", n)) }

// mustOperatorEnv is a directory env with admin "ada" and operator "olivia"
// (password hash testSafeHash).
func mustOperatorEnv(t *testing.T) *dirEnv {
	t.Helper()
	e := mustDirEnv(t)
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Create: true, PasswordHash: testSafeHash,
		Operator: Operator{ID: "ada", Name: "Ada Admin", Role: RoleAdmin}})
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Create: true, PasswordHash: testSafeHash,
		Operator: Operator{ID: "olivia", Name: "Olivia Hart", Role: RoleOperator}})
	return e
}

func (e *dirEnv) operator(id string) *Operator {
	e.t.Helper()
	var o *Operator
	if err := e.db.View(func(txn *badger.Txn) (err error) { o, err = getOperator(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (e *dirEnv) opSession(hash string) *OperatorSession {
	e.t.Helper()
	var s OperatorSession
	var ok bool
	if err := e.db.View(func(txn *badger.Txn) (err error) { ok, err = getJSON(txn, pOperatorSession+hash, &s); return err }); err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return &s
}

// login applies a sign-in attempt and returns the state machine's result.
func (e *dirEnv) login(id string, ok bool, version uint64, hash string) loginResult {
	e.t.Helper()
	cmd := operatorLoginCmd{Header: e.hdr(), OperatorID: id, PasswordOK: ok, PasswordVersion: version, Remote: "192.0.2.7"}
	if ok {
		cmd.SessionHash, cmd.ExpiresAt = hash, e.now.Add(12*time.Hour)
	}
	var r loginResult
	if err := json.Unmarshal(e.must(CmdOperatorLogin, cmd), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestOperator_CreateAndChange(t *testing.T) {
	e := mustOperatorEnv(t)
	o := e.operator("olivia")
	if o.PasswordVersion != 1 || o.PasswordHash != testSafeHash || o.Role != RoleOperator || !o.CreatedAt.Equal(e.now) {
		t.Fatalf("created %+v", o)
	}
	var pub Operator
	resp := e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "olivia", Name: "Olivia H.", Role: RoleSupervisor}})
	if err := json.Unmarshal(resp, &pub); err != nil || pub.PasswordHash != "" || strings.Contains(string(resp), "argon2") {
		t.Fatalf("the response shows the hash or is broken: %s (%v)", resp, err)
	}
	o = e.operator("olivia")
	if o.Name != "Olivia H." || o.Role != RoleSupervisor || o.PasswordHash != testSafeHash || o.PasswordVersion != 1 {
		t.Fatalf("a change without a password must keep it: %+v", o)
	}
	e.refused(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Create: true, PasswordHash: testSafeHash,
		Operator: Operator{ID: "olivia", Name: "Other", Role: RoleOperator}}, CodeConflict, "operator.id")

	for _, tc := range []struct {
		name  string
		cmd   putOperatorCmd
		field string
	}{
		{"empty id", putOperatorCmd{Operator: Operator{Name: "X", Role: RoleOperator}, PasswordHash: testSafeHash}, "operator.id"},
		{"id with slash", putOperatorCmd{Operator: Operator{ID: "a/b", Name: "X", Role: RoleOperator}, PasswordHash: testSafeHash}, "operator.id"},
		{"no name", putOperatorCmd{Operator: Operator{ID: "x", Name: " ", Role: RoleOperator}, PasswordHash: testSafeHash}, "operator.name"},
		{"unknown role", putOperatorCmd{Operator: Operator{ID: "x", Name: "X", Role: "root"}, PasswordHash: testSafeHash}, "operator.role"},
		{"new without password", putOperatorCmd{Operator: Operator{ID: "x", Name: "X", Role: RoleOperator}}, "password"},
		{"not a hash", putOperatorCmd{Operator: Operator{ID: "x", Name: "X", Role: RoleOperator}, PasswordHash: "hunter2hunter2"}, "password_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.Header = e.hdr()
			e.refused(CmdPutOperator, tc.cmd, CodeInvalid, tc.field)
		})
	}
}

func TestOperator_LastAdminStays(t *testing.T) {
	e := mustOperatorEnv(t)
	e.refused(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "ada", Name: "Ada", Role: RoleOperator}}, CodeConflict, "operator.role")
	e.refused(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "ada", Name: "Ada", Role: RoleAdmin, Disabled: true}}, CodeConflict, "operator.role")
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "olivia", Name: "Olivia", Role: RoleAdmin}})
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "ada", Name: "Ada", Role: RoleOperator}})
}

func TestOperatorLogin_LocksAfterFiveWrongPasswords(t *testing.T) {
	e := mustOperatorEnv(t)
	for i := 1; i < MaxFailedLogins; i++ {
		r := e.login("olivia", false, 1, "")
		if r.Outcome != loginWrongPassword || r.FailedLogins != i {
			t.Fatalf("attempt %d: %+v", i, r)
		}
	}
	start := e.now
	r := e.login("olivia", false, 1, "")
	if r.Outcome != loginLocked || !r.LockedUntil.Equal(start.Add(LockoutDuration)) {
		t.Fatalf("the %dth wrong password: %+v, want locked until %s", MaxFailedLogins, r, start.Add(LockoutDuration))
	}
	if o := e.operator("olivia"); !start.Before(o.LockedUntil) || o.FailedLogins != 0 {
		t.Fatalf("operator after lockout: %+v", o)
	}
	// While locked, even the right password signs nobody in, and nothing
	// is written.
	e.now = start.Add(LockoutDuration - time.Second)
	before := e.dump()
	if r := e.login("olivia", true, 1, testSessionHash(1)); r.Outcome != loginLocked || r.Session != nil {
		t.Fatalf("a sign-in while locked: %+v", r)
	}
	if e.dump() != before {
		t.Fatal("a sign-in attempt while locked changed the state")
	}
	// Other operators are not affected.
	if r := e.login("ada", true, 1, testSessionHash(2)); r.Outcome != loginSignedIn {
		t.Fatalf("ada: %+v", r)
	}
	// Once the lockout ends, the right password works and clears the count.
	e.now = start.Add(LockoutDuration)
	e.login("olivia", false, 1, "")
	if r := e.login("olivia", true, 1, testSessionHash(3)); r.Outcome != loginSignedIn || r.Session == nil {
		t.Fatalf("after the lockout: %+v", r)
	}
	if o := e.operator("olivia"); o.FailedLogins != 0 || !o.LockedUntil.IsZero() || !o.LastLoginAt.Equal(e.now) {
		t.Fatalf("after signing in: %+v", o)
	}
	// An admin's unlock clears a lockout.
	for range MaxFailedLogins {
		e.login("olivia", false, 1, "")
	}
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Unlock: true, Operator: Operator{ID: "olivia", Name: "Olivia Hart", Role: RoleOperator}})
	if o := e.operator("olivia"); e.now.Before(o.LockedUntil) {
		t.Fatalf("unlock left %+v", o)
	}
}

func TestOperatorLogin_SessionsAndLogout(t *testing.T) {
	e := mustOperatorEnv(t)
	r := e.login("olivia", true, 1, testSessionHash(1))
	s := e.opSession(testSessionHash(1))
	if r.Outcome != loginSignedIn || s == nil || s.OperatorID != "olivia" || !s.Valid(e.now) || s.Node != "n1" || s.Remote != "192.0.2.7" {
		t.Fatalf("result %+v, session %+v", r, s)
	}
	// A session hash may not be reused.
	cmd := operatorLoginCmd{Header: e.hdr(), OperatorID: "ada", PasswordOK: true, PasswordVersion: 1,
		SessionHash: testSessionHash(1), ExpiresAt: e.now.Add(time.Hour)}
	e.refused(CmdOperatorLogin, cmd, CodeConflict, "session_hash")
	for _, tc := range []struct {
		name  string
		mod   func(*operatorLoginCmd)
		code  Code
		field string
	}{
		{"bad hash", func(c *operatorLoginCmd) { c.SessionHash = "abc" }, CodeInvalid, "session_hash"},
		{"upper-case hash", func(c *operatorLoginCmd) { c.SessionHash = strings.ToUpper(testSessionHash(9)) }, CodeInvalid, "session_hash"},
		{"expired", func(c *operatorLoginCmd) { c.ExpiresAt = e.now }, CodeInvalid, "expires_at"},
		{"too long", func(c *operatorLoginCmd) { c.ExpiresAt = e.now.Add(MaxSessionTTL + time.Second) }, CodeInvalid, "expires_at"},
		{"unknown operator", func(c *operatorLoginCmd) { c.OperatorID = "nobody" }, CodeNotFound, "operator_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cmd
			c.SessionHash = testSessionHash(8)
			tc.mod(&c)
			e.refused(CmdOperatorLogin, c, tc.code, tc.field)
		})
	}
	// Sign out, twice: the second changes nothing.
	e.must(CmdOperatorLogout, operatorLogoutCmd{Header: e.hdr(), SessionHash: testSessionHash(1)})
	if s := e.opSession(testSessionHash(1)); s.Valid(e.now) || !s.RevokedAt.Equal(e.now) {
		t.Fatalf("after logout: %+v", s)
	}
	before := e.dump()
	e.now = e.now.Add(time.Minute)
	e.must(CmdOperatorLogout, operatorLogoutCmd{Header: e.hdr(), SessionHash: testSessionHash(1)})
	if e.dump() != before {
		t.Fatal("a second logout changed the state")
	}
	e.refused(CmdOperatorLogout, operatorLogoutCmd{Header: e.hdr(), SessionHash: testSessionHash(77)}, CodeNotFound, "session_hash")

	// The next sign-in removes the ended session; beyond
	// MaxOperatorSessions the oldest goes.
	for i := range MaxOperatorSessions + 2 {
		e.now = e.now.Add(time.Second)
		e.login("olivia", true, 1, testSessionHash(100+i))
	}
	if e.opSession(testSessionHash(1)) != nil {
		t.Fatal("the ended session was kept")
	}
	var sessions []*OperatorSession
	if err := e.db.View(func(txn *badger.Txn) (err error) { sessions, err = operatorSessions(txn, "olivia"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(sessions) != MaxOperatorSessions || sessions[0].Hash != testSessionHash(102) {
		t.Fatalf("%d sessions, oldest %s; want %d from the third", len(sessions), sessions[0].Hash, MaxOperatorSessions)
	}
	// A new password ends every session.
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), PasswordHash: testDuressHash,
		Operator: Operator{ID: "olivia", Name: "Olivia Hart", Role: RoleOperator}})
	for _, s := range sessions {
		if e.opSession(s.Hash).Valid(e.now) {
			t.Fatalf("session %s survived a new password", s.Hash)
		}
	}
	// A check against the old hash is stale and not counted.
	if r := e.login("olivia", true, 1, testSessionHash(500)); r.Outcome != loginStale || e.operator("olivia").FailedLogins != 0 {
		t.Fatalf("stale check: %+v", r)
	}
}

func TestOperatorLogin_DisabledSignsNobodyIn(t *testing.T) {
	e := mustOperatorEnv(t)
	e.login("olivia", true, 1, testSessionHash(1))
	e.must(CmdPutOperator, putOperatorCmd{Header: e.hdr(), Operator: Operator{ID: "olivia", Name: "Olivia", Role: RoleOperator, Disabled: true}})
	if e.opSession(testSessionHash(1)).Valid(e.now) {
		t.Fatal("disabling kept the session")
	}
	if r := e.login("olivia", true, 1, testSessionHash(2)); r.Outcome != loginDisabled || e.opSession(testSessionHash(2)) != nil {
		t.Fatalf("disabled: %+v", r)
	}
	if r := e.login("olivia", false, 1, ""); r.Outcome != loginDisabled || e.operator("olivia").FailedLogins != 0 {
		t.Fatalf("disabled, wrong password: %+v", r)
	}
}

func TestOperatorRole_AtLeast(t *testing.T) {
	for _, tc := range []struct {
		r, min OperatorRole
		want   bool
	}{
		{RoleAdmin, RoleSupervisor, true}, {RoleSupervisor, RoleSupervisor, true}, {RoleOperator, RoleSupervisor, false},
		{RoleOperator, RoleOperator, true}, {"", RoleOperator, false}, {"root", RoleOperator, false},
	} {
		if got := tc.r.AtLeast(tc.min); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v", tc.r, tc.min, got)
		}
	}
}

// --- The Service ---

// stepOperator generates an operator command for the replicas property
// (determinism_test.go): account changes, sign-in attempts that succeed,
// fail, lock and arrive while locked, and logouts, some refused.
func (g *gen) stepOperator() {
	ops := []string{"olivia", "sam", "ray", "nobody"}
	id := g.pick(ops)
	switch n := g.r.IntN(10); {
	case n < 2:
		role := OperatorRoles[g.r.IntN(len(OperatorRoles))]
		c := putOperatorCmd{Header: g.hdr("admin"), Operator: Operator{ID: id, Name: "Operator " + id, Role: role,
			Disabled: g.r.IntN(8) == 0}, Create: g.r.IntN(3) == 0, Unlock: g.r.IntN(4) == 0}
		if g.r.IntN(4) != 0 {
			c.PasswordHash = []string{testSafeHash, testDuressHash}[g.r.IntN(2)]
		}
		if g.r.IntN(20) == 0 {
			c.Operator.Role = "root"
		}
		g.add(CmdPutOperator, c)
	case n < 9:
		c := operatorLoginCmd{Header: g.hdr(id), OperatorID: id, PasswordOK: g.r.IntN(3) == 0,
			PasswordVersion: uint64(1 + g.r.IntN(2)), Remote: "192.0.2.1"}
		if c.PasswordOK {
			c.SessionHash = hashSessionToken(g.id("tok"))
			c.ExpiresAt = g.now.Add(time.Duration(g.r.IntN(13)) * time.Hour)
		}
		g.add(CmdOperatorLogin, c)
	default:
		h := hashSessionToken(g.id("unknown"))
		var live []string // sessions in replica A's state
		if err := g.a.db.View(func(txn *badger.Txn) error {
			return scanPrefix(txn, pOperatorSession, false, func(key, _ []byte) (bool, error) {
				live = append(live, lastSegment(key))
				return true, nil
			})
		}); err != nil {
			g.t.Fatal(err)
		}
		if len(live) > 0 && g.r.IntN(4) != 0 {
			h = g.pick(live)
		}
		g.add(CmdOperatorLogout, operatorLogoutCmd{Header: g.hdr(id), SessionHash: h})
	}
}

func TestOperatorSignIn_BackoffSparesKnownBrowsers(t *testing.T) {
	e := mustOperatorEnv(t)
	browser, stranger := testSessionHash(90), testSessionHash(91)
	signIn := func(browserHash string, ok bool, n int) loginResult {
		t.Helper()
		cmd := operatorSignInCmd{Header: e.hdr(), OperatorID: "olivia", PasswordOK: ok, PasswordVersion: 1,
			BrowserHash: browserHash, Remote: "192.0.2.7"}
		if ok {
			cmd.SessionHash, cmd.ExpiresAt = testSessionHash(n), e.now.Add(time.Hour)
		}
		var r loginResult
		if err := json.Unmarshal(e.must(CmdOperatorSignIn, cmd), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := signIn(browser, true, 1); r.Outcome != loginSignedIn {
		t.Fatalf("first sign-in: %+v", r)
	}
	// An attempt during the back-off is not counted: wait it out each time.
	for i := 1; i <= FreeFailedLogins+5; i++ {
		e.now = e.now.Add(loginBackoff(i - 1))
		if r := signIn(stranger, false, 0); r.Outcome != loginWrongPassword || r.FailedLogins != i {
			t.Fatalf("wrong password %d: %+v", i, r)
		}
	}
	o := e.operator("olivia")
	wantUntil := e.now.Add(loginBackoff(FreeFailedLogins + 5))
	if !o.BackoffUntil().Equal(wantUntil) || !o.LockedUntil.IsZero() {
		t.Fatalf("back-off until %s, want %s; locked until %s", o.BackoffUntil(), wantUntil, o.LockedUntil)
	}
	// The stranger's right password waits, and nothing is written.
	before := e.dump()
	if r := signIn(stranger, true, 2); r.Outcome != loginBackedOff || r.Session != nil {
		t.Fatalf("an unknown browser while backed off: %+v", r)
	}
	if e.dump() != before {
		t.Fatal("a backed-off attempt changed the state")
	}
	// The known browser is let in at once and clears the count.
	if r := signIn(browser, true, 3); r.Outcome != loginSignedIn {
		t.Fatalf("the known browser while backed off: %+v", r)
	}
	if o := e.operator("olivia"); o.FailedLogins != 0 || o.BackedOff(e.now) || len(o.KnownBrowsers) != 1 {
		t.Fatalf("after the known browser signed in: %+v", o)
	}
	// After the back-off, the stranger's right password works.
	for range FreeFailedLogins {
		signIn(stranger, false, 0)
	}
	if r := signIn(stranger, false, 0); r.Outcome != loginBackedOff || r.FailedLogins != FreeFailedLogins {
		t.Fatalf("a wrong password during the back-off: %+v", r)
	}
	e.now = e.now.Add(loginBackoff(FreeFailedLogins))
	if r := signIn(stranger, true, 4); r.Outcome != loginSignedIn {
		t.Fatalf("after the back-off: %+v", r)
	}
	if o := e.operator("olivia"); len(o.KnownBrowsers) != 2 {
		t.Fatalf("known browsers: %+v", o.KnownBrowsers)
	}
}

func TestLoginBackoff_Grows(t *testing.T) {
	for _, tc := range []struct {
		failed int
		want   time.Duration
	}{
		{0, 0}, {FreeFailedLogins - 1, 0}, {FreeFailedLogins, time.Second}, {FreeFailedLogins + 1, 2 * time.Second},
		{FreeFailedLogins + 4, 16 * time.Second}, {FreeFailedLogins + 30, MaxLoginBackoff}, {1 << 20, MaxLoginBackoff},
	} {
		if got := loginBackoff(tc.failed); got != tc.want {
			t.Errorf("loginBackoff(%d) = %s, want %s", tc.failed, got, tc.want)
		}
	}
}
