package console

// The supervisors' monthly statistics of an organisation: its alarms by
// type and how they ended, the acknowledgements against the 10 s and 40 s
// targets, its sessions and missed check-ins, for a calendar month (UTC)
// picked on the page; the same figures as CSV and PDF, as the monthly
// mail sends them (docs/notifications.md).

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/statistics"
)

// monthlyView is what the monthly statistics page shows.
type monthlyView struct {
	pageBase
	Month  string // yyyy-mm
	OrgID  string
	Orgs   []monitoring.Organisation
	Stats  *monitoring.MonthlyStats
	Share1 string
	Share2 string
	Met1   string
	Met2   string
	Median string
	Mean   string
	CSVURL string
	PDFURL string
	Error  string
}

// monthQuery returns the organisation and month asked for: the month
// defaults to the last one, the organisation to the first.
func (co *Console) monthQuery(c *gin.Context) (org, month string) {
	org, month = c.Query("org"), c.Query("month")
	if month == "" {
		now := time.Now().UTC()
		month = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0).Format("2006-01")
	}
	return org, month
}

// GET /ui/reports/monthly?org=&month=yyyy-mm
func (co *Console) monthlyPage(c *gin.Context) {
	v := monthlyView{pageBase: co.base(c, "Monthly statistics")}
	v.Page, v.Section = "monthly", "reports"
	v.OrgID, v.Month = co.monthQuery(c)
	v.Orgs, _ = co.svc.Organisations()
	if v.OrgID == "" && len(v.Orgs) > 0 {
		v.OrgID = v.Orgs[0].ID
	}
	q := url.Values{"org": {v.OrgID}, "month": {v.Month}}.Encode()
	v.CSVURL, v.PDFURL = Prefix+"/reports/monthly.csv?"+q, Prefix+"/reports/monthly.pdf?"+q
	if v.OrgID == "" {
		v.Error = "There is no organisation yet."
		co.render(c, http.StatusOK, "monthly", v)
		return
	}
	st, err := co.svc.MonthlyStats(v.OrgID, v.Month)
	if err != nil {
		v.Error = ui.ErrorText(err)
		co.render(c, ui.ErrorStatus(err), "monthly", v)
		return
	}
	k := st.KPIs
	v.Stats = st
	v.Share1, v.Share2, v.Median, v.Mean = noFigure, noFigure, noFigure, noFigure
	if k.TargetBase > 0 {
		v.Share1, v.Share2 = statistics.Share(k.AckWithin10s), statistics.Share(k.AckWithin40s)
	}
	if k.Acknowledged > 0 {
		v.Median, v.Mean = statistics.Seconds(k.MedianToAck), statistics.Seconds(k.MeanToAck)
	}
	v.Met1, v.Met2 = statistics.Met(k.Target1Met, k.TargetBase), statistics.Met(k.Target2Met, k.TargetBase)
	co.render(c, http.StatusOK, "monthly", v)
}

// GET /ui/reports/monthly.csv?org=&month=
func (co *Console) monthlyCSV(c *gin.Context) {
	st, err := co.svc.MonthlyStats(co.monthQuery(c))
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="vigil-%s-%s.csv"`, st.OrgID, st.Month))
	c.Data(http.StatusOK, "text/csv; charset=utf-8", st.CSV())
}

// GET /ui/reports/monthly.pdf?org=&month=
func (co *Console) monthlyPDF(c *gin.Context) {
	st, err := co.svc.MonthlyStats(co.monthQuery(c))
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	var buf bytes.Buffer
	if err := statistics.WritePDF(&buf, st, time.Now()); err != nil {
		c.String(http.StatusInternalServerError, "The PDF could not be made: %v", err)
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="vigil-%s-%s.pdf"`, st.OrgID, st.Month))
	c.Data(http.StatusOK, "application/pdf", buf.Bytes())
}
