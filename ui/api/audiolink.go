package api

// The routes of signed audio links and post-incident reports
// (appliance/monitoring/audiolink.go, postincident.go; docs/notifications.md).
//
//	GET  /audio/:id/audio.wav?link=&exp=&sig=      the alarm's audio by a signed link: no sign-in (also audio.ogg)
//	POST /api/v1/alarms/:id/audio-links            make a link (operator)
//	GET  /api/v1/alarms/:id/audio-links            the alarm's links (operator)
//	POST /api/v1/audio-links/:id/revoke            revoke a link (operator)
//	GET  /api/v1/reports                           reports due and signed off (supervisor)
//	GET  /api/v1/reports/:id                       one report, by alarm ID (supervisor)
//	GET  /api/v1/reports/:id/report.pdf            the report as a PDF (supervisor)
//	POST /api/v1/reports/:id/recommendations       save a draft's recommendations (supervisor)
//	POST /api/v1/reports/:id/sign-off              sign the report off (supervisor)

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/incident"
)

// linkService is what the audio link and report routes need from the
// monitoring Service.
type linkService interface {
	incident.Source
	IssueAudioLink(ctx context.Context, cmdID, actor, alarmID string, life time.Duration, note string) (*monitoring.IssuedAudioLink, error)
	RevokeAudioLink(ctx context.Context, cmdID, actor, linkID string) (*monitoring.AudioLink, error)
	OpenAudioLink(ctx context.Context, alarmID, linkID, exp, sig, remote string) (*monitoring.AudioLink, error)
	ReportsDue() ([]monitoring.Report, error)
	SignedOffReports(limit int) ([]monitoring.Report, error)
	ReportAction(ctx context.Context, cmdID, actor, alarmID string, action monitoring.ReportActionKind, recommendations string) (*monitoring.Report, error)
}

var _ linkService = (*monitoring.Service)(nil)

// maxSignedOffListed bounds the signed-off reports GET /api/v1/reports
// lists.
const maxSignedOffListed = 200

// AudioLinkBody is the body of POST /api/v1/alarms/:id/audio-links.
type AudioLinkBody struct {
	Command
	// ExpiresIn is how long the link works, a Go duration from 5m to
	// 2160h (90 days); empty for 168h (7 days).
	ExpiresIn string `json:"expires_in,omitempty"`
	Note      string `json:"note,omitempty"` // what the link is for
}

// AudioLinkView is a link as the API shows it: Path is set while the link
// works (a console address goes before it).
type AudioLinkView struct {
	monitoring.AudioLink
	Path string `json:"path,omitempty"`
}

// AudioLinksResponse is the reply to GET /api/v1/alarms/:id/audio-links.
type AudioLinksResponse struct {
	Links []AudioLinkView `json:"links"`
}

// ReportsResponse is the reply to GET /api/v1/reports.
type ReportsResponse struct {
	Due       []ReportView        `json:"due"`        // drafts, the soonest due first
	SignedOff []monitoring.Report `json:"signed_off"` // the newest sign-off first, at most 200
}

// ReportView is a draft report with whether it is overdue now.
type ReportView struct {
	monitoring.Report
	Overdue bool `json:"overdue"`
}

// RecommendationsBody is the body of POST /api/v1/reports/:id/recommendations
// and /sign-off.
type RecommendationsBody struct {
	Command
	Recommendations string `json:"recommendations"`
}

// linkRoutes adds the routes of this file: the public download to r, the
// others to their role's group.
func (a *api) linkRoutes(r gin.IRouter, g groups) {
	svc := a.svc
	h := &audioAPI{svc: a.svc, logger: a.logger}
	r.GET(monitoring.AudioLinkPathPrefix+":id/:file", func(c *gin.Context) { linkDownload(c, svc, h) })
	g.operator.POST("/alarms/:id/audio-links", func(c *gin.Context) {
		var req AudioLinkBody
		if !bindCommand(c, &req, &req.Command) {
			return
		}
		var life time.Duration
		if !parseDuration(c, "expires_in", req.ExpiresIn, &life) {
			return
		}
		out, err := svc.IssueAudioLink(c.Request.Context(), req.ID, req.Actor, c.Param("id"), life, req.Note)
		reply(c, http.StatusCreated, out, err)
	})
	g.operator.GET("/alarms/:id/audio-links", func(c *gin.Context) {
		links, err := svc.AudioLinks(c.Param("id"))
		if err != nil {
			writeServiceError(c, err)
			return
		}
		now := time.Now()
		out := AudioLinksResponse{Links: []AudioLinkView{}}
		for _, l := range links {
			v := AudioLinkView{AudioLink: l}
			if l.Usable(now) {
				if v.Path, err = svc.AudioLinkPath(c.Request.Context(), &l); err != nil {
					writeServiceError(c, err)
					return
				}
			}
			out.Links = append(out.Links, v)
		}
		c.JSON(http.StatusOK, out)
	})
	g.operator.POST("/audio-links/:id/revoke", func(c *gin.Context) {
		var req Command
		if !bindCommand(c, &req, &req) {
			return
		}
		out, err := svc.RevokeAudioLink(c.Request.Context(), req.ID, req.Actor, c.Param("id"))
		reply(c, http.StatusOK, out, err)
	})

	g.supervisor.GET("/reports", func(c *gin.Context) {
		due, err := svc.ReportsDue()
		if err != nil {
			writeServiceError(c, err)
			return
		}
		signed, err := svc.SignedOffReports(maxSignedOffListed)
		if err != nil {
			writeServiceError(c, err)
			return
		}
		out := ReportsResponse{Due: []ReportView{}, SignedOff: signed}
		now := time.Now()
		for _, r := range due {
			out.Due = append(out.Due, ReportView{Report: r, Overdue: r.Overdue(now)})
		}
		c.JSON(http.StatusOK, out)
	})
	g.supervisor.GET("/reports/:id", func(c *gin.Context) {
		out, err := svc.Report(c.Param("id"))
		reply(c, http.StatusOK, out, err)
	})
	g.supervisor.GET("/reports/:id/report.pdf", func(c *gin.Context) {
		r, err := incident.Build(c.Request.Context(), svc, c.Param("id"), nil, time.Now())
		if err != nil {
			writeServiceError(c, err)
			return
		}
		var buf bytes.Buffer
		if err := incident.WritePDF(&buf, r, ""); err != nil {
			writeError(c, err)
			return
		}
		c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="post-incident-report-%s.pdf"`, r.Alarm.ID))
		c.Data(http.StatusOK, "application/pdf", buf.Bytes())
	})
	action := func(kind monitoring.ReportActionKind) gin.HandlerFunc {
		return func(c *gin.Context) {
			var req RecommendationsBody
			if !bindCommand(c, &req, &req.Command) {
				return
			}
			out, err := svc.ReportAction(c.Request.Context(), req.ID, req.Actor, c.Param("id"), kind, req.Recommendations)
			reply(c, http.StatusOK, out, err)
		}
	}
	g.supervisor.POST("/reports/:id/recommendations", action(monitoring.ReportSaveRecommendations))
	g.supervisor.POST("/reports/:id/sign-off", action(monitoring.ReportSignOff))
}

// GET /audio/:id/audio.wav?link=&exp=&sig= (or audio.ogg): the alarm's
// audio for whoever holds a link that is signed, unexpired and not
// revoked, as a WAV or Ogg file as its codec is, whichever the name. The download is recorded (and audited) before the audio is
// served. Refusals: 403 for a link that is malformed or whose signature is
// wrong, 410 for one that expired or was revoked.
func linkDownload(c *gin.Context, svc linkService, h *audioAPI) {
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	file := c.Param("file")
	if file != "audio.wav" && file != "audio.ogg" {
		c.JSON(http.StatusNotFound, ErrorResponse{Error: "no such file: an audio link ends in audio.wav or audio.ogg"})
		return
	}
	_, err := svc.OpenAudioLink(c.Request.Context(), c.Param("id"), c.Query("link"), c.Query("exp"), c.Query("sig"), c.ClientIP())
	var re *monitoring.RuleError
	switch {
	case errors.As(err, &re) && (re.Code == monitoring.CodeLinkExpired || re.Code == monitoring.CodeLinkRevoked):
		c.JSON(http.StatusGone, ErrorResponse{Error: re.Msg, Code: string(re.Code)})
		return
	case errors.As(err, &re) && (re.Code == monitoring.CodeBadLink || re.Code == monitoring.CodeNotFound):
		c.JSON(http.StatusForbidden, ErrorResponse{Error: re.Msg, Code: string(monitoring.CodeBadLink)})
		return
	case err != nil:
		writeServiceError(c, err)
		return
	}
	// The file the audio is stored as, whichever name the link has: a link
	// made before the first chunk arrived cannot know the codec.
	if info, err := svc.AudioInfo(c.Param("id")); err == nil && info.Codec == monitoring.CodecOggOpus {
		h.ogg(c)
		return
	}
	h.wav(c)
}
