package api

// The routes of accounts, for admins: console operators, as the console's
// operators page manages them, and the REST API's tokens
// (appliance/monitoring/apitoken.go). A token's secret is in the reply that
// made it, once; no route shows it again.
//
//	GET  /api/v1/operators                the operators, without password hashes
//	POST /api/v1/operators                create or change one
//	GET  /api/v1/tokens                   the API tokens, without their hashes
//	POST /api/v1/tokens                   make one: the reply holds the token string, once
//	POST /api/v1/tokens/:id/disable       disable one, for good

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/auth"
)

// accountService is what these routes need from the monitoring Service.
type accountService interface {
	PutOperator(ctx context.Context, cmdID, actor string, req monitoring.PutOperatorRequest) (*monitoring.Operator, error)
	Operators() ([]monitoring.Operator, error)
	CreateAPIToken(ctx context.Context, cmdID, actor, name string, role monitoring.OperatorRole) (*monitoring.NewAPIToken, error)
	DisableAPIToken(ctx context.Context, cmdID, actor, id string) (*monitoring.APIToken, error)
	APITokens() ([]monitoring.APIToken, error)
}

var _ accountService = (*monitoring.Service)(nil)

// OperatorBody is an operator account as a client writes it.
type OperatorBody struct {
	ID       string                  `json:"id"`   // the sign-in name
	Name     string                  `json:"name"` // the full name
	Role     monitoring.OperatorRole `json:"role"`
	Disabled bool                    `json:"disabled,omitempty"`
}

// OperatorRequest is the body of POST /api/v1/operators.
type OperatorRequest struct {
	Command
	Operator OperatorBody `json:"operator"`
	// Password replaces the password (monitoring.MinPasswordLen to
	// MaxPasswordLen bytes); a new operator needs one; empty keeps it. A new
	// password ends the operator's sessions.
	Password string `json:"password,omitempty"`
	Create   bool   `json:"create,omitempty"` // refuse if the operator exists
	Unlock   bool   `json:"unlock,omitempty"` // clear failed sign-ins and any lockout
}

// OperatorsResponse is the reply to GET /api/v1/operators.
type OperatorsResponse struct {
	Operators []monitoring.Operator `json:"operators"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Command
	Name string                  `json:"name"` // unique among tokens
	Role monitoring.OperatorRole `json:"role"`
}

// TokensResponse is the reply to GET /api/v1/tokens.
type TokensResponse struct {
	Tokens []monitoring.APIToken `json:"tokens"`
}

// accountRoutes adds the routes of this file to the admins' group.
func (a *api) accountRoutes(admin *gin.RouterGroup) {
	svc := a.svc
	admin.GET("/operators", func(c *gin.Context) {
		out, err := svc.Operators()
		reply(c, http.StatusOK, OperatorsResponse{Operators: nonNil(out)}, err)
	})
	admin.POST("/operators", func(c *gin.Context) { putOperator(c, svc) })
	admin.GET("/tokens", func(c *gin.Context) {
		out, err := svc.APITokens()
		reply(c, http.StatusOK, TokensResponse{Tokens: nonNil(out)}, err)
	})
	admin.POST("/tokens", func(c *gin.Context) {
		var req TokenRequest
		if !bindCommand(c, &req, &req.Command) {
			return
		}
		out, err := svc.CreateAPIToken(c.Request.Context(), req.ID, req.Actor, req.Name, req.Role)
		if err == nil {
			a.logger.Info("API token made", "token", out.Token.ID, "name", out.Token.Name, "role", out.Token.Role, logKeyActor, req.Actor)
		}
		reply(c, http.StatusCreated, out, err)
	})
	admin.POST("/tokens/:id/disable", func(c *gin.Context) {
		var req Command
		if !bindCommand(c, &req, &req) {
			return
		}
		out, err := svc.DisableAPIToken(c.Request.Context(), req.ID, req.Actor, c.Param("id"))
		reply(c, http.StatusOK, out, err)
	})
}

// POST /api/v1/operators: create or change an operator account. As on the
// console's operators page, an operator signed in to the console may
// neither disable their own account nor lower their own role.
func putOperator(c *gin.Context, svc accountService) {
	var req OperatorRequest
	if !bindCommand(c, &req, &req.Command) {
		return
	}
	o := req.Operator
	if p := auth.PrincipalOf(c); p.Kind == auth.PrincipalOperator && o.ID == p.ID && (o.Disabled || !o.Role.AtLeast(p.Role)) {
		c.JSON(http.StatusConflict, ErrorResponse{Field: "operator.role", Code: string(monitoring.CodeConflict),
			Error: "operator.role: you cannot disable your own account or lower your own role; ask another admin"})
		return
	}
	out, err := svc.PutOperator(c.Request.Context(), req.ID, req.Actor, monitoring.PutOperatorRequest{
		ID: o.ID, Name: o.Name, Role: o.Role, Disabled: o.Disabled, Password: req.Password, Create: req.Create, Unlock: req.Unlock,
	})
	status := http.StatusOK
	if req.Create {
		status = http.StatusCreated
	}
	reply(c, status, out, err)
}
