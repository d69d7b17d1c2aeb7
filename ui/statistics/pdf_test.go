package statistics_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/statistics"
)

// TestWritePDF_FiguresReadBackWithPdftotext: the PDF of a month holds its
// sections in order and its figures, as pdftotext reads them.
func TestWritePDF_FiguresReadBackWithPdftotext(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext is not installed: make deps installs poppler-utils")
	}
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	st := &monitoring.MonthlyStats{OrgID: "o1", OrgName: "North Care Trust", Month: "2026-11", From: from, To: from.AddDate(0, 1, 0),
		ByType: []monitoring.TypeCount{
			{Type: monitoring.AlarmRedAlert, Raised: 7, Genuine: 3, False: 4},
			{Type: monitoring.AlarmDuress},
			{Type: monitoring.AlarmManDown, Raised: 2, False: 1, Open: 1},
		},
		Total: monitoring.TypeCount{Type: "total", Raised: 9, Genuine: 3, False: 5, Open: 1},
		KPIs: &monitoring.KPIs{TargetBase: 8, AckWithin10s: 0.75, AckWithin40s: 1, Target2Met: true,
			MedianToAck: 6500 * time.Millisecond, MeanToAck: 9 * time.Second},
		Sessions: 41, MissedCheckIns: 3}
	var buf bytes.Buffer
	if err := statistics.WritePDF(&buf, st, from.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "month.pdf")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", p, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	txt := string(out)
	last := -1
	for _, h := range statistics.Sections {
		i := strings.Index(txt, h)
		if i < last {
			t.Errorf("section %q missing or out of order", h)
		}
		last = i
	}
	for _, re := range []string{
		`Monthly statistics 2026-11: North Care Trust`,
		`red_alert\s+7\s+3\s+4\s+0\s+0`,
		`man_down\s+2\s+0\s+1\s+0\s+1`,
		`All alarms\s+9\s+3\s+5\s+0\s+1`,
		`Acknowledged within 10 s\s+75\.0 % \(target 80 %: NOT MET\)`,
		`Acknowledged within 40 s\s+100\.0 % \(target 98\.5 %: met\)`,
		`median 6\.5 s, mean 9\.0 s`,
		`Sessions started\s+41`,
		`Missed check-ins\s+3`,
	} {
		if !regexp.MustCompile(re).MatchString(txt) {
			t.Errorf("the PDF's text lacks %s", re)
		}
	}
	if strings.Contains(txt, "duress") {
		t.Errorf("a type with no alarm is listed")
	}
	if t.Failed() {
		t.Logf("pdftotext:\n%s", txt)
	}
}
