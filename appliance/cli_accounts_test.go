package appliance_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/auth"
)

var loginCSRFRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// signInWithForm signs user in through the sign-in form of n's console, as
// a browser does, and returns the status of the page it lands on: 200 when
// signed in. It keeps the cookies itself, since net/http's jar sends no
// Secure cookie over plain HTTP.
func signInWithForm(t *testing.T, n *appliance.Node, user, password string) int {
	t.Helper()
	base := "http://" + n.HTTPAddr()
	client := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookies := map[string]string{}
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", base)
		}
		for k, v := range cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			cookies[c.Name] = c.Value
		}
		return resp.StatusCode, string(b)
	}
	_, page := do(http.MethodGet, "/ui/login", nil)
	m := loginCSRFRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	code, _ := do(http.MethodPost, "/ui/login", url.Values{"user": {user}, "password": {password}, "csrf": {m[1]}, "next": {"/ui/"}})
	if code != http.StatusSeeOther {
		return code
	}
	code, _ = do(http.MethodGet, "/ui/", nil)
	return code
}

// vigil token makes, lists and disables API tokens through the local setup
// API; the secret is printed once, and the token works on the REST API
// until it is disabled.
func TestSetup_TokenCommand(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := appliance.TokenCommand(context.Background(), args, appliance.CommandEnv{
			Stdout: &out, Stderr: &errOut,
			LoadConfig: func(string) (string, string, error) { return n.DataDir(), n.HTTPAddr(), nil },
		})
		return out.String(), errOut.String(), err
	}
	out, errOut, err := run("create", "--name", "wallboard")
	secret := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(secret, "vgt_") || !strings.Contains(errOut, "wallboard, operator) made") {
		t.Fatalf("create: %v\n%s%s", err, out, errOut)
	}
	id := strings.SplitN(strings.TrimPrefix(secret, "vgt_"), "_", 2)[0]
	api := func() int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.HTTPAddr()+"/api/v1/alarms", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := api(); code != http.StatusOK {
		t.Fatalf("the new token on the API: %d", code)
	}
	if _, _, err := run("create", "--name", "wallboard"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("the same name twice: %v", err)
	}
	out, _, err = run("list")
	if err != nil || !strings.Contains(out, id+"  wallboard  operator  enabled") || strings.Contains(out, secret[len(secret)-16:]) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, _, err := run("disable", id); err != nil || !strings.Contains(out, "is disabled") {
		t.Fatalf("disable: %v %s", err, out)
	}
	if code := api(); code != http.StatusUnauthorized {
		t.Fatalf("the disabled token on the API: %d", code)
	}
	if out, _, err := run("list"); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable: %v\n%s", err, out)
	}
	if _, _, err := run("create", "--name", "x", "--role", "root"); err != appliance.ErrUsage {
		t.Fatalf("a bad role: %v", err)
	}
	if _, _, err := run("disable", "ffff"); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Fatalf("disabling an unknown token: %v", err)
	}
}

func TestSetup_OperatorCommand(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	dataDir := n.DataDir()
	if fi, err := os.Stat(filepath.Join(dataDir, auth.SetupTokenFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("a strong first password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := appliance.OperatorCommand(context.Background(), args, appliance.CommandEnv{
			Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("from stdin 12345\n"),
			LoadConfig: func(string) (string, string, error) { return dataDir, n.HTTPAddr(), nil },
		})
		return out.String() + errOut.String(), err
	}
	out, err := run("create", "--admin", "--id", "ada", "--name", "Ada Lovelace", "--password-file", pw)
	if err != nil || !strings.Contains(out, "operator ada (Ada Lovelace, admin, enabled) created") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if _, err := run("create", "--admin", "--id", "ada", "--password-file", pw); err == nil {
		t.Fatal("creating ada twice worked")
	}
	if code := signInWithForm(t, n, "ada", "a strong first password"); code != http.StatusOK {
		t.Fatalf("the new admin cannot sign in: %d", code)
	}
	for range monitoring.MaxFailedLogins {
		signInWithForm(t, n, "ada", "wrong wrong wrong")
	}
	if out, err := run("password", "--id", "ada", "--password-file", "-"); err != nil || !strings.Contains(out, "unlocked") {
		t.Fatalf("password: %v %s", err, out)
	}
	if code := signInWithForm(t, n, "ada", "from stdin 12345"); code != http.StatusOK {
		t.Fatalf("after a new password: %d", code)
	}
	out, err = run("list")
	if err != nil || !strings.Contains(out, "ada  Ada Lovelace  admin  enabled") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run("create", "--id", "x", "--password-file", pw, "--role", "root"); err == nil {
		t.Fatalf("a bad role: %s", out)
	}
	if _, err := run("frobnicate"); err != appliance.ErrUsage {
		t.Fatalf("an unknown subcommand: %v", err)
	}
}

// A command run with only the node's data directory finds the node's API
// where the node wrote that it listens, not at the default :8080.
func TestSetup_CommandsFindTheNodeFromItsDataDir(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	if b, err := os.ReadFile(filepath.Join(n.DataDir(), appliance.HTTPURLFile)); err != nil || strings.TrimSpace(string(b)) != "http://"+n.HTTPAddr() {
		t.Fatalf("%s holds %q (%v), want http://%s", appliance.HTTPURLFile, b, err, n.HTTPAddr())
	}
	var out, errOut bytes.Buffer
	err := appliance.OperatorCommand(context.Background(), []string{"list", "--data-dir", n.DataDir()}, appliance.CommandEnv{
		Stdout: &out, Stderr: &errOut,
		// No configuration file: its defaults, the API on 127.0.0.1:8080.
		LoadConfig: func(string) (string, string, error) { return "./data", appliance.DefaultHTTPAddr, nil },
	})
	if err != nil {
		t.Fatalf("vigil operator list --data-dir: %v\n%s%s", err, &out, &errOut)
	}
	var st bytes.Buffer
	if code := appliance.RunCLI(context.Background(), &st, &st, func(string) (string, bool) { return "", false },
		[]string{"vigil", "status", "--data-dir", n.DataDir()}); code != 0 || !strings.Contains(st.String(), "Leader:") {
		t.Fatalf("vigil status --data-dir: exit %d\n%s", code, &st)
	}
}
