package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
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

// loginFailedMessage is the one answer to a refused sign-in: an unknown
// account, a wrong password and an account slowed down by wrong passwords
// get the same status and the same text.
const loginFailedMessage = "Wrong user name or password. After several wrong passwords, an account makes " +
	"browsers that have not signed in to it before wait a while: try again in a few minutes, " +
	"or from a computer you have signed in from."

// POST /ui/login: user, password, csrf, next.
func (co *Console) loginPost(c *gin.Context) {
	user := strings.TrimSpace(c.PostForm("user"))
	pw := c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	if len(user) > maxLoginFieldLength || len(pw) > monitoring.MaxPasswordLen {
		co.renderLogin(c, http.StatusUnauthorized, "", loginFailedMessage, next)
		return
	}
	cookie := co.auth.Cookie(c, auth.LoginCSRFCookie)
	if cookie == "" || !auth.EqualTokens(cookie, c.PostForm("csrf")) {
		co.renderLogin(c, http.StatusForbidden, user, "The sign-in form had expired. Please sign in again.", next)
		return
	}
	remote := ui.RemoteIP(c)
	browser := co.auth.Cookie(c, auth.BrowserCookie)
	// A browser that signed in to this account before is not counted
	// against its address: others behind the same address (a NAT, a
	// proxy) may be guessing.
	if !co.svc.KnowsBrowser(user, browser) {
		if ok, wait := co.auth.AllowLogin(remote); !ok {
			c.Header("Retry-After", wait)
			co.renderLogin(c, http.StatusTooManyRequests, user, "Too many sign-in attempts from this address. Wait "+wait+
				" seconds and try again; a browser that has signed in to this account before is not held back.", next)
			return
		}
	}
	in, err := co.svc.Login(c.Request.Context(), ui.RandomToken(), monitoring.LoginRequest{
		OperatorID: user, Password: pw, Remote: remote, TTL: co.cfg.SessionTTL, BrowserToken: browser,
	})
	if err != nil {
		status, msg := ui.ErrorStatus(err), ui.ErrorText(err)
		switch {
		case errors.Is(err, monitoring.ErrLoginFailed):
			status, msg = http.StatusUnauthorized, loginFailedMessage
		case errors.Is(err, monitoring.ErrBusy):
			c.Header("Retry-After", strconv.Itoa(busyRetryAfter))
			msg = "The appliance is busy checking other sign-ins. Try again in a few seconds."
		case status == http.StatusServiceUnavailable:
			msg = "Cannot sign in now: the cluster did not answer (fewer than two appliances up?). Try again in a moment; " +
				"operators already signed in keep working."
		}
		co.logger.Info("console sign-in refused", "user", user, "remote", remote, "error", err)
		co.renderLogin(c, status, user, msg, next)
		return
	}
	co.auth.SetCookie(c, auth.LoginCSRFCookie, "", -1)
	co.auth.SetCookie(c, auth.SessionCookie, in.Token, int(co.cfg.SessionTTL.Seconds()))
	co.auth.SetCookie(c, auth.BrowserCookie, in.BrowserToken, int(monitoring.KnownBrowserTTL.Seconds()))
	co.logger.Info("console sign-in", "operator", in.Operator.ID, "remote", remote)
	c.Redirect(http.StatusSeeOther, next)
}

// busyRetryAfter is the Retry-After, in seconds, of a sign-in refused
// because the node's password checks are all taken.
const busyRetryAfter = 3

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
