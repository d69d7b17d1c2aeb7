package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/broker"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// testConfig is an appliance on loopback ports, its cluster on clusterAddr
// with elections within a second, its data under t.TempDir().
func testConfig(t testing.TB, clusterAddr string) appliance.Config {
	cfg := appliance.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.BindAddr = clusterAddr
	cfg.Cluster.HeartbeatTimeout = 300 * time.Millisecond
	cfg.Cluster.ElectionTimeout = 300 * time.Millisecond
	cfg.Cluster.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.Cluster.CommitTimeout = 5 * time.Millisecond
	cfg.Broker.TCPAddr, cfg.Broker.WSAddr = "127.0.0.1:0", ""
	cfg.Broker.TelemetryFlush = 100 * time.Millisecond
	cfg.Logger = clustertest.Logger()
	return cfg
}

// mustNodes opens n appliances forming one cluster, all at once as
// appliances powered on together, and waits until every one knows the
// leader.
func mustNodes(t testing.TB, n int) []*appliance.Node {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = clustertest.FreeAddr(t)
	}
	nodes := make([]*appliance.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		cfg := testConfig(t, addrs[i])
		if n > 1 {
			cfg.Cluster.BootstrapExpect = addrs
		}
		node, err := appliance.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = node
		t.Cleanup(func() { node.Close() })
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = node.Open(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	clustertest.PollUntil(t, 30*time.Second, "a leader known to all", func() bool {
		for _, n := range nodes {
			if id, _ := n.Cluster().Leader(); id == "" {
				return false
			}
		}
		return true
	})
	return nodes
}

// baseURL is where n serves its console and its API.
func baseURL(n *appliance.Node) string { return "http://" + n.HTTPAddr() }

// Passwords of the test operators.
const (
	oliviaPassword = "olivia's long passphrase"
	samPassword    = "sam supervises the night shift"
	adaPassword    = "ada administers the appliance"
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

// device is a real MQTT client of the device protocol.
type device struct {
	t       *testing.T
	id      string
	c       paho.Client
	replies chan broker.Reply
	seq     int
}

// mustDevice connects as a device to the broker at addr and subscribes
// to its replies.
func mustDevice(t *testing.T, addr string, cred deviceCred) *device {
	t.Helper()
	d := &device{t: t, id: cred.device, replies: make(chan broker.Reply, 64)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(cred.device).SetUsername(cred.device).
		SetPassword(cred.secret).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).
		SetConnectTimeout(10 * time.Second)
	d.c = paho.NewClient(opts)
	if tok := d.c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", cred.device, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(50) })
	tok := d.c.Subscribe(broker.DownTopic(cred.device, "reply"), 1, func(_ paho.Client, m paho.Message) {
		var r broker.Reply
		if json.Unmarshal(m.Payload(), &r) == nil {
			d.replies <- r
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return d
}

// send publishes one event QoS 1 (fields plus event_id and ts), waits for
// the PUBACK and the reply, and returns the reply's result.
func (d *device) send(typ string, fields map[string]any) json.RawMessage {
	d.t.Helper()
	d.seq++
	id := fmt.Sprintf("%s-%s-%d", d.id, strings.ReplaceAll(typ, "/", "-"), d.seq)
	m := map[string]any{"event_id": id, "ts": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	tok := d.c.Publish(broker.UpTopic(d.id, typ), 1, false, b)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: no PUBACK: %v", typ, tok.Error())
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-d.replies:
			if r.EventID != id {
				continue
			}
			if !r.OK {
				d.t.Fatalf("%s refused: %s %s %s", typ, r.Code, r.Field, r.Error)
			}
			return r.Result
		case <-deadline:
			d.t.Fatalf("no reply to %s", typ)
		}
	}
}

// alarm raises an alarm and returns its ID.
func (d *device) alarm(typ string, loc map[string]any) string {
	d.t.Helper()
	var r struct {
		AlarmID string `json:"alarm_id"`
	}
	if err := json.Unmarshal(d.send("alarm", map[string]any{"alarm_type": typ, "location": loc}), &r); err != nil || r.AlarmID == "" {
		d.t.Fatalf("alarm reply: %v", err)
	}
	return r.AlarmID
}

// walk sends location telemetry along a short street, ending at the last
// point, and waits until node has recorded the last one.
func (d *device) walk(svc *monitoring.Service, points [][2]float64) {
	d.t.Helper()
	for i, p := range points {
		m := map[string]any{"event_id": fmt.Sprintf("%s-loc-%d", d.id, i), "ts": time.Now().UTC().Format(time.RFC3339),
			"location": map[string]any{"lat": p[0], "lon": p[1], "accuracy_m": 10 + 4*i, "source": "gps"}}
		b, _ := json.Marshal(m)
		tok := d.c.Publish(broker.UpTopic(d.id, "location"), 1, false, b)
		tok.WaitTimeout(5 * time.Second)
		last := p
		clustertest.PollUntil(d.t, 10*time.Second, "the location to be recorded", func() bool {
			dev, err := svc.Device(d.id)
			return err == nil && dev.Location != nil && dev.Location.Lat == last[0] && dev.Location.Lon == last[1]
		})
	}
}

// audio streams seconds of a tone as pcm_s16le 8 kHz mono chunks.
func (d *device) audio(alarmID string, seconds int) {
	d.t.Helper()
	const rate = 8000
	for s := range seconds {
		pcm := make([]byte, 2*rate)
		for i := range rate {
			t := float64(s*rate+i) / rate
			v := int16(6000 * math.Sin(2*math.Pi*440*t) * math.Sin(math.Pi*t))
			pcm[2*i], pcm[2*i+1] = byte(v), byte(uint16(v)>>8)
		}
		d.send("audio", map[string]any{"alarm_id": alarmID, "seq": s, "codec": "pcm_s16le",
			"sample_rate": rate, "channels": 1, "data": pcm})
	}
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
