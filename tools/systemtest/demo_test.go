package systemtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"
)

// demoTimeout bounds the wait for the demo's first alarm and session: the
// cluster starts, the demo provisions through the API, and the devices
// connect, all on a loaded two-core machine.
const demoTimeout = 90 * time.Second

// TestDevcluster_DemoRaisesAlarmsAndSessionsAndStopsOnInterrupt runs what
// make run runs: vigil devcluster --demo must provision the demo's workers
// and devices, whose simulated alarms and sessions then show through any
// node's API, and Ctrl-C (SIGINT) must stop the simulator, then the nodes,
// with exit code 0.
func TestDevcluster_DemoRaisesAlarmsAndSessionsAndStopsOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds vigil and runs it")
	}
	bin := mustBuildVigil(t)
	base := mustFreePortRun(t, 9)
	clusterPort, httpPort, mqttPort := base, base+3, base+6
	dir := t.TempDir()
	// 720 alarms per device per hour: one every 5 s on average, so the
	// test sees one soon.
	p, a := startDevcluster(t, bin, dir, "--demo", "--demo-devices", "6", "--demo-alarm-rate", "720",
		"--cluster-port", strconv.Itoa(clusterPort), "--http-port", strconv.Itoa(httpPort), "--mqtt-port", strconv.Itoa(mqttPort))

	// Read through node2 (the demo provisions through node1), with the
	// admin API token the demo made and wrote for curl.
	api := "http://127.0.0.1:" + strconv.Itoa(httpPort+1)
	tokPath := filepath.Join(dir, "api-token.txt")
	withToken := newAPI(statusTimeout)
	t.Cleanup(withToken.close)
	clustertest.PollUntil(t, demoTimeout, "the demo's API token in "+tokPath, func() bool {
		if !p.running() {
			t.Fatalf("vigil devcluster --demo exited: %s", p.run.cmdState())
		}
		b, err := os.ReadFile(tokPath)
		withToken.token = strings.TrimSpace(string(b))
		return err == nil && strings.HasPrefix(withToken.token, "vgt_")
	})
	if fi, err := os.Stat(tokPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("API token file %s: %v, want mode 0600", tokPath, err)
	}
	get := func(path string, v any) bool {
		if !p.running() {
			t.Fatalf("vigil devcluster --demo exited: %s", p.run.cmdState())
		}
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		return withToken.getJSON(ctx, api+path, v) == nil
	}
	type owned struct {
		ID       string `json:"id"`
		DeviceID string `json:"device_id"`
		WorkerID string `json:"worker_id"`
		OrgID    string `json:"org_id"`
	}
	fromDemo := func(items []owned) *owned {
		for i, it := range items {
			if strings.HasPrefix(it.DeviceID, "demo-d") && strings.HasPrefix(it.WorkerID, "demo-w") && strings.HasPrefix(it.OrgID, "demo-") {
				return &items[i]
			}
		}
		return nil
	}
	var alarm, session *owned
	clustertest.PollUntil(t, demoTimeout, "an open alarm from a demo device", func() bool {
		var r struct {
			Alarms []owned `json:"alarms"`
		}
		alarm = nil
		if get("/api/v1/alarms", &r) {
			alarm = fromDemo(r.Alarms)
		}
		return alarm != nil
	})
	clustertest.PollUntil(t, demoTimeout, "a running session of a demo device", func() bool {
		var r struct {
			Sessions []owned `json:"sessions"`
		}
		session = nil
		if get("/api/v1/sessions", &r) {
			session = fromDemo(r.Sessions)
		}
		return session != nil
	})
	t.Logf("alarm %s from %s, session %s of %s", alarm.ID, alarm.DeviceID, session.ID, session.WorkerID)
	var workers struct {
		Workers []struct {
			Name string `json:"name"`
			Team string `json:"team"`
		} `json:"workers"`
	}
	if !get("/api/v1/workers?org=demo-health", &workers) || len(workers.Workers) != 2 || workers.Workers[0].Name == "" || workers.Workers[0].Team == "" {
		t.Errorf("workers of demo-health: %+v, want two named workers with teams", workers.Workers)
	}

	credPath := filepath.Join(dir, "demo-credentials.json")
	if fi, err := os.Stat(credPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file %s: %v, want mode 0600", credPath, err)
	} else {
		var creds []map[string]string
		b, _ := os.ReadFile(credPath)
		if err := json.Unmarshal(b, &creds); err != nil || len(creds) != 6 || creds[0]["secret"] == "" {
			t.Errorf("credentials file holds %d entries (%v), want 6 with secrets", len(creds), err)
		}
	}
	accPath := filepath.Join(dir, "console-accounts.txt")
	if fi, err := os.Stat(accPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("console accounts file %s: %v, want mode 0600", accPath, err)
	}
	accounts, _ := os.ReadFile(accPath)
	var password string
	for _, line := range strings.Split(string(accounts), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "operator" && f[2] == "operator" {
			password = f[1]
		}
	}
	if password == "" {
		t.Errorf("no operator account in %s:\n%s", accPath, accounts)
	} else if status := consoleSignIn(t, api, "operator", password); status != http.StatusSeeOther {
		t.Errorf("signing in to the console on node2 as the demo operator: HTTP %d, want 303", status)
	} else if status := consoleSignIn(t, api, "operator", password+"x"); status == http.StatusSeeOther {
		t.Errorf("a wrong password signed in")
	}

	log, _ := os.ReadFile(p.logPath)
	for _, want := range []string{"/api/v1/alarms", "/api/v1/sessions", credPath, "/ui/", accPath, tokPath, "Authorization: Bearer"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("devcluster --demo did not print %q:\n%s", want, log)
		}
	}

	log = interruptDevcluster(t, p, a, devclusterHTTPAddrs(httpPort))
	simStop, nodesStop := strings.Index(string(log), "simulator stopped"), strings.Index(string(log), "all nodes stopped")
	if simStop < 0 || nodesStop < simStop {
		t.Errorf("want the simulator stopped (at %d), then all nodes (at %d):\n%s", simStop, nodesStop, log)
	}

	// A second run keeps the first's token, passwords and device
	// credentials: yesterday's commands still work.
	creds, _ := os.ReadFile(credPath)
	firstToken := withToken.token
	p.start()
	clustertest.PollUntil(t, demoTimeout, "the second run to reuse the demo devices", func() bool {
		if !p.running() {
			t.Fatalf("the second vigil devcluster --demo exited: %s", p.run.cmdState())
		}
		b, _ := os.ReadFile(p.logPath)
		return strings.Contains(string(b), "reusing the 6 demo devices")
	})
	clustertest.PollUntil(t, demoTimeout, "the second run's accounts set and its devices running", func() bool {
		if !p.running() {
			t.Fatalf("the second vigil devcluster --demo exited: %s", p.run.cmdState())
		}
		b, _ := os.ReadFile(p.logPath)
		return strings.Count(string(b), "sign in as operator") >= 2 && strings.Count(string(b), "simulated lone workers") >= 2
	})
	if b, _ := os.ReadFile(tokPath); strings.TrimSpace(string(b)) != firstToken {
		t.Errorf("the second run changed the API token")
	}
	if b, _ := os.ReadFile(credPath); string(b) != string(creds) {
		t.Errorf("the second run changed the device credentials")
	}
	if again, _ := os.ReadFile(accPath); string(again) != string(accounts) {
		t.Errorf("the second run changed the console passwords:\n%s\nthen\n%s", accounts, again)
	} else if status := consoleSignIn(t, api, "operator", password); status != http.StatusSeeOther {
		t.Errorf("signing in with the first run's password after the second start: HTTP %d, want 303", status)
	}
	interruptDevcluster(t, p, a, devclusterHTTPAddrs(httpPort))
}

// consoleSignIn signs in to the console at api as user and returns the
// status of the sign-in POST: 303 (to the queue) when it worked.
func consoleSignIn(t *testing.T, api, user, password string) int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Get(api + "/ui/login")
	if err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page (HTTP %d):\n%s", resp.StatusCode, page)
	}
	form := url.Values{"user": {user}, "password": {password}, "csrf": {string(m[1])}, "next": {"/ui/"}}
	req, _ := http.NewRequest(http.MethodPost, api+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", api)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
