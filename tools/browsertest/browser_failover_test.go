package browsertest

// The console carries on when the node a browser is on dies: three real
// vigil serve processes, each serving its console on its own loopback
// address (127.0.0.2, .3 and .4, so that each is its own origin and its
// cookies are its own, as on three appliances), and the one the browser
// is on, the leader, is SIGKILLed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/uitest"
)

// Timeouts of the real-process test, generous for a loaded machine.
const (
	buildTimeout  = 5 * time.Minute
	leaderTimeout = 60 * time.Second
	killTimeout   = 10 * time.Second
)

// mustBuildVigil builds the vigil command into a temporary directory.
func mustBuildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "github.com/vigilarc/vigil")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddrOn returns a host:port on ip whose port was free a moment ago.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (the test needs the whole of 127.0.0.0/8 on loopback): %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// vigilProc is one vigil serve process.
type vigilProc struct {
	id, dataDir, httpAddr, log string
	mqttAddr                   string // the devices' plain MQTT listener
	cmd                        *exec.Cmd
	done                       chan struct{}
}

func (p *vigilProc) base() string { return "http://" + p.httpAddr }

func (p *vigilProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *vigilProc) kill(t *testing.T) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		t.Errorf("%s still runs %s after SIGKILL", p.id, killTimeout)
	}
}

// mustVigilCluster starts three vigil serve processes, consoles on
// 127.0.0.2-4, and waits until they agree on a leader.
func mustVigilCluster(t *testing.T, bin string) []*vigilProc {
	t.Helper()
	root := t.TempDir()
	var clusterAddrs []string
	for range 3 {
		clusterAddrs = append(clusterAddrs, freeAddrOn(t, "127.0.0.1"))
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, appliance.EnvPrefix) {
			env = append(env, kv)
		}
	}
	dirs := map[string]string{}
	for i := range 3 {
		dirs[fmt.Sprintf("node%d", i+1)] = filepath.Join(root, fmt.Sprintf("node%d", i+1))
	}
	appliancetest.Provision(t, dirs) // their trust, as vigil init and vigil join give it
	procs := make([]*vigilProc, 3)
	for i := range procs {
		p := &vigilProc{id: fmt.Sprintf("node%d", i+1), dataDir: filepath.Join(root, fmt.Sprintf("node%d", i+1)),
			httpAddr: freeAddrOn(t, fmt.Sprintf("127.0.0.%d", i+2)), log: filepath.Join(root, fmt.Sprintf("node%d.log", i+1)),
			mqttAddr: freeAddrOn(t, "127.0.0.1"), done: make(chan struct{})}
		logf, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "serve", "--data-dir", p.dataDir, "--node-id", p.id, "--cluster-addr", clusterAddrs[i],
			"--http-addr", p.httpAddr, "--mqtt-addr", p.mqttAddr, "--mqtt-ws-addr", "",
			"--bootstrap-expect", strings.Join(clusterAddrs, ","), "--log-level", "info")
		p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, logf, logf
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		go func() { _ = p.cmd.Wait(); close(p.done) }()
		procs[i] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill(t)
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.log)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("---- last lines of %s's log ----\n%s", p.id, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	clustertest.PollUntil(t, leaderTimeout, "a leader all three agree on", func() bool {
		leader := ""
		for _, p := range procs {
			if !p.running() {
				t.Fatalf("%s exited", p.id)
			}
			st, err := statusOf(p)
			if err != nil || st.LeaderID == "" || leader != "" && st.LeaderID != leader || len(st.Members) != 3 {
				return false
			}
			leader = st.LeaderID
		}
		return true
	})
	return procs
}

var apiClient = &http.Client{Timeout: 10 * time.Second}

// apiRequest is a request to the REST API of p, authorised by p's own
// setup token (an admin on p).
func apiRequest(p *vigilProc, method, path string, body io.Reader) (*http.Request, error) {
	tok, err := auth.ReadSetupToken(p.dataDir)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, p.base()+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func statusOf(p *vigilProc) (ui.ClusterStatus, error) {
	var st ui.ClusterStatus
	req, err := apiRequest(p, http.MethodGet, "/api/v1/cluster/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster status of %s: HTTP %d", p.id, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// apiPost sends a JSON body to the REST API and decodes the reply.
func apiPost(t *testing.T, p *vigilProc, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := apiRequest(p, http.MethodPost, path, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowser_NodeKilledConsoleCarriesOn: an operator works an alarm on
// the leader's console and has half typed a note when the leader is
// SIGKILLed. The page says so at once, moves to another node, arrives
// there signed in on the same alarm, live, with the note as it was; the
// note is then saved through the new node.
func TestBrowser_NodeKilledConsoleCarriesOn(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser and three vigil processes")
	}
	chromiumPath(t)
	bin := mustBuildVigil(t)
	procs := mustVigilCluster(t, bin)
	st, err := statusOf(procs[0])
	if err != nil {
		t.Fatal(err)
	}
	var leader *vigilProc
	for _, p := range procs {
		if p.id == st.LeaderID {
			leader = p
		}
	}
	t.Logf("leader %s at %s", leader.id, leader.base())

	// The directory through the REST API, an operator through the local
	// setup API, and an alarm.
	apiPost(t, procs[1], "/api/v1/organisations", map[string]any{"id": "seed-org", "actor": "admin", "org": map[string]any{
		"id": "northcare", "name": "North Care Community Health",
		"procedure_steps": []map[string]string{{"title": "Listen in and assess"}, {"title": "Call the worker"}},
		"contacts":        []map[string]string{{"name": "Priya Nair", "phone": "0161 496 0123", "relation": "duty manager"}}}}, nil)
	apiPost(t, procs[1], "/api/v1/workers", map[string]any{"id": "seed-w", "actor": "admin", "worker": map[string]any{
		"id": "w-amira", "name": "Amira Shah", "org_id": "northcare", "phone": "07700 900123",
		"important": map[string]string{"medical": "Type 1 diabetic"}}}, nil)
	apiPost(t, procs[1], "/api/v1/devices", map[string]any{"id": "seed-d", "actor": "admin", "device": map[string]any{
		"id": "d-amira", "kind": "phone_app", "org_id": "northcare", "worker_id": "w-amira"}}, nil)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(uitest.OliviaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := appliance.OperatorCommand(context.Background(), []string{"create", "--id", "olivia", "--name", "Olivia Hart", "--password-file", pw},
		appliance.CommandEnv{Stdout: &out, Stderr: &out, LoadConfig: func(string) (string, string, error) {
			return procs[2].dataDir, procs[2].httpAddr, nil
		}}); err != nil {
		t.Fatalf("vigil operator create: %v\n%s", err, &out)
	}
	var alarm struct{ ID string }
	apiPost(t, procs[2], "/api/v1/alarms", map[string]any{"id": "a-1", "actor": "device:d-amira", "type": "red_alert", "device_id": "d-amira",
		"location": map[string]any{"lat": 53.4876, "lon": -2.2893, "accuracy_m": 12, "source": "gps"}}, &alarm)

	// Every node has registered its console: a ticket names two peers.
	hs := uitest.NewSession(t, leader.base())
	if code := hs.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in over HTTP: %d", code)
	}
	clustertest.PollUntil(t, 60*time.Second, "every console registered", func() bool {
		resp, body := hs.Do(http.MethodPost, "/ui/resume/ticket", url.Values{}, map[string]string{"X-CSRF-Token": hs.CSRF, "Accept": "application/json"})
		var r struct{ Peers []struct{ URL string } }
		return resp.StatusCode == http.StatusOK && json.Unmarshal([]byte(body), &r) == nil && len(r.Peers) == 2
	})

	// Olivia signs in on the leader's console and opens the alarm.
	process := mustBrowserProcess(t)
	b := &browser{t: t, name: "olivia"}
	ctx, cancel := chromedp.NewContext(process, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b.ctx, b.base = ctx, leader.base()
	if err := chromedp.Do(ctx); err != nil { // open the tab in the test's context, not a step's
		t.Fatal(err)
	}
	b.navigate("/ui/alarms/" + alarm.ID)
	b.waitJS("the sign-in page", `location.pathname === "/ui/login"`)
	b.Do("sign in", chromedp.SetValue(chromedp.ID("user"), "olivia"), chromedp.SetValue(chromedp.ID("password"), uitest.OliviaPassword))
	b.clickAndLoad(`#login-form button[type=submit]`)
	b.waitJS("the alarm page, live, with its hand-over ticket", `location.pathname === "/ui/alarms/`+alarm.ID+`" && `+
		`document.getElementById("conn").textContent === "live" && window.vigilHandoverReady === 2`)
	b.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	b.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you") && !!document.getElementById("note-text")`)
	const draft = "Police on the way, ETA 6 min; Amira in her car with the doors locked"
	b.Do("type a note, not sent", chromedp.SendKeys(chromedp.ID("note-text"), draft))
	b.waitJS("the draft kept in the tab", fmt.Sprintf(`sessionStorage.getItem("vigil.draft:/ui/alarms/%s#note-text") === %q`, alarm.ID, draft))
	if v := eval[string](b, `document.cookie`); v != "" {
		t.Fatalf("the page can read a cookie: %q", v)
	}

	// The page's console messages, across the move.
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	var msgMu sync.Mutex
	var msgs []string
	consoleMsgs := chromedp.Console(mctx)
	go func() {
		for m, err := range consoleMsgs {
			if err != nil {
				return
			}
			msgMu.Lock()
			msgs = append(msgs, fmt.Sprintf("%s %s", m.Time.Format("15:04:05.000"), m.Text))
			msgMu.Unlock()
		}
	}()

	// SIGKILL the node the browser is on.
	killedAt := time.Now()
	leader.kill(t)
	t.Logf("SIGKILLed %s", leader.id)
	host := strings.TrimPrefix(leader.base(), "http://")
	b.waitJS("the page on another node, signed in, live, on the same alarm", fmt.Sprintf(
		`location.host !== %q && location.pathname === "/ui/alarms/%s" && document.getElementById("conn").textContent === "live" && !!window.vigilMoved`,
		host, alarm.ID))
	movedIn := time.Since(killedAt)
	lostAt := time.UnixMilli(int64(eval[float64](b, `window.vigilMoved.lostAt`)))
	newHost := eval[string](b, `location.host`)
	t.Logf("the page noticed %s after the kill, and was live on %s %s after it", lostAt.Sub(killedAt).Round(time.Millisecond), newHost, movedIn.Round(time.Millisecond))
	if d := lostAt.Sub(killedAt); d < 0 || d > 3*time.Second {
		t.Errorf("the page noticed the loss %s after the kill, want at once", d)
	}
	msgMu.Lock()
	told := strings.Join(msgs, "\n")
	msgMu.Unlock()
	if !strings.Contains(told, "connection to node "+leader.id+" was lost") || !strings.Contains(told, "moving to node") {
		t.Errorf("the page did not say the connection was lost before moving; its console:\n%s", told)
	}
	if got := eval[string](b, `document.getElementById("note-text").value`); got != draft {
		t.Errorf("the draft note is %q after the move, want %q", got, draft)
	}
	b.waitJS("the notice of the move", fmt.Sprintf(`!document.getElementById("failover").hidden && `+
		`document.getElementById("failover").textContent.includes("Node %s stopped answering") && document.getElementById("failover").textContent.includes("still signed in")`, leader.id))
	b.base = "http://" + newHost
	b.shot("17-moved-to-another-node")

	// The work goes on through the new node: the note is saved.
	b.Do("send the note", chromedp.Click(chromedp.CSS(`#note-form button`)))
	b.waitJS("the note on the timeline", `document.querySelector("#timeline").textContent.includes("ETA 6 min")`)
	if v := eval[string](b, `sessionStorage.getItem("vigil.draft:/ui/alarms/`+alarm.ID+`#note-text") || ""`); v != "" {
		t.Errorf("the sent note is still kept as a draft: %q", v)
	}
}
