package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/ui"
)

// csrfLabel is mixed into the CSRF token, so that the token is bound to
// the session yet tells nothing of the session token.
const csrfLabel = "vigil console csrf v1"

// csrfToken returns the synchronizer token of a session: an HMAC of a
// fixed label keyed by the session token. Every node computes the same
// token from the cookie, with nothing more to replicate, and a page from
// one session is useless in another.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte(csrfLabel))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF reports whether got is the CSRF token of sessionToken.
func validCSRF(sessionToken, got string) bool {
	return got != "" && EqualTokens(csrfToken(sessionToken), got)
}

// EqualTokens compares two secrets in constant time.
func EqualTokens(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// CheckOrigin returns a middleware that refuses a state-changing request
// unless it comes from this origin or an allowed one (OriginOK).
func (a *Auth) CheckOrigin() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !safeMethod(c.Request.Method) && !a.OriginOK(c) {
			ui.Refuse(c, http.StatusForbidden, "The request was refused: it did not come from a page of this console.")
			return
		}
		c.Next()
	}
}

// OriginOK reports whether the request's Origin header (else its Referer)
// names this host, or one of Config.AllowedOrigins. A browser always sends Origin on a
// cross-site POST, so a page elsewhere cannot post here; a request with
// neither header is refused too.
func (a *Auth) OriginOK(c *gin.Context) bool {
	return originOK(c, a.cfg.AllowedOrigins)
}

func originOK(c *gin.Context, allowed []string) bool {
	origin := c.GetHeader("Origin")
	if origin == "" || origin == "null" {
		origin = ""
		if ref, err := url.Parse(c.GetHeader("Referer")); err == nil && ref.Host != "" {
			origin = ref.Scheme + "://" + ref.Host
		}
	}
	return sameOrigin(origin, c.Request.Host, allowed)
}

// sameOrigin reports whether origin is http(s)://host, or listed in
// allowed.
func sameOrigin(origin, host string, allowed []string) bool {
	if origin == "" {
		return false
	}
	if slices.Contains(allowed, strings.TrimRight(origin, "/")) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" && u.Path != "/" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}
