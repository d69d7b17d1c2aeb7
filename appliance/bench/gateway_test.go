package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An idle-device child refuses a spec it cannot carry out, naming the
// problem, before it opens any connection.
func TestIdleChild_RefusesBadSpecs(t *testing.T) {
	var out bytes.Buffer
	if code := runIdleChild(strings.NewReader("{"), &out); code == 0 {
		t.Fatalf("exit code 0 on a spec that is not JSON, want a refusal")
	}
	var st idleStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || !st.Done || !strings.Contains(st.Error, "cannot read the idle-device spec") {
		t.Fatalf("status %s (%v), want done with an error containing %q", out.Bytes(), err, "cannot read the idle-device spec")
	}
}

// checkSpec refuses a spec a child cannot carry out with the open files it
// may have, naming the problem.
func TestCheckSpec(t *testing.T) {
	const files = 10
	ok := idleSpec{Brokers: []string{"127.0.0.1:1"}, HeartbeatMin: time.Second, HeartbeatMax: 2 * time.Second, ConnectsInFlight: 1}
	if err := checkSpec(ok, fileMargin+files); err != nil {
		t.Fatalf("checkSpec of a good spec: %v", err)
	}
	for _, tc := range []struct {
		name string
		spec idleSpec
		want string
	}{
		{"no brokers", idleSpec{HeartbeatMin: time.Second, HeartbeatMax: time.Second, ConnectsInFlight: 1}, "no brokers"},
		{"heartbeat range", func() idleSpec { s := ok; s.HeartbeatMax = s.HeartbeatMin / 2; return s }(), "heartbeat interval"},
		{"no connects", func() idleSpec { s := ok; s.ConnectsInFlight = 0; return s }(), "connects_in_flight"},
		// One socket each, plus the margin: too many.
		{"above the file limit", func() idleSpec { s := ok; s.Devices = make([]idleDevice, files); return s }(), "open files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkSpec(tc.spec, files); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkSpec: %v, want an error containing %q", err, tc.want)
			}
		})
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
	if d := splitDevices(7, 3); d[0] != 3 || d[1] != 2 || d[2] != 2 {
		t.Fatalf("splitDevices(7, 3) = %v, want [3 2 2]", d)
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
