package console

// The escalation contacts' briefing: the alarm page's "Send the briefing"
// mails the alarm's summary to each escalation contact with an email
// address, through the outbox, once per contact (monitoring/briefing.go).

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/ui/auth"
)

// POST /ui/alarms/:id/briefing
func (co *Console) sendBriefing(c *gin.Context) {
	if _, err := co.svc.SendBriefing(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id")); err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/alarms/"+c.Param("id")+"#notifications")
}
