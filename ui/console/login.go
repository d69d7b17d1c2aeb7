package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// maxLoginFieldLength is the longest user name the sign-in form takes.
const maxLoginFieldLength = 300

// loginView is what the sign-in page shows.
type loginView struct {
	pageBase
	CSRF     string
	User     string
	Next     string
	Error    string
	Insecure bool
	// NoAccounts is set while no operator account exists at all: the page
	// then says how to make the first administrator.
	NoAccounts bool
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
	if o, _, err := co.svc.Authenticate(co.auth.Cookie(c, auth.SessionCookie)); err == nil && o != nil {
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		return
	}
	co.renderLogin(c, http.StatusOK, "", "", safeNext(c.Query("next")))
}

// renderLogin renders the sign-in page with a new login CSRF token (a
// cookie and the same value in the form).
func (co *Console) renderLogin(c *gin.Context, status int, user, msg, next string) {
	tok := ui.RandomToken()
	co.auth.SetCookie(c, auth.LoginCSRFCookie, tok, 3600)
	ops, err := co.svc.Operators()
	co.render(c, status, "login", loginView{
		pageBase: co.base(c, "Sign in"), CSRF: tok, User: user, Next: next, Error: msg,
		Insecure: co.auth.InsecureCookies(), NoAccounts: err == nil && len(ops) == 0,
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
	cookie := co.auth.Cookie(c, auth.LoginCSRFCookie)
	if cookie == "" || !auth.EqualTokens(cookie, c.PostForm("csrf")) {
		co.renderLogin(c, http.StatusForbidden, user, "The sign-in form had expired. Please sign in again.", next)
		return
	}
	if ok, wait := co.auth.AllowLogin(ui.RemoteIP(c)); !ok {
		c.Header("Retry-After", wait)
		co.renderLogin(c, http.StatusTooManyRequests, user, "Too many sign-in attempts from this computer. Wait "+wait+" seconds and try again.", next)
		return
	}
	in, err := co.svc.Login(c.Request.Context(), ui.RandomToken(), monitoring.LoginRequest{
		OperatorID: user, Password: pw, Remote: ui.RemoteIP(c), TTL: co.cfg.SessionTTL,
	})
	if err != nil {
		status, msg := ui.ErrorStatus(err), ui.ErrorText(err)
		switch {
		case errors.Is(err, monitoring.ErrLoginFailed):
			msg = "Wrong user name or password."
		case errors.Is(err, monitoring.ErrLocked):
			msg = "This account is locked after too many wrong passwords. " + msg + ". A supervisor or administrator can unlock it."
		case status == http.StatusServiceUnavailable:
			msg = "Cannot sign in now: the cluster did not answer (fewer than two appliances up?). Try again in a moment; " +
				"operators already signed in keep working."
		}
		co.logger.Info("console sign-in refused", "user", user, "remote", ui.RemoteIP(c), "error", err)
		co.renderLogin(c, status, user, msg, next)
		return
	}
	co.auth.SetCookie(c, auth.LoginCSRFCookie, "", -1)
	co.auth.SetCookie(c, auth.SessionCookie, in.Token, int(co.cfg.SessionTTL.Seconds()))
	co.logger.Info("console sign-in", "operator", in.Operator.ID, "remote", ui.RemoteIP(c))
	c.Redirect(http.StatusSeeOther, next)
}

// POST /ui/logout
func (co *Console) logout(c *gin.Context) {
	token := auth.SessionTokenOf(c)
	// The cookie goes whatever happens; if the cluster could not record the
	// sign-out, the session ends when it expires.
	co.auth.SetCookie(c, auth.SessionCookie, "", -1)
	if _, err := co.svc.EndSessions(c.Request.Context(), ui.RandomToken(), token); err != nil { // and the sessions handed over from or to it
		co.logger.Warn("console sign-out not recorded", "operator", auth.OperatorOf(c).ID, "error", err)
	}
	if ui.WantsJSON(c) {
		c.JSON(http.StatusOK, gin.H{"signed_out": true})
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/login")
}
