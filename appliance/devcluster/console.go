package devcluster

// The demo's console accounts and API token: with --demo, devcluster signs
// nobody in, but creates one operator, one supervisor and one admin through
// node1's local set-up API (the one `vigil operator` uses, authorised by the
// token the node writes to its data directory), with fresh random
// passwords, and prints them with the console's address. It makes an admin
// API token the same way, for its own provisioning and for curl.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
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

// keptPasswords returns the passwords of the accounts written to path by
// an earlier run (user name to password), or none.
func keptPasswords(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			out[f[0]] = f[1]
		}
	}
	return out
}

// createDemoAccounts creates (or resets) the demo's console accounts through
// the node at httpAddr whose data directory is dataDir, and writes them to
// path for the person running the demo. The passwords of an earlier run
// written there are kept, unless reset: yesterday's sign-in still works.
func createDemoAccounts(ctx context.Context, httpAddr, dataDir, path string, reset bool) ([]demoAccount, error) {
	accounts := demoAccounts()
	if !reset {
		kept := keptPasswords(path)
		for i, a := range accounts {
			if pw := kept[a.ID]; len(pw) >= monitoring.MinPasswordLen {
				accounts[i].Password = pw
			}
		}
	}
	for _, a := range accounts {
		req := console.SetupOperatorRequest{ID: a.ID, Name: a.Name, Role: a.Role, Password: a.Password, Unlock: true}
		if err := setupPost(ctx, httpAddr, dataDir, "/operators", req, nil); err != nil {
			return nil, fmt.Errorf("cannot create the demo account %s: %w", a.ID, err)
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

// createDemoToken makes an admin API token named name through the node at
// httpAddr whose data directory is dataDir, writes it to path (mode 0600)
// and returns it. Tokens are replicated: it works on every node.
func createDemoToken(ctx context.Context, httpAddr, dataDir, path, name string) (string, error) {
	var t monitoring.NewAPIToken
	req := console.SetupTokenRequest{Name: name, Role: monitoring.RoleAdmin}
	if err := setupPost(ctx, httpAddr, dataDir, "/tokens", req, &t); err != nil {
		return "", fmt.Errorf("cannot make the demo's API token: %w", err)
	}
	if t.Secret == "" {
		return "", fmt.Errorf("cannot make the demo's API token: node1 answered without it")
	}
	if err := os.WriteFile(path, []byte(t.Secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the demo's API token: %w", err)
	}
	return t.Secret, nil
}

// setupPost sends body to the local set-up API at path (under
// /ui/setup) of the node at httpAddr whose data directory is dataDir, and
// decodes the reply into out when it is not nil.
func setupPost(ctx context.Context, httpAddr, dataDir, path string, body, out any) error {
	tok, err := auth.ReadSetupToken(dataDir)
	if err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+console.Prefix+"/setup"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second} // argon2id hashing on a busy machine
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return json.Unmarshal(msg, out)
	}
	return nil
}
