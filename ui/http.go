package ui

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// ErrorStatus chooses the HTTP status of a Service error.
func ErrorStatus(err error) int {
	var re *monitoring.RuleError
	if errors.As(err, &re) {
		switch re.Code {
		case monitoring.CodeNotFound:
			return http.StatusNotFound
		case monitoring.CodeInvalid, monitoring.CodeNeedResolution, monitoring.CodeNeedConfirmation, monitoring.CodeURNRefused, monitoring.CodeNeedBriefing:
			return http.StatusUnprocessableEntity
		case monitoring.CodeLoginFailed, monitoring.CodeNoSession, monitoring.CodeBadToken:
			return http.StatusUnauthorized
		case monitoring.CodeLocked, monitoring.CodeDisabled:
			return http.StatusForbidden
		case monitoring.CodeUpgrading:
			return http.StatusServiceUnavailable
		}
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
}

// ErrorText is what an operator reads about a Service error: a refusal's
// own message, or for anything else that the cluster cannot take the
// change now.
func ErrorText(err error) string {
	var re *monitoring.RuleError
	if errors.As(err, &re) {
		return re.Msg
	}
	return "The change was not saved: the cluster did not answer (" + err.Error() + "). Try again; a retry is safe."
}

// WantsJSON reports whether the request came from a script (the console's
// fetch calls, a tool), which reads JSON, rather than from a form.
func WantsJSON(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "application/json")
}

// Refuse ends a request with status and message, as JSON for a script and
// for anything but a form's POST, and as a short text page for a form.
func Refuse(c *gin.Context, status int, msg string) {
	if WantsJSON(c) || c.Request.Method != http.MethodPost {
		c.AbortWithStatusJSON(status, gin.H{"error": msg})
		return
	}
	c.Abort()
	c.Status(status)
	c.Header("Content-Type", "text/plain; charset=utf-8")
	_, _ = c.Writer.WriteString(msg + "\n")
}

// RemoteIP is the address the request came from: the TCP peer, or, when
// the peer is one of the engine's trusted proxies (auth.Config's
// TrustedProxies), the client its X-Forwarded-For header names (the
// right-most address that is not a trusted proxy).
func RemoteIP(c *gin.Context) string {
	if ip := c.ClientIP(); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		return c.Request.RemoteAddr
	}
	return host
}

// RandomToken returns 256 random bits, base64url: form tokens, session
// tokens and command IDs.
func RandomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("ui: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
