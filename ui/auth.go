package ui

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Cookie names. With the Secure flag the session cookie takes the
// __Host- prefix, which browsers only accept from a secure origin, for the
// whole host and path /.
const (
	sessionCookie       = "vigil_session"
	loginCSRFCookie     = "vigil_login"
	secureCookiePrefix  = "__Host-"
	operatorContextKey  = "vigil.operator"
	sessionContextKey   = "vigil.session"
	tokenContextKey     = "vigil.token"
	maxLoginFieldLength = 300
)

// Auth checks console sessions. It is a middleware factory, so that the
// same sessions protect other routes too (the REST API, apiauth.go).
type Auth struct {
	accounts Accounts
	cfg      *Config
}

func (a *Auth) cookieName(name string) string {
	if a.cfg.InsecureCookies {
		return name
	}
	return secureCookiePrefix + name
}

// setCookie sets a cookie for the whole host: HttpOnly, SameSite=Strict,
// and Secure unless the console runs with InsecureCookies. maxAge < 0
// deletes it.
func (a *Auth) setCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: a.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !a.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

func (a *Auth) cookie(c *gin.Context, name string) string {
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
			token := a.cookie(c, sessionCookie)
			o, s, err := a.accounts.Authenticate(token)
			if err != nil {
				if !errors.Is(err, monitoring.ErrNoSession) {
					c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": errorText(err)})
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
				c.String(http.StatusForbidden, "This page needs the %s role; you are signed in as %s (%s).\nBack to the alarm queue: %s/\n", min, op.Name, op.Role, Prefix)
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
		c.Redirect(http.StatusSeeOther, Prefix+"/login?next="+url.QueryEscape(next))
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
			refuse(c, http.StatusForbidden, msg)
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

// csrfOf returns the CSRF token of the request's session.
func csrfOf(c *gin.Context) string {
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

// refuse ends a request with status and message, as JSON for the
// console's script and as a short page for a form.
func refuse(c *gin.Context, status int, msg string) {
	if wantsJSON(c) || c.Request.Method != http.MethodPost {
		c.AbortWithStatusJSON(status, gin.H{"error": msg})
		return
	}
	c.Abort()
	c.Status(status)
	c.Header("Content-Type", "text/plain; charset=utf-8")
	_, _ = c.Writer.WriteString(msg + "\n")
}

// remoteIP is the address the request came from (proxies are not
// trusted: gin's trusted proxies are off).
func remoteIP(c *gin.Context) string {
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		return c.Request.RemoteAddr
	}
	return host
}

// loginView is what the sign-in page shows.
type loginView struct {
	pageBase
	CSRF     string
	User     string
	Next     string
	Error    string
	Insecure bool
}

// safeNext returns next if it is a path inside the console, else the
// queue: the sign-in page never sends the browser elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return Prefix + "/"
	}
	return next
}

// GET /ui/login
func (co *Console) loginPage(c *gin.Context) {
	if o, _, err := co.svc.Authenticate(co.auth.cookie(c, sessionCookie)); err == nil && o != nil {
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		return
	}
	co.renderLogin(c, http.StatusOK, "", "", safeNext(c.Query("next")))
}

// renderLogin renders the sign-in page with a new login CSRF token (a
// cookie and the same value in the form).
func (co *Console) renderLogin(c *gin.Context, status int, user, msg, next string) {
	tok := randomToken()
	co.auth.setCookie(c, loginCSRFCookie, tok, 3600)
	co.render(c, status, "login", loginView{
		pageBase: co.base(c, "Sign in"), CSRF: tok, User: user, Next: next, Error: msg,
		Insecure: co.cfg.InsecureCookies,
	})
}

// POST /ui/login: user, password, csrf, next.
func (co *Console) loginPost(c *gin.Context) {
	user := strings.TrimSpace(c.PostForm("user"))
	pw := c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	if len(user) > maxLoginFieldLength || len(pw) > monitoring.MaxPasswordLen {
		co.renderLogin(c, http.StatusBadRequest, "", "Wrong user name or password.", next)
		return
	}
	cookie := co.auth.cookie(c, loginCSRFCookie)
	if cookie == "" || !equalTokens(cookie, c.PostForm("csrf")) {
		co.renderLogin(c, http.StatusForbidden, user, "The sign-in form had expired. Please sign in again.", next)
		return
	}
	if ok, wait := co.limiter.allow(remoteIP(c)); !ok {
		c.Header("Retry-After", wait)
		co.renderLogin(c, http.StatusTooManyRequests, user, "Too many sign-in attempts from this computer. Wait "+wait+" seconds and try again.", next)
		return
	}
	in, err := co.svc.Login(c.Request.Context(), randomToken(), monitoring.LoginRequest{
		OperatorID: user, Password: pw, Remote: remoteIP(c), TTL: co.cfg.SessionTTL,
	})
	if err != nil {
		status, msg := errorStatus(err), errorText(err)
		switch {
		case errors.Is(err, monitoring.ErrLoginFailed):
			msg = "Wrong user name or password."
		case errors.Is(err, monitoring.ErrLocked):
			msg = "This account is locked after too many wrong passwords. " + msg + ". A supervisor or administrator can unlock it."
		case status == http.StatusServiceUnavailable:
			msg = "Cannot sign in now: the cluster did not answer (fewer than two appliances up?). Try again in a moment; " +
				"operators already signed in keep working."
		}
		co.logger.Info("console sign-in refused", "user", user, "remote", remoteIP(c), "error", err)
		co.renderLogin(c, status, user, msg, next)
		return
	}
	co.auth.setCookie(c, loginCSRFCookie, "", -1)
	co.auth.setCookie(c, sessionCookie, in.Token, int(co.cfg.SessionTTL.Seconds()))
	co.logger.Info("console sign-in", "operator", in.Operator.ID, "remote", remoteIP(c))
	c.Redirect(http.StatusSeeOther, next)
}

// POST /ui/logout
func (co *Console) logout(c *gin.Context) {
	v, _ := c.Get(tokenContextKey)
	token, _ := v.(string)
	// The cookie goes whatever happens; if the cluster could not record the
	// sign-out, the session ends when it expires.
	co.auth.setCookie(c, sessionCookie, "", -1)
	if _, err := co.svc.EndSessions(c.Request.Context(), randomToken(), token); err != nil { // and the sessions handed over from or to it
		co.logger.Warn("console sign-out not recorded", "operator", OperatorOf(c).ID, "error", err)
	}
	if wantsJSON(c) {
		c.JSON(http.StatusOK, gin.H{"signed_out": true})
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/login")
}
