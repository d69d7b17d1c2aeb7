package api

// The routes of commands to devices and of Update messages: an operator
// prompts a device and reads the answer; the phone app (or an operator)
// leaves an Update message on a session. Each is a thin call into
// monitoring.Service; the gateway node holding the device's connection
// sends the prompt (broker/commands.go).

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// commandService is what these routes need from the monitoring Service.
type commandService interface {
	SendPrompt(ctx context.Context, cmdID, actor string, req monitoring.PromptRequest) (*monitoring.DevicePrompt, error)
	Prompt(id string) (*monitoring.DevicePrompt, error)
	PostUpdate(ctx context.Context, cmdID, actor string, req monitoring.PostUpdateRequest) (*monitoring.UpdateRecord, error)
	Updates(workerID string) ([]monitoring.UpdateRecord, error)
}

// UpdatesResponse is the reply to GET /api/v1/workers/:id/updates.
type UpdatesResponse struct {
	Updates []monitoring.UpdateRecord `json:"updates"`
}

var _ commandService = (*monitoring.Service)(nil)

// PromptBody is the body of POST /api/v1/devices/:id/prompt.
type PromptBody struct {
	Command
	Kind    monitoring.PromptKind `json:"kind"`               // tap_twice, call_back, message
	Text    string                `json:"text,omitempty"`     // required for message
	AlarmID string                `json:"alarm_id,omitempty"` // the alarm the prompt is about
	// ExpiresIn is how long the prompt may be answered, a Go duration;
	// empty for monitoring.DefaultPromptTTL.
	ExpiresIn string `json:"expires_in,omitempty"`
	// OverrideSilent sends the prompt although the worker has an open
	// silent alarm (duress, discreet panic): the prompt shows on the device
	// and could expose them. The override is recorded.
	OverrideSilent bool `json:"override_silent,omitempty"`
}

// UpdateBody is the body of POST /api/v1/sessions/:id/update.
type UpdateBody struct {
	Command
	Update string `json:"update"`
}

// commandRoutes adds the routes of this file to v1.
func (a *api) commandRoutes(v1 *gin.RouterGroup) {
	svc := a.svc
	v1.POST("/devices/:id/prompt", func(c *gin.Context) { sendPrompt(c, svc) })
	v1.GET("/prompts/:id", func(c *gin.Context) {
		out, err := svc.Prompt(c.Param("id"))
		reply(c, http.StatusOK, out, err)
	})
	v1.POST("/sessions/:id/update", func(c *gin.Context) { postUpdate(c, svc) })
	v1.GET("/workers/:id/updates", func(c *gin.Context) {
		out, err := svc.Updates(c.Param("id"))
		reply(c, http.StatusOK, UpdatesResponse{Updates: nonNil(out)}, err)
	})
}

// POST /api/v1/devices/:id/prompt {"id","actor","kind","text","alarm_id","expires_in","override_silent"}
func sendPrompt(c *gin.Context, svc commandService) {
	var req PromptBody
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	pr := monitoring.PromptRequest{DeviceID: c.Param("id"), AlarmID: req.AlarmID, Kind: req.Kind, Text: req.Text,
		OverrideSilent: req.OverrideSilent}
	if !parseDuration(c, "expires_in", req.ExpiresIn, &pr.TTL) {
		return
	}
	out, err := svc.SendPrompt(c.Request.Context(), req.ID, req.Actor, pr)
	if err != nil {
		writeServiceError(c, promptField(err))
		return
	}
	c.JSON(http.StatusCreated, out)
}

// promptField names the request field of a prompt's refusal: the Service
// says ttl and expires_at where the request says expires_in.
func promptField(err error) error {
	var re *monitoring.RuleError
	if errors.As(err, &re) && (re.Field == "ttl" || re.Field == "expires_at") {
		fixed := *re
		fixed.Field = "expires_in"
		return &fixed
	}
	return err
}

// POST /api/v1/sessions/:id/update {"id","actor","update"}: the session's
// Update message is replaced, and kept in the worker's history.
func postUpdate(c *gin.Context, svc commandService) {
	var req UpdateBody
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	out, err := svc.PostUpdate(c.Request.Context(), req.ID, req.Actor, monitoring.PostUpdateRequest{
		SessionID: c.Param("id"), Text: req.Update,
	})
	reply(c, http.StatusOK, out, err)
}
