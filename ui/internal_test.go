package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

func TestSafeNext_StaysInTheConsole(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/ui/alarms/a1", "/ui/alarms/a1"},
		{"/ui/?x=1", "/ui/?x=1"},
		{"", "/ui/"},
		{"/api/v1/alarms", "/ui/"},
		{"https://evil.example/ui/", "/ui/"},
		{"//evil.example/ui/", "/ui/"},
		{"/ui/\\evil", "/ui/"},
		{"/ui/\r\nSet-Cookie: x", "/ui/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	allowed := []string{"https://vigil.example.org"}
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"https://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8081", "127.0.0.1:8080", false},
		{"http://127.0.0.1:8080.evil.example", "127.0.0.1:8080", false},
		{"https://vigil.example.org", "10.0.0.5:8080", true},
		{"https://vigil.example.org/", "10.0.0.5:8080", true},
		{"https://evil.example", "10.0.0.5:8080", false},
		{"null", "127.0.0.1:8080", false},
		{"", "127.0.0.1:8080", false},
		{"ftp://127.0.0.1:8080", "127.0.0.1:8080", false},
	} {
		if got := sameOrigin(tc.origin, tc.host, allowed); got != tc.want {
			t.Errorf("sameOrigin(%q, %q) = %v", tc.origin, tc.host, got)
		}
	}
}

func TestCSRFToken_BoundToTheSession(t *testing.T) {
	a, b := csrfToken("session-a"), csrfToken("session-b")
	if a == b || a != csrfToken("session-a") || strings.Contains(a, "session") {
		t.Fatalf("tokens %q %q", a, b)
	}
	if !validCSRF("session-a", a) || validCSRF("session-a", b) || validCSRF("session-a", "") {
		t.Fatal("validCSRF is wrong")
	}
}

func TestRateLimiter_BurstThenRefill(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l := newRateLimiter(3, 10*time.Second)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.allow("192.0.2.1"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := l.allow("192.0.2.1")
	if ok || wait != "10" {
		t.Fatalf("the fourth attempt: %v, wait %q", ok, wait)
	}
	if ok, _ := l.allow("192.0.2.2"); !ok {
		t.Fatal("another address was limited")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.allow("192.0.2.1"); !ok {
		t.Fatal("no refill")
	}
}

func TestTelDigits(t *testing.T) {
	for in, want := range map[string]string{
		"07700 900123":     "07700900123",
		"+44 (161) 496-01": "+4416149601",
		"javascript:x=1":   "",
		"1+2":              "",
		"":                 "",
	} {
		if got := telDigits(in); got != want {
			t.Errorf("telDigits(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTrailPlot(t *testing.T) {
	if newTrailPlot(nil) != nil {
		t.Fatal("a plot of nothing")
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	p := newTrailPlot([]plotFix{
		{Loc: monitoring.Location{Lat: 53.4870, Lon: -2.2905, Accuracy: 10}, At: t0},
		{Loc: monitoring.Location{Lat: 53.4875, Lon: -2.2895, Accuracy: 15}, At: t0.Add(time.Minute)},
		{Loc: monitoring.Location{Lat: 53.4876, Lon: -2.2893}, At: t0.Add(90 * time.Second), Alarm: true},
	})
	if p == nil || len(p.Points) != 3 || p.Accuracy == nil || strings.Count(p.Trail, ",") != 2 {
		t.Fatalf("plot %+v", p)
	}
	for _, pt := range p.Points {
		if pt.X < 0 || pt.X > plotW || pt.Y < 0 || pt.Y > plotH {
			t.Errorf("point %+v outside the plot", pt)
		}
	}
	// The newest fix that is not only the alarm's is the reference, at the
	// accuracy circle's centre, and the older fix lies south-west of it.
	last, first := p.Points[1], p.Points[0]
	if last.Class != "fix-last" || last.X != p.Accuracy.X || last.Y != p.Accuracy.Y || first.X >= last.X || first.Y <= last.Y {
		t.Fatalf("points %+v, accuracy %+v", p.Points, p.Accuracy)
	}
	for _, tc := range []struct{ in, want float64 }{{7, 5}, {13, 10}, {40, 50}, {180, 200}, {900, 1000}} {
		if got := niceStep(tc.in); got != tc.want {
			t.Errorf("niceStep(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m 01s", 2*time.Hour + 5*time.Minute: "2h 05m", -time.Second: "0s",
	} {
		if got := ago(d); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}
