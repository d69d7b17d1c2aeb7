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

func TestOperatorService_LoginLockoutAndSessions(t *testing.T) {
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
	for i := 2; i < monitoring.MaxFailedLogins; i++ {
		if _, err := svc.Login(ctx, fmt.Sprint("w", i), wrong); !errors.Is(err, monitoring.ErrLoginFailed) {
			t.Fatalf("wrong %d: %v", i, err)
		}
	}
	if _, err := svc.Login(ctx, "w5", wrong); !errors.Is(err, monitoring.ErrLocked) || !strings.Contains(err.Error(), "09:15:00") {
		t.Fatalf("the fifth wrong password: %v", err)
	}
	if _, err := svc.Login(ctx, "r1", req); !errors.Is(err, monitoring.ErrLocked) {
		t.Fatalf("the right password while locked: %v", err)
	}
	// The session made before stays valid; the lockout is about signing in.
	if _, _, err := svc.Authenticate(in.Token); err != nil {
		t.Fatal(err)
	}
	svc.Now = func() time.Time { return now.Add(monitoring.LockoutDuration) }
	in2, err := svc.Login(ctx, "r2", req)
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
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

// TestOperatorCluster_LockoutAndSessionsOnEveryNode: wrong passwords
// through one node lock the account on the others, and a session made
// through one node is valid on the others and ends on all of them.
func TestOperatorCluster_LockoutAndSessionsOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node cluster")
	}
	nodes := monitoringtest.MustCluster(t, 3, monitoringtest.Options{}).Nodes()
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
	for i := range monitoring.MaxFailedLogins {
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
	for i, n := range nodes {
		clustertest.PollUntil(t, 10*time.Second, fmt.Sprint("the lockout on node ", i), func() bool {
			_, err := n.Service.Login(ctx, fmt.Sprint("right", i), req)
			return errors.Is(err, monitoring.ErrLocked)
		})
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
