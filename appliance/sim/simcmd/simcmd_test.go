package simcmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/appliance/sim/simcmd"
)

// The exit codes the vigil command line gives Command's errors.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// errUsage is what testEnv's UsageError and ParseArgs return.
var errUsage = errors.New("usage error")

// testEnv is the command line's side of vigil sim, with vars as the
// environment. Its flags parser takes no positional arguments between
// flags, which these tests do not give.
func testEnv(stdout, stderr io.Writer, vars map[string]string) simcmd.Env {
	return simcmd.Env{
		Stdout: stdout, Stderr: stderr,
		LookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
		ParseArgs: func(fs *flag.FlagSet, args []string) ([]string, error) {
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return nil, err
				}
				return nil, errUsage
			}
			return fs.Args(), nil
		},
		UsageError: func(fs *flag.FlagSet, format string, a ...any) error {
			fmt.Fprintf(fs.Output(), "vigil %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
			fs.Usage()
			return errUsage
		},
		SplitList: func(s string) []string { return strings.Split(s, ",") },
		NewLogger: func(w io.Writer, _ string) *slog.Logger {
			return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
		},
		DefaultAPIURL: "http://127.0.0.1:8080",
	}
}

// runSim runs vigil sim with args as the vigil command line does, and
// returns its exit code; the command line prints a failure to stderr.
func runSim(ctx context.Context, stdout, stderr io.Writer, vars map[string]string, args ...string) int {
	err := simcmd.Command(ctx, args, testEnv(stdout, stderr, vars))
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	}
	fmt.Fprintf(stderr, "vigil sim: %v\n", err)
	return exitFailure
}

// mustToken makes an API token with role on n and returns its secret.
func mustToken(t *testing.T, n *appliance.Node, name string, role monitoring.OperatorRole) string {
	t.Helper()
	made, err := n.Service().CreateAPIToken(context.Background(), "test-token-"+name, "test", name, role)
	if err != nil {
		t.Fatalf("cannot make API token %s: %v", name, err)
	}
	return made.Secret
}

func TestSimCmd_RefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown mode", []string{"--mode", "sleepy"}, "--mode"},
		{"unknown alarm type", []string{"--alarm-type", "fire"}, "--alarm-type"},
		{"scenario when idle", []string{"--mode", "idle", "--scenario", "x.yaml"}, "--scenario needs --mode random"},
		{"telemetry QoS 2", []string{"--telemetry-qos", "2"}, "--telemetry-qos"},
		{"negative heartbeat", []string{"--heartbeat-interval", "-1s"}, "--heartbeat-interval"},
		{"no keep-alive", []string{"--keepalive", "0s"}, "--keepalive"},
		{"negative status interval", []string{"--status-every", "-1s"}, "--status-every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut appliancetest.Buffer
			// No --api is reachable: a refusal must come before provisioning.
			code := runSim(context.Background(), &out, &errOut, nil, append([]string{"--api", "127.0.0.1:1"}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitUsage, tc.want)
			}
		})
	}
}

// With --status-json, stdout is only status lines, the last one done: the
// bench's idle-device children are read this way.
func TestSimCmd_IdleStatusJSON(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := mustToken(t, n, "test-admin", monitoring.RoleAdmin)
	creds, err := sim.ProvisionWith(ctx, sim.API{URL: n.HTTPAddr(), Token: admin}, "c", "r1", 3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "creds.json")
	if err := sim.WriteCredentials(path, creds); err != nil {
		t.Fatal(err)
	}
	var out, errOut appliancetest.Buffer
	code := runSim(ctx, &out, &errOut, nil, []string{"--mode", "idle", "--provision=false", "--credentials", path, "--devices", "2",
		"--brokers", n.BrokerAddr(), "--heartbeat-interval", "100ms", "--location-interval", "0", "--telemetry-qos", "1",
		"--duration", "1500ms", "--status-every", "200ms", "--status-json"}...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var st sim.Status
	var sawAll bool
	for _, l := range lines {
		st = sim.Status{}
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Fatalf("stdout line %q is not a status: %v", l, err)
		}
		sawAll = sawAll || (st.Connected == 2 && st.ByBroker[n.BrokerAddr()] == 2)
	}
	if len(lines) < 3 || !sawAll {
		t.Errorf("%d status lines, all connected in one of them: %v; want several, one with both devices connected", len(lines), sawAll)
	}
	if !st.Done || st.Connected != 0 || st.Devices != 2 || st.Heartbeats < 10 || st.TelemetryAcked == 0 || st.Locations != 0 {
		t.Errorf("last status %+v: want done, 2 devices, none connected, heartbeats every 100 ms PUBACKed, no locations", st)
	}
	if e := errOut.String(); !strings.Contains(e, "simulating 2 devices (mode idle)") || !strings.Contains(e, "devices 2: events sent 0") {
		t.Errorf("stderr %q: want the start line and the summary there", e)
	}
}

// Provisioning needs an admin API token: none, or one of a lower role, is
// refused with a message that says what to give; --token or
// $VIGIL_API_TOKEN with an admin token provisions.
func TestSimCmd_ProvisionNeedsAnAdminToken(t *testing.T) {
	n := appliancetest.MustNode(t, nil)
	admin := mustToken(t, n, "test-admin", monitoring.RoleAdmin)
	op := mustToken(t, n, "sim-operator", monitoring.RoleOperator)
	args := []string{"--api", n.HTTPAddr(), "--brokers", n.BrokerAddr(), "--mode", "idle", "--devices", "1",
		"--duration", "300ms", "--heartbeat-interval", "100ms", "--location-interval", "0"}
	for _, tc := range []struct {
		name  string
		extra []string
		env   map[string]string
		code  int
		want  []string
	}{
		{"no token", nil, nil, exitFailure, []string{"no API token was given", "HTTP 401", "needs an admin API token", "--token"}},
		{"an operator's token", []string{"--token", op}, nil, exitFailure, []string{"role may not provision", "HTTP 403", "needs the admin role"}},
		{"a made-up token", nil, map[string]string{sim.TokenEnv: "vgt_0123456789abcdef_nope"}, exitFailure, []string{"refused", "no API token 0123456789abcdef"}},
		{"an admin's token", nil, map[string]string{sim.TokenEnv: admin}, exitOK, []string{"simulating 1 devices"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut appliancetest.Buffer
			code := runSim(context.Background(), &out, &errOut, tc.env, append(append([]string{}, args...), tc.extra...)...)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not say %q: %s", w, all)
				}
			}
		})
	}
}
