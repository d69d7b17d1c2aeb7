package console

// The supervisors' page: the KPIs of a period against the BS 8484 targets
// (the share of alarms acknowledged within 10 s and within 40 s), a chart
// of the alarms of each day, the ages of the alarms open now, and the
// period's alarms as CSV.

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// Limits of the reports.
const (
	// defaultReportDays is the period shown when none is asked for.
	defaultReportDays = 30
	// maxReportDays bounds a period, so that one page reads a bounded
	// number of alarms and draws a readable chart.
	maxReportDays = 366
	dateLayout    = "2006-01-02"
)

// reportView is what the reports page shows.
type reportView struct {
	pageBase
	From, To   string // the period's first and last day, as dates
	OrgID      string
	OrgName    string
	Orgs       []monitoring.Organisation
	KPIs       *monitoring.KPIs
	Target1    string
	Target2    string
	Share1     string
	Share2     string
	MedianAck  string
	MeanAck    string
	MedianDone string
	Chart      *dayChart
	Open       []openRow
	Ages       *ageChart
	CSVURL     string
	Truncated  bool // more alarms than a report reads
	Error      string
}

// openRow is an open alarm and its age.
type openRow struct {
	alarmRow
	Age string
}

// period reads from, to (dates, inclusive) and org from the query; the
// default is the last defaultReportDays days.
func period(c *gin.Context) (from, to time.Time, org string, err error) {
	loc := time.Local
	today := time.Now().In(loc)
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, loc)
	to = today.AddDate(0, 0, 1)
	from = to.AddDate(0, 0, -defaultReportDays)
	if s := c.Query("from"); s != "" {
		t, perr := time.ParseInLocation(dateLayout, s, loc)
		if perr != nil {
			return from, to, "", fmt.Errorf("the first day %q is not a date (YYYY-MM-DD)", s)
		}
		from = t
	}
	if s := c.Query("to"); s != "" {
		t, perr := time.ParseInLocation(dateLayout, s, loc)
		if perr != nil {
			return from, to, "", fmt.Errorf("the last day %q is not a date (YYYY-MM-DD)", s)
		}
		to = t.AddDate(0, 0, 1)
	}
	switch {
	case !to.After(from):
		return from, to, "", fmt.Errorf("the last day is before the first")
	case to.Sub(from) > maxReportDays*24*time.Hour+time.Hour:
		return from, to, "", fmt.Errorf("a report covers at most %d days", maxReportDays)
	}
	org = c.Query("org")
	if len(org) > monitoring.MaxIDLen {
		org = ""
	}
	return from, to, org, nil
}

// noFigure stands for a share, mean or median of no alarms.
const noFigure = "—"

func percentOf(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// GET /ui/reports?from=&to=&org=
func (co *Console) reportsPage(c *gin.Context) {
	v := reportView{pageBase: co.base(c, "Reports")}
	v.Page, v.Section = "reports", "reports"
	v.Target1 = fmt.Sprintf("%.0f%% within %s", 100*monitoring.AckTarget1Share, ago(monitoring.AckTarget1))
	v.Target2 = fmt.Sprintf("%.1f%% within %s", 100*monitoring.AckTarget2Share, ago(monitoring.AckTarget2))
	from, to, org, err := period(c)
	v.From, v.To, v.OrgID = from.Format(dateLayout), to.AddDate(0, 0, -1).Format(dateLayout), org
	v.Orgs, _ = co.svc.Organisations()
	for _, o := range v.Orgs {
		if o.ID == org {
			v.OrgName = o.Name
		}
	}
	q := url.Values{"from": {v.From}, "to": {v.To}}
	if org != "" {
		q.Set("org", org)
	}
	v.CSVURL = Prefix + "/reports/alarms.csv?" + q.Encode()
	if err != nil {
		v.Error = err.Error()
		co.render(c, http.StatusBadRequest, "reports", v)
		return
	}
	if v.KPIs, err = co.svc.KPIs(org, from, to); err != nil {
		v.Error = ui.ErrorText(err)
	} else {
		k := v.KPIs
		// A figure of nothing is a dash, not 0.0 s or 100 %.
		v.Share1, v.Share2, v.MedianAck, v.MeanAck, v.MedianDone = noFigure, noFigure, noFigure, noFigure, noFigure
		if k.TargetBase > 0 {
			v.Share1, v.Share2 = percentOf(k.AckWithin10s), percentOf(k.AckWithin40s)
		}
		if k.Acknowledged > 0 {
			v.MedianAck, v.MeanAck = secs(k.MedianToAck), secs(k.MeanToAck)
		}
		if k.Closed > 0 {
			v.MedianDone = ago(k.MedianToClose)
		}
	}
	alarms, more, err := co.svc.AlarmsRaised(org, from, to, 0)
	if err != nil && v.Error == "" {
		v.Error = ui.ErrorText(err)
	}
	v.Truncated = more
	v.Chart = newDayChart(alarms, from, to)
	open, err := co.svc.OpenAlarms()
	if err != nil && v.Error == "" {
		v.Error = ui.ErrorText(err)
	}
	names := newNamer(co.svc, nil)
	now := time.Now()
	var ages []time.Duration
	for i := range open {
		a := &open[i]
		if org != "" && a.OrgID != org {
			continue
		}
		v.Open = append(v.Open, openRow{alarmRow: names.row(a), Age: ago(now.Sub(a.RaisedAt))})
		ages = append(ages, now.Sub(a.RaisedAt))
	}
	slices.SortStableFunc(v.Open, func(a, b openRow) int { return a.RaisedAt.Compare(b.RaisedAt) }) // oldest first
	v.Ages = newAgeChart(ages)
	co.render(c, http.StatusOK, "reports", v)
}

// secs formats a duration to acknowledge: seconds with one decimal under a
// minute.
func secs(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return ago(d)
}

// csvColumns are the columns of the alarms export.
var csvColumns = []string{"alarm_id", "raised_at", "type", "priority", "organisation", "worker", "device", "status",
	"acknowledged_at", "seconds_to_acknowledge", "acknowledged_by", "within_10s", "within_40s",
	"closed_at", "seconds_to_close", "closed_by", "resolution", "close_note", "incident_id", "reopened", "duress_cancel"}

// csvCell makes a cell safe to open in a spreadsheet: text that a
// spreadsheet would take for a formula gets a leading apostrophe (OWASP's
// advice against CSV injection).
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// GET /ui/reports/alarms.csv?from=&to=&org=: the period's alarms, one a
// row, oldest first.
func (co *Console) reportsCSV(c *gin.Context) {
	from, to, org, err := period(c)
	if err != nil {
		c.String(http.StatusBadRequest, "%s", err.Error())
		return
	}
	alarms, more, err := co.svc.AlarmsRaised(org, from, to, 0)
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	names := newNamer(co.svc, nil)
	name := fmt.Sprintf("vigil-alarms-%s-to-%s.csv", from.Format(dateLayout), to.AddDate(0, 0, -1).Format(dateLayout))
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	if more {
		c.Header("X-Vigil-Truncated", fmt.Sprintf("more than %d alarms: narrow the period", monitoring.MaxReportAlarms))
	}
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.Write(csvColumns)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	for i := range alarms {
		a := &alarms[i]
		r := names.row(a)
		toAck, w10, w40 := "", "", ""
		if !a.AckAt.IsZero() {
			d := a.AckAt.Sub(a.RaisedAt)
			toAck = fmt.Sprintf("%.1f", d.Seconds())
			w10, w40 = fmt.Sprint(d <= monitoring.AckTarget1), fmt.Sprint(d <= monitoring.AckTarget2)
		}
		toClose := ""
		if !a.ClosedAt.IsZero() {
			toClose = fmt.Sprintf("%.0f", a.ClosedAt.Sub(a.RaisedAt).Seconds())
		}
		ackBy, closedBy := "", ""
		if a.AckBy != "" {
			ackBy = names.operator(a.AckBy)
		}
		if a.ClosedBy != "" {
			closedBy = names.operator(a.ClosedBy)
		}
		row := []string{a.ID, ts(a.RaisedAt), string(a.Type), fmt.Sprint(a.Priority), r.Org, r.Worker, a.DeviceID, string(a.Status),
			ts(a.AckAt), toAck, ackBy, w10, w40, ts(a.ClosedAt), toClose, closedBy, string(a.Resolution), a.CloseNote,
			a.IncidentID, fmt.Sprint(a.Reopened), fmt.Sprint(a.DuressCancel)}
		for j := range row {
			row[j] = csvCell(row[j])
		}
		if err := w.Write(row); err != nil {
			return
		}
	}
	w.Flush()
}
