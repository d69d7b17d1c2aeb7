package ui_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// mustSecurityEnv is one node with the seed, an open alarm of the hostile
// worker Eve and one of Amira, and Olivia signed in over plain HTTP.
type securityEnv struct {
	node       *appliance.Node
	svc        *monitoring.Service
	olivia     *httpSession
	eveAlarm   string
	amiraAlarm string
	fixture    fixture
}

func mustSecurityEnv(t *testing.T) *securityEnv {
	t.Helper()
	n := mustNodes(t, 1)[0]
	svc := n.Service()
	e := &securityEnv{node: n, svc: svc, fixture: mustSeed(t, svc)}
	ctx := context.Background()
	a, err := svc.RaiseAlarm(ctx, "sec-eve", "device:d-eve", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d-eve",
		Location: &monitoring.Location{Lat: 53.48, Lon: -2.29, Accuracy: 30, Source: "wifi"}})
	if err != nil {
		t.Fatal(err)
	}
	e.eveAlarm = a.ID
	if _, err := svc.Acknowledge(ctx, "sec-eve-ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LogAction(ctx, "sec-eve-note", "olivia", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionNote, Text: hostileMedical}); err != nil {
		t.Fatal(err)
	}
	a, err = svc.RaiseAlarm(ctx, "sec-amira", "device:d-amira", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: "d-amira"})
	if err != nil {
		t.Fatal(err)
	}
	e.amiraAlarm = a.ID
	e.olivia = newHTTPSession(t, baseURL(n))
	if code := e.olivia.signIn("olivia", oliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	return e
}

func TestSecurity_HostileStringsRenderInert(t *testing.T) {
	e := mustSecurityEnv(t)
	for _, path := range []string{"/ui/", "/ui/alarms/" + e.eveAlarm, "/ui/queue.json"} {
		resp, body := e.olivia.do(http.MethodGet, path, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		for _, bad := range []string{"<script>window.pwned", "<img src=x", `"><script>`, `<b onclick`, `<i>"Repairs"`,
			`href="javascript:`, `src="javascript:`, "onerror=\"window", "href=\"tel:javascript"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q unescaped", path, bad)
			}
		}
		if strings.HasSuffix(path, ".json") {
			continue
		}
		if !strings.Contains(body, "Eve &lt;script&gt;window.pwned=1&lt;/script&gt;") {
			t.Errorf("%s does not show the hostile name escaped", path)
		}
		// Exactly one script element: the console's own file.
		if n := strings.Count(body, "<script"); n != 1 {
			t.Errorf("%s has %d script elements, want 1", path, n)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

func TestSecurity_CrossSitePostsRefused(t *testing.T) {
	e := mustSecurityEnv(t)
	path := "/ui/alarms/" + e.amiraAlarm + "/acknowledge"
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers map[string]string
	}{
		{"no CSRF token", url.Values{}, nil},
		{"wrong CSRF token", url.Values{"csrf": {"x" + e.olivia.csrf[1:]}}, nil},
		{"another session's token", url.Values{"csrf": {otherCSRF(t, e)}}, nil},
		{"foreign Origin", url.Values{"csrf": {e.olivia.csrf}}, map[string]string{"Origin": "https://evil.example"}},
		{"null Origin", url.Values{"csrf": {e.olivia.csrf}}, map[string]string{"Origin": "null"}},
		{"no Origin nor Referer", url.Values{"csrf": {e.olivia.csrf}}, map[string]string{"Origin": ""}},
		{"foreign Referer only", url.Values{"csrf": {e.olivia.csrf}}, map[string]string{"Origin": "", "Referer": "https://evil.example/x"}},
		{"look-alike Origin", url.Values{"csrf": {e.olivia.csrf}}, map[string]string{"Origin": e.olivia.base + ".evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.olivia.do(http.MethodPost, path, tc.form, tc.headers)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", resp.StatusCode, body)
			}
		})
	}
	if a, _ := e.svc.Alarm(e.amiraAlarm); a.AckBy != "" {
		t.Fatalf("a refused post acknowledged the alarm: %+v", a)
	}
	// The same request from the page itself works, as a form and as the
	// script's fetch.
	resp, _ := e.olivia.do(http.MethodPost, path, url.Values{"csrf": {e.olivia.csrf}, "cmd_id": {"k1"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a same-origin post: %d", resp.StatusCode)
	}
	resp, body := e.olivia.do(http.MethodPost, "/ui/alarms/"+e.amiraAlarm+"/actions", url.Values{"kind": {"listen_in"}},
		map[string]string{"X-CSRF-Token": e.olivia.csrf, "Accept": "application/json"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("the script's post: %d %s", resp.StatusCode, body)
	}
	// Sign-in itself: a foreign Origin, or no login token, is refused.
	s := newHTTPSession(t, baseURL(e.node))
	_, page := s.do(http.MethodGet, "/ui/login", nil, nil)
	tok := csrfInputRE.FindStringSubmatch(page)[1]
	form := url.Values{"user": {"olivia"}, "password": {oliviaPassword}, "csrf": {tok}}
	if resp, _ := s.do(http.MethodPost, "/ui/login", form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site sign-in: %d", resp.StatusCode)
	}
	bad := url.Values{"user": {"olivia"}, "password": {oliviaPassword}, "csrf": {"forged"}}
	if resp, _ := s.do(http.MethodPost, "/ui/login", bad, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a sign-in without the form's token: %d", resp.StatusCode)
	}
}

// otherCSRF signs Sam in and returns his page's CSRF token.
func otherCSRF(t *testing.T, e *securityEnv) string {
	s := newHTTPSession(t, baseURL(e.node))
	if code := s.signIn("sam", samPassword); code != http.StatusOK {
		t.Fatalf("sam: %d", code)
	}
	return s.csrf
}

func TestSecurity_EveryRouteRefusesAnonymousCallers(t *testing.T) {
	e := mustSecurityEnv(t)
	anon := newHTTPSession(t, baseURL(e.node))
	routes := map[string]string{ // what Mount registers, with parameters filled in
		"GET /ui":                         "",
		"GET /ui/":                        "",
		"GET /ui/events":                  "",
		"GET /ui/queue.json":              "",
		"GET /ui/alarms/:id":              "",
		"POST /ui/logout":                 "",
		"POST /ui/alarms/:id/acknowledge": "",
		"POST /ui/alarms/:id/actions":     "",
		"POST /ui/alarms/:id/close":       "",
		"POST /ui/alarms/:id/reopen":      "",
		"GET /ui/setup/operators":         "bearer",
		"POST /ui/setup/operators":        "bearer",
	}
	// Every route the console mounts is in the list, so that a new one
	// cannot be forgotten here.
	for _, r := range mountedRoutes(t) {
		switch {
		case r == "GET /ui/login", r == "POST /ui/login", strings.HasPrefix(r, "GET /ui/static/"), strings.HasPrefix(r, "HEAD /ui/static/"):
			continue
		}
		if _, ok := routes[r]; !ok {
			t.Errorf("route %s is not checked for anonymous callers", r)
		}
	}
	for r, kind := range routes {
		method, path, _ := strings.Cut(r, " ")
		path = strings.ReplaceAll(path, ":id", e.amiraAlarm)
		page := map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
		for _, headers := range []map[string]string{page, nil, {"Accept": "application/json"}, {"Accept": "text/event-stream"}} {
			resp, body := anon.do(method, path, url.Values{"csrf": {"x"}}, headers)
			switch {
			case kind == "bearer" || method == http.MethodPost || headers["Accept"] != page["Accept"]:
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %v: %d, want 401: %s", r, headers, resp.StatusCode, body)
				}
			default:
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login?next=") {
					t.Errorf("%s: %d to %q, want 303 to the sign-in page", r, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
			if strings.Contains(body, "Amira") {
				t.Errorf("%s told an anonymous caller about the alarm: %s", r, body)
			}
		}
	}
	// A session cookie that is not a session is anonymous too.
	anon.cookies["__Host-vigil_session"] = "made-up"
	if resp, _ := anon.do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a made-up session: %d", resp.StatusCode)
	}
	// The setup API refuses a wrong token.
	if resp, _ := anon.do(http.MethodGet, "/ui/setup/operators", nil, map[string]string{"Authorization": "Bearer nope"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("setup with a wrong token: %d", resp.StatusCode)
	}
	// The REST API is unchanged: still open (protecting it is for later).
	if resp, _ := anon.do(http.MethodGet, "/api/v1/alarms", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/alarms: %d", resp.StatusCode)
	}
}

// mountedRoutes lists "METHOD path" of every route the console mounts.
func mountedRoutes(t *testing.T) []string {
	t.Helper()
	c, err := ui.New(ui.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newEngine()
	c.Mount(r)
	var out []string
	for _, ri := range r.Routes() {
		out = append(out, ri.Method+" "+ri.Path)
	}
	return out
}

func TestSecurity_SessionCookieAndSignOut(t *testing.T) {
	e := mustSecurityEnv(t)
	s := newHTTPSession(t, baseURL(e.node))
	_, page := s.do(http.MethodGet, "/ui/login", nil, nil)
	tok := csrfInputRE.FindStringSubmatch(page)[1]
	resp, _ := s.do(http.MethodPost, "/ui/login", url.Values{"user": {"olivia"}, "password": {oliviaPassword}, "csrf": {tok}, "next": {"https://evil.example/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in with a foreign next: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-vigil_session" && c.Value != "" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("session cookie %+v: want __Host-, HttpOnly, Secure, SameSite=Strict, Path=/", cookie)
	}
	if resp, _ := s.do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	_, page = s.do(http.MethodGet, "/ui/", nil, nil)
	csrf := csrfMetaRE.FindStringSubmatch(page)[1]
	if resp, _ := s.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	// The old cookie no longer works, even if a browser kept it.
	s.cookies["__Host-vigil_session"] = cookie.Value
	if resp, _ := s.do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %d", resp.StatusCode)
	}
}

func TestSecurity_LockoutAndRateLimit(t *testing.T) {
	e := mustSecurityEnv(t)
	s := newHTTPSession(t, baseURL(e.node))
	for i := range monitoring.MaxFailedLogins - 1 {
		if code := s.signIn("sam", "not the password"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, code)
		}
	}
	_, page := s.do(http.MethodGet, "/ui/login", nil, nil)
	tok := csrfInputRE.FindStringSubmatch(page)[1]
	resp, body := s.do(http.MethodPost, "/ui/login", url.Values{"user": {"sam"}, "password": {"still wrong"}, "csrf": {tok}}, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "locked") {
		t.Fatalf("the fifth wrong password: %d %s", resp.StatusCode, body)
	}
	if code := s.signIn("sam", samPassword); code != http.StatusForbidden {
		t.Fatalf("the right password while locked: %d", code)
	}
	// Olivia is not locked, but this address has used its attempts.
	for i := 0; ; i++ {
		code := s.signIn("olivia", "wrong again")
		if code == http.StatusTooManyRequests {
			break
		}
		if i > 20 {
			t.Fatal("no rate limit after 20 attempts")
		}
	}
	a, err := e.svc.Operators()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range a {
		if o.ID == "olivia" && o.FailedLogins >= monitoring.MaxFailedLogins {
			t.Fatalf("rate-limited attempts were counted: %+v", o)
		}
	}
}

func TestSecurity_OperatorCannotTakeOver(t *testing.T) {
	e := mustSecurityEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Acknowledge(ctx, "sam-ack", "sam", e.amiraAlarm, false); err != nil {
		t.Fatal(err)
	}
	path := "/ui/alarms/" + e.amiraAlarm + "/acknowledge"
	resp, _ := e.olivia.do(http.MethodPost, path, url.Values{"csrf": {e.olivia.csrf}, "takeover": {"1"}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an operator's takeover: %d", resp.StatusCode)
	}
	resp, body := e.olivia.do(http.MethodPost, path, url.Values{"csrf": {e.olivia.csrf}}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "held by sam") {
		t.Fatalf("acknowledging an alarm Sam holds: %d", resp.StatusCode)
	}
}

func TestSetup_OperatorCommand(t *testing.T) {
	n := mustNodes(t, 1)[0]
	dataDir := dataDir(n)
	if fi, err := os.Stat(filepath.Join(dataDir, ui.SetupTokenFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("a strong first password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := ui.OperatorCommand(context.Background(), args, ui.CommandEnv{
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
	s := newHTTPSession(t, baseURL(n))
	if code := s.signIn("ada", "a strong first password"); code != http.StatusOK {
		t.Fatalf("the new admin cannot sign in: %d", code)
	}
	for range monitoring.MaxFailedLogins {
		newHTTPSession(t, baseURL(n)).signIn("ada", "wrong wrong wrong")
	}
	if out, err := run("password", "--id", "ada", "--password-file", "-"); err != nil || !strings.Contains(out, "unlocked") {
		t.Fatalf("password: %v %s", err, out)
	}
	if code := newHTTPSession(t, baseURL(n)).signIn("ada", "from stdin 12345"); code != http.StatusOK {
		t.Fatalf("after a new password: %d", code)
	}
	out, err = run("list")
	if err != nil || !strings.Contains(out, "ada  Ada Lovelace  admin  enabled") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run("create", "--id", "x", "--password-file", pw, "--role", "root"); err == nil {
		t.Fatalf("a bad role: %s", out)
	}
	if _, err := run("frobnicate"); err != ui.ErrUsage {
		t.Fatalf("an unknown subcommand: %v", err)
	}
}
