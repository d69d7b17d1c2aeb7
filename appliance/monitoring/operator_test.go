package monitoring

import (
	"context"
	"encoding/json"
	"errors"
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
	if o := e.operator("olivia"); !o.Locked(start) || o.FailedLogins != 0 {
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
	if o := e.operator("olivia"); o.Locked(e.now) {
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

func TestOperatorService_LoginLockoutAndSessions(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	svc := n.svc
	ctx := context.Background()
	o, err := svc.PutOperator(ctx, "op1", "setup", PutOperatorRequest{ID: "olivia", Name: "Olivia Hart", Role: RoleOperator,
		Password: "correct horse battery", Create: true})
	if err != nil || o.PasswordHash != "" {
		t.Fatalf("PutOperator = %+v, %v", o, err)
	}
	// The state holds a hash, never the password.
	if err := n.node.View(func(txn *badger.Txn) error {
		dump, err := StateDump(txn)
		if strings.Contains(dump, "correct horse") || !strings.Contains(dump, "$argon2id$") {
			t.Errorf("the state holds the password or no hash")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOperator(ctx, "op2", "setup", PutOperatorRequest{ID: "x", Name: "X", Role: RoleOperator, Password: "short"}); !isCode(err, CodeInvalid) {
		t.Fatalf("short password: %v", err)
	}

	req := LoginRequest{OperatorID: "olivia", Password: "correct horse battery", Remote: "192.0.2.7", TTL: 12 * time.Hour}
	in, err := svc.Login(ctx, "l1", req)
	if err != nil || in.Token == "" || in.Operator.ID != "olivia" || !in.Session.ExpiresAt.Equal(now.Add(12*time.Hour)) {
		t.Fatalf("Login = %+v, %v", in, err)
	}
	if op, s, err := svc.Authenticate(in.Token); err != nil || op.ID != "olivia" || op.PasswordHash != "" || s.Hash != hashSessionToken(in.Token) {
		t.Fatalf("Authenticate = %+v %+v %v", op, s, err)
	}
	if _, _, err := svc.Authenticate(in.Token + "x"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a wrong token: %v", err)
	}

	// Unknown operator and wrong password look the same.
	_, errUnknown := svc.Login(ctx, "l2", LoginRequest{OperatorID: "nobody", Password: "whatever12", TTL: time.Hour})
	wrong := req
	wrong.Password = "incorrect horse"
	_, errWrong := svc.Login(ctx, "l3", wrong)
	if !errors.Is(errUnknown, ErrLoginFailed) || !errors.Is(errWrong, ErrLoginFailed) || errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown: %v; wrong: %v", errUnknown, errWrong)
	}
	for i := 2; i < MaxFailedLogins; i++ {
		if _, err := svc.Login(ctx, fmt.Sprint("w", i), wrong); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("wrong %d: %v", i, err)
		}
	}
	if _, err := svc.Login(ctx, "w5", wrong); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "09:15:00") {
		t.Fatalf("the fifth wrong password: %v", err)
	}
	if _, err := svc.Login(ctx, "r1", req); !errors.Is(err, ErrLocked) {
		t.Fatalf("the right password while locked: %v", err)
	}
	// The session made before stays valid; the lockout is about signing in.
	if _, _, err := svc.Authenticate(in.Token); err != nil {
		t.Fatal(err)
	}
	svc.Now = func() time.Time { return now.Add(LockoutDuration) }
	in2, err := svc.Login(ctx, "r2", req)
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// A retry with the same command ID cannot hand out the token again.
	if _, err := svc.Login(ctx, "r2", req); !isCode(err, CodeConflict) {
		t.Fatalf("a retried sign-in: %v", err)
	}

	if err := svc.Logout(ctx, "out1", in.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(in.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after logout: %v", err)
	}
	if err := svc.Logout(ctx, "out2", in.Token); err != nil {
		t.Fatalf("a second logout: %v", err)
	}
	// Expiry.
	svc.Now = func() time.Time { return now.Add(LockoutDuration + 12*time.Hour) }
	if _, _, err := svc.Authenticate(in2.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("an expired session: %v", err)
	}
	// Disabled: the right password says so, a wrong one does not.
	svc.Now = func() time.Time { return now.Add(time.Hour) }
	in3, err := svc.Login(ctx, "r3", req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOperator(ctx, "dis", "ada", PutOperatorRequest{ID: "olivia", Name: "Olivia Hart", Role: RoleOperator, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(in3.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a disabled operator's session: %v", err)
	}
	if _, err := svc.Login(ctx, "r4", req); !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled, right password: %v", err)
	}
	if _, err := svc.Login(ctx, "r5", wrong); !errors.Is(err, ErrLoginFailed) {
		t.Fatalf("disabled, wrong password: %v", err)
	}
	ops, err := svc.Operators()
	if err != nil || len(ops) != 1 || ops[0].PasswordHash != "" || !ops[0].Disabled {
		t.Fatalf("Operators = %+v, %v", ops, err)
	}
}

// TestOperatorCluster_LockoutAndSessionsOnEveryNode: wrong passwords
// through one node lock the account on the others, and a session made
// through one node is valid on the others and ends on all of them.
func TestOperatorCluster_LockoutAndSessionsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node cluster")
	}
	nodes := mustServiceCluster(t, 3, true)
	ctx := context.Background()
	if _, err := nodes[0].svc.PutOperator(ctx, "op", "setup", PutOperatorRequest{ID: "sam", Name: "Sam", Role: RoleSupervisor,
		Password: "a long passphrase", Create: true}); err != nil {
		t.Fatal(err)
	}
	req := LoginRequest{OperatorID: "sam", Password: "a long passphrase", TTL: time.Hour}
	in, err := nodes[1].svc.Login(ctx, "in", req)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		pollUntil(t, 10*time.Second, fmt.Sprint("the session on node ", i), func() bool {
			_, _, err := n.svc.Authenticate(in.Token)
			return err == nil
		})
	}
	wrong := req
	wrong.Password = "not the passphrase"
	for i := range MaxFailedLogins {
		n := nodes[i%3]
		pollUntil(t, 10*time.Second, "the failure count to reach the node", func() bool {
			var o *Operator
			_ = n.node.View(func(txn *badger.Txn) (err error) { o, err = getOperator(txn, "sam"); return err })
			return o != nil && o.FailedLogins == i
		})
		if _, err := n.svc.Login(ctx, fmt.Sprint("wrong", i), wrong); err == nil {
			t.Fatal("a wrong password signed in")
		}
	}
	for i, n := range nodes {
		pollUntil(t, 10*time.Second, fmt.Sprint("the lockout on node ", i), func() bool {
			_, err := n.svc.Login(ctx, fmt.Sprint("right", i), req)
			return errors.Is(err, ErrLocked)
		})
	}
	if err := nodes[2].svc.Logout(ctx, "out", in.Token); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		pollUntil(t, 10*time.Second, fmt.Sprint("the logout on node ", i), func() bool {
			_, _, err := n.svc.Authenticate(in.Token)
			return errors.Is(err, ErrNoSession)
		})
	}
}

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
