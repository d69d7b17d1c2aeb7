package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// mustConsoles starts a cluster of n nodes running the Service
// (monitoringtest) and serves each node's console and API on its own
// loopback port (uitest), as n appliances do.
func mustConsoles(t testing.TB, n int) (*monitoringtest.Cluster, []*uitest.Server) {
	t.Helper()
	c := monitoringtest.MustCluster(t, n, monitoringtest.Options{})
	srvs := make([]*uitest.Server, n)
	for i := range srvs {
		srvs[i] = uitest.MustServe(t, c.Node(i), uitest.Options{})
	}
	return c, srvs
}

// newEngine returns a gin engine as the appliance makes one.
func newEngine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	return gin.New()
}

// Passwords of the test operators.
const (
	oliviaPassword = "olivia's long passphrase"
	samPassword    = "sam supervises the night shift"
)

// hostile strings, in names and notes: each would run script or change
// the page if it were not escaped.
const (
	hostileName    = `Eve <script>window.pwned=1</script> "O'Neil" <img src=x onerror="window.pwned=2">`
	hostileMedical = `<img src=x onerror="window.pwned=3"> javascript:window.pwned=4 '; window.pwned=5; '`
	hostileURL     = `javascript:window.pwned=6`
	hostileStep    = `"><script>window.pwned=7</script>`
)

// fixture is the seeded directory: three workers, each with a device and
// its secret.
type fixture struct {
	amira, ben, eve deviceCred
}

type deviceCred struct{ worker, device, secret string }

// mustSeed registers realistic organisations, workers, devices and
// operators through svc.
func mustSeed(t testing.TB, svc *monitoring.Service) fixture {
	t.Helper()
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", what, err)
		}
	}
	steps := []monitoring.ProcedureStep{
		{Title: "Listen in and assess", Text: "Listen to the audio before calling: shouting, a threat, or no speech?"},
		{Title: "Call the worker", Text: "Unless DO NOT CALL. Answered without speech: ask them to tap twice if they need help."},
		{Title: "Police if there is a threat now", Text: "Evidence of a threat happening now: the force's lone-worker URN. Otherwise 999 or 101."},
		{Title: "Call the escalation contacts in order", Text: "Brief each one; go on until welfare is confirmed."},
		{Title: "Confirm welfare before closing"},
	}
	_, err := svc.PutOrganisation(ctx, "seed-org1", "admin", monitoring.Organisation{
		ID: "northcare", Name: "North Care Community Health", ProcedureSteps: steps,
		Contacts: []monitoring.Contact{
			{Name: "Priya Nair", Phone: "0161 496 0123", Relation: "duty manager"},
			{Name: "Tom Hughes", Phone: "07700 900461", Relation: "on-call team lead"},
		},
	})
	must("org", err)
	_, err = svc.PutOrganisation(ctx, "seed-org2", "admin", monitoring.Organisation{
		ID: "housing", Name: `Salford Housing <i>"Repairs"</i>`,
		ProcedureSteps: []monitoring.ProcedureStep{{Title: hostileStep, Text: hostileMedical}},
		Contacts:       []monitoring.Contact{{Name: `<b onclick="window.pwned=8">Boss</b>`, Phone: hostileURL}},
	})
	must("org2", err)
	workers := []monitoring.Worker{
		{ID: "w-amira", Name: "Amira Shah", Phone: "07700 900123", OrgID: "northcare", Team: "District nursing, Salford",
			Important: monitoring.ImportantInfo{Medical: "Type 1 diabetic: may need glucose if confused or drowsy.",
				SpecialHandling: "Hard of hearing in the left ear: speak slowly and clearly.", DuressWord: "blue folder"},
			URNs: []monitoring.PoliceURN{{Force: "Greater Manchester Police", URN: "GMP-LW-20931", Expiry: time.Now().AddDate(1, 0, 0)}}},
		{ID: "w-ben", Name: "Ben Okafor", Phone: "07700 900456", OrgID: "northcare", Team: "Community mental health",
			Contacts: []monitoring.Contact{{Name: "Grace Okafor", Phone: "07700 900789", Relation: "next of kin"}}},
		{ID: "w-eve", Name: hostileName, Phone: hostileURL, OrgID: "housing", Team: hostileStep,
			Important: monitoring.ImportantInfo{Medical: hostileMedical, SpecialHandling: hostileURL}},
	}
	for _, w := range workers {
		_, err := svc.PutWorker(ctx, "seed-"+w.ID, "admin", w)
		must(w.ID, err)
		_, err = svc.SetPINs(ctx, "seed-pins-"+w.ID, "admin", w.ID, "1111", "9999")
		must("pins "+w.ID, err)
	}
	f := fixture{
		amira: deviceCred{worker: "w-amira", device: "d-amira"},
		ben:   deviceCred{worker: "w-ben", device: "d-ben"},
		eve:   deviceCred{worker: "w-eve", device: "d-eve"},
	}
	for _, d := range []*deviceCred{&f.amira, &f.ben, &f.eve} {
		org := "northcare"
		if d.worker == "w-eve" {
			org = "housing"
		}
		_, err := svc.PutDevice(ctx, "seed-"+d.device, "admin", monitoring.Device{ID: d.device, Kind: monitoring.DevicePhoneApp,
			Label: "Phone app", OrgID: org, WorkerID: d.worker})
		must(d.device, err)
		d.secret, err = svc.SetDeviceSecret(ctx, "seed-secret-"+d.device, "admin", d.device)
		must("secret "+d.device, err)
	}
	for _, o := range []monitoring.PutOperatorRequest{
		{ID: "olivia", Name: "Olivia Hart", Role: monitoring.RoleOperator, Password: oliviaPassword, Create: true},
		{ID: "sam", Name: "Sam Patel", Role: monitoring.RoleSupervisor, Password: samPassword, Create: true},
	} {
		_, err := svc.PutOperator(ctx, "seed-op-"+o.ID, "setup", o)
		must("operator "+o.ID, err)
	}
	return f
}

// ---- a plain HTTP client of the console ----

// httpSession is a console client without a browser: it keeps the
// cookies itself, since net/http's jar sends no Secure cookie over HTTP.
type httpSession struct {
	t       *testing.T
	base    string
	cookies map[string]string
	csrf    string
	client  *http.Client
}

func newHTTPSession(t *testing.T, base string) *httpSession {
	return &httpSession{t: t, base: base, cookies: map[string]string{},
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request with the session's cookies and the same-origin
// Origin header for a POST, unless headers say otherwise, and keeps the
// cookies it is given.
func (s *httpSession) do(method, path string, form url.Values, headers map[string]string) (*http.Response, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", s.base)
	}
	var parts []string
	for k, v := range s.cookies {
		parts = append(parts, k+"="+v)
	}
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(s.cookies, c.Name)
		} else {
			s.cookies[c.Name] = c.Value
		}
	}
	return resp, string(b)
}

// doBody is do with a raw body (JSON for the REST API).
func (s *httpSession) doBody(method, path, body string, headers map[string]string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", s.base)
	}
	var parts []string
	for k, v := range s.cookies {
		parts = append(parts, k+"="+v)
	}
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	csrfMetaRE  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)
	csrfInputRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
)

// signIn signs in through the sign-in form and keeps the page's CSRF
// token; it returns the final response's status.
func (s *httpSession) signIn(user, password string) int {
	s.t.Helper()
	_, page := s.do(http.MethodGet, "/ui/login", nil, nil)
	m := csrfInputRE.FindStringSubmatch(page)
	if m == nil {
		s.t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	resp, _ := s.do(http.MethodPost, "/ui/login", url.Values{"user": {user}, "password": {password}, "csrf": {m[1]}, "next": {"/ui/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		return resp.StatusCode
	}
	resp, page = s.do(http.MethodGet, "/ui/", nil, nil)
	if mm := csrfMetaRE.FindStringSubmatch(page); mm != nil {
		s.csrf = mm[1]
	}
	return resp.StatusCode
}
