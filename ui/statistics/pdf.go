// Package statistics renders an organisation's monthly statistics
// (appliance/monitoring/monthly.go) as a PDF with fpdf, as the
// post-incident report is (ui/incident): no headless browser on the
// appliance. The console shows the same figures as HTML
// (ui/console/monthly.go) and the CSV is monitoring.MonthlyStats.CSV.
package statistics

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Page layout of the PDF, in millimetres on A4.
const (
	pdfMargin = 18.0
	pdfLine   = 6.0
)

// Sections are the PDF's headings, in order. The PDF test looks for each.
var Sections = []string{
	"Alarms by type",
	"Response times (BS 8484)",
	"Sessions",
}

// Share formats a share (0 to 1) as a percentage with one decimal.
func Share(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" }

// Seconds formats a duration in seconds with one decimal.
func Seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }

// Met says whether a target was met, as the page and the PDF write it.
func Met(ok bool, base int) string {
	switch {
	case base == 0:
		return "no alarms to count"
	case ok:
		return "met"
	}
	return "NOT MET"
}

// WritePDF writes st as a PDF to w; generated is the time it is made.
func WritePDF(w io.Writer, st *monitoring.MonthlyStats, generated time.Time) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	pdf.SetAutoPageBreak(true, pdfMargin)
	pdf.SetCreationDate(generated)
	pdf.SetModificationDate(generated)
	title := fmt.Sprintf("Monthly statistics %s: %s", st.Month, st.OrgName)
	pdf.SetTitle(title, true)
	pdf.SetCreator("Vigil", true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("Vigil monthly statistics, %s, %s. Generated %s UTC. Page %d",
			st.OrgName, st.Month, generated.UTC().Format("2006-01-02 15:04"), pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 18)
	pdf.SetTextColor(20, 20, 20)
	pdf.MultiCell(0, 9, tr(title), "", "L", false)
	pdf.SetFont("Helvetica", "", 10)
	pdf.MultiCell(0, pdfLine, tr(fmt.Sprintf("%s to %s (UTC)", st.From.Format("2 January 2006"),
		st.To.Add(-time.Second).Format("2 January 2006"))), "", "L", false)

	heading := func(s string) {
		pdf.Ln(4)
		pdf.SetFont("Helvetica", "B", 13)
		pdf.SetTextColor(25, 55, 95)
		pdf.CellFormat(0, 8, tr(s), "B", 1, "L", false, 0, "")
		pdf.Ln(1.5)
		pdf.SetTextColor(20, 20, 20)
	}
	row := func(bold bool, cells ...string) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 10)
		widths := []float64{54, 24, 24, 24, 24, 24}
		for i, c := range cells {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(widths[i], pdfLine, tr(c), "", 0, align, false, 0, "")
		}
		pdf.Ln(pdfLine)
	}
	field := func(label, v string) {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.CellFormat(80, pdfLine, tr(label), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, pdfLine, tr(v), "", "L", false)
	}

	heading(Sections[0])
	row(true, "Type", "Raised", "Genuine", "False", "Test", "Open")
	for _, tc := range st.ByType {
		if tc.Raised == 0 {
			continue
		}
		row(false, string(tc.Type), strconv.Itoa(tc.Raised), strconv.Itoa(tc.Genuine), strconv.Itoa(tc.False),
			strconv.Itoa(tc.Test), strconv.Itoa(tc.Open))
	}
	t := st.Total
	row(true, "All alarms", strconv.Itoa(t.Raised), strconv.Itoa(t.Genuine), strconv.Itoa(t.False),
		strconv.Itoa(t.Test), strconv.Itoa(t.Open))

	heading(Sections[1])
	k := st.KPIs
	field("Acknowledged within 10 s", fmt.Sprintf("%s (target %.0f %%: %s)", Share(k.AckWithin10s), monitoring.AckTarget1Share*100, Met(k.Target1Met, k.TargetBase)))
	field("Acknowledged within 40 s", fmt.Sprintf("%s (target %.1f %%: %s)", Share(k.AckWithin40s), monitoring.AckTarget2Share*100, Met(k.Target2Met, k.TargetBase)))
	field("Not acknowledged within 40 s", fmt.Sprintf("%d of %d counted", k.Missed, k.TargetBase))
	field("Time to acknowledge", fmt.Sprintf("median %s, mean %s", Seconds(k.MedianToAck), Seconds(k.MeanToAck)))
	pdf.SetFont("Helvetica", "", 9)
	pdf.MultiCell(0, 5, tr("The shares count the alarms acknowledged, and those not acknowledged after 40 s; tests are left out."), "", "L", false)

	heading(Sections[2])
	field("Sessions started", strconv.Itoa(st.Sessions))
	field("Missed check-ins", strconv.Itoa(st.MissedCheckIns))

	return pdf.Output(w)
}
