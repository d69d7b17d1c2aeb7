package auth

// Authentication of the REST API (/api/v1, ui/api). One
// middleware, APIAuth, sits in front of every API route and finds who is
// calling (the Principal), in one of three ways:
//
//   - Authorization: Bearer vgt_<id>_<secret>, an API token (replicated,
//     appliance/monitoring/apitoken.go), for tools and integrations;
//   - Authorization: Bearer <this node's setup token> (setup.go), for the
//     vigil commands run on the appliance itself (vigil status, vigil
//     cluster): whoever can read the token file can read the node's whole
//     state, so it is an admin here, and only on this node;
//   - the console's sign-in cookie, so that the console's own pages can use
//     the API (the alarm page plays /api/v1/alarms/:id/audio.wav). A
//     state-changing request with the cookie needs the CSRF token and the
//     Origin check exactly as the console's forms do (CheckCSRF).
//
// A bearer request needs no CSRF token: a browser never attaches an
// Authorization header to a request another site makes it send. A request
// with an Authorization header is judged by that header alone, never by the
// cookie, so that a wrong token fails loudly instead of passing as whoever
// is signed in in the same browser.
//
// RequireRole then checks the principal's role on each route.

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// principalContextKey holds the *Principal that APIAuth let through.
const principalContextKey = "vigil.principal"

// PrincipalKind is how a principal authenticated.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalOperator PrincipalKind = "operator" // the console's sign-in cookie
	PrincipalToken    PrincipalKind = "token"    // an API token
	PrincipalSetup    PrincipalKind = "setup"    // this node's setup token
)

// Principal is who calls the REST API.
type Principal struct {
	Kind PrincipalKind
	// ID is the operator's sign-in name, the token's ID, or this node's ID
	// for the setup token.
	ID   string
	Name string // the operator's full name, the token's name, or SetupActor
	Role monitoring.OperatorRole
	// Actor is who the audit log records for the principal's changes: the
	// operator's ID, "token:<name>", or SetupActor.
	Actor string
}

// PrincipalOf returns the principal that APIAuth let through, or nil.
func PrincipalOf(c *gin.Context) *Principal {
	v, ok := c.Get(principalContextKey)
	if !ok {
		return nil
	}
	p, _ := v.(*Principal)
	return p
}

// wwwAuthenticate is the challenge of a 401 from the API (RFC 6750).
const wwwAuthenticate = `Bearer realm="vigil"`

// apiRefuse ends an API request with status and msg as the API's error
// JSON.
func apiRefuse(c *gin.Context, status int, msg string) {
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", wwwAuthenticate)
	}
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// APIAuth returns the middleware in front of every REST API route: it lets
// a request through only with a valid API token, this node's setup token,
// or a console sign-in (with the CSRF token and Origin check for a
// state-changing request), and puts the Principal in the gin context.
// Otherwise it replies 401 (who are you?) or 403 (a cookie request that
// fails the CSRF check), as JSON naming the problem; 503 when the node
// cannot read its state; 429, before any lookup, to an address that sent
// more than badTokenBurst wrong bearer tokens lately.
func (a *Auth) APIAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		var p *Principal
		if h := c.GetHeader("Authorization"); h != "" {
			p = a.bearerPrincipal(c, h)
		} else {
			p = a.cookiePrincipal(c)
		}
		if p == nil {
			return // refused
		}
		c.Set(principalContextKey, p)
		c.Next()
	}
}

// bearerPrincipal authenticates an Authorization header, or refuses the
// request and returns nil.
func (a *Auth) bearerPrincipal(c *gin.Context, header string) *Principal {
	scheme, tok, _ := strings.Cut(header, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		apiRefuse(c, http.StatusUnauthorized, `the Authorization header must be "Bearer <token>": an API token (`+
			monitoring.APITokenPrefix+`...) or this node's setup token`)
		return nil
	}
	// Wrong tokens are counted per address, except from this machine
	// itself (vigil status on the appliance; whoever runs there can read
	// the setup token anyway).
	ip := ui.RemoteIP(c)
	limited := a.badTokens
	if a := net.ParseIP(ip); a != nil && a.IsLoopback() {
		limited = nil
	}
	if blocked, wait := limited.blocked(ip); blocked {
		c.Header("Retry-After", wait)
		apiRefuse(c, http.StatusTooManyRequests, "too many requests with a wrong token from "+ip+": wait "+wait+
			" s and check the token")
		return nil
	}
	if a.IsSetupToken(tok) {
		return &Principal{Kind: PrincipalSetup, ID: a.cfg.NodeID, Name: SetupActor, Role: monitoring.RoleAdmin, Actor: SetupActor}
	}
	if !monitoring.IsAPIToken(tok) {
		limited.allow(ip)
		apiRefuse(c, http.StatusUnauthorized, "the bearer token is neither an API token ("+monitoring.APITokenPrefix+
			"<id>_<secret>) nor this node's setup token (which works only on its own node, and changes when the node restarts)")
		return nil
	}
	t, err := a.accounts.AuthenticateAPIToken(c.Request.Context(), tok)
	if err != nil {
		var re *monitoring.RuleError
		if errors.As(err, &re) && re.Code == monitoring.CodeBadToken {
			limited.allow(ip)
			apiRefuse(c, http.StatusUnauthorized, re.Msg)
			return nil
		}
		c.Header("Retry-After", "1")
		apiRefuse(c, http.StatusServiceUnavailable, "cannot check the API token now: "+err.Error())
		return nil
	}
	return &Principal{Kind: PrincipalToken, ID: t.ID, Name: t.Name, Role: t.Role, Actor: t.Actor()}
}

// cookiePrincipal authenticates the console's sign-in cookie and checks a
// state-changing request for CSRF, or refuses the request and returns nil.
func (a *Auth) cookiePrincipal(c *gin.Context) *Principal {
	token := a.Cookie(c, SessionCookie)
	if token == "" {
		apiRefuse(c, http.StatusUnauthorized, "no credentials: send Authorization: Bearer <API token> (docs/api.md), "+
			"or sign in to the console")
		return nil
	}
	o, s, err := a.accounts.Authenticate(token)
	if err != nil {
		if !errors.Is(err, monitoring.ErrNoSession) {
			c.Header("Retry-After", "1")
			apiRefuse(c, http.StatusServiceUnavailable, ui.ErrorText(err))
			return nil
		}
		apiRefuse(c, http.StatusUnauthorized, "the console sign-in has ended or is not valid: sign in again, "+
			"or send Authorization: Bearer <API token>")
		return nil
	}
	c.Set(operatorContextKey, o)
	c.Set(sessionContextKey, s)
	c.Set(tokenContextKey, token)
	if msg := a.csrfProblem(c); msg != "" {
		apiRefuse(c, http.StatusForbidden, msg+" (A request signed in with the console's cookie needs the X-CSRF-Token "+
			"header and a same-origin Origin; a tool should send an API token instead.)")
		return nil
	}
	return &Principal{Kind: PrincipalOperator, ID: o.ID, Name: o.Name, Role: o.Role, Actor: o.ID}
}

// RequireRole returns a middleware, after APIAuth, that lets a request
// through only when the principal's role is at least min; else 403 naming
// the role needed. Without a principal (APIAuth did not run) it refuses
// with 401: a route is never open by mistake.
func RequireRole(min monitoring.OperatorRole) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := PrincipalOf(c)
		switch {
		case p == nil:
			apiRefuse(c, http.StatusUnauthorized, "not authenticated")
			return
		case !p.Role.AtLeast(min):
			apiRefuse(c, http.StatusForbidden, "this needs the "+string(min)+" role; "+p.describe()+" has the "+string(p.Role)+" role")
			return
		}
		c.Next()
	}
}

// describe names the principal in a message.
func (p *Principal) describe() string {
	switch p.Kind {
	case PrincipalToken:
		return "API token " + p.ID + " (" + p.Name + ")"
	case PrincipalSetup:
		return "the setup token"
	}
	return "operator " + p.ID
}
