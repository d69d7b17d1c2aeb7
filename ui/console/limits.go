package console

import (
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/ui"
)

// MaxFormBytes bounds the body of every console request that carries one
// (the forms, the setup routes' JSON), read before anything else looks at
// it: the sign-in form is open to anyone.
const MaxFormBytes = 64 << 10

// limitForms bounds the body of a request to MaxFormBytes and refuses a
// multipart body: the console's forms and its scripts send URL-encoded
// fields, and a multipart upload would be written to temporary files
// before any check. A URL-encoded form is read here, so that a body over
// the limit is refused with 413 rather than read as missing fields.
func (co *Console) limitForms(c *gin.Context) {
	if c.Request.Body == nil || c.Request.Body == http.NoBody || safeMethod(c.Request.Method) {
		c.Next()
		return
	}
	if c.Request.ContentLength > MaxFormBytes {
		tooLarge(c)
		return
	}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "multipart/form-data", "multipart/mixed":
		c.Header("Connection", "close")
		ui.Refuse(c, http.StatusUnsupportedMediaType, "The console's forms are sent URL-encoded; a multipart upload is refused.")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxFormBytes)
	if mt == "application/x-www-form-urlencoded" {
		if err := c.Request.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				tooLarge(c)
				return
			}
			ui.Refuse(c, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
	}
	c.Next()
}

// tooLarge refuses a body over MaxFormBytes and closes the connection, so
// that the rest is not read.
func tooLarge(c *gin.Context) {
	c.Header("Connection", "close")
	ui.Refuse(c, http.StatusRequestEntityTooLarge, "The request is larger than the console takes ("+
		strconv.Itoa(MaxFormBytes>>10)+" KiB).")
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
