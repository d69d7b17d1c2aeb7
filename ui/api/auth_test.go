package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/uitest"
)

// apiRouteRoles is the least role of every route under /api/v1: the
// specification TestAPIAuth_EveryRoute holds the node's route table to. A
// route the node serves that is missing here fails the test, so a new
// route must be given its role here as well as in api.go.
var apiRouteRoles = map[string]monitoring.OperatorRole{
	"GET /api/v1/cluster/status":         monitoring.RoleOperator,
	"POST /api/v1/cluster/members":       monitoring.RoleAdmin,
	"DELETE /api/v1/cluster/members/:id": monitoring.RoleAdmin,

	"POST /api/v1/diag/records": monitoring.RoleAdmin,
	"GET /api/v1/diag/records":  monitoring.RoleAdmin,
	"GET /api/v1/diag/state":    monitoring.RoleAdmin,
	"GET /api/v1/diag/alarms":   monitoring.RoleAdmin,
	"GET /api/v1/diag/audit":    monitoring.RoleAdmin,
	"GET /api/v1/diag/commands": monitoring.RoleAdmin,
	"GET /api/v1/backup":        monitoring.RoleAdmin,

	"GET /api/v1/alarms/:id/notifications":            monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/briefing":                monitoring.RoleOperator,
	"GET /api/v1/organisations/:id/notifications":     monitoring.RoleSupervisor,
	"GET /api/v1/organisations/:id/statistics/:month": monitoring.RoleSupervisor,
	"GET /api/v1/notifications/:id":                   monitoring.RoleSupervisor,

	"POST /api/v1/organisations":    monitoring.RoleAdmin,
	"GET /api/v1/organisations":     monitoring.RoleOperator,
	"GET /api/v1/organisations/:id": monitoring.RoleOperator,

	"POST /api/v1/workers":              monitoring.RoleAdmin,
	"GET /api/v1/workers":               monitoring.RoleOperator,
	"GET /api/v1/workers/:id":           monitoring.RoleOperator,
	"POST /api/v1/workers/:id/pins":     monitoring.RoleAdmin,
	"GET /api/v1/workers/:id/updates":   monitoring.RoleOperator,
	"POST /api/v1/devices":              monitoring.RoleAdmin,
	"GET /api/v1/devices":               monitoring.RoleOperator,
	"GET /api/v1/devices/:id":           monitoring.RoleOperator,
	"POST /api/v1/devices/:id/secret":   monitoring.RoleAdmin,
	"POST /api/v1/devices/:id/prompt":   monitoring.RoleOperator,
	"GET /api/v1/prompts/:id":           monitoring.RoleOperator,
	"POST /api/v1/sessions":             monitoring.RoleAdmin,
	"GET /api/v1/sessions":              monitoring.RoleOperator,
	"GET /api/v1/sessions/:id":          monitoring.RoleOperator,
	"POST /api/v1/sessions/:id/checkin": monitoring.RoleAdmin,
	"POST /api/v1/sessions/:id/extend":  monitoring.RoleAdmin,
	"POST /api/v1/sessions/:id/end":     monitoring.RoleAdmin,
	"POST /api/v1/sessions/:id/update":  monitoring.RoleOperator,

	"POST /api/v1/alarms":                 monitoring.RoleAdmin,
	"GET /api/v1/alarms":                  monitoring.RoleOperator,
	"GET /api/v1/alarms/:id":              monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/acknowledge": monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/actions":     monitoring.RoleOperator,
	"GET /api/v1/alarms/:id/urn":          monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/listen":      monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/close":       monitoring.RoleOperator,
	"POST /api/v1/alarms/:id/reopen":      monitoring.RoleSupervisor,
	"POST /api/v1/alarms/:id/cancel":      monitoring.RoleAdmin,
	"GET /api/v1/alarms/:id/audio":        monitoring.RoleOperator,
	"GET /api/v1/alarms/:id/audio/chunks": monitoring.RoleOperator,
	"GET /api/v1/alarms/:id/audio.wav":    monitoring.RoleOperator,
	"GET /api/v1/alarms/:id/audio.ogg":    monitoring.RoleOperator,
	"GET /api/v1/kpis":                    monitoring.RoleSupervisor,

	"POST /api/v1/alarms/:id/audio-links":      monitoring.RoleOperator,
	"GET /api/v1/alarms/:id/audio-links":       monitoring.RoleOperator,
	"POST /api/v1/audio-links/:id/revoke":      monitoring.RoleOperator,
	"GET /api/v1/reports":                      monitoring.RoleSupervisor,
	"GET /api/v1/reports/:id":                  monitoring.RoleSupervisor,
	"GET /api/v1/reports/:id/report.pdf":       monitoring.RoleSupervisor,
	"POST /api/v1/reports/:id/recommendations": monitoring.RoleSupervisor,
	"POST /api/v1/reports/:id/sign-off":        monitoring.RoleSupervisor,
	"GET /api/v1/incidents/:id/hold":           monitoring.RoleOperator,
	"POST /api/v1/incidents/:id/hold":          monitoring.RoleSupervisor,
	"POST /api/v1/incidents/:id/release":       monitoring.RoleSupervisor,

	"GET /api/v1/operators":           monitoring.RoleAdmin,
	"POST /api/v1/operators":          monitoring.RoleAdmin,
	"GET /api/v1/tokens":              monitoring.RoleAdmin,
	"POST /api/v1/tokens":             monitoring.RoleAdmin,
	"POST /api/v1/tokens/:id/disable": monitoring.RoleAdmin,
}

// Session cookie of the console (ui/auth), with the Secure flag the
// test nodes use.
const consoleSessionCookie = "__Host-vigil_session"

// consoleSignIn is an operator signed in to the console of a node: the
// cookie's session token and the page's CSRF token.
type consoleSignIn struct {
	session, csrf string
}

// mustSignIn creates operator id with role through n's Service, signs in as
// it, and reads the CSRF token from the console's queue page.
func mustSignIn(t *testing.T, n *apiNode, id string, role monitoring.OperatorRole) consoleSignIn {
	t.Helper()
	ctx := context.Background()
	pw := "a long passphrase for " + id
	if _, err := n.svc().PutOperator(ctx, "test-op-"+id, "test", monitoring.PutOperatorRequest{ID: id, Name: "Test " + id,
		Role: role, Password: pw, Create: true}); err != nil {
		t.Fatal(err)
	}
	in, err := n.svc().Login(ctx, "test-login-"+id, monitoring.LoginRequest{OperatorID: id, Password: pw, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := consoleSignIn{session: in.Token}
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/ui/", nil)
	req.AddCookie(&http.Cookie{Name: consoleSessionCookie, Value: s.session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if s.csrf = uitest.PageCSRF(string(page)); s.csrf == "" {
		t.Fatalf("no CSRF token on the console's page (HTTP %d)", resp.StatusCode)
	}
	return s
}

// apiReq is one request to the API and how it authenticates.
type apiReq struct {
	method, path, body string
	bearer             string // the whole Authorization header; none when empty
	cookie             *consoleSignIn
	csrf, origin       string
}

// do sends r to n and returns the status and the error message of the
// reply ("" when it has none).
func (r apiReq) do(t *testing.T, n *apiNode) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if r.body != "" {
		rd = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, n.URL+r.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.bearer != "" {
		req.Header.Set("Authorization", r.bearer)
	}
	if r.cookie != nil {
		req.AddCookie(&http.Cookie{Name: consoleSessionCookie, Value: r.cookie.session})
	}
	if r.csrf != "" {
		req.Header.Set("X-CSRF-Token", r.csrf)
	}
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e api.ErrorResponse
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error, resp.Header
}

// routeParamRE finds a route's parameters, to fill with made-up values.
var routeParamRE = regexp.MustCompile(`:([a-z_]+)`)

// apiRoutes returns "METHOD path" of every route under /api/v1 of the gin
// engine the node serves (ui/server's handler, as the appliance serves it).
func apiRoutes(t *testing.T, n *apiNode) []string {
	t.Helper()
	engine, ok := n.Web.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("the node's handler is a %T, not the gin engine", n.Web.Handler())
	}
	var out []string
	for _, r := range engine.Routes() {
		if strings.HasPrefix(r.Path, "/api/") {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// TestAPIAuth_EveryRoute walks the route table of a running node: every
// /api/v1 route refuses anonymous callers and bad tokens (401), callers
// whose role is too low (403), and a console sign-in without the CSRF token
// or from another origin (403), and changes nothing when it refuses; a
// caller with the route's role gets past authentication.
func TestAPIAuth_EveryRoute(t *testing.T) {
	n := mustServe(t)
	tokens := map[monitoring.OperatorRole]string{
		monitoring.RoleOperator:   mustToken(t, n, "walk-operator", monitoring.RoleOperator),
		monitoring.RoleSupervisor: mustToken(t, n, "walk-supervisor", monitoring.RoleSupervisor),
		monitoring.RoleAdmin:      adminToken(t, n),
	}
	cookies := map[monitoring.OperatorRole]consoleSignIn{
		monitoring.RoleOperator:   mustSignIn(t, n, "olivia", monitoring.RoleOperator),
		monitoring.RoleSupervisor: mustSignIn(t, n, "sam", monitoring.RoleSupervisor),
		monitoring.RoleAdmin:      mustSignIn(t, n, "ada", monitoring.RoleAdmin),
	}
	origin := n.URL
	disabled := mustToken(t, n, "walk-disabled", monitoring.RoleAdmin)
	id, _, _ := monitoring.ParseAPIToken(disabled)
	if _, err := n.svc().DisableAPIToken(context.Background(), "walk-disable", "test", id); err != nil {
		t.Fatal(err)
	}

	routes := apiRoutes(t, n)
	served := map[string]bool{}
	for _, r := range routes {
		served[r] = true
		if _, ok := apiRouteRoles[r]; !ok {
			t.Errorf("route %s has no role in apiRouteRoles: give it one here and protect it in api.go", r)
		}
	}
	for r := range apiRouteRoles {
		if !served[r] {
			t.Errorf("route %s of apiRouteRoles is not served", r)
		}
	}
	if len(routes) < 40 {
		t.Fatalf("only %d routes under /api/v1: the walk found the wrong engine", len(routes))
	}

	stateHash := func() string {
		var st api.DiagStateResponse
		mustSend(t, n, 200, "GET", "/api/v1/diag/state", nil, &st)
		return st.Hash
	}
	before := stateHash()
	for _, r := range routes {
		need, ok := apiRouteRoles[r]
		if !ok {
			continue
		}
		method, path, _ := strings.Cut(r, " ")
		path = routeParamRE.ReplaceAllString(path, "walk-$1")
		body := ""
		if method != http.MethodGet {
			body = `{"id":"walk-cmd","actor":"mallory","name":"walk","role":"admin"}`
		}
		base := apiReq{method: method, path: path, body: body}
		unsafe := method != http.MethodGet
		t.Run(r, func(t *testing.T) {
			refused := func(what string, req apiReq, want int, mention string) {
				t.Helper()
				code, msg, h := req.do(t, n)
				if code != want || msg == "" || !strings.Contains(msg, mention) {
					t.Errorf("%s: HTTP %d %q; want %d mentioning %q", what, code, msg, want, mention)
				}
				if want == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: 401 without a Bearer challenge", what)
				}
			}
			anon := base
			refused("anonymous", anon, http.StatusUnauthorized, "no credentials")
			for _, bad := range []struct{ header, mention string }{
				{"Bearer vgt_0123456789abcdef_madeup", "no API token 0123456789abcdef"},
				{"Bearer " + tokens[monitoring.RoleAdmin] + "x", "is wrong"},
				{"Bearer " + disabled, "disabled"},
				{"Bearer vgt_nonsense", "malformed"},
				{"Bearer not-a-token", "neither an API token"},
				{"Basic YWRhOnBhc3N3b3Jk", "must be"},
				{"Bearer ", "must be"},
			} {
				req := base
				req.bearer = bad.header
				refused("bearer "+bad.header, req, http.StatusUnauthorized, bad.mention)
			}
			// A bad token is not saved by a valid console sign-in.
			req := base
			req.bearer, req.cookie, req.csrf, req.origin = "Bearer vgt_0123456789abcdef_madeup", ptr(cookies[monitoring.RoleAdmin]), cookies[monitoring.RoleAdmin].csrf, origin
			refused("a bad bearer with an admin's cookie", req, http.StatusUnauthorized, "no API token")

			for _, role := range monitoring.OperatorRoles {
				if role.AtLeast(need) {
					continue
				}
				req := base
				req.bearer = "Bearer " + tokens[role]
				refused(string(role)+" token", req, http.StatusForbidden, "needs the "+string(need)+" role")
				req = apiReq{method: method, path: path, body: body, cookie: ptr(cookies[role]), csrf: cookies[role].csrf, origin: origin}
				refused(string(role)+" cookie", req, http.StatusForbidden, "needs the "+string(need)+" role")
			}
			if unsafe {
				for _, role := range monitoring.OperatorRoles {
					ck := cookies[role]
					refused(string(role)+" cookie without the CSRF token", apiReq{method: method, path: path, body: body, cookie: &ck, origin: origin},
						http.StatusForbidden, "security token")
					refused(string(role)+" cookie with a wrong CSRF token", apiReq{method: method, path: path, body: body, cookie: &ck, origin: origin,
						csrf: cookies[monitoring.RoleAdmin].csrf + "x"}, http.StatusForbidden, "security token")
					refused(string(role)+" cookie from another origin", apiReq{method: method, path: path, body: body, cookie: &ck, csrf: ck.csrf,
						origin: "https://evil.example"}, http.StatusForbidden, "did not come from")
					refused(string(role)+" cookie without an origin", apiReq{method: method, path: path, body: body, cookie: &ck, csrf: ck.csrf},
						http.StatusForbidden, "did not come from")
				}
			}
		})
	}
	if after := stateHash(); after != before {
		t.Errorf("refused requests changed the state: hash %s, before %s", after, before)
	}

	// The least role gets past authentication, by token and by the
	// console's cookie with its CSRF token: whatever the route then says
	// of the made-up IDs and body, it is not 401 or 403.
	for _, r := range routes {
		need, ok := apiRouteRoles[r]
		if !ok {
			continue
		}
		method, path, _ := strings.Cut(r, " ")
		path = routeParamRE.ReplaceAllString(path, "walk-$1")
		body := ""
		if method != http.MethodGet {
			body = "{}"
		}
		ck := cookies[need]
		for what, req := range map[string]apiReq{
			"token":  {method: method, path: path, body: body, bearer: "Bearer " + tokens[need]},
			"cookie": {method: method, path: path, body: body, cookie: &ck, csrf: ck.csrf, origin: origin},
		} {
			if code, msg, _ := req.do(t, n); code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s with a %s %s: HTTP %d %q", r, need, what, code, msg)
			}
		}
	}
	// Outside the routes, nothing is open either: an unknown path is 404.
	if code, _, _ := (apiReq{method: http.MethodGet, path: "/api/v1/nothing"}).do(t, n); code != http.StatusNotFound {
		t.Errorf("an unknown route: %d", code)
	}
}

func ptr[T any](v T) *T { return &v }

// The actor recorded is the caller, whatever the body says; on the routes
// that speak for a device, "device:<id>" is kept. Taking over an alarm
// needs a supervisor, as in the console.
func TestAPIAuth_ActorIsTheCaller(t *testing.T) {
	n := mustServe(t)
	mustCommandsFixture(t, n)
	op := mustToken(t, n, "night-desk", monitoring.RoleOperator)
	sup := mustToken(t, n, "night-supervisor", monitoring.RoleSupervisor)
	olivia := mustSignIn(t, n, "olivia", monitoring.RoleOperator)

	var a1, a2 monitoring.Alarm
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "r1", "actor": "device:d1", "type": "red_alert", "device_id": "d1"}, &a1)
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "r2", "actor": "mallory", "type": "test", "worker_id": "w1"}, &a2)
	var d1, d2 api.AlarmResponse
	mustSend(t, n, 200, "GET", "/api/v1/alarms/"+a1.ID, nil, &d1)
	mustSend(t, n, 200, "GET", "/api/v1/alarms/"+a2.ID, nil, &d2)
	if d1.Timeline[0].Actor != "device:d1" || d2.Timeline[0].Actor != "token:test-admin" {
		t.Errorf("raised by %q and %q; want device:d1 (speaking for the device) and token:test-admin (the caller)",
			d1.Timeline[0].Actor, d2.Timeline[0].Actor)
	}

	var acked monitoring.Alarm
	mustSendAs(t, n, op, 200, "POST", "/api/v1/alarms/"+a1.ID+"/acknowledge", obj{"id": "ack1", "actor": "mallory"}, &acked)
	if acked.AckBy != "token:night-desk" {
		t.Errorf("acknowledged by %q, want token:night-desk", acked.AckBy)
	}
	// An operator of the console, through the API with its cookie.
	code, msg, _ := apiReq{method: "POST", path: "/api/v1/alarms/" + a2.ID + "/acknowledge", body: `{"id":"ack2","actor":"mallory"}`,
		cookie: &olivia, csrf: olivia.csrf, origin: n.URL}.do(t, n)
	if code != 200 {
		t.Fatalf("acknowledge with the console's cookie: %d %s", code, msg)
	}
	if a, _ := n.svc().Alarm(a2.ID); a.AckBy != "olivia" {
		t.Errorf("acknowledged by %q, want olivia", a.AckBy)
	}

	var e api.ErrorResponse
	if code, raw := sendAs(t, n, op, "POST", "/api/v1/alarms/"+a2.ID+"/acknowledge", obj{"id": "take1", "takeover": true}, &e); code != http.StatusForbidden ||
		e.Field != "takeover" || !strings.Contains(e.Error, "supervisor") {
		t.Errorf("an operator's takeover: %d %s", code, raw)
	}
	mustSendAs(t, n, sup, 200, "POST", "/api/v1/alarms/"+a2.ID+"/acknowledge", obj{"id": "take2", "takeover": true}, &acked)
	if acked.AckBy != "token:night-supervisor" {
		t.Errorf("taken over by %q", acked.AckBy)
	}

	// Accounts: an admin signed in may not demote or disable themselves.
	ada := mustSignIn(t, n, "ada", monitoring.RoleAdmin)
	code, msg, _ = apiReq{method: "POST", path: "/api/v1/operators", body: `{"id":"demote","operator":{"id":"ada","name":"Ada","role":"operator"}}`,
		cookie: &ada, csrf: ada.csrf, origin: n.URL}.do(t, n)
	if code != http.StatusConflict || !strings.Contains(msg, "your own role") {
		t.Errorf("an admin demoting themselves: %d %q", code, msg)
	}
	var made monitoring.Operator
	mustSend(t, n, 201, "POST", "/api/v1/operators", obj{"id": "mk-ray", "operator": obj{"id": "ray", "name": "Ray", "role": "supervisor"},
		"password": "ray's long passphrase", "create": true}, &made)
	var ops api.OperatorsResponse
	raw := mustSend(t, n, 200, "GET", "/api/v1/operators", nil, &ops)
	if made.ID != "ray" || made.Role != monitoring.RoleSupervisor || strings.Contains(raw, "argon2") || len(ops.Operators) != 3 {
		t.Errorf("made %+v; operators %s", made, raw)
	}
	if a, _ := n.svc().Operator("ray"); a == nil {
		t.Error("ray was not made")
	}
	var audit api.DiagAuditResponse
	mustSend(t, n, 200, "GET", "/api/v1/diag/audit?subject=operator/ray", nil, &audit)
	if len(audit.Records) != 1 || audit.Records[0].Actor != "token:test-admin" {
		t.Errorf("audit of ray's creation: %+v", audit.Records)
	}
}

// setupToken reads the setup token node n wrote to its data directory.
func setupToken(t *testing.T, n *apiNode) string {
	t.Helper()
	tok, err := auth.ReadSetupToken(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A token made through one node works on the others with its role, its
// secret is never shown again, and disabling it through one node stops it
// on another. A node's setup token is an admin on that node alone.
func TestAPIAuth_TokensAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	_, nodes := mustServeCluster(t)
	setup := make([]string, len(nodes))
	for i, n := range nodes {
		setup[i] = setupToken(t, n)
	}
	// Node 1's setup token, an admin on node 1, makes an operator token
	// and an admin token.
	var opTok, admTok monitoring.NewAPIToken
	mustSendAs(t, nodes[0], setup[0], 201, "POST", "/api/v1/tokens", obj{"id": "mk-op", "name": "wallboard", "role": "operator"}, &opTok)
	mustSendAs(t, nodes[0], setup[0], 201, "POST", "/api/v1/tokens", obj{"id": "mk-adm", "name": "provisioner", "role": "admin"}, &admTok)
	if opTok.Token == nil || opTok.Token.CreatedBy != auth.SetupActor || opTok.Token.Role != monitoring.RoleOperator || opTok.Token.Hash != "" ||
		!strings.HasPrefix(opTok.Secret, "vgt_"+opTok.Token.ID+"_") {
		t.Fatalf("made %+v", opTok)
	}
	// A retry of the same command cannot show the secret again.
	if code, raw := sendAs(t, nodes[0], setup[0], "POST", "/api/v1/tokens", obj{"id": "mk-op", "name": "wallboard", "role": "operator"}, nil); code != http.StatusConflict {
		t.Fatalf("a retried token: %d %s", code, raw)
	}
	// Node 1's setup token is nobody on node 2.
	if code, raw := sendAs(t, nodes[1], setup[0], "GET", "/api/v1/alarms", nil, nil); code != http.StatusUnauthorized || !strings.Contains(raw, "setup token") {
		t.Fatalf("node 1's setup token on node 2: %d %s", code, raw)
	}

	// The tokens work on every node, with their roles.
	for i, n := range nodes {
		mustSendAs(t, n, opTok.Secret, 200, "GET", "/api/v1/alarms", nil, nil)
		if code, raw := sendAs(t, n, opTok.Secret, "GET", "/api/v1/tokens", nil, nil); code != http.StatusForbidden {
			t.Errorf("node %d: the operator token lists tokens: %d %s", i+1, code, raw)
		}
		mustSendAs(t, n, admTok.Secret, 200, "GET", "/api/v1/diag/state", nil, nil)
	}

	// No list shows a secret or its hash.
	_, secret, _ := monitoring.ParseAPIToken(opTok.Secret)
	for i, n := range nodes {
		var list api.TokensResponse
		raw := mustSendAs(t, n, admTok.Secret, 200, "GET", "/api/v1/tokens", nil, &list)
		if len(list.Tokens) != 2 || strings.Contains(raw, secret) || strings.Contains(raw, monitoring.HashAPITokenSecret(secret)) || strings.Contains(raw, `"hash"`) {
			t.Errorf("node %d lists %s", i+1, raw)
		}
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/ui/setup/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+setup[i])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "wallboard") || strings.Contains(string(b), secret) || strings.Contains(string(b), `"hash"`) {
			t.Errorf("node %d's setup API lists %d %s", i+1, resp.StatusCode, b)
		}
	}

	// Disabled through node 2, the token stops on node 3.
	var dis monitoring.APIToken
	mustSendAs(t, nodes[1], admTok.Secret, 200, "POST", "/api/v1/tokens/"+opTok.Token.ID+"/disable", obj{"id": "dis-op"}, &dis)
	if !dis.Disabled || dis.DisabledBy != "token:provisioner" {
		t.Fatalf("disabled %+v", dis)
	}
	clustertest.PollUntil(t, 10*time.Second, "the disabled token refused on node 3", func() bool {
		code, raw := sendAs(t, nodes[2], opTok.Secret, "GET", "/api/v1/alarms", nil, nil)
		return code == http.StatusUnauthorized && strings.Contains(raw, "disabled by token:provisioner")
	})
	mustSendAs(t, nodes[2], admTok.Secret, 200, "GET", "/api/v1/alarms", nil, nil)
}

// A node that does not know a token and cannot catch up with a leader to
// look again says it cannot check the token now (503, Retry-After), not
// that the token is wrong: it may have been made a moment ago elsewhere.
func TestAPIAuth_UnknownTokenOnANodeWithoutLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	c, nodes := mustServeCluster(t)
	unknown := "vgt_0123456789abcdef_madeup"
	if code, raw := sendAs(t, nodes[2], unknown, "GET", "/api/v1/alarms", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("an unknown token with a leader: %d %s; want 401", code, raw)
	}
	// Nodes 1 and 2 shut down as an appliance does: HTTP first, then the
	// cluster node, gracefully.
	for i := range 2 {
		nodes[i].Close()
		c.Stop(i)
	}
	clustertest.PollUntil(t, 10*time.Second, "node 3 to lose its leader", func() bool {
		return uitest.Cluster(nodes[2].Node).Status().LeaderID == ""
	})
	code, raw := sendAs(t, nodes[2], unknown, "GET", "/api/v1/alarms", nil, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(raw, "cannot catch up") {
		t.Fatalf("an unknown token without a leader: %d %s; want 503 saying the node cannot catch up", code, raw)
	}
}
