package ui

// The local operator API, for the vigil operator command: it creates the
// first admin at set-up, and lets whoever administers the appliance itself
// reset a password or unlock an account when no admin can sign in.
//
// It is authorised by a bearer token that the node writes, at every start,
// to a file in its data directory readable only by the user the node runs
// as (SetupTokenFileName). Whoever can read that file can already read the
// node's whole state, so the token gives nothing more; nobody reaching the
// node over the network alone can use it.
//
//	GET  /ui/setup/operators    the operators, without password hashes
//	POST /ui/setup/operators    create or change one (SetupOperatorRequest)

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// SetupActor is the actor of the local operator API's changes in the audit
// log.
const SetupActor = "local-setup"

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

// writeSetupToken writes a new random token to path, readable only by
// this user, and returns it.
func writeSetupToken(path string) (string, error) {
	tok := randomToken()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cannot write the console setup token: %w", err)
	}
	return tok, nil
}

func (co *Console) setupRoutes(g *gin.RouterGroup) {
	g.Use(co.requireSetupToken)
	g.GET("/operators", co.setupListOperators)
	g.POST("/operators", co.setupPutOperator)
}

// requireSetupToken lets a request through only with the bearer token
// from the token file.
func (co *Console) requireSetupToken(c *gin.Context) {
	co.setupMu.Lock()
	want := co.setupToken
	co.setupMu.Unlock()
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if want == "" || !ok || !equalTokens(want, strings.TrimSpace(got)) {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "the local operator API needs the token from the node's data directory (" + SetupTokenFileName + "): run vigil operator on the appliance"})
		return
	}
	c.Next()
}

// GET /ui/setup/operators
func (co *Console) setupListOperators(c *gin.Context) {
	ops, err := co.svc.Operators()
	if err != nil {
		c.JSON(errorStatus(err), gin.H{"error": errorText(err)})
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
	o, err := co.svc.PutOperator(c.Request.Context(), randomToken(), SetupActor, monitoring.PutOperatorRequest{
		ID: req.ID, Name: req.Name, Role: req.Role, Disabled: req.Disabled,
		Password: req.Password, Create: req.Create, Unlock: req.Unlock,
	})
	if err != nil {
		body := gin.H{"error": err.Error()}
		var re *monitoring.RuleError
		if errors.As(err, &re) {
			body["error"], body["field"], body["code"] = re.Msg, re.Field, string(re.Code)
		}
		c.JSON(errorStatus(err), body)
		return
	}
	co.logger.Info("operator changed through the local setup API", "operator", o.ID, "role", o.Role)
	c.JSON(http.StatusOK, o)
}
