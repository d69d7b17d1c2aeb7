package console

// After the incident: the audio links of an alarm (made and revoked on
// the alarm page), and the post-incident reports (supervisors): the list
// of reports due and overdue, each report as a page with its
// recommendations form, and as a PDF (ui/incident). The report's trail is
// the alarm's position and the device's fixes this node's console holds in
// memory (hub.go): a report shown after a restart, or on another node,
// may draw fewer of them (docs/notifications.md).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/incident"
)

// AfterIncident is what the audio links and the post-incident reports
// need from the monitoring Service.
type AfterIncident interface {
	incident.Source
	IssueAudioLink(ctx context.Context, cmdID, actor, alarmID string, life time.Duration, note string) (*monitoring.IssuedAudioLink, error)
	RevokeAudioLink(ctx context.Context, cmdID, actor, linkID string) (*monitoring.AudioLink, error)
	AudioLink(linkID string) (*monitoring.AudioLink, error)
	ReportsDue() ([]monitoring.Report, error)
	SignedOffReports(limit int) ([]monitoring.Report, error)
	ReportAction(ctx context.Context, cmdID, actor, alarmID string, action monitoring.ReportActionKind, recommendations string) (*monitoring.Report, error)
	LegalHold(ctx context.Context, cmdID, actor, incidentID string, hold bool, reason string) (*monitoring.LegalHold, error)
	Hold(incidentID string) (*monitoring.LegalHold, error)
	SendBriefing(ctx context.Context, cmdID, operator, alarmID string) (*monitoring.EnqueueResult, error)
}

// linkLifeChoices are the lives an operator may give a link, in days;
// defaultLinkDays is chosen first.
var linkLifeChoices = []int{1, 3, 7, 14, 30, 90}

const (
	defaultLinkDays = 7
	// maxSignedOffShown bounds the signed-off reports the list shows.
	maxSignedOffShown = 50
)

// linkView is an audio link on the alarm page.
type linkView struct {
	monitoring.AudioLink
	URL    string // while it works
	Status string
}

// audioLinks lists the alarm's links, with the URL of those that work.
func (co *Console) audioLinks(c *gin.Context, v *alarmView) {
	links, err := co.svc.AudioLinks(v.Alarm.ID)
	if err != nil {
		return
	}
	now := time.Now()
	for _, l := range links {
		lv := linkView{AudioLink: l}
		switch {
		case l.Revoked:
			lv.Status = "revoked by " + l.RevokedBy
		case !l.Usable(now):
			lv.Status = "expired"
		default:
			lv.Status = "works until " + l.Expires.UTC().Format("2006-01-02 15:04") + " UTC"
			if p, err := co.svc.AudioLinkPath(c.Request.Context(), &l); err == nil {
				lv.URL = co.origin(c) + p
			}
		}
		v.Links = append(v.Links, lv)
	}
	if r, err := co.svc.Report(v.Alarm.ID); err == nil {
		v.Report = r
	}
	if v.Alarm.IncidentID != "" {
		v.Hold, _ = co.svc.Hold(v.Alarm.IncidentID)
	}
}

// POST /ui/alarms/:id/hold and /release: reason. Puts a legal hold on the
// alarm's incident, or lifts it (supervisor; docs/retention.md).
func (co *Console) legalHold(hold bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		reason := strings.TrimSpace(c.PostForm("reason"))
		if len(reason) > monitoring.MaxTextLen {
			co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "reason", Msg: "the reason is too long"}, "", "", "")
			return
		}
		a, err := co.svc.Alarm(c.Param("id"))
		if err != nil {
			co.failed(c, err, "", "", "")
			return
		}
		if _, err := co.svc.LegalHold(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, a.IncidentID, hold, reason); err != nil {
			co.failed(c, err, "", "", "")
			return
		}
		co.done(c, a)
	}
}

// origin is the console's origin as the browser reached it, or the
// configured public URL: what goes before a link's path.
func (co *Console) origin(c *gin.Context) string {
	if co.cfg.PublicURL != "" {
		return strings.TrimRight(co.cfg.PublicURL, "/")
	}
	scheme := "https"
	if c.Request.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + c.Request.Host
}

// POST /ui/alarms/:id/audio-links: days (one of linkLifeChoices), note.
func (co *Console) makeAudioLink(c *gin.Context) {
	days, err := strconv.Atoi(c.DefaultPostForm("days", strconv.Itoa(defaultLinkDays)))
	if err != nil || days < 1 || days > 90 {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "days", Msg: "choose how many days the link works, from 1 to 90"}, "", "", "")
		return
	}
	note := strings.TrimSpace(c.PostForm("note"))
	if len(note) > maxShortField {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "note", Msg: "the note is too long"}, "", "", "")
		return
	}
	if _, err := co.svc.IssueAudioLink(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"),
		time.Duration(days)*24*time.Hour, note); err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/alarms/"+c.Param("id")+"#audio")
}

// POST /ui/alarms/:id/audio-links/:link/revoke
func (co *Console) revokeAudioLink(c *gin.Context) {
	l, err := co.svc.AudioLink(c.Param("link"))
	if err == nil && l.AlarmID != c.Param("id") {
		err = &monitoring.RuleError{Code: monitoring.CodeNotFound, Field: "link_id", Msg: "the link is not one of this alarm's"}
	}
	if err == nil {
		_, err = co.svc.RevokeAudioLink(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, l.ID)
	}
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/alarms/"+c.Param("id")+"#audio")
}

// incidentRow is a report in the list.
type incidentRow struct {
	monitoring.Report
	Worker, Org, Type string
	Overdue           bool
	DueIn             string
}

// incidentsView is the list of post-incident reports.
type incidentsView struct {
	pageBase
	Due       []incidentRow
	Overdue   int
	SignedOff []incidentRow
	Error     string
}

// GET /ui/reports/incidents: the reports due (overdue first, as they are
// the soonest due) and the latest signed off.
func (co *Console) incidentsPage(c *gin.Context) {
	v := incidentsView{pageBase: co.base(c, "Post-incident reports")}
	v.Page, v.Section = "incidents", "reports"
	names := newNamer(co.svc, nil)
	now := time.Now()
	row := func(r monitoring.Report) incidentRow {
		out := incidentRow{Report: r, Overdue: r.Overdue(now)}
		if w := names.worker(r.WorkerID); w != nil {
			out.Worker = w.Name
		}
		if o := names.org(r.OrgID); o != nil {
			out.Org = o.Name
		}
		if a, err := co.svc.Alarm(r.AlarmID); err == nil {
			out.Type = typeLabel(a.Type)
		}
		if d := r.DueAt.Sub(now); d > 0 {
			out.DueIn = "in " + ago(d)
		} else {
			out.DueIn = ago(-d) + " overdue"
		}
		return out
	}
	due, err := co.svc.ReportsDue()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	for _, r := range due {
		v.Due = append(v.Due, row(r))
		if r.Overdue(now) {
			v.Overdue++
		}
	}
	signed, err := co.svc.SignedOffReports(maxSignedOffShown)
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	for _, r := range signed {
		v.SignedOff = append(v.SignedOff, row(r))
	}
	co.render(c, http.StatusOK, "incidents", v)
}

// incidentView is one post-incident report's page.
type incidentView struct {
	pageBase
	R           *incident.Report
	Plot        *trailPlot
	LinkURL     string
	AckTime     string
	Closing     string // from the raise to the close
	AudioLength string
	Overdue     bool
	Draft       bool
	Form        string // the recommendations as sent, after a refusal
	Error       string
	ErrField    string
}

// trail returns the fixes of the alarm's device this node has seen.
func (co *Console) trail(alarmID string) []incident.Fix {
	a, err := co.svc.Alarm(alarmID)
	if err != nil || a.DeviceID == "" {
		return nil
	}
	var out []incident.Fix
	for _, f := range co.hub.trails.get(a.DeviceID) {
		out = append(out, incident.Fix{Loc: f.Loc, At: f.At})
	}
	return out
}

// GET /ui/reports/incidents/:id: the report of alarm :id.
func (co *Console) incidentPage(c *gin.Context) { co.renderIncident(c, http.StatusOK, nil, "") }

func (co *Console) renderIncident(c *gin.Context, status int, fail error, form string) {
	r, err := incident.Build(c.Request.Context(), co.svc, c.Param("id"), co.trail(c.Param("id")), time.Now())
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	v := incidentView{pageBase: co.base(c, "Post-incident report "+r.Alarm.ID), R: r,
		Draft: r.Report.State == monitoring.ReportDraft, Overdue: r.Report.Overdue(time.Now()), Form: r.Report.Recommendations}
	v.Page, v.Section = "incident", "reports"
	if r.Acked {
		v.AckTime = incident.Duration(r.AckTime)
	}
	v.Closing = incident.Duration(r.Alarm.ClosedAt.Sub(r.Alarm.RaisedAt))
	v.AudioLength = incident.Duration(r.AudioLength)
	if r.AudioLink != "" {
		v.LinkURL = co.origin(c) + r.AudioLink
	}
	fixes := make([]plotFix, len(r.Trail))
	for i, f := range r.Trail {
		fixes[i] = plotFix{Loc: f.Loc, At: f.At, Alarm: f.Alarm}
	}
	v.Plot = newTrailPlot(fixes)
	if fail != nil {
		v.Error, v.Form = ui.ErrorText(fail), form
		var re *monitoring.RuleError
		if errors.As(fail, &re) {
			v.ErrField = re.Field
		}
	}
	co.render(c, status, "incident", v)
}

// POST /ui/reports/incidents/:id: action (save or sign_off),
// recommendations.
func (co *Console) incidentPost(c *gin.Context) {
	text := c.PostForm("recommendations")
	action := monitoring.ReportSaveRecommendations
	if c.PostForm("action") == string(monitoring.ReportSignOff) {
		action = monitoring.ReportSignOff
	}
	if _, err := co.svc.ReportAction(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"), action, text); err != nil {
		co.renderIncident(c, ui.ErrorStatus(err), err, text)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/reports/incidents/"+c.Param("id"))
}

// GET /ui/reports/incidents/:id/report.pdf
func (co *Console) incidentPDF(c *gin.Context) {
	r, err := incident.Build(c.Request.Context(), co.svc, c.Param("id"), co.trail(c.Param("id")), time.Now())
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	var buf bytes.Buffer
	if err := incident.WritePDF(&buf, r, co.origin(c)); err != nil {
		c.String(http.StatusInternalServerError, "The PDF could not be made: %v", err)
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="post-incident-report-%s.pdf"`, r.Alarm.ID))
	c.Data(http.StatusOK, "application/pdf", buf.Bytes())
}
