package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// pageBase is what every page's layout shows.
type pageBase struct {
	Title    string
	Page     string // the body's data-page, for console.js
	Section  string // the part of the console, for the navigation
	Operator *monitoring.Operator
	CSRF     string
	NodeID   string
	Now      time.Time
	// Supervisor and Admin say which parts of the console the operator
	// may open.
	Supervisor, Admin bool
}

func (co *Console) base(c *gin.Context, title string) pageBase {
	b := pageBase{Title: title, Operator: auth.OperatorOf(c), CSRF: auth.CSRFOf(c), NodeID: co.cfg.NodeID, Now: time.Now()}
	if b.Operator != nil {
		b.Supervisor = b.Operator.Role.AtLeast(monitoring.RoleSupervisor)
		b.Admin = b.Operator.Role.AtLeast(monitoring.RoleAdmin)
	}
	return b
}

// pageNames are the templates in templates/, each with layout.html.
var pageNames = []string{"login", "queue", "alarm", "sessions", "cluster", "reports", "resume", "incidents", "incident", "notifications", "monthly",
	"admin_orgs", "admin_org", "admin_workers", "admin_worker", "admin_devices", "admin_device", "admin_operators"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: cannot parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page; it renders into a buffer first, so that a
// template error is a clean 500 rather than half a page.
func (co *Console) render(c *gin.Context, status int, page string, data any) {
	var buf bytes.Buffer
	if err := co.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		co.logger.Error("console: cannot render page", "page", page, "error", err)
		c.String(http.StatusInternalServerError, "The page could not be shown: %v", err)
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

var templateFuncs = template.FuncMap{
	"clock":     clock,
	"linkDays":  func() []int { return linkLifeChoices },
	"isoTime":   isoTime,
	"typeLabel": typeLabel,
	"statusLabel": func(s monitoring.AlarmStatus) string {
		return statusLabels[s]
	},
	"resolutionLabel":   func(r monitoring.Resolution) string { return resolutionLabels[r] },
	"confirmationLabel": func(c monitoring.Confirmation) string { return confirmationLabels[c] },
	"actionLabel":       func(k monitoring.ActionKind) string { return actionLabel(k) },
	"ago":               func(t time.Time) string { return ago(time.Since(t)) },
	"metres":            metres,
	"coord":             func(f float64) string { return fmt.Sprintf("%.5f", f) },
	"percent": func(n int) string {
		if n < 0 {
			return "unknown"
		}
		return fmt.Sprintf("%d%%", n)
	},
	"add":       func(a, b int) int { return a + b },
	"newID":     ui.RandomToken, // a form's command ID
	"telDigits": telDigits,
	"noticeLabel": func(kind string) string {
		if l, ok := noticeLabels[kind]; ok {
			return l
		}
		return kind
	},
}

// telDigits returns what a tel: link dials for phone: its digits, and a
// leading +; nothing when phone holds more than digits, spaces, + - . ( ).
func telDigits(phone string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(phone) {
		switch {
		case r >= '0' && r <= '9', r == '+' && i == 0:
			b.WriteRune(r)
		case strings.ContainsRune(" -.()", r):
		default:
			return ""
		}
	}
	return b.String()
}

// clock formats t as the time of day in this node's zone; console.js
// rewrites it in the browser's.
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("15:04:05")
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ago formats a duration the way the queue's age column does.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh %02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

func metres(m float64) string {
	switch {
	case m <= 0:
		return "unknown"
	case m < 1000:
		return fmt.Sprintf("%.0f m", m)
	}
	return fmt.Sprintf("%.1f km", m/1000)
}

var typeLabels = map[monitoring.AlarmType]string{
	monitoring.AlarmRedAlert:       "Red alert",
	monitoring.AlarmDuress:         "DURESS",
	monitoring.AlarmDiscreetPanic:  "Discreet panic",
	monitoring.AlarmManDown:        "Man down",
	monitoring.AlarmMissedCheckIn:  "Missed check-in",
	monitoring.AlarmDeviceOffline:  "Device offline",
	monitoring.AlarmDeviceFlooding: "Device flooding",
	monitoring.AlarmLowBattery:     "Low battery",
	monitoring.AlarmTest:           "Test",
}

func typeLabel(t monitoring.AlarmType) string {
	if s, ok := typeLabels[t]; ok {
		return s
	}
	return string(t)
}

var statusLabels = map[monitoring.AlarmStatus]string{
	monitoring.StatusRaised:       "Waiting",
	monitoring.StatusAcknowledged: "Acknowledged",
	monitoring.StatusInProgress:   "In progress",
	monitoring.StatusClosed:       "Closed",
}

// resetStatusLabel is the status of an alarm the worker reset, which waits
// for an operator to confirm they are safe.
const resetStatusLabel = "Reset by worker: confirm safe"

var confirmationLabels = map[monitoring.Confirmation]string{
	monitoring.ConfirmedByWorker:        "I spoke to the worker: they confirmed they are safe",
	monitoring.ConfirmedByContact:       "An escalation contact confirmed the worker's welfare",
	monitoring.ConfirmedByPolice:        "The police or site security attended",
	monitoring.ConfirmedInPerson:        "Someone with the worker confirmed in person",
	monitoring.ConfirmedAccidentalPress: "Reset by the worker within the accidental-press window",
}

var resolutionLabels = map[monitoring.Resolution]string{
	monitoring.ResolutionWorkerSafe:      "Worker confirmed safe",
	monitoring.ResolutionIncidentHandled: "Incident dealt with (police or help attended)",
	monitoring.ResolutionFalseAlarm:      "False alarm",
	monitoring.ResolutionTest:            "Test alarm",
}

var actionLabels = map[monitoring.ActionKind]string{
	monitoring.ActionRaised:       "Raised",
	monitoring.ActionAcknowledged: "Acknowledged",
	monitoring.ActionCallWorker:   "Called the worker",
	monitoring.ActionListenIn:     "Listened in",
	monitoring.ActionLocationOK:   "Location verified",
	monitoring.ActionPolice:       "Police",
	monitoring.ActionContact:      "Escalation contact",
	monitoring.ActionNote:         "Note",
	monitoring.ActionDeviceCmd:    "Device command",
	monitoring.ActionClosed:       "Closed",
	monitoring.ActionReopened:     "Reopened",
	monitoring.ActionLinked:       "Linked",
	monitoring.ActionUpdate:       "Update message",
	monitoring.ActionAudioStarted: "Audio started",
	monitoring.ActionPrompt:       "Prompt sent",
	monitoring.ActionPromptAnswer: "Prompt answered",
	monitoring.ActionWorkerReset:  "Reset by the worker",
	monitoring.ActionContactDue:   "Contact due",
	monitoring.ActionFlooding:     "Device flooding",
}

func actionLabel(k monitoring.ActionKind) string {
	if s, ok := actionLabels[k]; ok {
		return s
	}
	return string(k)
}

var outcomeLabels = map[string]string{
	monitoring.CallAnsweredSafe:     "answered, safe",
	monitoring.CallAnsweredNoSpeech: "answered, no speech",
	monitoring.CallNoAnswer:         "no answer",
	monitoring.RouteURN:             "lone-worker URN",
	monitoring.Route999:             "999",
	monitoring.Route101:             "101",
	// Escalation contacts (no_answer is the call's, above).
	monitoring.ContactWelfareConfirmed: "welfare confirmed",
	monitoring.ContactBriefed:          "briefed",
	monitoring.ContactLeftMessage:      "left a message",
	"reached":                          "reached, briefed", // before the outcomes were fixed
}

// alarmRow is one alarm as the queue shows it; the queue page renders it
// and the event stream sends it as JSON.
type alarmRow struct {
	ID          string                 `json:"id"`
	Type        monitoring.AlarmType   `json:"type"`
	TypeLabel   string                 `json:"type_label"`
	Priority    int                    `json:"priority"`
	Status      monitoring.AlarmStatus `json:"status"`
	StatusLabel string                 `json:"status_label"`
	DoNotCall   bool                   `json:"do_not_call"` // duress or discreet: calling could endanger the worker
	Duress      bool                   `json:"duress"`      // a duress alarm, or a cancel with the Duress PIN
	Worker      string                 `json:"worker"`
	Org         string                 `json:"org"`
	RaisedAt    time.Time              `json:"raised_at"`
	AckBy       string                 `json:"ack_by,omitempty"`
	AckByName   string                 `json:"ack_by_name,omitempty"`
	Closed      bool                   `json:"closed"`
	Linked      bool                   `json:"linked"` // part of an incident raised earlier
	// Reset: the worker reset the alarm with the Safe PIN; it waits, at a
	// lower urgency, for an operator to confirm they are safe.
	Reset bool `json:"reset"`
	// IncidentID groups the row with the other open alarms of its
	// incident: the queue shows them under the incident's most urgent one
	// (sortRows, and console.js the same).
	IncidentID string `json:"incident_id"`
	// Where is the worker's last known place: the address they gave for
	// the session, else the newest fix as coordinates; WhereAt is the
	// fix's time. Empty when nothing is known.
	Where   string    `json:"where,omitempty"`
	WhereAt time.Time `json:"where_at,omitzero"`
	// UpdateLeft: the worker left an Update message (for the session, or a
	// standing one) that the operator must read.
	UpdateLeft bool `json:"update_left"`
	// Grouped: the row sits under another open alarm of its incident
	// (sortRows); the browser works it out again as rows change.
	Grouped bool `json:"-"`
}

// namer looks up the names the console shows, once per request or event.
type namer struct {
	svc       Monitoring
	workers   map[string]*monitoring.Worker
	orgs      map[string]*monitoring.Organisation
	operators map[string]string
}

func newNamer(svc Monitoring, ops []monitoring.Operator) *namer {
	n := &namer{svc: svc, workers: map[string]*monitoring.Worker{}, orgs: map[string]*monitoring.Organisation{}, operators: map[string]string{}}
	if ops == nil {
		if a, ok := svc.(interface {
			Operators() ([]monitoring.Operator, error)
		}); ok {
			ops, _ = a.Operators()
		}
	}
	for _, o := range ops {
		n.operators[o.ID] = o.Name
	}
	return n
}

func (n *namer) worker(id string) *monitoring.Worker {
	if id == "" {
		return nil
	}
	if w, ok := n.workers[id]; ok {
		return w
	}
	w, err := n.svc.Worker(id)
	if err != nil {
		w = nil
	}
	n.workers[id] = w
	return w
}

func (n *namer) org(id string) *monitoring.Organisation {
	if id == "" {
		return nil
	}
	if o, ok := n.orgs[id]; ok {
		return o
	}
	o, err := n.svc.Organisation(id)
	if err != nil {
		o = nil
	}
	n.orgs[id] = o
	return o
}

// operator returns an operator's name; a device or the system as such;
// else the actor as recorded.
func (n *namer) operator(id string) string {
	if name, ok := n.operators[id]; ok && name != "" {
		return name
	}
	if dev, ok := strings.CutPrefix(id, "device:"); ok {
		return "device " + dev
	}
	if id == "system" {
		return "Vigil"
	}
	return id
}

func (n *namer) row(a *monitoring.Alarm) alarmRow {
	r := alarmRow{
		ID: a.ID, Type: a.Type, TypeLabel: typeLabel(a.Type), Priority: a.Priority,
		Status: a.Status, StatusLabel: statusLabels[a.Status], DoNotCall: a.DoNotCall,
		Duress: a.Type == monitoring.AlarmDuress || a.DuressCancel, RaisedAt: a.RaisedAt,
		AckBy: a.AckBy, Closed: a.Status == monitoring.StatusClosed, Linked: a.IncidentID != a.ID,
		Worker: "unknown worker", Org: "", Reset: a.AwaitingConfirmation(),
	}
	if r.Reset {
		r.StatusLabel = resetStatusLabel
	}
	if a.DuressCancel && a.Type != monitoring.AlarmDuress {
		r.TypeLabel += " (DURESS PIN)"
	}
	if w := n.worker(a.WorkerID); w != nil {
		r.Worker = w.Name
	} else if a.WorkerID != "" {
		r.Worker = a.WorkerID
	} else if a.DeviceID != "" {
		r.Worker = "no worker: device " + a.DeviceID + " is assigned to no one"
	}
	if o := n.org(a.OrgID); o != nil {
		r.Org = o.Name
	} else {
		r.Org = a.OrgID
	}
	if a.AckBy != "" {
		r.AckByName = n.operator(a.AckBy)
	}
	r.IncidentID = a.IncidentID
	if r.IncidentID == "" {
		r.IncidentID = a.ID
	}
	var sess *monitoring.Session
	if a.SessionID != "" {
		if s, err := n.svc.Session(a.SessionID); err == nil {
			sess = s
		}
	}
	r.Where, r.WhereAt = n.where(a, sess)
	if sess != nil && sess.Update != "" {
		r.UpdateLeft = true
	} else if w := n.worker(a.WorkerID); w != nil && w.LastUpdate != "" {
		r.UpdateLeft = true
	}
	return r
}

// where returns the worker's last known place for alarm a: the address
// typed for the session, the newest fix (the alarm's own, or the device's
// later one) as coordinates, or both.
func (n *namer) where(a *monitoring.Alarm, s *monitoring.Session) (string, time.Time) {
	fix := a.Location
	if a.DeviceID != "" {
		if d, err := n.svc.Device(a.DeviceID); err == nil && d.Location != nil &&
			(fix == nil || d.Location.At.After(fix.At)) {
			fix = d.Location
		}
	}
	var parts []string
	if s != nil && s.Location != nil && s.Location.Address != "" {
		parts = append(parts, s.Location.Address)
	}
	var at time.Time
	if fix != nil {
		c := fmt.Sprintf("%.5f, %.5f", fix.Lat, fix.Lon)
		if fix.Accuracy > 0 {
			c += fmt.Sprintf(" ±%.0f m", fix.Accuracy)
		}
		parts = append(parts, c)
		at = fix.At
	}
	return strings.Join(parts, " · "), at
}

// sortRows orders the queue: the alarms the worker reset after the others,
// then by priority, then oldest first; and the open alarms of one incident
// together, under the incident's first alarm in that order. console.js
// sorts the same way.
func sortRows(rows []alarmRow) {
	base := func(a, b alarmRow) int {
		switch {
		case a.Reset != b.Reset:
			if a.Reset {
				return 1
			}
			return -1
		case a.Priority != b.Priority:
			return a.Priority - b.Priority
		case !a.RaisedAt.Equal(b.RaisedAt):
			return a.RaisedAt.Compare(b.RaisedAt)
		}
		return strings.Compare(a.ID, b.ID)
	}
	slices.SortFunc(rows, base)
	head := map[string]int{} // incident -> the position of its first row
	for i, r := range rows {
		if _, ok := head[r.IncidentID]; !ok {
			head[r.IncidentID] = i
		}
	}
	slices.SortStableFunc(rows, func(a, b alarmRow) int {
		return head[a.IncidentID] - head[b.IncidentID]
	})
	for i := range rows {
		rows[i].Grouped = i > 0 && rows[i-1].IncidentID == rows[i].IncidentID
	}
}

// cssClass is the row's class list, for the queue template.
func (r alarmRow) CSSClass() string {
	c := []string{"alarm", "type-" + strings.ReplaceAll(string(r.Type), "_", "-"), fmt.Sprintf("p%d", min(r.Priority, 5)), "status-" + string(r.Status)}
	if r.Duress {
		c = append(c, "duress")
	}
	if r.DoNotCall {
		c = append(c, "dnc")
	}
	if r.Reset {
		c = append(c, "reset")
	}
	if r.Grouped {
		c = append(c, "grouped")
	}
	return strings.Join(c, " ")
}
