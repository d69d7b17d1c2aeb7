package appliance

// The demo's console accounts: with --demo, devcluster signs nobody in, but
// creates one operator, one supervisor and one admin through node1's local
// set-up API (the one `vigil operator` uses, authorised by the token the node
// writes to its data directory), with fresh random passwords, and prints
// them with the console's address.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// demoAccount is one console account of the demo.
type demoAccount struct {
	ID, Name, Password string
	Role               monitoring.OperatorRole
}

// demoAccounts returns the demo's accounts with new passwords.
func demoAccounts() []demoAccount {
	return []demoAccount{
		{ID: "operator", Name: "Olivia Hart", Role: monitoring.RoleOperator, Password: demoPassword()},
		{ID: "supervisor", Name: "Sam Patel", Role: monitoring.RoleSupervisor, Password: demoPassword()},
		{ID: "admin", Name: "Alex Morgan", Role: monitoring.RoleAdmin, Password: demoPassword()},
	}
}

// demoPassword returns 12 random letters and digits, easy to type from
// the terminal, without the ones that look alike.
func demoPassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic("no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// createDemoAccounts creates (or resets) the demo's console accounts through
// the node at httpAddr whose data directory is dataDir, and writes them to
// path for the person running the demo.
func createDemoAccounts(ctx context.Context, httpAddr, dataDir, path string) ([]demoAccount, error) {
	tok, err := os.ReadFile(filepath.Join(dataDir, ui.SetupTokenFileName))
	if err != nil {
		return nil, fmt.Errorf("cannot read node1's console set-up token: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second} // argon2id hashing on a busy machine
	accounts := demoAccounts()
	for _, a := range accounts {
		body, err := json.Marshal(ui.SetupOperatorRequest{ID: a.ID, Name: a.Name, Role: a.Role, Password: a.Password, Unlock: true})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+ui.Prefix+"/setup/operators", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("cannot create the demo account %s: %w", a.ID, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("cannot create the demo account %s: HTTP %d: %s", a.ID, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
	var b strings.Builder
	for _, a := range accounts {
		fmt.Fprintf(&b, "%-10s %-10s %s\n", a.ID, a.Password, a.Role)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write the demo accounts: %w", err)
	}
	return accounts, nil
}
