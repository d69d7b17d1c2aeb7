package main

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/provisioning"
)

func msN(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// Pooled runs keep every latency and count, and the CPU time per alarm of
// the whole: the runs' CPU time over all their alarms.
func TestPoolLoads(t *testing.T) {
	a := loadResult{conc: 16, commits: 100, errors: 1, elapsed: time.Second, lat: []time.Duration{msN(3), msN(1)},
		cpu: cpuUse{busy: 0.9, nodes: 0.5, self: 0.1}}
	b := loadResult{conc: 16, commits: 300, elapsed: time.Second, lat: []time.Duration{msN(2)},
		cpu: cpuUse{busy: 0.7, nodes: 0.25, self: 0.3}}
	p := poolLoads([]loadResult{a, b})
	if p.commits != 400 || p.errors != 1 || p.elapsed != 2*time.Second || p.conc != 16 {
		t.Errorf("pooled counts: %+v", p)
	}
	if len(p.lat) != 3 || p.lat[0] != msN(1) || p.lat[2] != msN(3) {
		t.Errorf("pooled latencies not all there, sorted: %v", p.lat)
	}
	if p.cpu.busy != 0.8 || p.cpu.nodes != 0.375 || p.cpu.self != 0.2 {
		t.Errorf("pooled CPU shares %+v, want 0.8, 0.375, 0.2", p.cpu)
	}
	want := (a.cpuPerCommit()*100 + b.cpuPerCommit()*300) / 400
	if got := p.cpuPerCommit(); got-want > time.Microsecond || want-got > time.Microsecond {
		t.Errorf("pooled CPU per alarm %s, want %s", got, want)
	}
	unknown := poolLoads([]loadResult{a, {commits: 1, elapsed: time.Second, cpu: cpuUse{busy: -1, nodes: -1, self: -1}}})
	if unknown.cpu.nodes != -1 || unknown.cpuPerCommit() != 0 {
		t.Errorf("a run without CPU figures made pooled ones: %+v", unknown.cpu)
	}
	if e := poolLoads(nil); e.commits != 0 || e.cpuPerCommit() != 0 {
		t.Errorf("pool of nothing: %+v", e)
	}
}

func TestTLSShare(t *testing.T) {
	for _, tc := range []struct {
		plain, withTLS time.Duration
		ok             bool
		want           string
	}{
		{msN(10), msN(12.5), true, "20"},
		{msN(1), msN(4), true, "75"},
		{msN(2), msN(1.6), true, "-25"},   // noise: TLS measured cheaper
		{msN(4.74), msN(4.72), true, "0"}, // not "-0"
		{msN(1), 0, true, "NA"},
		{msN(1), msN(2), false, "NA"},
	} {
		if got := tlsShare(tc.plain, tc.withTLS, tc.ok); got != tc.want {
			t.Errorf("tlsShare(%s, %s, %v) = %q, want %q", tc.plain, tc.withTLS, tc.ok, got, tc.want)
		}
	}
	if got := diffMs(msN(1.5), msN(1.25), true); got != "-0.250" {
		t.Errorf("diffMs = %q", got)
	}
	if got := diffMs(0, msN(1), false); got != "NA" {
		t.Errorf("diffMs not measured = %q", got)
	}
}

func TestStormResult(t *testing.T) {
	r := stormResult{elapsed: 2 * time.Second, lat: make([]time.Duration, 500), nodeCPU: 5 * time.Second}
	if r.perSecond() != 250 || r.cpuPerConnect() != msN(10) {
		t.Errorf("perSecond %v, cpuPerConnect %s", r.perSecond(), r.cpuPerConnect())
	}
	if (stormResult{}).perSecond() != 0 || (stormResult{nodeCPU: time.Second}).cpuPerConnect() != 0 {
		t.Error("an empty storm has figures")
	}
}

// The TLS line has every key, NA for what was not measured, and nothing
// when the part did not run.
func TestTLSSummaryLine(t *testing.T) {
	if got := tlsSummaryLine(nil); got != "" {
		t.Errorf("tlsSummaryLine(nil) = %q", got)
	}
	empty := tlsSummaryLine(&tlsReport{})
	for _, key := range []string{"tls_connect_cpu_ms_plain", "tls_connect_cpu_ms_tls", "tls_connect_share_pct", "tls_reconnect_cpu_ms_tls",
		"tls_alarm_cpu_ms_plain", "tls_alarm_cpu_ms_tls", "tls_alarm_p99_ms_plain", "tls_alarm_p99_ms_tls", "tls_alarm_cpu_ms_diff"} {
		if !strings.Contains(empty, " "+key+"=NA") {
			t.Errorf("%q lacks %s=NA", empty, key)
		}
	}
	storm := func(tr transport, cached bool, cpuMs float64) stormResult {
		return stormResult{transport: tr, cached: cached, devices: 2, elapsed: time.Second,
			lat: []time.Duration{msN(10), msN(30)}, nodeCPU: msN(2 * cpuMs)}
	}
	alarms := func(tr transport, p99 float64, nodes float64) tlsAlarmRun {
		return tlsAlarmRun{transport: tr, loadResult: loadResult{conc: 16, commits: 2, elapsed: time.Second,
			lat: []time.Duration{msN(5), msN(p99)}, cpu: cpuUse{busy: 1, nodes: nodes, self: 0}}}
	}
	r := &tlsReport{
		storms: []stormResult{storm(plainMQTT, false, 12), storm(tlsMQTT, false, 15), storm(tlsMQTT, true, 2), storm(plainMQTT, true, 0.5)},
		alarms: []tlsAlarmRun{alarms(plainMQTT, 40, 0.001), alarms(tlsMQTT, 45, 0.001)},
	}
	got := tlsSummaryLine(r)
	for _, want := range []string{
		"bench-tls: tls_connect_per_s_plain=2 tls_connect_p50_ms_plain=10.00 tls_connect_p99_ms_plain=30.00 tls_connect_cpu_ms_plain=12.000 ",
		" tls_connect_cpu_ms_tls=15.000 tls_connect_share_pct=20 ",
		" tls_reconnect_cpu_ms_plain=0.500 ", " tls_reconnect_cpu_ms_tls=2.000 tls_reconnect_share_pct=75 ",
		" tls_alarm_p99_ms_plain=40.00 ", " tls_alarm_p99_ms_tls=45.00 ",
		" tls_alarm_cpu_ms_diff=+0.000 tls_alarm_p99_ms_diff=+5.000",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tlsSummaryLine lacks %q:\n%s", want, got)
		}
	}
	var b strings.Builder
	(&gatewayReport{tls: r}).writeTLS(&b)
	if !strings.Contains(b.String(), "TLS adds +3.000 ms, 20% of the CONNECT over TLS") {
		t.Errorf("the report lacks TLS's share of a CONNECT:\n%s", b.String())
	}
}

// The devices trust only the cluster CA in a node's data directory, and
// the node's certificate, which names 127.0.0.1, passes that check.
func TestClusterCATLS_VerifiesTheNodeCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	names := provisioning.NodeNames{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, err := provisioning.ProvisionNodes("bench-test", map[string]string{"node1": dir}, names, time.Now()); err != nil {
		t.Fatal(err)
	}
	trust, err := provisioning.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", provisioning.ServerTLS(trust.CA, trust.Node))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg, err := clusterCATLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify {
		t.Fatal("the devices skip verification")
	}
	got, err := describeHandshake(t.Context(), ln.Addr().String(), cfg)
	if err != nil || !strings.HasPrefix(got, "TLS 1.3, ") || !strings.Contains(got, " key exchange, ") || !strings.HasSuffix(got, "ECDSA P-256 certificate") {
		t.Errorf("describeHandshake = %q, %v", got, err)
	}
	// Another cluster's CA does not vouch for this node.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := provisioning.ProvisionNodes("other", map[string]string{"n": other}, names, time.Now()); err != nil {
		t.Fatal(err)
	}
	otherCfg, err := clusterCATLS(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := describeHandshake(t.Context(), ln.Addr().String(), otherCfg); err == nil {
		t.Error("a node of another cluster was trusted")
	}
}
