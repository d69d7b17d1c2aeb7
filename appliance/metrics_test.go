package appliance_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/appliancetest"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// testCluster is three appliances on loopback, formed with
// bootstrap_expect, each serving metrics_addr; a stopped one restarts on
// its data directory and cluster address.
type testCluster struct {
	t     *testing.T
	mu    sync.Mutex
	cfgs  []appliance.Config
	nodes []*appliance.Node // nil while stopped
}

func mustCluster3(t *testing.T, tweak func(i int, c *appliance.Config)) *testCluster {
	t.Helper()
	ids := []string{"n1", "n2", "n3"}
	addrs := []string{clustertest.FreeAddr(t), clustertest.FreeAddr(t), clustertest.FreeAddr(t)}
	dirs := map[string]string{}
	c := &testCluster{t: t, nodes: make([]*appliance.Node, 3)}
	for i, id := range ids {
		cfg := appliancetest.Config(t)
		cfg.NodeID, cfg.Cluster.BindAddr, cfg.Cluster.BootstrapExpect = id, addrs[i], addrs
		cfg.MetricsAddr = "127.0.0.1:0"
		if tweak != nil {
			tweak(i, &cfg)
		}
		dirs[id] = cfg.DataDir
		c.cfgs = append(c.cfgs, cfg)
	}
	appliancetest.Provision(t, dirs)
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for i := range ids {
		c.start(i)
	}
	clustertest.PollUntil(t, appliancetest.LeaderTimeout, "a leader known to all three", func() bool {
		for _, n := range c.nodes {
			if id, _ := n.Cluster().Leader(); id == "" {
				return false
			}
		}
		return true
	})
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	n, err := appliance.New(c.cfgs[i])
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
}

func (c *testCluster) stop(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		clustertest.CloseWithin(c.t, "appliance "+c.cfgs[i].NodeID, appliancetest.CloseTimeout, func() { n.Close() })
	}
}

// leader returns the node that leads now.
func (c *testCluster) leader() *appliance.Node {
	c.t.Helper()
	var out *appliance.Node
	clustertest.PollUntil(c.t, appliancetest.LeaderTimeout, "a leader", func() bool {
		for _, n := range c.nodes {
			if n != nil && n.Cluster().IsLeader() {
				out = n
				return true
			}
		}
		return false
	})
	return out
}

// get fetches url and returns the status and the body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape parses n's /metrics with Prometheus's own parser.
func scrape(t *testing.T, n *appliance.Node) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+n.MetricsAddr()+appliance.MetricsPath)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the family's metric whose labels include
// labels (name, value pairs): a gauge's or counter's value, a histogram's
// count. ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// The metrics parse with Prometheus's parser, follow its naming
// conventions, and move: an alarm raised by a device over MQTT adds an
// open alarm, a PUBACK to the histogram and a committed message; each
// node reports its two peers; and every metric the Grafana dashboard
// queries is in the exposition.
func TestNode_Metrics(t *testing.T) {
	c := mustCluster3(t, nil)
	leader := c.leader()
	n := c.nodes[0]

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	made, err := leader.Service().CreateAPIToken(ctx, "metrics-test-token", "test", "metrics-test", monitoring.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := sim.ProvisionWith(ctx, sim.API{URL: leader.HTTPAddr(), Token: made.Secret}, "m", "r1", 1, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}

	var before map[string]*dto.MetricFamily
	clustertest.PollUntil(t, 10*time.Second, "n has heard from both peers", func() bool {
		before = scrape(t, n)
		return len(before["vigil_raft_peer_last_contact_seconds"].GetMetric()) == 2
	})
	for _, name := range []string{
		"vigil_raft_state", "vigil_raft_leader_known", "vigil_raft_term", "vigil_raft_commit_index", "vigil_raft_applied_index",
		"vigil_raft_last_log_index", "vigil_raft_apply_lag_entries", "vigil_ready", "vigil_raft_peer_reachable",
		"vigil_raft_peer_applied_index", "vigil_raft_peer_lag_entries", "vigil_raft_peer_last_contact_seconds",
		"vigil_disk_free_bytes", "vigil_disk_size_bytes", "vigil_disk_full", "vigil_alarms_open", "vigil_alarms_awaiting_confirmation",
		"vigil_devices_connected", "vigil_device_messages_committed_total", "vigil_device_messages_refused_total",
		"vigil_device_connections_refused_total", "go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes",
	} {
		if before[name] == nil {
			t.Errorf("no %s in the exposition", name)
		}
	}
	conventions := regexp.MustCompile(`^vigil_[a-z0-9_]+$`)
	for name, f := range before {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		if !conventions.MatchString(name) {
			t.Errorf("%s: not vigil_ and snake case", name)
		}
		if counter := f.GetType() == dto.MetricType_COUNTER; counter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: a %s; only counters end in _total, and all do", name, f.GetType())
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	for _, s := range []string{"raised", "acknowledged", "in_progress"} {
		if v, ok := value(before, "vigil_alarms_open", "status", s); !ok || v != 0 {
			t.Errorf("vigil_alarms_open{status=%q} before any alarm: %v %v, want 0", s, v, ok)
		}
	}
	if v, _ := value(before, "vigil_raft_state", "state", "leader"); v != 1 && n == leader {
		t.Errorf("the leader's vigil_raft_state{state=leader} = %v", v)
	}
	if v, ok := value(before, "vigil_ready"); !ok || v != 1 {
		t.Errorf("vigil_ready = %v %v, want 1", v, ok)
	}
	peers := before["vigil_raft_peer_reachable"].GetMetric()
	if len(peers) != 2 {
		t.Errorf("vigil_raft_peer_reachable has %d peers, want 2", len(peers))
	}
	if v, ok := value(before, "vigil_disk_free_bytes"); !ok || v <= 0 {
		t.Errorf("vigil_disk_free_bytes = %v %v", v, ok)
	}
	if _, ok := value(before, "vigil_device_puback_duration_seconds", "type", "alarm"); ok {
		t.Error("a PUBACK of an alarm observed before any alarm")
	}
	applied0, _ := value(before, "vigil_raft_applied_index")

	// One device raises an alarm through n's broker.
	sc, err := sim.ParseScenario([]byte("- at: 0s\n  device: 1\n  do: alarm\n  type: red_alert\n"), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Brokers, cfg.Credentials, cfg.Scenario, cfg.Run = []string{n.BrokerAddr()}, creds, sc, "r1"
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sum := s.Summary(); sum.Acked != 1 {
		t.Fatalf("the alarm was not acknowledged: %+v", sum)
	}

	var after map[string]*dto.MetricFamily
	clustertest.PollUntil(t, 10*time.Second, "the alarm in n's metrics", func() bool {
		after = scrape(t, n)
		v, _ := value(after, "vigil_alarms_open", "status", "raised")
		return v == 1
	})
	if v, ok := value(after, "vigil_device_puback_duration_seconds", "type", "alarm"); !ok || v != 1 {
		t.Errorf("PUBACKs of alarms observed: %v %v, want 1", v, ok)
	}
	if v, _ := value(after, "vigil_device_messages_committed_total"); v < 1 {
		t.Errorf("vigil_device_messages_committed_total = %v after an alarm", v)
	}
	if v, _ := value(after, "vigil_raft_applied_index"); v <= applied0 {
		t.Errorf("vigil_raft_applied_index %v, was %v before the alarm", v, applied0)
	}
	// The follower's copy: every node counts the alarm.
	other := c.nodes[1]
	clustertest.PollUntil(t, 10*time.Second, "the alarm in another node's metrics", func() bool {
		v, _ := value(scrape(t, other), "vigil_alarms_open", "status", "raised")
		return v == 1
	})

	// The dashboard queries only metrics that exist.
	checkDashboard(t, after)
}

// checkDashboard fails for every metric the Grafana dashboard's queries
// name that the exposition lacks.
func checkDashboard(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	raw, err := os.ReadFile("../images/grafana/vigil-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) < 5 {
		t.Fatalf("the dashboard has title %q and %d panels", dash.Title, len(dash.Panels))
	}
	names := regexp.MustCompile(`\b(?:vigil|go|process)_[a-z0-9_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				queried++
				family := name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil && fams[base].GetType() == dto.MetricType_HISTOGRAM {
						family = base
					}
				}
				if fams[family] == nil {
					t.Errorf("dashboard panel %q queries %s, which the exposition lacks", p.Title, name)
				}
			}
		}
	}
	if queried < 10 {
		t.Errorf("the dashboard queries %d metrics", queried)
	}
}

// readyz returns n's /readyz status and its reason, from http_addr and
// from metrics_addr, which must agree.
func readyz(t *testing.T, n *appliance.Node) (int, string) {
	t.Helper()
	code, body := get(t, "http://"+n.HTTPAddr()+appliance.ReadyzPath)
	code2, _ := get(t, "http://"+n.MetricsAddr()+appliance.ReadyzPath)
	if code2 != code && code2 != http.StatusOK && code != http.StatusOK {
		t.Errorf("metrics_addr's /readyz %d, http_addr's %d", code2, code)
	}
	var r struct {
		Ready  bool   `json:"ready"`
		Reason string `json:"reason"`
		NodeID string `json:"node_id"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz: %v: %s", err, body)
	}
	if r.Ready != (code == http.StatusOK) || r.NodeID != n.Cluster().ID() {
		t.Errorf("/readyz %d says %s", code, body)
	}
	return code, r.Reason
}

// /healthz answers 200 with no authentication on both listeners; /readyz
// answers 200 on every node of a healthy cluster, 503 with a reason on a
// node cut from its quorum (the two others stopped), and 200 again once
// they are back.
func TestNode_HealthChecks(t *testing.T) {
	c := mustCluster3(t, nil)
	for _, n := range c.nodes {
		for _, addr := range []string{n.HTTPAddr(), n.MetricsAddr()} {
			code, body := get(t, "http://"+addr+appliance.HealthzPath)
			if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("%s/healthz: %d %q", addr, code, body)
			}
		}
		clustertest.PollUntil(t, 10*time.Second, "node "+n.Cluster().ID()+" ready", func() bool {
			code, _ := readyz(t, n)
			return code == http.StatusOK
		})
	}
	// /metrics is on metrics_addr only: http_addr asks for credentials.
	if code, _ := get(t, "http://"+c.nodes[0].HTTPAddr()+appliance.MetricsPath); code == http.StatusOK {
		t.Errorf("http_addr serves /metrics without credentials")
	}

	// The last node is cut from its quorum: the others stop.
	last := c.nodes[2]
	c.stop(0)
	c.stop(1)
	var reason string
	clustertest.PollUntil(t, 15*time.Second, "/readyz 503 on the node left alone", func() bool {
		var code int
		code, reason = readyz(t, last)
		return code == http.StatusServiceUnavailable
	})
	if !slices.Contains([]string{"no_leader", "leader_silent"}, reason) {
		t.Errorf("the node alone is not ready because %q, want no_leader or leader_silent", reason)
	}
	if code, _ := get(t, "http://"+last.HTTPAddr()+appliance.HealthzPath); code != http.StatusOK {
		t.Errorf("/healthz of the node alone: %d, want 200: the process is alive", code)
	}
	if v, _ := value(scrape(t, last), "vigil_ready"); v != 0 {
		t.Errorf("vigil_ready of the node alone = %v", v)
	}

	c.start(0)
	c.start(1)
	clustertest.PollUntil(t, 30*time.Second, "/readyz 200 again once the others are back", func() bool {
		code, _ := readyz(t, last)
		return code == http.StatusOK
	})
	for i := range 2 {
		clustertest.PollUntil(t, 30*time.Second, fmt.Sprintf("restarted node %d ready", i), func() bool {
			code, _ := readyz(t, c.nodes[i])
			return code == http.StatusOK
		})
	}
}

// On an HTTPS http_addr the health checks answer plain HTTP too, for a
// load balancer's plain check, where every other plain request is
// redirected to HTTPS; over HTTPS they answer as well.
func TestNode_HealthChecksOnHTTPS(t *testing.T) {
	cfg := appliancetest.Config(t)
	cfg.HTTPTLS = "on"
	n := appliancetest.MustNode(t, &cfg)
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{appliance.HealthzPath: http.StatusOK, appliance.ReadyzPath: http.StatusOK, "/ui/": http.StatusPermanentRedirect} {
		clustertest.PollUntil(t, 10*time.Second, "plain "+path, func() bool {
			resp, err := plain.Get("http://" + n.HTTPAddr() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && path == appliance.ReadyzPath {
				return false // not caught up yet
			}
			if resp.StatusCode != want {
				t.Fatalf("plain GET %s: %d, want %d", path, resp.StatusCode, want)
			}
			return true
		})
	}
	tr, err := provisioning.LoadTrust(n.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tr.CA.Pool(), ServerName: "127.0.0.1"}}}
	resp, err := secure.Get("https://" + n.HTTPAddr() + appliance.HealthzPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS GET /healthz: %d", resp.StatusCode)
	}
}

// A metrics_addr in use fails the start, naming the setting, before the
// cluster opens; a log_format or metrics_addr that is not one is refused
// by name.
func TestNode_MetricsSettings(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := appliancetest.Config(t)
	cfg.MetricsAddr = busy.Addr().String()
	n, err := appliance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics_addr") {
		n.Close()
		t.Fatalf("open with metrics_addr in use: %v", err)
	}
	for _, tc := range []struct{ field, format, addr string }{
		{"log_format", "yaml", ""},
		{"metrics_addr", "json", "localhost"},
	} {
		cfg := appliancetest.Config(t)
		cfg.LogFormat, cfg.MetricsAddr = tc.format, tc.addr
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("log_format %q, metrics_addr %q: %v, want an error naming %s", tc.format, tc.addr, err, tc.field)
		}
	}
}
