package console

// The notifications page: an organisation's outbox (the messages Vigil
// sends outside itself, appliance/monitoring/outbox.go), the failures
// first, for supervisors.

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
)

// notificationsLimit is how many messages the page lists.
const notificationsLimit = 500

// noticeLabels are the kinds of notification as the console names them.
var noticeLabels = map[string]string{
	monitoring.NoticeAlarmClosed:    "Genuine alarm closed",
	monitoring.NoticeDuress:         "Duress or discreet alarm",
	monitoring.NoticeEscalation:     "Not acknowledged in time",
	monitoring.NoticeIncidentReport: "Post-incident report signed off",
	monitoring.NoticeMonthlyStats:   "Monthly statistics",
	monitoring.NoticeBriefing:       "Contacts' briefing",
}

type notificationsView struct {
	pageBase
	Orgs          []monitoring.Organisation
	OrgID         string
	OrgName       string
	Notifications []monitoring.OutboxMessage
	Failing       int // given up or failing
	Error         string
}

// GET /ui/reports/notifications?org=
func (co *Console) notificationsPage(c *gin.Context) {
	v := notificationsView{pageBase: co.base(c, "Notifications"), OrgID: c.Query("org")}
	v.Page, v.Section = "notifications", "reports"
	v.Orgs, _ = co.svc.Organisations()
	if v.OrgID == "" && len(v.Orgs) > 0 {
		v.OrgID = v.Orgs[0].ID
	}
	status := http.StatusOK
	if v.OrgID != "" {
		o, err := co.svc.Organisation(v.OrgID)
		if err != nil {
			v.Error, status = ui.ErrorText(err), ui.ErrorStatus(err)
		} else {
			v.OrgName = o.Name
			if v.Notifications, err = co.svc.OrgOutbox(v.OrgID, notificationsLimit); err != nil {
				v.Error, status = ui.ErrorText(err), ui.ErrorStatus(err)
			}
		}
	}
	for _, m := range v.Notifications {
		if m.State == monitoring.OutboxFailed || m.State == monitoring.OutboxGaveUp {
			v.Failing++
		}
	}
	co.render(c, status, "notifications", v)
}
