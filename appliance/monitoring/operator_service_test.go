package monitoring_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

func TestOperatorService_LoginBackoffAndSessions(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	svc := n.Service
	ctx := context.Background()
	o, err := svc.PutOperator(ctx, "op1", "setup", monitoring.PutOperatorRequest{ID: "olivia", Name: "Olivia Hart", Role: monitoring.RoleOperator,
		Password: "correct horse battery", Create: true})
	if err != nil || o.PasswordHash != "" {
		t.Fatalf("PutOperator = %+v, %v", o, err)
	}
	// The state holds a hash, never the password.
	if err := n.Cluster.View(func(txn *badger.Txn) error {
		dump, err := monitoring.StateDump(txn)
		if strings.Contains(dump, "correct horse") || !strings.Contains(dump, "$argon2id$") {
			t.Errorf("the state holds the password or no hash")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOperator(ctx, "op2", "setup", monitoring.PutOperatorRequest{ID: "x", Name: "X", Role: monitoring.RoleOperator, Password: "short"}); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("short password: %v", err)
	}

	req := monitoring.LoginRequest{OperatorID: "olivia", Password: "correct horse battery", Remote: "192.0.2.7", TTL: 12 * time.Hour}
	in, err := svc.Login(ctx, "l1", req)
	if err != nil || in.Token == "" || in.Operator.ID != "olivia" || !in.Session.ExpiresAt.Equal(now.Add(12*time.Hour)) {
		t.Fatalf("Login = %+v, %v", in, err)
	}
	if op, s, err := svc.Authenticate(in.Token); err != nil || op.ID != "olivia" || op.PasswordHash != "" || s.Hash != monitoring.HashSessionToken(in.Token) {
		t.Fatalf("Authenticate = %+v %+v %v", op, s, err)
	}
	if _, _, err := svc.Authenticate(in.Token + "x"); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("a wrong token: %v", err)
	}

	// Unknown operator and wrong password look the same.
	_, errUnknown := svc.Login(ctx, "l2", monitoring.LoginRequest{OperatorID: "nobody", Password: "whatever12", TTL: time.Hour})
	wrong := req
	wrong.Password = "incorrect horse"
	_, errWrong := svc.Login(ctx, "l3", wrong)
	if !errors.Is(errUnknown, monitoring.ErrLoginFailed) || !errors.Is(errWrong, monitoring.ErrLoginFailed) || errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown: %v; wrong: %v", errUnknown, errWrong)
	}
	// Wrong passwords slow down browsers the account does not know; the
	// answer stays the same as for an unknown account.
	for i := 2; i <= monitoring.FreeFailedLogins+2; i++ {
		if _, err := svc.Login(ctx, fmt.Sprint("w", i), wrong); !errors.Is(err, monitoring.ErrLoginFailed) || err.Error() != errUnknown.Error() {
			t.Fatalf("wrong %d: %v", i, err)
		}
	}
	if _, err := svc.Login(ctx, "r1", req); !errors.Is(err, monitoring.ErrLoginFailed) || err.Error() != errUnknown.Error() {
		t.Fatalf("the right password from an unknown browser while slowed down: %v", err)
	}
	// The browser that signed in before is never slowed down: no lockout
	// keeps the real user out.
	if in.BrowserToken == "" {
		t.Fatal("no known-browser token after a sign-in")
	}
	known := req
	known.BrowserToken = in.BrowserToken
	inKnown, err := svc.Login(ctx, "r1k", known)
	if err != nil || inKnown.BrowserToken != in.BrowserToken {
		t.Fatalf("the right password from the known browser: %+v, %v", inKnown, err)
	}
	// The session made before stays valid.
	if _, _, err := svc.Authenticate(in.Token); err != nil {
		t.Fatal(err)
	}
	svc.Now = func() time.Time { return now.Add(monitoring.LockoutDuration) }
	in2, err := svc.Login(ctx, "r2", req)
	if err != nil {
		t.Fatalf("after a sign-in cleared the count: %v", err)
	}
	// A retry with the same command ID cannot hand out the token again.
	if _, err := svc.Login(ctx, "r2", req); !monitoring.IsCode(err, monitoring.CodeConflict) {
		t.Fatalf("a retried sign-in: %v", err)
	}

	if err := svc.Logout(ctx, "out1", in.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(in.Token); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("after logout: %v", err)
	}
	if err := svc.Logout(ctx, "out2", in.Token); err != nil {
		t.Fatalf("a second logout: %v", err)
	}
	// Expiry.
	svc.Now = func() time.Time { return now.Add(monitoring.LockoutDuration + 12*time.Hour) }
	if _, _, err := svc.Authenticate(in2.Token); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("an expired session: %v", err)
	}
	// Disabled: the right password says so, a wrong one does not.
	svc.Now = func() time.Time { return now.Add(time.Hour) }
	in3, err := svc.Login(ctx, "r3", req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutOperator(ctx, "dis", "ada", monitoring.PutOperatorRequest{ID: "olivia", Name: "Olivia Hart", Role: monitoring.RoleOperator, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(in3.Token); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("a disabled operator's session: %v", err)
	}
	if _, err := svc.Login(ctx, "r4", req); !errors.Is(err, monitoring.ErrDisabled) {
		t.Fatalf("disabled, right password: %v", err)
	}
	if _, err := svc.Login(ctx, "r5", wrong); !errors.Is(err, monitoring.ErrLoginFailed) {
		t.Fatalf("disabled, wrong password: %v", err)
	}
	ops, err := svc.Operators()
	if err != nil || len(ops) != 1 || ops[0].PasswordHash != "" || !ops[0].Disabled {
		t.Fatalf("Operators = %+v, %v", ops, err)
	}
}

// TestOperatorCluster_BackoffAndSessionsOnEveryNode: wrong passwords
// through one node slow down unknown browsers on the others, the known
// browser signs in through every node, and a session made through one node
// is valid on the others and ends on all of them.
func TestOperatorCluster_BackoffAndSessionsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node cluster")
	}
	// One clock, stopped, so that the back-off lasts the whole test.
	now := time.Now().UTC()
	nodes := monitoringtest.MustCluster(t, 3, monitoringtest.Options{
		Setup: func(s *monitoring.Service) { s.Now = func() time.Time { return now } },
	}).Nodes()
	ctx := context.Background()
	if _, err := nodes[0].Service.PutOperator(ctx, "op", "setup", monitoring.PutOperatorRequest{ID: "sam", Name: "Sam", Role: monitoring.RoleSupervisor,
		Password: "a long passphrase", Create: true}); err != nil {
		t.Fatal(err)
	}
	req := monitoring.LoginRequest{OperatorID: "sam", Password: "a long passphrase", TTL: time.Hour}
	in, err := nodes[1].Service.Login(ctx, "in", req)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		clustertest.PollUntil(t, 10*time.Second, fmt.Sprint("the session on node ", i), func() bool {
			_, _, err := n.Service.Authenticate(in.Token)
			return err == nil
		})
	}
	wrong := req
	wrong.Password = "not the passphrase"
	for i := range monitoring.FreeFailedLogins + 1 {
		n := nodes[i%3]
		clustertest.PollUntil(t, 10*time.Second, "the failure count to reach the node", func() bool {
			var o *monitoring.Operator
			_ = n.Cluster.View(func(txn *badger.Txn) (err error) { o, err = monitoring.GetOperator(txn, "sam"); return err })
			return o != nil && o.FailedLogins == i
		})
		if _, err := n.Service.Login(ctx, fmt.Sprint("wrong", i), wrong); err == nil {
			t.Fatal("a wrong password signed in")
		}
	}
	known := req
	known.BrowserToken = in.BrowserToken
	for i, n := range nodes {
		clustertest.PollUntil(t, 10*time.Second, fmt.Sprint("the back-off on node ", i), func() bool {
			_, err := n.Service.Login(ctx, fmt.Sprint("right", i), req)
			return errors.Is(err, monitoring.ErrLoginFailed)
		})
		if _, err := n.Service.Login(ctx, fmt.Sprint("known", i), known); err != nil {
			t.Fatalf("the known browser through node %d: %v", i, err)
		}
		for j := range monitoring.FreeFailedLogins + 1 { // slowed down again for the next node
			_, _ = n.Service.Login(ctx, fmt.Sprint("wrong", i, j), wrong)
		}
	}
	if err := nodes[2].Service.Logout(ctx, "out", in.Token); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		clustertest.PollUntil(t, 10*time.Second, fmt.Sprint("the logout on node ", i), func() bool {
			_, _, err := n.Service.Authenticate(in.Token)
			return errors.Is(err, monitoring.ErrNoSession)
		})
	}
}
