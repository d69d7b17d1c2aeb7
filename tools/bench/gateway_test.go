package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/appliancetest"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/sim"
	"github.com/vigilarc/vigil/ui/auth"
)

// An alarm counts only if PUBACKed within the window and answered ok; the
// others are sorted into refused, without reply and lost.
func TestGwLoad_Tally(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	from, end := t0.Add(time.Second), t0.Add(3*time.Second)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	attempts := []sim.Attempt{
		{EventID: "warm-up", Sent: t0, Acked: at(500 * time.Millisecond), Reply: "ok"},
		{EventID: "a", Sent: t0.Add(time.Second), Acked: at(1010 * time.Millisecond), Reply: "ok"},
		{EventID: "b", Sent: t0.Add(2 * time.Second), Acked: at(2030 * time.Millisecond), Reply: "ok"},
		{EventID: "c", Sent: t0.Add(990 * time.Millisecond), Acked: at(1020 * time.Millisecond), Reply: "ok"}, // sent in the warm-up
		{EventID: "refused", Sent: t0.Add(2 * time.Second), Acked: at(2 * time.Second), Reply: "unavailable"},
		{EventID: "silent", Sent: t0.Add(2 * time.Second), Acked: at(2 * time.Second)},
		{EventID: "lost", Sent: t0.Add(200 * time.Millisecond), Error: "no PUBACK in time"},
		{EventID: "drained", Sent: t0.Add(3 * time.Second), Acked: at(3100 * time.Millisecond), Reply: "ok"},
	}
	var r gwLoad
	r.tally(attempts, from, end, true)
	want := []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}
	if !slices.Equal(r.lat, want) || r.commits != 3 {
		t.Errorf("latencies %v (%d commits), want %v: the ok alarms PUBACKed in the window, sorted", r.lat, r.commits, want)
	}
	if r.refused != 1 || r.noReply != 1 || r.lost != 1 || r.errors != 3 {
		t.Errorf("refused %d, no reply %d, lost %d, errors %d; want 1, 1, 1 and 3", r.refused, r.noReply, r.lost, r.errors)
	}
}

// A child's devices land on the nodes the bench means: device i on node
// i mod n, though the simulator puts a child's j-th device on its
// (j mod n)-th broker.
func TestChildBrokers(t *testing.T) {
	nodes := []string{"n0", "n1", "n2"}
	for _, from := range []int{0, 7000, 14000, 1} {
		b := childBrokers(nodes, from)
		for j := range 7 {
			if got, want := b[j%len(b)], nodes[(from+j)%len(nodes)]; got != want {
				t.Errorf("child from %d, its device %d (bench device %d) on %s, want %s", from, j, from+j, got, want)
			}
		}
	}
}

// buildVigil builds the vigil binary into a temporary directory.
func buildVigil(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build vigil with")
	}
	out := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/vigilarc/vigil")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build vigil: %v\n%s", err, b)
	}
	return out
}

// mustNode opens a real single-node appliance on loopback ports, and
// returns it with a bearer token for its API: the node's setup token, an
// admin on its own node's API, which the bench's requests carry as they
// would an API token (a node whose API is open ignores it).
func mustNode(t *testing.T) (*appliance.Node, string) {
	t.Helper()
	cfg := appliancetest.Config(t)
	n := appliancetest.MustNode(t, &cfg)
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, auth.SetupTokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	return n, strings.TrimSpace(string(tok))
}

// An idle-device child is vigil sim: it takes the bench's flags, holds its
// devices with heartbeats PUBACKed, reports on stdout, and on SIGTERM
// disconnects them and exits.
func TestIdleChild_HoldsDevicesAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vigil")
	}
	vigil := buildVigil(t)
	n, token := mustNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds, _, err := provisionDevices(ctx, []string{n.HTTPAddr()}, 4, 1, 2, token)
	if err != nil {
		t.Fatal(err)
	}
	plan := idlePlan{heartbeatMin: 100 * time.Millisecond, heartbeatMax: 200 * time.Millisecond}
	ch, err := startIdleChild(vigil, t.TempDir(), 1, creds[1:], []string{n.BrokerAddr()}, plan, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.stop()
	err = pollUntil(ctx, 30*time.Second, func() bool {
		s := ch.status()
		return ch.exited() || (s.Connected == 3 && s.ByBroker[n.BrokerAddr()] == 3 && s.TelemetryAcked >= 6 && s.TelemetryOK >= 6)
	})
	if err != nil || ch.exited() {
		t.Fatalf("child exited %v, status %+v (%v); want 3 devices connected, heartbeats PUBACKed and answered ok", ch.exited(), ch.status(), err)
	}
	ch.stop()
	s := ch.status()
	if !ch.exited() || !s.Done || s.Connected != 0 || s.Devices != 3 || s.Locations != 0 || s.ConnectErrors != 0 {
		t.Errorf("after stop: exited %v, status %+v; want done, 3 devices none connected, no locations, no failed connects", ch.exited(), s)
	}
	if code := ch.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("child exit code %d, want 0", code)
	}
}

// The readings the memory figure rests on come from /proc and are sane for
// this very process.
func TestProcReadings(t *testing.T) {
	rss, anon, err := readRSS(os.Getpid())
	if err != nil || rss < 1<<20 || rss > 64<<30 || anon <= 0 || anon > rss {
		t.Fatalf("RSS of the test process %d bytes, anonymous %d (%v), want between 1 MiB and 64 GiB, anonymous part of it", rss, anon, err)
	}
	limit, err := processFileLimit(os.Getpid())
	var own syscall.Rlimit
	err2 := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own)
	if err != nil || err2 != nil || limit != own.Cur {
		t.Fatalf("open-file limit from /proc %d (%v), from getrlimit %d (%v)", limit, err, own.Cur, err2)
	}
	if _, _, err := readRSS(-1); err == nil {
		t.Fatal("RSS of pid -1 read without error")
	}
}

func TestMedians(t *testing.T) {
	got := medians([][]int64{{5, 1}, {1, 9}, {3, 4}, {100, 2}})
	if len(got) != 2 || got[0] != 5 || got[1] != 4 {
		t.Fatalf("medians %v, want [5 4] (upper median of an even count)", got)
	}
}

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi time.Duration
		bad    bool
	}{
		{"", 0, 0, false},
		{"30s-60s", 30 * time.Second, time.Minute, false},
		{"1m-1m", time.Minute, time.Minute, false},
		{"60s-30s", 0, 0, true},
		{"0s-30s", 0, 0, true},
		{"30s", 0, 0, true},
		{"30-60", 0, 0, true},
	} {
		lo, hi, err := parseInterval(tc.in)
		if (err != nil) != tc.bad || lo != tc.lo || hi != tc.hi {
			t.Errorf("parseInterval(%q) = %s, %s, %v; want %s, %s, error %v", tc.in, lo, hi, err, tc.lo, tc.hi, tc.bad)
		}
	}
}
