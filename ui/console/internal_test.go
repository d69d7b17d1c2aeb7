package console

import (
	"slices"
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

func TestValidOrigin_NothingThatEndsAHeaderDirective(t *testing.T) {
	for o, want := range map[string]bool{
		"https://vigil-1.example.org":       true,
		"http://127.0.0.2:8080":             true,
		"http://[::1]:8080":                 true,
		"https://x.example/ui":              false,
		"https://x.example; script-src *":   false,
		"https://x.example 'unsafe-inline'": false,
		"javascript:alert(1)":               false,
		"":                                  false,
	} {
		if got := validOrigin(o); got != want {
			t.Errorf("validOrigin(%q) = %v", o, got)
		}
	}
	csp := cspFor([]string{"http://127.0.0.2:8080", "http://127.0.0.3:8080"})
	for _, want := range []string{"connect-src 'self' http://127.0.0.2:8080 http://127.0.0.3:8080;", "form-action 'self' http://127.0.0.2:8080 http://127.0.0.3:8080;", "script-src 'self';"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if cspFor(nil) != contentSecurityPolicy {
		t.Error("no peers changes the CSP")
	}
}

func TestCleanDrafts_KeepsOnlyTheConsolesDrafts(t *testing.T) {
	in := `{"vigil.draft:/ui/alarms/a1#note-text":"Police on the way","vigil.handover":"x","other":"y","vigil.draft:/api/v1#x":"z"}`
	if got := cleanDrafts(in); got != `{"vigil.draft:/ui/alarms/a1#note-text":"Police on the way"}` {
		t.Fatalf("cleanDrafts = %s", got)
	}
	for _, bad := range []string{"", "not json", `["a"]`, `{"vigil.draft:/ui/x":1}`, strings.Repeat("x", maxDrafts+1)} {
		if got := cleanDrafts(bad); got != "{}" {
			t.Errorf("cleanDrafts(%.20q) = %s", bad, got)
		}
	}
}

func TestCSVCell_NoFormulas(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-1": "'-1", "@SUM": "'@SUM", "\tx": "'\tx",
		"Amira Shah": "Amira Shah", "": "",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDayChart_StacksByHowFast(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.Local)
	to := from.AddDate(0, 0, 3)
	at := from.Add(10 * time.Hour)
	alarms := []monitoring.Alarm{
		{RaisedAt: at, AckAt: at.Add(5 * time.Second), Status: monitoring.StatusClosed},
		{RaisedAt: at, AckAt: at.Add(30 * time.Second), Status: monitoring.StatusClosed},
		{RaisedAt: at.AddDate(0, 0, 1), AckAt: at.AddDate(0, 0, 1).Add(time.Minute), Status: monitoring.StatusClosed},
		{RaisedAt: at.AddDate(0, 0, 1), Type: monitoring.AlarmTest},
		{RaisedAt: at.AddDate(0, 0, 5)}, // outside the period
	}
	ch := newDayChart(alarms, from, to)
	if ch.Total != 4 || ch.Days != 3 || ch.Max != 2 || len(ch.Rects) != 4 {
		t.Fatalf("chart %+v", ch)
	}
	classes := []string{}
	for _, r := range ch.Rects {
		classes = append(classes, r.Class)
		if r.H <= 0 || r.Y < dayPadT || r.Y+r.H > dayH-dayPadB+0.1 {
			t.Errorf("bar %+v outside the plot", r)
		}
	}
	if strings.Join(classes, " ") != "s-fast s-ok s-late s-other" {
		t.Errorf("series %v", classes)
	}
	for _, tc := range []struct{ in, want int }{{0, 4}, {3, 4}, {9, 12}, {13, 20}, {101, 120}} {
		if got := niceCeil(tc.in); got != tc.want || got%4 != 0 || got < tc.in {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTimeLeftAndFmtDur(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	if s, late := timeLeft(now.Add(90*time.Second), now); s != "1m 30s" || late {
		t.Errorf("timeLeft ahead = %q %v", s, late)
	}
	if s, late := timeLeft(now.Add(-5*time.Second), now); s != "passed 5s ago" || !late {
		t.Errorf("timeLeft passed = %q %v", s, late)
	}
	for d, want := range map[time.Duration]string{0: "", 45 * time.Minute: "45m", 90 * time.Minute: "1h30m", 2 * time.Hour: "2h", 30 * time.Second: "30s"} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%s) = %q, want %q", d, got, want)
		}
	}
}

// The cluster page warns of MQTT listeners without TLS that other machines
// reach, and of no others.
func TestPlainListeners(t *testing.T) {
	got := plainListeners([]string{"tcp://10.0.0.5:1883", "tcp://127.0.0.1:1883", "mqtts://10.0.0.5:8883",
		"ws://[::1]:1884", "ws://vigil-1.site.example:1884", "wss://10.0.0.5:8884", "tcp://localhost:1883"})
	want := []string{"tcp://10.0.0.5:1883", "ws://vigil-1.site.example:1884"}
	if !slices.Equal(got, want) {
		t.Fatalf("plain listeners %v, want %v", got, want)
	}
}
