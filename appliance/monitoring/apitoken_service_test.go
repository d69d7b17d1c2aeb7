package monitoring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

func TestAPITokenService_CreateAuthenticateDisable(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	svc, ctx := n.Service, context.Background()
	made, err := svc.CreateAPIToken(ctx, "mk1", "ada", "nightly-report", monitoring.RoleSupervisor)
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := monitoring.ParseAPIToken(made.Secret)
	if err != nil || id != made.Token.ID || len(secret) < 43 || made.Token.Hash != "" || made.Token.CreatedBy != "ada" {
		t.Fatalf("CreateAPIToken = %+v (%q, %v)", made, secret, err)
	}
	// The state holds the hash, never the secret.
	if err := n.Cluster.View(func(txn *badger.Txn) error {
		dump, err := monitoring.StateDump(txn)
		if strings.Contains(dump, secret) || !strings.Contains(dump, monitoring.HashAPITokenSecret(secret)) {
			t.Errorf("the state holds the secret, or not its hash")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.AuthenticateAPIToken(ctx, made.Secret)
	if err != nil || got.ID != id || got.Role != monitoring.RoleSupervisor || got.Hash != "" || got.Actor() != "token:nightly-report" {
		t.Fatalf("AuthenticateAPIToken = %+v, %v", got, err)
	}
	// A retry cannot show the secret again.
	if _, err := svc.CreateAPIToken(ctx, "mk1", "ada", "nightly-report", monitoring.RoleSupervisor); !monitoring.IsCode(err, monitoring.CodeConflict) || !strings.Contains(err.Error(), id) {
		t.Fatalf("a retried create: %v", err)
	}
	if _, err := svc.CreateAPIToken(ctx, "mk2", "ada", "nightly-report", monitoring.RoleAdmin); !monitoring.IsCode(err, monitoring.CodeConflict) {
		t.Fatalf("the same name again: %v", err)
	}
	if _, err := svc.CreateAPIToken(ctx, "mk3", "ada", "x", "root"); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("an unknown role: %v", err)
	}
	for _, tc := range []struct{ token, mention string }{
		{"", "not an API token"},
		{"some-other-token", "not an API token"},
		{"vgt_" + id, "malformed"},
		{"vgt_" + id + "_" + secret + "x", "is wrong"},
		{"vgt_ffffffffffffffff_" + secret, "no API token ffffffffffffffff"},
	} {
		if _, err := svc.AuthenticateAPIToken(ctx, tc.token); !errors.Is(err, monitoring.ErrBadToken) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("AuthenticateAPIToken(%q) = %v, want bad_token mentioning %q", tc.token, err, tc.mention)
		}
	}

	list, err := svc.APITokens()
	if err != nil || len(list) != 1 || list[0].Hash != "" || list[0].Name != "nightly-report" {
		t.Fatalf("APITokens = %+v, %v", list, err)
	}
	d, err := svc.DisableAPIToken(ctx, "dis1", "ada", id)
	if err != nil || !d.Disabled || d.DisabledBy != "ada" || d.Hash != "" {
		t.Fatalf("DisableAPIToken = %+v, %v", d, err)
	}
	if _, err := svc.AuthenticateAPIToken(ctx, made.Secret); !errors.Is(err, monitoring.ErrBadToken) || !strings.Contains(err.Error(), "disabled by ada") {
		t.Fatalf("a disabled token: %v", err)
	}
	if _, err := svc.DisableAPIToken(ctx, "dis2", "ada", "nope"); !monitoring.IsCode(err, monitoring.CodeNotFound) {
		t.Fatalf("disabling an unknown token: %v", err)
	}
}
