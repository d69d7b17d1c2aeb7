package monitoring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

func TestResumeService_HandOverAcrossNodes(t *testing.T) {
	nodes := monitoringtest.MustCluster(t, 3, monitoringtest.Options{}).Nodes()
	ctx := context.Background()
	a, b := nodes[0].Service, nodes[2].Service
	if _, err := a.PutOperator(ctx, "op", "setup", monitoring.PutOperatorRequest{ID: "olivia", Name: "Olivia Hart", Role: monitoring.RoleOperator,
		Password: "correct horse battery", Create: true}); err != nil {
		t.Fatal(err)
	}
	in, err := a.Login(ctx, "l1", monitoring.LoginRequest{OperatorID: "olivia", Password: "correct horse battery", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.IssueResumeTicket(ctx, "t1", in.Token, time.Minute)
	if err != nil || g.Ticket == "" || g.Ticket == in.Token {
		t.Fatalf("IssueResumeTicket = %+v, %v", g, err)
	}
	if _, err := a.IssueResumeTicket(ctx, "t1", in.Token, time.Minute); !monitoring.IsCode(err, monitoring.CodeConflict) {
		t.Fatalf("the same command ID again: %v", err)
	}
	if _, err := a.IssueResumeTicket(ctx, "t2", in.Token+"x", time.Minute); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("a ticket for a wrong token: %v", err)
	}
	// The state keeps only hashes.
	if err := nodes[1].Cluster.View(func(txn *badger.Txn) error {
		dump, err := monitoring.StateDump(txn)
		if strings.Contains(dump, g.Ticket) || strings.Contains(dump, in.Token) {
			t.Error("the state holds a ticket or a session token")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	bIn, err := b.RedeemResumeTicket(ctx, "r1", g.Ticket, "192.0.2.4")
	if err != nil || bIn.Operator.ID != "olivia" || bIn.Token == in.Token || bIn.Operator.PasswordHash != "" {
		t.Fatalf("RedeemResumeTicket = %+v, %v", bIn, err)
	}
	if op, _, err := b.Authenticate(bIn.Token); err != nil || op.ID != "olivia" {
		t.Fatalf("the new session on B: %+v %v", op, err)
	}
	if _, err := b.RedeemResumeTicket(ctx, "r2", g.Ticket, ""); !errors.Is(err, monitoring.ErrNoSession) {
		t.Fatalf("a ticket redeemed twice: %v", err)
	}
	// Signing out on B ends A's session too.
	if n, err := b.EndSessions(ctx, "out", bIn.Token); err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v", n, err)
	}
	clustertest.PollUntil(t, 10*time.Second, "A to see the sign-out", func() bool {
		_, _, err := a.Authenticate(in.Token)
		return errors.Is(err, monitoring.ErrNoSession)
	})
	if n, err := b.EndSessions(ctx, "out2", "nonsense"); err != nil || n != 0 {
		t.Fatalf("EndSessions of nothing = %d, %v", n, err)
	}

	if _, err := a.RegisterConsoleNode(ctx, "cn1", monitoring.ConsoleNode{NodeID: "n1", URL: "http://127.0.0.2:8080"}); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 10*time.Second, "the console node on B", func() bool {
		ns, err := b.ConsoleNodes()
		return err == nil && len(ns) == 1 && ns[0].URL == "http://127.0.0.2:8080"
	})
}
