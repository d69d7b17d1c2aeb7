package incident_test

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/incident"
	"github.com/vigilarc/vigil/ui/incident/incidenttest"
)

// updateExample rewrites docs/examples/post-incident-report.pdf and .png
// from the demo incident: go test ./ui/incident -run PDF -update-example
var updateExample = flag.Bool("update-example", false, "rewrite the example report in docs/examples")

// mustDemo records the demo incident on a single real node.
func mustDemo(t *testing.T) (*monitoring.Service, *incidenttest.Clock, *incidenttest.Incident) {
	t.Helper()
	clk := incidenttest.NewClock(incidenttest.Start)
	n := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) {
		s.Now = clk.Now
		s.NewID = incidenttest.IDs()
	}})
	inc, err := incidenttest.Demo(context.Background(), n.Service, clk)
	if err != nil {
		t.Fatal(err)
	}
	return n.Service, clk, inc
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: make deps installs poppler-utils", tool)
		}
	}
}

// The report is read from the state: the worker and organisation, the
// session's Update message, every timeline entry, the police reference,
// the contact briefed, the audio's length and a link that works, and the
// acknowledgement time against the targets.
func TestBuild_ReadsTheIncident(t *testing.T) {
	svc, clk, inc := mustDemo(t)
	r, err := incident.Build(context.Background(), svc, inc.AlarmID, inc.Trail, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := svc.Timeline(inc.AlarmID)
	switch {
	case r.WorkerName != "Rachel Oduya" || r.OrgName != "Calder Valley Community Mental Health Team":
		t.Errorf("worker %q of %q", r.WorkerName, r.OrgName)
	case !strings.Contains(r.Update, "Hollin Lane"):
		t.Errorf("update %q", r.Update)
	case len(r.Timeline) != len(tl) || len(tl) < 8:
		t.Errorf("%d timeline rows for %d entries", len(r.Timeline), len(tl))
	case len(r.Police) != 1 || !strings.Contains(r.Police[0], "WYP-1117-0642"):
		t.Errorf("police %q", r.Police)
	case len(r.Briefed) != 1 || !strings.HasPrefix(r.Briefed[0], "Dana Whitfield (briefed"):
		t.Errorf("briefed %q", r.Briefed)
	case r.AudioLength != 20*time.Second || r.AudioLink != inc.Link.Path:
		t.Errorf("audio %s, link %q, want 20s and %q", r.AudioLength, r.AudioLink, inc.Link.Path)
	case r.AckTime != 7*time.Second || r.Target() != "within the 10 s target":
		t.Errorf("ack %s: %s", r.AckTime, r.Target())
	case len(r.Trail) != len(inc.Trail)+1 || !r.Trail[len(r.Trail)-2].Alarm:
		t.Errorf("trail of %d fixes: %+v", len(r.Trail), r.Trail)
	case r.Report.State != monitoring.ReportDraft || !strings.Contains(r.Report.Recommendations, "two-person visit"):
		t.Errorf("report %+v", r.Report)
	}
	// A revoked link is not offered.
	if _, err := svc.RevokeAudioLink(context.Background(), "revoke", "sam.hale", inc.Link.Link.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := incident.Build(context.Background(), svc, inc.AlarmID, nil, clk.Now()); r.AudioLink != "" {
		t.Errorf("a revoked link is offered: %q", r.AudioLink)
	}
}

// The PDF has every section's heading, the timeline's rows and the signed
// link, as pdftotext reads it, and renders with pdftoppm to a page image
// that is not blank. With -update-example it rewrites the example in docs.
func TestWritePDF_SectionsRenderWithPoppler(t *testing.T) {
	need(t, "pdftotext", "pdftoppm")
	svc, clk, inc := mustDemo(t)
	clk.Set(incidenttest.Start.Add(26 * time.Hour))
	if _, err := svc.ReportAction(context.Background(), "sign", "sam.hale", inc.AlarmID, monitoring.ReportSignOff,
		mustReport(t, svc, inc.AlarmID).Recommendations); err != nil {
		t.Fatal(err)
	}
	r, err := incident.Build(context.Background(), svc, inc.AlarmID, inc.Trail, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := incident.WritePDF(&buf, r, "https://vigil-1.calder.example"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pdfPath := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(pdfPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", pdfPath, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	txt := string(out)
	last := -1
	for _, h := range incident.Sections {
		loc := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(h) + `\s*$`).FindStringIndex(txt)
		i := -1
		if loc != nil {
			i = loc[0]
		}
		if i < 0 {
			t.Errorf("the PDF has no heading %q", h)
			continue
		}
		if i < last {
			t.Errorf("heading %q is out of order", h)
		}
		last = i
	}
	for _, want := range []string{"Rachel Oduya", "Hollin Lane", "WYP-1117-0642", "Dana Whitfield", "7.0 s: within the 10 s target",
		"20.0 s", "olivia.barnes", "Signed off", "by sam.hale", "two-person visit", "sig="} {
		if !strings.Contains(txt, want) {
			t.Errorf("the PDF's text lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("pdftotext:\n%s", txt)
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", pdfPath, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "page.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r+g+bl < 3*0x8000 {
				dark++
			}
		}
	}
	if b.Dx() < 400 || dark < 500 {
		t.Fatalf("page 1 renders %dx%d with %d dark samples: blank?", b.Dx(), b.Dy(), dark)
	}
	if *updateExample {
		writeExample(t, buf.Bytes())
	}
}

func mustReport(t *testing.T, svc *monitoring.Service, id string) *monitoring.Report {
	t.Helper()
	r, err := svc.Report(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// writeExample writes the PDF, and its pages side by side as one PNG, in
// docs/examples.
func writeExample(t *testing.T, pdf []byte) {
	t.Helper()
	dir := filepath.Join("..", "..", "docs", "examples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "post-incident-report.pdf")
	if err := os.WriteFile(p, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if out, err := exec.Command("pdftoppm", "-png", "-r", "70", p, filepath.Join(tmp, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(tmp, "page-*.png"))
	var imgs []image.Image
	w, h := 0, 0
	for _, pg := range pages {
		f, err := os.Open(pg)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		w += img.Bounds().Dx() + 8
		h = max(h, img.Bounds().Dy())
	}
	sheet := image.NewRGBA(image.Rect(0, 0, w-8, h))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.RGBA{150, 150, 150, 255}), image.Point{}, draw.Src)
	x := 0
	for _, img := range imgs {
		draw.Draw(sheet, image.Rect(x, 0, x+img.Bounds().Dx(), img.Bounds().Dy()), img, img.Bounds().Min, draw.Src)
		x += img.Bounds().Dx() + 8
	}
	f, err := os.Create(filepath.Join(dir, "post-incident-report.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, sheet); err != nil {
		t.Fatal(err)
	}
}
