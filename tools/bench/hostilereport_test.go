package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestMdCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"a|b", `a\|b`},
		{"Ann\u202eevil", `Ann\u202Eevil`},
		{"Ann\x1b[2J", `Ann\u001B[2J`},
		{"two\nlines", `two\u000Alines`},
		{"zero\u200bwidth", `zero\u200Bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"→ é", "→ é"},
	} {
		if got := mdCell(tc.in); got != tc.want {
			t.Errorf("mdCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly ten", 11, "exactly ten"},
		{"cut at the last space", 14, "cut at the…"},
		{"a list, of words", 9, "a list…"},
		{"nospacesatall", 5, "nospa…"},
		{"ééé", 3, "é…"},
	} {
		if got := shorten(tc.in, tc.n); got != tc.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 20000: "20,000", 1234567: "1,234,567", -2048: "-2,048"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestStatusTally(t *testing.T) {
	var tally statusTally
	if got := tally.String(); got != "nothing" {
		t.Errorf("empty tally = %q", got)
	}
	for _, s := range []string{"503", "401", "503", "closed"} {
		tally.add(s)
	}
	for range 1998 {
		tally.add("401")
	}
	if got, want := tally.String(), "2 × 503, 1,999 × 401, 1 × closed"; got != want {
		t.Errorf("tally = %q, want %q", got, want)
	}
}

func TestLoopbackAddr(t *testing.T) {
	seen := map[string]bool{}
	for block := 10; block < 12; block++ {
		for i := range 600 {
			ip := loopbackAddr(block, i)
			if !ip.IsLoopback() || ip.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Fatalf("loopbackAddr(%d, %d) = %s", block, i, ip)
			}
			if ip4 := ip.To4(); ip4[2] == 0 && ip4[3] == 0 {
				t.Fatalf("loopbackAddr(%d, %d) = %s, a network address", block, i, ip)
			}
			if seen[ip.String()] {
				t.Fatalf("loopbackAddr(%d, %d) = %s twice", block, i, ip)
			}
			seen[ip.String()] = true
		}
	}
	if got := loopbackAddr(11, 255).String(); got != "127.11.1.0" {
		t.Errorf("loopbackAddr(11, 255) = %s", got)
	}
}

func TestHostileCells(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	w := watchResult{
		rssBefore: 50 << 20, rssPeak: 90<<20 + 1<<19, rssAfter: 60 << 20,
		api:     []time.Duration{ms(1), ms(1), ms(2), ms(3), ms(40)},
		legitOK: 3, legitSent: 4, legitMax: ms(35), legitAfter: true,
	}
	if got, want := rssCell(w), "90.5 (50.0 → 60.0)"; got != want {
		t.Errorf("rssCell = %q, want %q", got, want)
	}
	if got, want := apiCell(w), "2.00 / 40.00 / 40.00"; got != want {
		t.Errorf("apiCell = %q, want %q", got, want)
	}
	w.apiFailed, w.apiFirstFailure = 2, "HTTP 503"
	if got, want := apiCell(w), "2.00 / 40.00 / 40.00; **2 of 7 failed** (HTTP 503)"; got != want {
		t.Errorf("apiCell with failures = %q, want %q", got, want)
	}
	if got := apiCell(watchResult{apiFailed: 3, apiFirstFailure: "timeout"}); !strings.HasPrefix(got, "all failed") {
		t.Errorf("apiCell with no answer = %q", got)
	}
	if got, want := legitCell(w), "**3/4**, max 35 ms; after: yes"; got != want {
		t.Errorf("legitCell = %q, want %q", got, want)
	}
	if w.legitAllOK() {
		t.Error("legitAllOK with 3 of 4")
	}
	w.legitOK, w.legitAfter = 4, false
	if got, want := legitCell(w), "4/4, max 35 ms; after: **no**"; got != want {
		t.Errorf("legitCell = %q, want %q", got, want)
	}
	if w.legitAllOK() {
		t.Error("legitAllOK with the alarm after the case lost")
	}
}

func TestHostileSummaryLine(t *testing.T) {
	if got := hostileSummaryLine(nil); got != "" {
		t.Errorf("no report: %q", got)
	}
	r := &hostileReport{node: "node2", baseline: 50 << 20, cases: []hostileCase{
		{id: "1a", documented: true, watch: watchResult{rssPeak: 51 << 20, api: []time.Duration{time.Millisecond}, legitOK: 2, legitSent: 2, legitAfter: true}},
		{id: "5", skipped: true, watch: watchResult{rssPeak: 52 << 20, legitAfter: true}},
		{id: "10c", watch: watchResult{rssPeak: 60 << 20, apiFailed: 1, legitOK: 1, legitSent: 2}},
	}}
	got := hostileSummaryLine(r)
	for _, want := range []string{
		"bench-hostile: node=node2 cases=3 not_as_documented=1 legit_failed_cases=1 api_failures=1 rss_base_mib=50.0 rss_peak_mib=60.0",
		" c1a_doc=yes c1a_rss_mib=51.0 c1a_api_p99_ms=1.00 c1a_api_failed=0 c1a_legit=3/3",
		" c5_doc=skip ", " c5_api_p99_ms=NA ",
		" c10c_doc=no c10c_rss_mib=60.0 c10c_api_p99_ms=NA c10c_api_failed=1 c10c_legit=1/3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary line\n%s\nlacks %q", got, want)
		}
	}
}

func TestClosedText(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: timeoutError{}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{io.EOF, "closed"},
		{fmt.Errorf("read: %w", io.EOF), "closed"},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), "closed"},
		{timeout, "no answer"},
		{errors.New("odd"), "error: odd"},
	} {
		if got := closedText(tc.err); got != tc.want {
			t.Errorf("closedText(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
