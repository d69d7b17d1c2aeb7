// Package auth finds who is calling Vigil's HTTP surface and what they may
// do, for the operator console (ui/console) and the REST API (ui/api) alike:
//
//   - the console's sign-in sessions (replicated, so a cookie works on every
//     node and a lockout holds on every node), their cookies, and the
//     Require middleware that checks a session and its role;
//   - CSRF tokens bound to the session and the Origin check on every
//     state-changing request (csrf.go);
//   - the REST API's principals: an API token, this node's setup token, or
//     the console's cookie with the same CSRF check (apiauth.go), and
//     RequireRole;
//   - the node's setup token, written at every start to a file only the
//     node's user can read, for the vigil commands run on the appliance
//     (setup.go);
//   - the per-address limits on sign-in attempts and on wrong bearer
//     tokens (ratelimit.go).
//
// An Auth is made once per node by the appliance and shared by the console
// and the API, so that they share the sessions, the setup token and the
// limits.
package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// Cookie names. With the Secure flag the session cookie takes the
// __Host- prefix, which browsers only accept from a secure origin, for the
// whole host and path /.
const (
	// SessionCookie holds a console sign-in's session token.
	SessionCookie = "vigil_session"
	// LoginCSRFCookie holds the sign-in form's CSRF token.
	LoginCSRFCookie = "vigil_login"
	// BrowserCookie holds the browser's known-browser token: a browser
	// that signed in to an account before is not slowed down by wrong
	// passwords (monitoring.LoginRequest.BrowserToken).
	BrowserCookie      = "vigil_browser"
	secureCookiePrefix = "__Host-"
	operatorContextKey = "vigil.operator"
	sessionContextKey  = "vigil.session"
	tokenContextKey    = "vigil.token"
)

// Config configures an Auth.
type Config struct {
	// NodeID names this node: the setup token's principal.
	NodeID string
	// InsecureCookies leaves the Secure flag off the cookies, so that a
	// browser keeps them over plain HTTP. For development on loopback only;
	// the appliance refuses it on other addresses.
	InsecureCookies bool
	// AllowedOrigins lists origins ("https://vigil.example.org") accepted on
	// state-changing requests besides the request's own host, for a reverse
	// proxy that changes the Host header.
	AllowedOrigins []string
	// TrustedProxies lists the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For header names the client: the address the per-address
	// limits count and the audit log records. A request from any other
	// peer is taken to come from that peer, whatever its headers say.
	TrustedProxies []string
	// SetupTokenFile is where Open writes this node's setup token
	// (setup.go); empty disables the setup token.
	SetupTokenFile string
	// LoginPath is where Require sends a browser that is not signed in, and
	// HomePath where it points one whose role is too low: the console's
	// sign-in page and alarm queue.
	LoginPath, HomePath string
}

// Accounts is what authentication needs from the monitoring Service.
type Accounts interface {
	Authenticate(token string) (*monitoring.Operator, *monitoring.OperatorSession, error)
	AuthenticateAPIToken(ctx context.Context, token string) (*monitoring.APIToken, error)
}

var _ Accounts = (*monitoring.Service)(nil)

// Auth checks console sessions, API tokens and this node's setup token.
// It is a middleware factory, so that the same sessions protect the
// console's pages and the REST API. New does no I/O; Open writes the setup
// token.
type Auth struct {
	cfg      Config
	accounts Accounts
	// logins counts sign-in attempts per address (AllowLogin).
	logins *rateLimiter
	// badTokens counts wrong API bearer tokens per address (APIAuth).
	badTokens *rateLimiter

	setupMu    sync.Mutex
	setupToken string // this node's setup token, once Open wrote it
}

// New returns an Auth over accounts. It does no I/O.
func New(cfg Config, accounts Accounts) *Auth {
	return &Auth{cfg: cfg, accounts: accounts,
		logins:    newRateLimiter(loginBurst, loginRefill),
		badTokens: newRateLimiter(badTokenBurst, badTokenRefill)}
}

// Open writes a new setup token to Config.SetupTokenFile, when set.
func (a *Auth) Open() error {
	if a.cfg.SetupTokenFile == "" {
		return nil
	}
	tok, err := writeSetupToken(a.cfg.SetupTokenFile)
	if err != nil {
		return err
	}
	a.setupMu.Lock()
	a.setupToken = tok
	a.setupMu.Unlock()
	return nil
}

// TrustedProxies returns Config.TrustedProxies, for the engine that takes
// the client's address from X-Forwarded-For (ui.RemoteIP).
func (a *Auth) TrustedProxies() []string { return a.cfg.TrustedProxies }

// InsecureCookies reports whether the cookies go without the Secure flag.
func (a *Auth) InsecureCookies() bool { return a.cfg.InsecureCookies }

// AllowLogin takes one sign-in attempt from addr out of its bucket, or
// says how many seconds to wait.
func (a *Auth) AllowLogin(addr string) (ok bool, wait string) { return a.logins.allow(addr) }

func (a *Auth) cookieName(name string) string {
	if a.cfg.InsecureCookies {
		return name
	}
	return secureCookiePrefix + name
}

// SetCookie sets a cookie for the whole host: HttpOnly, SameSite=Strict,
// and Secure unless the console runs with InsecureCookies. maxAge < 0
// deletes it.
func (a *Auth) SetCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: a.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !a.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

// Cookie returns the value of the cookie name, or "".
func (a *Auth) Cookie(c *gin.Context, name string) string {
	v, err := c.Cookie(a.cookieName(name))
	if err != nil {
		return ""
	}
	return v
}

// Require returns a middleware that lets a request through only with a
// valid session of an operator whose role is at least min, and puts the
// operator in the gin context (OperatorOf). A browser asking for a page
// (GET with Accept: text/html) is sent to the sign-in page; any other
// request gets 401 (not signed in) or 403 (role too low) as JSON, so that
// the middleware suits the REST API's routes too.
func (a *Auth) Require(min monitoring.OperatorRole) gin.HandlerFunc {
	return func(c *gin.Context) {
		op := OperatorOf(c)
		if op == nil {
			token := a.Cookie(c, SessionCookie)
			o, s, err := a.accounts.Authenticate(token)
			if err != nil {
				if !errors.Is(err, monitoring.ErrNoSession) {
					c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": ui.ErrorText(err)})
					return
				}
				a.refuseAnonymous(c)
				return
			}
			c.Set(operatorContextKey, o)
			c.Set(sessionContextKey, s)
			c.Set(tokenContextKey, token)
			op = o
		}
		if !op.Role.AtLeast(min) {
			msg := "this needs the " + string(min) + " role; you are " + string(op.Role)
			if c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html") {
				c.Abort()
				c.String(http.StatusForbidden, "This page needs the %s role; you are signed in as %s (%s).\nBack to the alarm queue: %s\n", min, op.Name, op.Role, a.cfg.HomePath)
				return
			}
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": msg})
			return
		}
		c.Next()
	}
}

func (a *Auth) refuseAnonymous(c *gin.Context) {
	if c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html") {
		next := c.Request.URL.RequestURI()
		c.Redirect(http.StatusSeeOther, a.cfg.LoginPath+"?next="+url.QueryEscape(next))
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "not signed in, or the session has ended: sign in again"})
}

// CheckCSRF returns a middleware that refuses a state-changing request
// (anything but GET, HEAD and OPTIONS) unless it comes from this origin
// (checkOrigin) and carries the CSRF token of its session, in the form
// field "csrf" or the X-CSRF-Token header. It runs after Require.
func (a *Auth) CheckCSRF() gin.HandlerFunc {
	return func(c *gin.Context) {
		if msg := a.csrfProblem(c); msg != "" {
			ui.Refuse(c, http.StatusForbidden, msg)
			return
		}
		c.Next()
	}
}

// csrfProblem returns why a state-changing request of a signed-in session
// must be refused as a possible cross-site request forgery, or "" when it
// may go on (CheckCSRF).
func (a *Auth) csrfProblem(c *gin.Context) string {
	if safeMethod(c.Request.Method) {
		return ""
	}
	if !originOK(c, a.cfg.AllowedOrigins) {
		return "The request was refused: it did not come from a page of this console."
	}
	token, _ := c.Get(tokenContextKey)
	t, _ := token.(string)
	got := c.GetHeader("X-CSRF-Token")
	if got == "" {
		got = c.PostForm("csrf")
	}
	if t == "" || !validCSRF(t, got) {
		return "The request was refused: its security token is missing or wrong. Reload the page and try again."
	}
	return ""
}

// OperatorOf returns the operator that Require let through, or nil.
func OperatorOf(c *gin.Context) *monitoring.Operator {
	v, ok := c.Get(operatorContextKey)
	if !ok {
		return nil
	}
	o, _ := v.(*monitoring.Operator)
	return o
}

// SessionTokenOf returns the session token of the request that Require or
// APIAuth let through with the console's cookie, or "".
func SessionTokenOf(c *gin.Context) string {
	v, _ := c.Get(tokenContextKey)
	t, _ := v.(string)
	return t
}

// CSRFOf returns the CSRF token of the request's session.
func CSRFOf(c *gin.Context) string {
	v, _ := c.Get(tokenContextKey)
	t, _ := v.(string)
	if t == "" {
		return ""
	}
	return csrfToken(t)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
