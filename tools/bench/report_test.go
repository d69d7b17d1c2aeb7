package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseParts(t *testing.T) {
	for _, tc := range []struct {
		only string
		want []string
		bad  bool
	}{
		{"", []string{partCluster, partConsole, partIngest, partFailover, partGrow, partConns, partTLS}, false},
		{"cluster", []string{partCluster}, false},
		{"gateway", []string{partConsole, partIngest, partFailover, partGrow, partConns, partTLS}, false},
		{"tls", []string{partTLS}, false},
		{"ingest, failover", []string{partIngest, partFailover}, false},
		{"hostile", []string{partHostile}, false},
		{"gateway,hostile", []string{partConsole, partIngest, partFailover, partGrow, partConns, partTLS, partHostile}, false},
		{"ingest,nonsense", nil, true},
	} {
		parts, err := parseParts(tc.only)
		if (err != nil) != tc.bad {
			t.Errorf("parseParts(%q) error %v, want error %v", tc.only, err, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		if len(parts) != len(tc.want) {
			t.Errorf("parseParts(%q) = %v, want %v", tc.only, parts, tc.want)
		}
		for _, p := range tc.want {
			if !parts[p] {
				t.Errorf("parseParts(%q) = %v, lacks %s", tc.only, parts, p)
			}
		}
	}
}

func TestParseList(t *testing.T) {
	if v, err := parseList("1000, 5000,15000", strconv.Atoi); err != nil || len(v) != 3 || v[2] != 15000 {
		t.Errorf("parseList = %v, %v; want [1000 5000 15000]", v, err)
	}
	if v, err := parseList("", strconv.Atoi); err != nil || v != nil {
		t.Errorf("parseList(\"\") = %v, %v; want nil, nil", v, err)
	}
	for _, bad := range []string{"10,x", "0", "-5"} {
		if _, err := parseList(bad, strconv.Atoi); err == nil {
			t.Errorf("parseList(%q) accepted", bad)
		}
	}
}

func TestPeerVersion(t *testing.T) {
	if got := peerVersion("Mosquitto", "mosquitto version 2.0.11"); got != "Mosquitto 2.0.11" {
		t.Errorf("got %q", got)
	}
	if got := peerVersion("etcd", "etcd Version: 3.4.23"); got != "etcd 3.4.23" {
		t.Errorf("got %q", got)
	}
	if got := peerVersion("etcd", ""); !strings.Contains(got, "unknown") {
		t.Errorf("got %q", got)
	}
}

// The console's cookies carry the __Host- prefix when Secure; the bench
// finds them either way.
func TestCookieNamed(t *testing.T) {
	cs := []*http.Cookie{{Name: "__Host-vigil_login", Value: "a"}, {Name: "vigil_session", Value: "b"}, {Name: "__Host-vigil_x", Value: ""}}
	if c := cookieNamed(cs, "vigil_login"); c == nil || c.Value != "a" {
		t.Errorf("vigil_login: %v", c)
	}
	if c := cookieNamed(cs, "vigil_session"); c == nil || c.Value != "b" {
		t.Errorf("vigil_session: %v", c)
	}
	if c := cookieNamed(cs, "vigil_x"); c != nil {
		t.Errorf("an empty cookie was found: %v", c)
	}
}

// Only alarm_raised events are noted, once, at their first arrival; a
// snapshot opens the stream.
func TestSSEStream_Dispatch(t *testing.T) {
	s := newSSEStream(&node{proc: proc{name: "n1"}}, nil)
	s.dispatch("snapshot", []byte(`{"rows":[]}`))
	select {
	case <-s.ready:
	default:
		t.Fatal("a snapshot did not make the stream ready")
	}
	s.dispatch("alarm", []byte(`{"event":"alarm_updated","row":{"id":"a1"}}`))
	s.dispatch("alarm", []byte(`{"event":"alarm_raised","row":{"id":"a2"}}`))
	s.dispatch("alarm", []byte(`not json`))
	s.dispatch("resync", []byte(`{}`))
	if _, ok := s.raised["a1"]; ok {
		t.Error("an update was taken for a raise")
	}
	first, ok := s.raised["a2"]
	if !ok {
		t.Fatal("the raise was not noted")
	}
	s.dispatch("alarm", []byte(`{"event":"alarm_raised","row":{"id":"a2"}}`))
	if s.raised["a2"] != first || s.resyncs != 1 {
		t.Errorf("a repeat changed the first arrival, or the resync was not counted (%d)", s.resyncs)
	}
	at, ok := s.waitFor(t.Context(), "a2", time.Now().Add(time.Second))
	if !ok || at != first {
		t.Errorf("waitFor = %v, %v", at, ok)
	}
	if _, ok := s.waitFor(t.Context(), "a3", time.Now().Add(10*time.Millisecond)); ok {
		t.Error("waitFor found an alarm never shown")
	}
}

// The summary line has the keys, in order, with NA for what was
// not measured.
func TestSummaryLine(t *testing.T) {
	want := "bench: ack_p99_ms=NA etcd_put_p99_ms=NA ratio_vs_etcd=NA tput_ratio_vs_etcd=NA failover_ms=NA mem_per_10k_devices_mb=NA"
	if got := summaryLine(nil); got != want {
		t.Errorf("summaryLine(nil) = %q, want %q", got, want)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	g := &gatewayReport{ingest: &ingestReport{levels: []ingestLevel{
		{conc: latencyLevel, vigil: []gwLoad{{loadResult: loadResult{lat: []time.Duration{ms(2), ms(4)}, commits: 2, elapsed: time.Second}}},
			etcd: []loadResult{{lat: []time.Duration{ms(10), ms(20)}, commits: 2, elapsed: time.Second}}},
		{conc: throughputLevel, vigil: []gwLoad{{loadResult: loadResult{commits: 3000, elapsed: time.Second}}},
			etcd: []loadResult{{commits: 1000, elapsed: time.Second}}},
	}}, failover: &failoverReport{vigil: []peerRound{{firstAfter: ms(900)}, {firstAfter: ms(1100)}, {firstAfter: ms(1000)}}},
		conns: []connResult{{baseline: 100 << 20, steps: []connStep{{devices: 10000, rss: 250 << 20}}}}}
	want = "bench: ack_p99_ms=4.00 etcd_put_p99_ms=20.00 ratio_vs_etcd=0.20 tput_ratio_vs_etcd=3.00 failover_ms=1000 mem_per_10k_devices_mb=150.0"
	if got := summaryLine(g); got != want {
		t.Errorf("summaryLine = %q, want %q", got, want)
	}
}

// The figures with broker.replica_wait 0 are reported in rows of their own,
// labelled, and leave the summary line, which is the defaults', alone.
func TestWriteIngest_NoWaitLabelledAndNotInSummary(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	level := func(lat ...time.Duration) loadResult {
		return loadResult{conc: latencyLevel, lat: lat, commits: len(lat), elapsed: time.Second}
	}
	g := &gatewayReport{ingest: &ingestReport{
		levels: []ingestLevel{{conc: latencyLevel,
			vigil:     []gwLoad{{loadResult: level(ms(2), ms(40)), where: "the 3 nodes' brokers"}},
			mosquitto: &gwLoad{loadResult: level(ms(1), ms(1))},
			etcd:      []loadResult{level(ms(10), ms(20))}}},
		noWait: &gwLoad{loadResult: level(ms(1), ms(3))},
	}}
	before := summaryLine(g)
	var b strings.Builder
	var detail strings.Builder
	g.writeIngest(&b, &detail)
	g.writeGoals(&b)
	out := b.String()
	for _, want := range []string{
		"| 16 | Vigil, **broker.replica_wait 0** | the 3 nodes' brokers | 2 | 1.00 | 3.00 |",
		"| 16, Vigil with broker.replica_wait 0 | 0.10 | 0.15 |",
		"| The same with broker.replica_wait 0 (not the default) | as above | 3.00 ms; etcd 20.00 ms; ratio 0.15 | **met** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(detail.String(), " vigil_c16_nowait_p99_ms=3.00") {
		t.Errorf("detail line %q lacks the no-wait p99", detail.String())
	}
	if got := summaryLine(g); got != before || !strings.Contains(got, "ack_p99_ms=40.00 ") {
		t.Errorf("summary line %q, want the default wait's figures (%q)", got, before)
	}
}

func TestLoadSampler_String(t *testing.T) {
	var none *loadSampler
	if got := none.String(); got != "not sampled" {
		t.Errorf("nil sampler: %q", got)
	}
	s := &loadSampler{samples: []float64{1, 3, 2}}
	if got := s.String(); !strings.HasPrefix(got, "mean 2.0, max 3.0 (") {
		t.Errorf("String() = %q, want mean 2.0, max 3.0", got)
	}
}

// The data directory's filesystem and device are found in mountinfo.
func TestMountOf_FindsTheRootFilesystem(t *testing.T) {
	typ, src := mountOf(t.TempDir())
	if typ == "unknown" || src == "unknown" || src == "" {
		t.Errorf("mountOf(a temporary directory) = %q, %q", typ, src)
	}
}

// A rate not run, past the fleet's bend, is shown as such, and the bend is
// read from the rates measured.
func TestWriteGrow_SkippedRates(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	g := &gatewayReport{grow: &growReport{dur: time.Second, cells: []growCell{
		{devices: 1000, alarmDevices: 1000, offered: 10, sentRate: 10, ackRate: 10, lat: []time.Duration{ms(5)}},
		{devices: 1000, alarmDevices: 1000, offered: 100, sentRate: 100, ackRate: 40, lat: []time.Duration{ms(900)}},
		{devices: 1000, alarmDevices: 1000, offered: 1000, skipped: true},
	}}}
	var b, line strings.Builder
	g.writeGrow(&b, &line)
	for _, want := range []string{
		"| 1000 | 1000 | 1000 | | | | | | | | | | | not run: below 50% of a lower rate |",
		"- 1000 devices connected: kept up with 10 alarms/s (p99 5.00 ms); at 100/s asked it PUBACKed 40/s, p99 900.00 ms.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
	if !strings.Contains(line.String(), " grow_1000_kept_up_per_s=10") {
		t.Errorf("detail %q", line.String())
	}
}
