package api

// The outbox routes of the HTTP API: the notifications Vigil sends outside
// itself (appliance/monitoring/outbox.go) and how their delivery went.
//
//	GET /api/v1/alarms/:id/notifications       an alarm's, in the order enqueued (operator)
//	GET /api/v1/organisations/:id/notifications?limit=  an organisation's: given up, failing, due, then sent (supervisor)
//	GET /api/v1/notifications/:id              one message (supervisor)
//
// Attachments are listed by name and type, without their data. Webhook
// secrets and the relay's password are node configuration and never appear.

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// DefaultNotificationsLimit and MaxNotificationsLimit bound an
// organisation's list.
const (
	DefaultNotificationsLimit = 200
	MaxNotificationsLimit     = 1000
)

// outboxService is what the outbox routes need from the monitoring Service.
type outboxService interface {
	AlarmOutbox(alarmID string) ([]monitoring.OutboxMessage, error)
	OrgOutbox(orgID string, limit int) ([]monitoring.OutboxMessage, error)
	OutboxMessage(id string) (*monitoring.OutboxMessage, error)
}

var _ outboxService = (*monitoring.Service)(nil)

// NotificationsResponse is the reply to the list routes.
type NotificationsResponse struct {
	Notifications []monitoring.OutboxMessage `json:"notifications"`
}

// outboxRoutes adds the outbox routes to their groups.
func (a *api) outboxRoutes(g groups) {
	svc := a.svc
	g.operator.GET("/alarms/:id/notifications", func(c *gin.Context) {
		if _, err := svc.Alarm(c.Param("id")); err != nil {
			writeServiceError(c, err)
			return
		}
		out, err := svc.AlarmOutbox(c.Param("id"))
		reply(c, http.StatusOK, NotificationsResponse{Notifications: nonNil(out)}, err)
	})
	g.supervisor.GET("/organisations/:id/notifications", func(c *gin.Context) {
		limit := DefaultNotificationsLimit
		if s := c.Query("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > MaxNotificationsLimit {
				badRequest(c, "limit", fmt.Sprintf("limit %q is not a number from 1 to %d", s, MaxNotificationsLimit))
				return
			}
			limit = v
		}
		if _, err := svc.Organisation(c.Param("id")); err != nil {
			writeServiceError(c, err)
			return
		}
		out, err := svc.OrgOutbox(c.Param("id"), limit)
		reply(c, http.StatusOK, NotificationsResponse{Notifications: nonNil(out)}, err)
	})
	g.supervisor.GET("/notifications/:id", func(c *gin.Context) {
		out, err := svc.OutboxMessage(c.Param("id"))
		reply(c, http.StatusOK, out, err)
	})
}
