package incident

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// Page layout of the PDF, in millimetres on A4.
const (
	pdfMargin   = 18.0
	pdfWidth    = 210.0 - 2*pdfMargin
	pdfLine     = 5.2 // the height of a line of body text
	plotHeight  = 80.0
	minHalfSpan = 40.0 // metres: a single precise fix does not fill the plot
)

// Section headings of the report, in order. The PDF test looks for each.
var Sections = []string{
	"Worker and organisation",
	"Update message",
	"Response times (BS 8484)",
	"Timeline",
	"Location trail",
	"Police",
	"Escalation contacts briefed",
	"Audio",
	"Recommendations",
}

// WritePDF writes the report as a PDF to w. consoleURL, when set, goes
// before the audio link's path.
func WritePDF(w io.Writer, r *Report, consoleURL string) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	pdf.SetAutoPageBreak(true, pdfMargin)
	pdf.SetCreationDate(r.Generated)
	pdf.SetModificationDate(r.Generated)
	pdf.SetTitle(r.Title(), true)
	pdf.SetCreator("Vigil", true)
	pdf.AliasNbPages("")
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252 for the core fonts
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("Vigil post-incident report, alarm %s. Generated %s UTC. Page %d of {nb}",
			r.Alarm.ID, r.Generated.UTC().Format("2006-01-02 15:04"), pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()

	text := func(s string) {
		pdf.SetFont("Helvetica", "", 10)
		pdf.SetTextColor(20, 20, 20)
		pdf.MultiCell(0, pdfLine, tr(s), "", "L", false)
	}
	field := func(label, v string) {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.SetTextColor(20, 20, 20)
		pdf.CellFormat(48, pdfLine, tr(label), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, pdfLine, tr(v), "", "L", false)
	}
	heading := func(s string) {
		if pdf.GetY() > 297-pdfMargin-30 {
			pdf.AddPage()
		}
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 13)
		pdf.SetTextColor(25, 55, 95)
		pdf.CellFormat(0, 8, tr(s), "B", 1, "L", false, 0, "")
		pdf.Ln(1.5)
	}

	// Title block.
	pdf.SetFont("Helvetica", "B", 18)
	pdf.SetTextColor(20, 20, 20)
	pdf.MultiCell(0, 9, tr(r.Title()), "", "L", false)
	pdf.SetFont("Helvetica", "", 10)
	pdf.SetTextColor(70, 70, 70)
	state := "Draft"
	if r.Report.State == "signed_off" {
		state = "Signed off"
	}
	pdf.MultiCell(0, pdfLine, tr(fmt.Sprintf("%s. Raised %s UTC, closed %s UTC as %s. Report due %s UTC.",
		state, stamp(r.Alarm.RaisedAt), stamp(r.Alarm.ClosedAt), words(string(r.Alarm.Resolution)), stamp(r.Report.DueAt))), "", "L", false)

	heading(Sections[0])
	field("Worker", orNone(r.WorkerName))
	if r.Team != "" {
		field("Team", r.Team)
	}
	field("Organisation", orNone(r.OrgName))
	field("Alarm type", words(string(r.Alarm.Type)))
	if r.Alarm.Confirmation != "" {
		field("Safety confirmed", words(string(r.Alarm.Confirmation)))
	}
	if r.Alarm.CloseNote != "" {
		field("Close note", r.Alarm.CloseNote)
	}

	heading(Sections[1])
	if r.Update == "" {
		text("The worker left no Update message.")
	} else {
		field("Left at", stamp(r.UpdateAt)+" UTC")
		text(r.Update)
	}

	heading(Sections[2])
	field("Raised", stamp(r.Alarm.RaisedAt)+" UTC")
	if r.Acked {
		field("Acknowledged", fmt.Sprintf("%s UTC by %s", stamp(r.Alarm.AckAt), r.Alarm.AckBy))
		field("Time to acknowledge", Duration(r.AckTime)+": "+r.Target())
	} else {
		field("Time to acknowledge", r.Target())
	}
	field("Closed", fmt.Sprintf("%s UTC by %s (%s after the raise)", stamp(r.Alarm.ClosedAt), r.Alarm.ClosedBy,
		Duration(r.Alarm.ClosedAt.Sub(r.Alarm.RaisedAt))))
	text("BS 8484 expects an alarm to be accepted within 10 s (80 % of alarms) and within 40 s (98.5 %).")

	heading(Sections[3])
	timelineTable(pdf, tr, r.Timeline)

	heading(Sections[4])
	if len(r.Trail) == 0 {
		text("No position was recorded for this alarm.")
	} else {
		if pdf.GetY() > 297-pdfMargin-plotHeight-12 {
			pdf.AddPage()
		}
		drawTrail(pdf, tr, r.Trail)
	}

	heading(Sections[5])
	if len(r.Police) == 0 {
		text("The police were not called.")
	}
	for _, p := range r.Police {
		text("- " + p)
	}

	heading(Sections[6])
	switch {
	case len(r.Briefed) > 0:
		for _, b := range r.Briefed {
			text("- " + b)
		}
	case r.Alarm.NoBriefingReason != "":
		text("None. Reason given at the close: " + r.Alarm.NoBriefingReason)
	default:
		text("None recorded.")
	}

	heading(Sections[7])
	if !r.HasAudio {
		text("The device sent no audio.")
	} else {
		field("Length", Duration(r.AudioLength))
		if r.AudioLink != "" {
			field("Download", fmt.Sprintf("until %s UTC:", stamp(r.AudioLinkExp)))
			pdf.SetFont("Courier", "", 7.5)
			pdf.MultiCell(0, 4, strings.TrimRight(consoleURL, "/")+r.AudioLink, "", "L", false)
		} else {
			text("No download link is valid now: make one on the alarm's page.")
		}
	}

	heading(Sections[8])
	if r.Report.Recommendations == "" {
		text("Not written yet.")
	} else {
		text(r.Report.Recommendations)
	}
	pdf.Ln(2)
	if r.Report.State == "signed_off" {
		field("Signed off", fmt.Sprintf("by %s, %s UTC", r.Report.SignedOffBy, stamp(r.Report.SignedOffAt)))
	} else {
		field("Signed off", "not yet: this is a draft")
	}
	return pdf.Output(w)
}

// timelineTable draws the timeline as a table: time, who, what.
func timelineTable(pdf *fpdf.Fpdf, tr func(string) string, rows []Row) {
	widths := []float64{24, 34, pdfWidth - 58}
	pdf.SetFont("Helvetica", "B", 9)
	pdf.SetFillColor(225, 232, 242)
	pdf.SetTextColor(20, 20, 20)
	for i, h := range []string{"Time (UTC)", "Who", "What"} {
		pdf.CellFormat(widths[i], 6, h, "1", 0, "L", true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 9)
	const lh = 4.6
	for _, r := range rows {
		lines := pdf.SplitText(tr(r.What), widths[2]-2)
		h := float64(max(1, len(lines)))*lh + 1.4
		if pdf.GetY()+h > 297-pdfMargin-4 {
			pdf.AddPage()
		}
		x, y := pdf.GetX(), pdf.GetY()
		pdf.Rect(x, y, widths[0], h, "D")
		pdf.Rect(x+widths[0], y, widths[1], h, "D")
		pdf.Rect(x+widths[0]+widths[1], y, widths[2], h, "D")
		pdf.SetXY(x+1, y+0.7)
		pdf.CellFormat(widths[0]-2, lh, r.At.UTC().Format("15:04:05"), "", 0, "L", false, 0, "")
		pdf.SetXY(x+widths[0]+1, y+0.7)
		pdf.CellFormat(widths[1]-2, lh, tr(clip(pdf, r.Actor, widths[1]-2)), "", 0, "L", false, 0, "")
		for i, l := range lines {
			pdf.SetXY(x+widths[0]+widths[1]+1, y+0.7+float64(i)*lh)
			pdf.CellFormat(widths[2]-2, lh, l, "", 0, "L", false, 0, "")
		}
		pdf.SetXY(x, y+h)
	}
}

// clip shortens s to fit width w.
func clip(pdf *fpdf.Fpdf, s string, w float64) string {
	for len(s) > 1 && pdf.GetStringWidth(s) > w {
		s = s[:len(s)-2] + "~"
	}
	return s
}

// drawTrail draws the fixes to scale around the newest, north up, with a
// grid, a scale bar, the newest fix's accuracy circle and the alarm's
// position marked: the same plot as the console's (ui/console/plot.go).
func drawTrail(pdf *fpdf.Fpdf, tr func(string) string, fixes []Fix) {
	ref := fixes[len(fixes)-1]
	lat0, lon0 := ref.Loc.Lat, ref.Loc.Lon
	cos := math.Cos(lat0 * math.Pi / 180)
	const mPerDeg = 111_320.0
	xy := func(f Fix) (float64, float64) {
		return (f.Loc.Lon - lon0) * mPerDeg * cos, (f.Loc.Lat - lat0) * mPerDeg
	}
	minX, maxX, minY, maxY := -ref.Loc.Accuracy, ref.Loc.Accuracy, -ref.Loc.Accuracy, ref.Loc.Accuracy
	for _, f := range fixes {
		x, y := xy(f)
		minX, maxX = math.Min(minX, x), math.Max(maxX, x)
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	cx, cy := (minX+maxX)/2, (minY+maxY)/2
	half := math.Max(math.Max(maxX-minX, (maxY-minY)*pdfWidth/plotHeight)/2, minHalfSpan) * 1.15
	scale := (pdfWidth / 2) / half // mm per metre
	if s := (plotHeight / 2) / (math.Max(maxY-minY, 2*minHalfSpan) / 2 * 1.15); s < scale {
		scale = s
	}
	x0, y0 := pdf.GetX(), pdf.GetY()
	mid := func(x, y float64) (float64, float64) {
		return x0 + pdfWidth/2 + (x-cx)*scale, y0 + plotHeight/2 - (y-cy)*scale
	}
	pdf.SetDrawColor(120, 120, 120)
	pdf.SetLineWidth(0.3)
	pdf.Rect(x0, y0, pdfWidth, plotHeight, "D")

	// A grid every step metres and a scale bar of one step.
	step := niceStep(pdfWidth / scale / 5)
	pdf.SetDrawColor(222, 222, 222)
	pdf.SetLineWidth(0.15)
	for gx := math.Ceil((cx-pdfWidth/scale)/step) * step; gx <= cx+pdfWidth/scale; gx += step {
		if x, _ := mid(gx, 0); x > x0 && x < x0+pdfWidth {
			pdf.Line(x, y0, x, y0+plotHeight)
		}
	}
	for gy := math.Ceil((cy-plotHeight/scale)/step) * step; gy <= cy+plotHeight/scale; gy += step {
		if _, y := mid(0, gy); y > y0 && y < y0+plotHeight {
			pdf.Line(x0, y, x0+pdfWidth, y)
		}
	}
	// The accuracy of the newest fix.
	if ref.Loc.Accuracy > 0 {
		x, y := mid(xy(ref))
		pdf.SetDrawColor(120, 160, 210)
		pdf.SetLineWidth(0.25)
		pdf.Circle(x, y, ref.Loc.Accuracy*scale, "D")
	}
	// The trail, oldest first, then the fixes.
	pdf.SetDrawColor(40, 90, 160)
	pdf.SetLineWidth(0.6)
	for i := 1; i < len(fixes); i++ {
		ax, ay := mid(xy(fixes[i-1]))
		bx, by := mid(xy(fixes[i]))
		pdf.Line(ax, ay, bx, by)
	}
	pdf.SetLineWidth(0.3)
	for i, f := range fixes {
		x, y := mid(xy(f))
		switch {
		case f.Alarm: // below, on top of the others
		case i == len(fixes)-1:
			pdf.SetFillColor(40, 90, 160)
			pdf.SetDrawColor(20, 50, 100)
			pdf.Circle(x, y, 1.6, "FD")
		default:
			pdf.SetFillColor(255, 255, 255)
			pdf.SetDrawColor(40, 90, 160)
			pdf.Circle(x, y, 1.1, "FD")
		}
	}
	pdf.SetDrawColor(200, 30, 30)
	pdf.SetLineWidth(0.7)
	for _, f := range fixes {
		if f.Alarm { // a red ring where the alarm was raised
			x, y := mid(xy(f))
			pdf.Circle(x, y, 2.8, "D")
		}
	}
	// Scale bar and north.
	pdf.SetDrawColor(30, 30, 30)
	pdf.SetLineWidth(0.5)
	bx, by := x0+5, y0+plotHeight-5
	pdf.Line(bx, by, bx+step*scale, by)
	pdf.Line(bx, by-1.2, bx, by+1.2)
	pdf.Line(bx+step*scale, by-1.2, bx+step*scale, by+1.2)
	pdf.SetFont("Helvetica", "", 8)
	pdf.SetTextColor(30, 30, 30)
	pdf.SetXY(bx, by-5)
	pdf.CellFormat(30, 4, metres(step), "", 0, "L", false, 0, "")
	nx, ny := x0+pdfWidth-7, y0+4
	pdf.Line(nx, ny+7, nx, ny)
	pdf.Line(nx, ny, nx-1.5, ny+2.5)
	pdf.Line(nx, ny, nx+1.5, ny+2.5)
	pdf.SetXY(nx-3, ny+7.5)
	pdf.CellFormat(6, 4, "N", "", 0, "C", false, 0, "")
	pdf.SetXY(x0, y0+plotHeight+1)

	// The legend and the positions as numbers, which go to the police.
	first, last := fixes[0], fixes[len(fixes)-1]
	pdf.SetFont("Helvetica", "", 9)
	pdf.MultiCell(0, 4.6, tr(fmt.Sprintf("%d positions from %s to %s UTC. Red ring: where the alarm was raised; filled blue: the newest "+
		"fix, ringed by its accuracy. Newest: %.5f, %.5f (%s, within %.0f m).", len(fixes), first.At.UTC().Format("15:04:05"),
		last.At.UTC().Format("15:04:05"), last.Loc.Lat, last.Loc.Lon, orNone(last.Loc.Source), last.Loc.Accuracy)), "", "L", false)
}

// niceStep rounds d down to 1, 2 or 5 times a power of ten.
func niceStep(d float64) float64 {
	if d <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(d)))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= d {
			return m * p
		}
	}
	return p
}

func metres(m float64) string {
	if m >= 1000 {
		return fmt.Sprintf("%g km", m/1000)
	}
	return fmt.Sprintf("%g m", m)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func words(s string) string { return orNone(strings.ReplaceAll(s, "_", " ")) }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
