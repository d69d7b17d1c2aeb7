package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
)

// Limits of the alarm page's form fields, in bytes.
const (
	maxShortField = 200
	maxCmdID      = 200
)

// alarmView is what the alarm page shows, most important first.
type alarmView struct {
	pageBase
	Alarm     *monitoring.Alarm
	Row       alarmRow
	Worker    *monitoring.Worker
	Org       *monitoring.Organisation
	Device    *monitoring.Device
	Session   *monitoring.Session
	Incident  []alarmRow // the other alarms of its incident
	Timeline  []timelineRow
	Location  *monitoring.Location // the newest fix known
	Plot      *trailPlot
	Update    *updateView
	Audio     *audioView
	Links     []linkView            // the alarm's audio links (postincident.go)
	Report    *monitoring.Report    // its post-incident report, if it has one
	Hold      *monitoring.LegalHold // its incident's legal hold, if it has one (postincident.go)
	Steps     []stepView
	StepsLeft []string // the titles of the steps not done, for the close form
	Contacts  []contactView
	// BriefingTo is how many contacts have an email: the briefing button
	// is shown when there is one (briefing.go).
	BriefingTo int
	// URNs are the organisation's police URNs, one per force, and
	// URNEligible and URNWhy whether a call on one may be made about this
	// alarm (monitoring.URNFor); LegacyURNs: the worker still has URNs of
	// their own, which are no longer used.
	URNs        []monitoring.ForceURN
	URNEligible bool
	URNWhy      string
	LegacyURNs  bool
	// Reminder, when set, is the escalation contact due now (escalation.go).
	Reminder *reminderView
	// NeedBriefing: a genuine close needs a contact briefed or a reason
	// why not, and none is briefed yet.
	NeedBriefing bool

	Mine        bool   // the signed-in operator holds it
	HeldBy      string // the name of the operator who holds it, if another
	CanTakeover bool
	CanReopen   bool
	Closed      bool

	Error           string // a refusal to show at the top
	ErrorField      string
	FormNote        string // the close form as it was sent, after a refusal
	FormReason      string
	FormBriefing    string // the close form's reason why no contact was briefed
	Resolutions     []resolutionOption
	Resolution      monitoring.Resolution
	Confirmations   []option
	Confirmation    monitoring.Confirmation
	CallOutcomes    []option
	ContactOutcomes []option
	Routes          []option
	ListenChoices   []option  // the lengths of listen-in offered, in seconds
	ListenDefault   string    // the one chosen at first
	ListeningUntil  time.Time // a listen-in request runs until then; zero if none
	ClosedBy        string    // the name of the operator who closed it
	// Notifications are the messages sent outside Vigil about the alarm
	// (the outbox), in the order enqueued.
	Notifications []monitoring.OutboxMessage
}

type option struct{ Value, Label string }

type resolutionOption struct {
	Value monitoring.Resolution
	Label string
}

type timelineRow struct {
	At     time.Time
	Actor  string
	Kind   monitoring.ActionKind
	Label  string
	Detail string
}

type updateView struct {
	Text  string
	At    time.Time
	Where string
}

type audioView struct {
	URL      string
	Type     string
	Duration string
	Chunks   int
	Live     bool
}

type stepView struct {
	N     int
	Title string
	Text  string
	Note  string // the note that logs it
	Done  bool
	By    string
	At    time.Time
}

type contactView struct {
	Name, Phone, Relation string
	Email                 string // where the briefing goes, if anywhere
	Last                  string // the last outcome logged
	LastAt                time.Time
	Source                string // "worker" or "organisation"
	// Briefed: the last outcome was briefed or welfare confirmed; Missed:
	// no answer or a message left.
	Briefed, Missed bool
	// Next: the escalation moves on to this contact at DueAt; Due: that
	// time has come.
	Next, Due bool
	DueAt     time.Time
}

// reminderView is the banner of an escalation contact due: who to call,
// and why (the contact before did not answer, or nobody was called).
type reminderView struct {
	Contact *contactView // nil when none is left, or none on file
	None    string       // why there is no one to call
	Why     string       // "Alex Smith did not answer"
	Since   time.Time    // of Why
}

// contactOutcomes are what an operator logs after calling a contact.
var contactOutcomes = []option{
	{monitoring.ContactWelfareConfirmed, "Welfare confirmed"},
	{monitoring.ContactBriefed, "Briefed"},
	{monitoring.ContactNoAnswer, "No answer"},
	{monitoring.ContactLeftMessage, "Left a message"},
}

func stepNote(n int, title string) string { return fmt.Sprintf("Procedure step %d done: %s", n, title) }

// cmdID returns the form's command ID, so that a form sent twice is
// applied once, or a new one.
func cmdID(c *gin.Context) string {
	id := c.PostForm("cmd_id")
	if id == "" || len(id) > maxCmdID {
		return ui.RandomToken()
	}
	return "ui-" + id
}

// loadAlarmView reads everything the alarm page shows.
func (co *Console) loadAlarmView(c *gin.Context, id string) (*alarmView, error) {
	a, err := co.svc.Alarm(id)
	if err != nil {
		return nil, err
	}
	op := auth.OperatorOf(c)
	names := newNamer(co.svc, nil)
	v := &alarmView{pageBase: co.base(c, typeLabel(a.Type)+" alarm"), Alarm: a, Row: names.row(a)}
	v.Page = "alarm"
	v.Worker, v.Org = names.worker(a.WorkerID), names.org(a.OrgID)
	if a.DeviceID != "" {
		v.Device, _ = co.svc.Device(a.DeviceID)
	}
	if a.SessionID != "" {
		v.Session, _ = co.svc.Session(a.SessionID)
	}
	v.Closed = a.Status == monitoring.StatusClosed
	v.Mine = a.AckBy != "" && a.AckBy == op.ID
	if a.AckBy != "" && !v.Mine {
		v.HeldBy = names.operator(a.AckBy)
	}
	v.CanTakeover = v.HeldBy != "" && !v.Closed && op.Role.AtLeast(monitoring.RoleSupervisor)
	v.CanReopen = v.Closed && op.Role.AtLeast(monitoring.RoleSupervisor)
	if a.IncidentID != "" {
		if inc, err := co.svc.Incident(a.IncidentID); err == nil {
			for i := range inc {
				if inc[i].ID != a.ID {
					v.Incident = append(v.Incident, names.row(&inc[i]))
				}
			}
		}
	}
	tl, err := co.svc.Timeline(a.ID)
	if err != nil {
		return nil, err
	}
	for _, e := range tl {
		v.Timeline = append(v.Timeline, timelineRow{At: e.At, Actor: names.operator(e.Actor), Kind: e.Kind,
			Label: actionLabel(e.Kind), Detail: entryDetail(e)})
		if e.Kind == monitoring.ActionUpdate {
			v.Update = &updateView{Text: e.Text, At: e.At, Where: updateWhere(e.Reference)}
		}
	}
	if v.Update == nil && a.IncidentID != "" && a.IncidentID != a.ID {
		// A linked alarm raised outside the session shows the Update left
		// for the session of its incident's first alarm: the same visit.
		if first, err := co.svc.Alarm(a.IncidentID); err == nil && first.SessionID != "" && first.WorkerID == a.WorkerID {
			if s, err := co.svc.Session(first.SessionID); err == nil && s.Update != "" {
				v.Update = &updateView{Text: s.Update, Where: "for the session of the incident's first alarm"}
			}
		}
	}
	if v.Update == nil && v.Worker != nil && v.Worker.LastUpdate != "" {
		v.Update = &updateView{Text: v.Worker.LastUpdate, At: v.Worker.LastUpdateAt, Where: "standing Update"}
	}
	co.locate(v)
	co.audio(v)
	co.audioLinks(c, v)
	v.procedure(tl, names)
	v.contacts(tl)
	if chk, err := co.svc.URNFor(a.ID); err == nil {
		v.URNs, v.URNEligible, v.URNWhy = chk.URNs, chk.Eligible, chk.Why
	}
	v.LegacyURNs = v.Worker != nil && len(v.Worker.URNs) > 0
	v.Resolutions = make([]resolutionOption, 0, len(monitoring.Resolutions))
	for _, r := range monitoring.Resolutions {
		v.Resolutions = append(v.Resolutions, resolutionOption{Value: r, Label: resolutionLabels[r]})
	}
	v.Confirmations = make([]option, 0, len(monitoring.Confirmations))
	for _, c := range monitoring.Confirmations {
		v.Confirmations = append(v.Confirmations, option{Value: string(c), Label: confirmationLabels[c]})
	}
	v.CallOutcomes = []option{
		{monitoring.CallAnsweredSafe, "Answered, safe"},
		{monitoring.CallAnsweredNoSpeech, "Answered, no speech"},
		{monitoring.CallNoAnswer, "No answer"},
	}
	v.Routes = []option{{monitoring.Route999, "999"}, {monitoring.Route101, "101"}}
	v.ContactOutcomes = contactOutcomes
	for _, n := range listenChoices {
		label := fmt.Sprintf("%d s", n)
		if n%60 == 0 {
			label = fmt.Sprintf("%d min", n/60)
		}
		v.ListenChoices = append(v.ListenChoices, option{Value: strconv.Itoa(n), Label: label})
	}
	v.ListenDefault = strconv.Itoa(monitoring.DefaultListenSeconds)
	if a.Listening(time.Now()) {
		v.ListeningUntil = a.ListenUntil
	}
	if a.ClosedBy != "" {
		v.ClosedBy = names.operator(a.ClosedBy)
	}
	if v.Notifications, err = co.svc.AlarmOutbox(a.ID); err != nil {
		return nil, err
	}
	return v, nil
}

func updateWhere(ref string) string {
	switch {
	case strings.HasPrefix(ref, "session/"):
		return "for the session"
	case strings.HasPrefix(ref, "worker/"):
		return "standing Update"
	}
	return ""
}

// entryDetail is the details column of a timeline entry.
func entryDetail(e monitoring.TimelineEntry) string {
	var parts []string
	switch e.Kind {
	case monitoring.ActionRaised:
		return typeLabel(monitoring.AlarmType(e.Text))
	case monitoring.ActionContactDue:
		return e.Text // names the contact already
	}
	if e.Contact != "" {
		parts = append(parts, e.Contact)
	}
	if e.Force != "" {
		parts = append(parts, e.Force)
	}
	if e.Route != "" {
		parts = append(parts, "via "+outcomeText(e.Route))
	}
	if e.URN != "" {
		parts = append(parts, "URN "+e.URN)
	}
	if e.Outcome != "" {
		if e.Kind == monitoring.ActionClosed {
			parts = append(parts, resolutionLabels[monitoring.Resolution(e.Outcome)])
			if e.Confirmation != "" {
				parts = append(parts, confirmationLabels[e.Confirmation])
			}
		} else {
			parts = append(parts, outcomeText(e.Outcome))
		}
	}
	if e.Reference != "" && e.Kind == monitoring.ActionPolice {
		parts = append(parts, "reference "+e.Reference)
	}
	if e.Text != "" {
		parts = append(parts, e.Text)
	}
	return strings.Join(parts, " · ")
}

func outcomeText(s string) string {
	if l, ok := outcomeLabels[s]; ok {
		return l
	}
	for _, o := range contactOutcomes {
		if o.Value == s {
			return o.Label
		}
	}
	return s
}

// locate finds the newest fix and the trail to plot: the device's fixes
// this node has seen, the device's last fix, and where the alarm was
// raised.
func (co *Console) locate(v *alarmView) {
	a := v.Alarm
	var fixes []plotFix
	if a.DeviceID != "" {
		for _, f := range co.hub.trails.get(a.DeviceID) {
			fixes = append(fixes, plotFix{Loc: f.Loc, At: f.At})
		}
	}
	if d := v.Device; d != nil && d.Location != nil {
		at := d.Location.At
		if at.IsZero() {
			at = d.LastSeen
		}
		if !hasFix(fixes, *d.Location) {
			fixes = append(fixes, plotFix{Loc: *d.Location, At: at})
		}
		v.Location = d.Location
	}
	if a.Location != nil {
		at := a.Location.At
		if at.IsZero() {
			at = a.RaisedAt
		}
		fixes = append(fixes, plotFix{Loc: *a.Location, At: at, Alarm: true})
		if v.Location == nil {
			v.Location = a.Location
		}
	}
	v.Plot = newTrailPlot(fixes)
}

func hasFix(fs []plotFix, l monitoring.Location) bool {
	for _, f := range fs {
		if f.Loc.Lat == l.Lat && f.Loc.Lon == l.Lon {
			return true
		}
	}
	return false
}

// audio describes the alarm's audio, if its device sent some.
func (co *Console) audio(v *alarmView) {
	info, err := co.svc.AudioInfo(v.Alarm.ID)
	if err != nil || info == nil || info.Chunks == 0 {
		return
	}
	av := &audioView{Chunks: info.Chunks, Live: !v.Closed}
	switch info.Codec {
	case monitoring.CodecOggOpus:
		av.URL, av.Type = "/api/v1/alarms/"+v.Alarm.ID+"/audio.ogg", "audio/ogg"
	default:
		av.URL, av.Type = "/api/v1/alarms/"+v.Alarm.ID+"/audio.wav", "audio/wav"
	}
	if info.Duration > 0 {
		av.Duration = ago(info.Duration)
	}
	v.Audio = av
}

// procedure makes the organisation's procedure a checklist: a step is done
// once its note is on the timeline.
func (v *alarmView) procedure(tl []monitoring.TimelineEntry, names *namer) {
	if v.Org == nil {
		return
	}
	for i, s := range v.Org.ProcedureSteps {
		st := stepView{N: i + 1, Title: s.Title, Text: s.Text, Note: stepNote(i+1, s.Title)}
		action := s.Action
		if action == "" {
			action = stepAction(s.Title)
		}
		for _, e := range tl {
			if (e.Kind == monitoring.ActionNote && e.Text == st.Note) || (action != "" && e.Kind == action) {
				st.Done, st.By, st.At = true, names.operator(e.Actor), e.At
				break
			}
		}
		v.Steps = append(v.Steps, st)
		if !st.Done {
			v.StepsLeft = append(v.StepsLeft, st.Title)
		}
	}
}

// stepWords tick a procedure step that names no action by the words of
// its title: the action that does it. In order: the first match wins.
var stepWords = []struct {
	words  []string
	action monitoring.ActionKind
}{
	{[]string{"acknowledge", "take the alarm"}, monitoring.ActionAcknowledged},
	{[]string{"listen"}, monitoring.ActionListenIn},
	{[]string{"location", "where the worker is"}, monitoring.ActionLocationOK},
	{[]string{"police", "999", "urn"}, monitoring.ActionPolice},
	{[]string{"escalation contact", "contacts", "next of kin", "manager"}, monitoring.ActionContact},
	{[]string{"call the worker", "phone the worker", "call back", "ring the worker"}, monitoring.ActionCallWorker},
}

// stepAction returns the action a step's title names, or "".
func stepAction(title string) monitoring.ActionKind {
	t := strings.ToLower(title)
	for _, sw := range stepWords {
		for _, w := range sw.words {
			if strings.Contains(t, w) {
				return sw.action
			}
		}
	}
	return ""
}

// contacts lists the escalation contacts, in order (the worker's, else the
// organisation's), each with what was logged last.
func (v *alarmView) contacts(tl []monitoring.TimelineEntry) {
	var cs []monitoring.Contact
	src := "worker"
	if v.Worker != nil {
		cs = v.Worker.Contacts
	}
	if len(cs) == 0 && v.Org != nil {
		cs, src = v.Org.Contacts, "organisation"
	}
	a := v.Alarm
	for i, c := range cs {
		cv := contactView{Name: c.Name, Phone: c.Phone, Relation: c.Relation, Email: c.Email, Source: src}
		if c.Email != "" {
			v.BriefingTo++
		}
		for _, e := range tl {
			if e.Kind == monitoring.ActionContact && strings.EqualFold(strings.TrimSpace(e.Contact), strings.TrimSpace(c.Name)) {
				cv.Last, cv.LastAt = outcomeText(e.Outcome), e.At
				cv.Briefed = monitoring.Briefed(e.Outcome)
				cv.Missed = e.Outcome == monitoring.ContactNoAnswer || e.Outcome == monitoring.ContactLeftMessage
			}
		}
		if !a.ContactDueAt.IsZero() && a.ContactDue == i && a.Status != monitoring.StatusClosed {
			cv.Next, cv.Due, cv.DueAt = true, a.ContactOverdue, a.ContactDueAt
		}
		v.Contacts = append(v.Contacts, cv)
	}
	v.reminder(tl)
	briefed := slices.ContainsFunc(tl, func(e monitoring.TimelineEntry) bool {
		return e.Kind == monitoring.ActionContact && monitoring.Briefed(e.Outcome)
	})
	v.NeedBriefing = !briefed && monitoring.BriefingRequired(a.Type)
}

// reminder fills the banner of the escalation contact due, once its time
// has come (Alarm.ContactOverdue).
func (v *alarmView) reminder(tl []monitoring.TimelineEntry) {
	a := v.Alarm
	if !a.ContactOverdue || a.Status == monitoring.StatusClosed {
		return
	}
	r := &reminderView{}
	switch {
	case len(v.Contacts) == 0:
		r.None = "No escalation contacts on file: tell the supervisor."
	case a.ContactDue < len(v.Contacts):
		r.Contact = &v.Contacts[a.ContactDue]
	default:
		r.None = "No escalation contact left to call: tell the supervisor."
	}
	for _, e := range tl { // the last contact entry says why
		if e.Kind != monitoring.ActionContact {
			continue
		}
		r.Since = e.At
		switch e.Outcome {
		case monitoring.ContactLeftMessage:
			r.Why = "a message was left for " + e.Contact
		default:
			r.Why = e.Contact + " did not answer"
		}
	}
	if r.Why == "" && !a.AckAt.IsZero() {
		r.Why, r.Since = "no escalation contact called since the alarm was acknowledged", a.AckAt
	}
	v.Reminder = r
}

// GET /ui/alarms/:id
func (co *Console) alarmPage(c *gin.Context) {
	co.renderAlarm(c, http.StatusOK, nil, "", "", "")
}

// renderAlarm renders the alarm page, with a refusal at the top when err
// is set, and the close and reopen forms as they were sent.
func (co *Console) renderAlarm(c *gin.Context, status int, fail error, note, reason string, res monitoring.Resolution) {
	v, err := co.loadAlarmView(c, c.Param("id"))
	if err != nil {
		if errors.Is(err, monitoring.ErrNotFound) {
			c.String(http.StatusNotFound, "No such alarm.")
			return
		}
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	if fail != nil {
		v.Error = ui.ErrorText(fail)
		var re *monitoring.RuleError
		if errors.As(fail, &re) {
			v.ErrorField = re.Field
		}
		v.FormNote, v.FormReason, v.Resolution = note, reason, res
		v.FormBriefing = c.GetString(formBriefingKey)
	}
	co.render(c, status, "alarm", v)
}

// done answers a successful action: JSON for the console's script, else a
// redirect back to the alarm page (post, redirect, get).
func (co *Console) done(c *gin.Context, a *monitoring.Alarm) {
	if ui.WantsJSON(c) {
		c.JSON(http.StatusOK, gin.H{"ok": true, "row": newNamer(co.svc, nil).row(a)})
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/alarms/"+a.ID)
}

// failed answers a refused action.
func (co *Console) failed(c *gin.Context, err error, note, reason string, res monitoring.Resolution) {
	status := ui.ErrorStatus(err)
	if errors.Is(err, monitoring.ErrNeedResolution) {
		err = &monitoring.RuleError{Code: monitoring.CodeNeedResolution, Field: "resolution",
			Msg: "Not closed: choose a resolution first (how did the alarm end?)."}
	}
	if ui.WantsJSON(c) {
		body := gin.H{"error": ui.ErrorText(err)}
		var re *monitoring.RuleError
		if errors.As(err, &re) && re.Field != "" {
			body["field"] = re.Field
		}
		c.JSON(status, body)
		return
	}
	co.renderAlarm(c, status, err, note, reason, res)
}

// POST /ui/alarms/:id/acknowledge: csrf, cmd_id, takeover=1 to take an
// alarm another operator holds (supervisors).
func (co *Console) acknowledge(c *gin.Context) {
	op := auth.OperatorOf(c)
	takeover := c.PostForm("takeover") == "1"
	if takeover && !op.Role.AtLeast(monitoring.RoleSupervisor) {
		ui.Refuse(c, http.StatusForbidden, "Only a supervisor can take over an alarm another operator holds.")
		return
	}
	a, err := co.svc.Acknowledge(c.Request.Context(), cmdID(c), op.ID, c.Param("id"), takeover)
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	co.done(c, a)
}

// POST /ui/alarms/:id/actions: kind, and as the kind needs outcome, force,
// route, reference, contact, text.
func (co *Console) logAction(c *gin.Context) {
	e := monitoring.TimelineEntry{
		Kind:      monitoring.ActionKind(c.PostForm("kind")),
		Outcome:   c.PostForm("outcome"),
		Force:     strings.TrimSpace(c.PostForm("force")),
		Route:     c.PostForm("route"),
		Reference: strings.TrimSpace(c.PostForm("reference")),
		Contact:   c.PostForm("contact"),
		Text:      strings.TrimSpace(c.PostForm("text")),
	}
	for _, f := range []struct{ name, v string }{
		{"kind", string(e.Kind)}, {"outcome", e.Outcome}, {"force", e.Force}, {"route", e.Route},
		{"reference", e.Reference}, {"contact", e.Contact},
	} {
		if len(f.v) > maxShortField {
			co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: f.name, Msg: fmt.Sprintf("%s is longer than %d characters", f.name, maxShortField)}, "", "", "")
			return
		}
	}
	if len(e.Text) > monitoring.MaxTextLen {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "text", Msg: fmt.Sprintf("the note is longer than %d characters", monitoring.MaxTextLen)}, "", "", "")
		return
	}
	a, err := co.svc.LogAction(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"), e)
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	co.done(c, a)
}

// formBriefingKey keeps the close form's reason why no contact was briefed
// for the page shown after a refusal.
const formBriefingKey = "vigil.no_briefing_reason"

// POST /ui/alarms/:id/close: resolution and confirmation (required), note,
// no_briefing_reason (why no escalation contact was briefed: needed for a
// genuine close without one).
func (co *Console) closeAlarm(c *gin.Context) {
	res := monitoring.Resolution(c.PostForm("resolution"))
	conf := monitoring.Confirmation(c.PostForm("confirmation"))
	note := strings.TrimSpace(c.PostForm("note"))
	why := strings.TrimSpace(c.PostForm("no_briefing_reason"))
	if len(note) > monitoring.MaxTextLen || len(res) > maxShortField || len(conf) > maxShortField {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "note", Msg: "the note is too long"}, note, "", res)
		return
	}
	if len(why) > monitoring.MaxTextLen {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "no_briefing_reason", Msg: "the reason is too long"}, note, "", res)
		return
	}
	a, err := co.svc.Close(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"), res, conf, note, why)
	if err != nil {
		c.Set(formBriefingKey, why)
		co.failed(c, err, note, "", res)
		return
	}
	co.done(c, a)
}

// consolePrompts are the prompts the alarm page offers, by kind: what the
// worker's device shows.
var consolePrompts = map[monitoring.PromptKind]string{
	monitoring.PromptTapTwice: "Tap twice if you need help",
	monitoring.PromptCallBack: "Call the monitoring centre",
}

// POST /ui/alarms/:id/prompt: kind (tap_twice or call_back). The prompt
// goes to the alarm's device; it is refused while the worker has an open
// silent alarm (the Service's rule), and the page offers none on a
// do-not-call alarm.
func (co *Console) prompt(c *gin.Context) {
	kind := monitoring.PromptKind(c.PostForm("kind"))
	if _, ok := consolePrompts[kind]; !ok {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "kind", Msg: "ask the device to tap twice or to call back"}, "", "", "")
		return
	}
	a, err := co.svc.Alarm(c.Param("id"))
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	switch {
	case a.DeviceID == "":
		err = &monitoring.RuleError{Code: monitoring.CodeConflict, Field: "alarm_id", Msg: "this alarm has no device to ask"}
	case a.DoNotCall:
		err = &monitoring.RuleError{Code: monitoring.CodeConflict, Field: "kind", Msg: "do not prompt the device: an onlooker could see it (duress or discreet alarm in this incident)"}
	case a.Status == monitoring.StatusClosed:
		err = &monitoring.RuleError{Code: monitoring.CodeAlarmClosed, Field: "alarm_id", Msg: "the alarm is closed"}
	}
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	if _, err := co.svc.SendPrompt(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, monitoring.PromptRequest{
		DeviceID: a.DeviceID, AlarmID: a.ID, Kind: kind}); err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	if a, err = co.svc.Alarm(a.ID); err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	co.done(c, a)
}

// listenChoices are the lengths of listen-in the alarm page offers, in
// seconds.
var listenChoices = []int{60, monitoring.DefaultListenSeconds, 300, monitoring.MaxListenSeconds}

// POST /ui/alarms/:id/listen: seconds (one of listenChoices; empty for the
// default). The alarm's device is asked to stream its audio without
// showing anything, so it is offered for silent alarms too: covert
// listening is how a duress alarm is verified. The request is on the
// timeline as a listen_in entry by the operator, and audited.
func (co *Console) listen(c *gin.Context) {
	seconds := 0
	if v := c.PostForm("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "seconds", Msg: "seconds is not a whole number"}, "", "", "")
			return
		}
		seconds = n
	}
	a, err := co.svc.RequestListen(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"), seconds)
	if err != nil {
		co.failed(c, err, "", "", "")
		return
	}
	co.done(c, a)
}

// POST /ui/alarms/:id/reopen: reason (required); supervisors.
func (co *Console) reopen(c *gin.Context) {
	reason := strings.TrimSpace(c.PostForm("reason"))
	if len(reason) > monitoring.MaxTextLen {
		co.failed(c, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "reason", Msg: "the reason is too long"}, "", reason, "")
		return
	}
	a, err := co.svc.Reopen(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, c.Param("id"), reason)
	if err != nil {
		co.failed(c, err, "", reason, "")
		return
	}
	co.done(c, a)
}
