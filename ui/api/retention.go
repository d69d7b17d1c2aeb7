package api

// The routes of legal holds (appliance/monitoring/retention.go;
// docs/retention.md).
//
//	GET  /api/v1/incidents/:id/hold     the incident's legal hold, or null (operator)
//	POST /api/v1/incidents/:id/hold     put a legal hold on the incident, with a reason (supervisor)
//	POST /api/v1/incidents/:id/release  lift the hold, with a reason (supervisor)

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// holdService is what the legal hold routes need from the monitoring
// Service.
type holdService interface {
	LegalHold(ctx context.Context, cmdID, actor, incidentID string, hold bool, reason string) (*monitoring.LegalHold, error)
	Hold(incidentID string) (*monitoring.LegalHold, error)
}

var _ holdService = (*monitoring.Service)(nil)

// HoldBody is the body of POST /api/v1/incidents/:id/hold and /release.
type HoldBody struct {
	Command
	Reason string `json:"reason"` // required: why the hold is put or lifted
}

// HoldResponse is the reply of the hold routes: the hold, null when the
// incident has none.
type HoldResponse struct {
	IncidentID string                `json:"incident_id"`
	Hold       *monitoring.LegalHold `json:"hold"`
}

func (a *api) holdRoutes(g groups) {
	svc := a.svc
	g.operator.GET("/incidents/:id/hold", func(c *gin.Context) {
		h, err := svc.Hold(c.Param("id"))
		reply(c, http.StatusOK, &HoldResponse{IncidentID: c.Param("id"), Hold: h}, err)
	})
	put := func(hold bool) gin.HandlerFunc {
		return func(c *gin.Context) {
			var req HoldBody
			if !bindCommand(c, &req, &req.Command) {
				return
			}
			h, err := svc.LegalHold(c.Request.Context(), req.ID, req.Actor, c.Param("id"), hold, req.Reason)
			reply(c, http.StatusOK, &HoldResponse{IncidentID: c.Param("id"), Hold: h}, err)
		}
	}
	g.supervisor.POST("/incidents/:id/hold", put(true))
	g.supervisor.POST("/incidents/:id/release", put(false))
}
