package appliance_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// runCLI runs the vigil command line with args and env, and returns the
// exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut appliancetest.Buffer
	code := appliance.RunCLI(context.Background(), &out, &errOut, appliance.EnvFrom(env), append([]string{"vigil"}, args...))
	return code, out.String(), errOut.String()
}

// mustOpenNode is appliancetest.MustNode with an admin API token "test-admin".
func mustOpenNode(t *testing.T) *appliance.Node {
	t.Helper()
	n := appliancetest.MustNode(t, nil)
	if _, err := n.Service().CreateAPIToken(context.Background(), "test-token-test-admin", "test", "test-admin", monitoring.RoleAdmin); err != nil {
		t.Fatalf("cannot make API token test-admin: %v", err)
	}
	return n
}

// vigil token makes, lists and disables API tokens through the node's
// setup token; vigil status and vigil cluster authorise themselves with
// --token, $VIGIL_API_TOKEN or the node's setup token, and say what to give
// when refused.
func TestCLI_TokensAndClientCommandsAuthorise(t *testing.T) {
	n := mustOpenNode(t)
	addr, dir := "http://"+n.HTTPAddr(), n.DataDir()
	local := []string{"--addr", addr, "--data-dir", dir}

	code, out, errOut := runCLI(t, nil, append([]string{"token", "create", "--name", "ci-status", "--role", "operator"}, local...)...)
	secret := strings.TrimSpace(out)
	if code != appliance.ExitOK || !strings.HasPrefix(secret, monitoring.APITokenPrefix) || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	id, _, _ := monitoring.ParseAPIToken(secret)
	code, out, errOut = runCLI(t, nil, append([]string{"token", "list"}, local...)...)
	if code != appliance.ExitOK || !strings.Contains(out, id) || !strings.Contains(out, "ci-status") || !strings.Contains(out, "test-admin") ||
		strings.Contains(out, secret[len(secret)-20:]) {
		t.Fatalf("token list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"the node's setup token", nil, []string{"status", "--addr", addr, "--data-dir", dir}},
		{"--token", nil, []string{"status", "--addr", addr, "--data-dir", t.TempDir(), "--token", secret}},
		{"$VIGIL_API_TOKEN", map[string]string{"VIGIL_API_TOKEN": secret}, []string{"status", "--addr", addr, "--data-dir", t.TempDir()}},
	} {
		if code, out, errOut := runCLI(t, tc.env, tc.args...); code != appliance.ExitOK || !strings.Contains(out, "Leader:") {
			t.Errorf("status with %s: exit %d, stdout %q, stderr %q", tc.name, code, out, errOut)
		}
	}
	code, _, errOut = runCLI(t, nil, "status", "--addr", addr, "--data-dir", t.TempDir())
	if code != appliance.ExitFailure || !strings.Contains(errOut, "HTTP 401") || !strings.Contains(errOut, "--token") || !strings.Contains(errOut, "setup token") {
		t.Errorf("status without a token: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "cluster", "remove", "ghost", "--addr", addr, "--token", secret)
	if code != appliance.ExitFailure || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "needs the admin role") {
		t.Errorf("cluster remove with an operator's token: exit %d, stderr %q", code, errOut)
	}

	code, out, errOut = runCLI(t, nil, append([]string{"token", "disable", id}, local...)...)
	if code != appliance.ExitOK || !strings.Contains(out, "is disabled") {
		t.Fatalf("token disable: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "status", "--addr", addr, "--token", secret)
	if code != appliance.ExitFailure || !strings.Contains(errOut, "disabled by local-setup") {
		t.Errorf("status with a disabled token: exit %d, stderr %q", code, errOut)
	}

	for _, args := range [][]string{
		{"token"}, {"token", "create"}, {"token", "create", "--name", "x", "--role", "root"},
		{"token", "disable"}, {"token", "list", "extra"}, {"token", "renew"}, {"token", "list", "--name", "x"},
	} {
		if code, _, errOut := runCLI(t, nil, append(args, local...)...); code != appliance.ExitUsage {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}

// The development tools are commands of vigil: their help and their
// refusals come through the command line, with its exit codes.
func TestCLI_DevToolsAreCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"help sim", []string{"help", "sim"}, appliance.ExitOK, "Usage: vigil sim", ""},
		{"sim -h", []string{"sim", "-h"}, appliance.ExitOK, "", "Usage: vigil sim"},
		{"sim refusal", []string{"sim", "--mode", "sleepy"}, appliance.ExitUsage, "", "vigil sim: --mode"},
		{"sim bad flag", []string{"sim", "--no-such-flag"}, appliance.ExitUsage, "", "Usage: vigil sim"},
		{"sim argument", []string{"sim", "extra"}, appliance.ExitUsage, "", `unexpected argument "extra"`},
		{"help devcluster", []string{"help", "devcluster"}, appliance.ExitOK, "Usage: vigil devcluster", ""},
		{"devcluster -h", []string{"devcluster", "-h"}, appliance.ExitOK, "", "(default \"info\")"},
		{"devcluster log level", []string{"devcluster", "--log-level", "loud"}, appliance.ExitUsage, "", "vigil devcluster: --log-level: must be debug, info, warn or error"},
		{"devcluster ports", []string{"devcluster", "--mqtt-port", "8082"}, appliance.ExitUsage, "", "--mqtt-port 8082 and --http-port 8081 ranges overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q and %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
		})
	}
}

// A bare vigil serve on a new data directory says where the console is
// and prints the exact command that makes the first administrator, which
// works as printed (with a password file instead of standard input).
func TestCLI_ServeSaysHowToMakeTheFirstAdmin(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut appliancetest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- appliance.RunCLI(ctx, &out, &errOut, appliance.EnvFrom(nil), []string{"vigil", "serve", "--data-dir", dir,
			"--http-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", "", "--log-level", "warn"})
	}()
	const hint = "vigil operator create --admin --id ID --name \"FULL NAME\" --password-file - "
	clustertest.PollUntil(t, 30*time.Second, "the first-admin hint", func() bool { return strings.Contains(out.String(), hint) })
	if !regexp.MustCompile(`vigil: node \S+ is up; the operator console is at http://127\.0\.0\.1:\d+/ui/`).MatchString(out.String()) {
		t.Fatalf("no console URL in:\n%s", out.String())
	}
	_, rest, _ := strings.Cut(out.String(), hint)
	line, _, _ := strings.Cut(rest, "\n")
	args := strings.Fields(line) // --data-dir DIR --addr URL
	if len(args) != 4 || args[0] != "--data-dir" || args[1] != dir || args[2] != "--addr" {
		t.Fatalf("the printed command ends with %q", line)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("a long first passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmdOut bytes.Buffer
	err := appliance.OperatorCommand(ctx, append([]string{"create", "--admin", "--id", "ada", "--name", "Ada Lovelace", "--password-file", pw}, args...),
		appliance.CommandEnv{Stdout: &cmdOut, Stderr: &cmdOut, LoadConfig: func(string) (string, string, error) { return "", "", nil }})
	if err != nil || !strings.Contains(cmdOut.String(), "operator ada (Ada Lovelace, admin, enabled) created") {
		t.Fatalf("the printed command: %v\n%s", err, cmdOut.String())
	}
	cancel()
	if code := <-done; code != appliance.ExitOK {
		t.Fatalf("serve exited %d:\n%s", code, errOut.String())
	}
}
