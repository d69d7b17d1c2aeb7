package console

// The local operator API, for the vigil operator and vigil token commands:
// it creates the first admin at set-up, lets whoever administers the
// appliance itself reset a password or unlock an account when no admin can
// sign in, and makes and disables API tokens for tools.
//
// It is authorised by a bearer token that the node writes, at every start,
// to a file in its data directory readable only by the user the node runs
// as (auth.SetupTokenFileName). Whoever can read that file can already read the
// node's whole state, so the token gives nothing more; nobody reaching the
// node over the network alone can use it. The same token is an admin on
// this node's REST API (ui/auth), for vigil status and vigil cluster.
//
//	GET  /ui/setup/operators               the operators, without password hashes
//	POST /ui/setup/operators               create or change one (SetupOperatorRequest)
//	GET  /ui/setup/tokens                  the API tokens, without their hashes
//	POST /ui/setup/tokens                  make one (SetupTokenRequest); the reply holds its secret, once
//	POST /ui/setup/tokens/:id/disable      disable one for good

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// SetupOperatorRequest is the body of POST /ui/setup/operators.
type SetupOperatorRequest struct {
	ID       string                  `json:"id"`   // the sign-in name
	Name     string                  `json:"name"` // the full name
	Role     monitoring.OperatorRole `json:"role"`
	Disabled bool                    `json:"disabled,omitempty"`
	Password string                  `json:"password,omitempty"` // empty keeps the password
	Create   bool                    `json:"create,omitempty"`   // refuse if the operator exists
	Unlock   bool                    `json:"unlock,omitempty"`   // clear failed sign-ins and any lockout
}

// SetupOperatorsResponse is the reply to GET /ui/setup/operators.
type SetupOperatorsResponse struct {
	Operators []monitoring.Operator `json:"operators"`
}

// SetupTokenRequest is the body of POST /ui/setup/tokens.
type SetupTokenRequest struct {
	Name string                  `json:"name"` // unique among tokens; the audit log records "token:<name>"
	Role monitoring.OperatorRole `json:"role"`
}

// SetupTokensResponse is the reply to GET /ui/setup/tokens.
type SetupTokensResponse struct {
	Tokens []monitoring.APIToken `json:"tokens"`
}

func (co *Console) setupRoutes(g *gin.RouterGroup) {
	g.Use(co.auth.RequireSetupToken)
	g.GET("/operators", co.setupListOperators)
	g.POST("/operators", co.setupPutOperator)
	g.GET("/tokens", co.setupListTokens)
	g.POST("/tokens", co.setupCreateToken)
	g.POST("/tokens/:id/disable", co.setupDisableToken)
}

// GET /ui/setup/operators
func (co *Console) setupListOperators(c *gin.Context) {
	ops, err := co.svc.Operators()
	if err != nil {
		c.JSON(ui.ErrorStatus(err), gin.H{"error": ui.ErrorText(err)})
		return
	}
	c.JSON(http.StatusOK, SetupOperatorsResponse{Operators: ops})
}

// POST /ui/setup/operators
func (co *Console) setupPutOperator(c *gin.Context) {
	var req SetupOperatorRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": "the body is not the expected JSON object: " + err.Error()})
		return
	}
	o, err := co.svc.PutOperator(c.Request.Context(), ui.RandomToken(), auth.SetupActor, monitoring.PutOperatorRequest{
		ID: req.ID, Name: req.Name, Role: req.Role, Disabled: req.Disabled,
		Password: req.Password, Create: req.Create, Unlock: req.Unlock,
	})
	if err != nil {
		setupError(c, err)
		return
	}
	co.logger.Info("operator changed through the local setup API", "operator", o.ID, "role", o.Role)
	c.JSON(http.StatusOK, o)
}

// setupError replies to a refusal of the Service with its message, field
// and code.
func setupError(c *gin.Context, err error) {
	body := gin.H{"error": err.Error()}
	var re *monitoring.RuleError
	if errors.As(err, &re) {
		body["error"], body["field"], body["code"] = re.Msg, re.Field, string(re.Code)
	}
	c.JSON(ui.ErrorStatus(err), body)
}

// GET /ui/setup/tokens
func (co *Console) setupListTokens(c *gin.Context) {
	ts, err := co.svc.APITokens()
	if err != nil {
		setupError(c, err)
		return
	}
	c.JSON(http.StatusOK, SetupTokensResponse{Tokens: ts})
}

// POST /ui/setup/tokens {"name","role"}: the reply is a
// monitoring.NewAPIToken, whose secret is shown this once.
func (co *Console) setupCreateToken(c *gin.Context) {
	var req SetupTokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": "the body is not the expected JSON object: " + err.Error()})
		return
	}
	t, err := co.svc.CreateAPIToken(c.Request.Context(), ui.RandomToken(), auth.SetupActor, req.Name, req.Role)
	if err != nil {
		setupError(c, err)
		return
	}
	co.logger.Info("API token made through the local setup API", "token", t.Token.ID, "name", t.Token.Name, "role", t.Token.Role)
	c.JSON(http.StatusCreated, t)
}

// POST /ui/setup/tokens/:id/disable
func (co *Console) setupDisableToken(c *gin.Context) {
	t, err := co.svc.DisableAPIToken(c.Request.Context(), ui.RandomToken(), auth.SetupActor, c.Param("id"))
	if err != nil {
		setupError(c, err)
		return
	}
	co.logger.Info("API token disabled through the local setup API", "token", t.ID, "name", t.Name)
	c.JSON(http.StatusOK, t)
}
