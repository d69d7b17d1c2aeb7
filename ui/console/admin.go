package console

// The admin pages: organisations with their response procedures and
// escalation contacts, workers and their PINs (set and reset, never
// shown), devices (enrolling one makes its credentials and shows them
// once, with a configuration bundle), and operator accounts. Admins only.
//
// Every form is a plain HTML form: post, then redirect to the page that
// shows the result; a refusal shows the form again as it was sent, with
// the reason at the top, except PINs and passwords, which are never sent
// back to the browser.

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui"
	"github.com/vigilarc/vigil/ui/auth"
	"github.com/vigilarc/vigil/ui/enrol"
)

// Blank rows each list form offers for new entries.
const (
	blankSteps    = 3
	blankContacts = 2
	blankURNs     = 1
)

// newRecord is the ID in a URL that asks for the form of a new record.
const newRecord = "new"

// adminBase is what every admin page shows.
func (co *Console) adminBase(c *gin.Context, title, page string) pageBase {
	b := co.base(c, title)
	b.Page, b.Section = page, "admin"
	return b
}

// fieldLabels names the Service's fields as the forms call them.
var fieldLabels = map[string]string{
	"org.id": "Organisation ID", "org.name": "Name", "org.procedure": "Procedure",
	"worker.id": "Worker ID", "worker.name": "Name", "worker.org_id": "Organisation",
	"device.id": "Device ID", "device.kind": "Kind", "device.org_id": "Organisation", "device.worker_id": "Worker",
	"safe_pin": "Safe PIN", "duress_pin": "Duress PIN", "password": "Password",
	"operator.id": "User name", "operator.name": "Full name", "operator.role": "Role",
}

// formError is the text of a refused form: the field, then the reason.
func formError(err error) (msg, field string) {
	var re *monitoring.RuleError
	if !errors.As(err, &re) {
		return ui.ErrorText(err), ""
	}
	label := cmp.Or(fieldLabels[re.Field], urnFieldLabel(re.Field))
	if label == "" && re.Field != "" {
		label = strings.NewReplacer("org.", "", "worker.", "", "device.", "", "_ns", "", "_", " ").Replace(re.Field)
	}
	if label == "" {
		return re.Msg, ""
	}
	return label + ": " + re.Msg, re.Field
}

// fmtDur formats a duration for a form field: "45m", "1h30m", "" for 0.
func fmtDur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseDur reads a duration field; empty is 0 (the default).
func parseDur(c *gin.Context, name, label string) (time.Duration, error) {
	s := strings.TrimSpace(c.PostForm(name))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: name,
			Msg: fmt.Sprintf("%s: %q is not a duration such as 45m or 1h30m", label, s)}
	}
	return d, nil
}

// rows reads the list fields names[0][], names[1][]... of a form as rows,
// leaving out rows where every field is blank.
func rows(c *gin.Context, names ...string) [][]string {
	cols := make([][]string, len(names))
	n := 0
	for i, name := range names {
		cols[i] = c.PostFormArray(name)
		n = max(n, len(cols[i]))
	}
	var out [][]string
	for r := range min(n, 100) {
		row := make([]string, len(names))
		blank := true
		for i := range names {
			if r < len(cols[i]) {
				row[i] = strings.TrimSpace(cols[i][r])
			}
			blank = blank && row[i] == ""
		}
		if !blank {
			out = append(out, row)
		}
	}
	return out
}

// tooLong refuses a form with a field longer than the state takes.
func tooLong(c *gin.Context) error {
	if err := c.Request.ParseForm(); err != nil {
		return &monitoring.RuleError{Code: monitoring.CodeInvalid, Msg: "the form could not be read"}
	}
	for k, vs := range c.Request.PostForm {
		for _, v := range vs {
			if len(v) > monitoring.MaxTextLen {
				return &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: k, Msg: fmt.Sprintf("is longer than %d characters", monitoring.MaxTextLen)}
			}
		}
	}
	return nil
}

// ---- organisations ----

type orgRow struct {
	monitoring.Organisation
	Workers, Devices int
}

type adminOrgsView struct {
	pageBase
	Orgs  []orgRow
	Saved string
	Error string
}

// GET /ui/admin/organisations
func (co *Console) adminOrgs(c *gin.Context) {
	v := adminOrgsView{pageBase: co.adminBase(c, "Organisations", "admin_orgs"), Saved: c.Query("saved")}
	orgs, err := co.svc.Organisations()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	workers, _ := co.svc.Workers("")
	devices, _ := co.svc.Devices()
	wn, dn := map[string]int{}, map[string]int{}
	for _, w := range workers {
		wn[w.OrgID]++
	}
	for _, d := range devices {
		dn[d.OrgID]++
	}
	for _, o := range orgs {
		v.Orgs = append(v.Orgs, orgRow{Organisation: o, Workers: wn[o.ID], Devices: dn[o.ID]})
	}
	co.render(c, http.StatusOK, "admin_orgs", v)
}

type adminOrgView struct {
	pageBase
	New                                   bool
	Org                                   monitoring.Organisation
	Steps                                 []monitoring.ProcedureStep
	Contacts                              []monitoring.Contact
	URNs                                  []urnRow
	DefaultSession, DefaultCheckIn, Grace string
	Offline                               string
	// The devices' settings: the accidental-press window, the report
	// intervals and the low-battery level, as typed.
	Accidental, Heartbeat, LocationEvery string
	LowBattery                           string
	ContactWait                          string // the wait for an escalation contact's answer
	// Notify is the notification policy's lists as typed, one field per
	// list (notifyFields), addresses or webhook names separated by commas.
	Notify map[string]string
	// Retention is the retention's days as typed, by form field
	// (retentionFields); a new organisation starts with the recommended.
	Retention         map[string]string
	Saved             bool
	Error, ErrorField string
}

func (v *adminOrgView) pad() {
	v.Steps = append(slices.Clip(v.Steps), make([]monitoring.ProcedureStep, blankSteps)...)
	v.Contacts = append(slices.Clip(v.Contacts), make([]monitoring.Contact, blankContacts)...)
	v.URNs = append(slices.Clip(v.URNs), make([]urnRow, blankURNs)...)
}

// GET /ui/admin/organisations/:id ("new" for a new one)
func (co *Console) adminOrg(c *gin.Context) {
	id := c.Param("id")
	v := adminOrgView{pageBase: co.adminBase(c, "Organisation", "admin_org"), Saved: c.Query("saved") != ""}
	if id == newRecord {
		v.New, v.Title = true, "New organisation"
		v.Retention = retentionForm(monitoring.RecommendedRetention)
	} else {
		o, err := co.svc.Organisation(id)
		if err != nil {
			c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
			return
		}
		v.Org, v.Title = *o, o.Name
		v.Steps, v.Contacts, v.URNs = o.ProcedureSteps, o.Contacts, urnRows(o.URNs)
		v.DefaultSession, v.DefaultCheckIn, v.Grace, v.Offline = fmtDur(o.DefaultSession), fmtDur(o.DefaultCheckIn), fmtDur(o.Grace), fmtDur(o.OfflineThreshold)
		v.Accidental, v.Heartbeat, v.LocationEvery = fmtDur(o.AccidentalPressWindow), fmtDur(o.HeartbeatInterval), fmtDur(o.LocationInterval)
		if o.LowBattery > 0 {
			v.LowBattery = strconv.Itoa(o.LowBattery)
		}
		v.ContactWait = fmtDur(o.ContactWait)
		v.Notify = notifyForm(o.Notify)
		v.Retention = retentionForm(o.Retention)
	}
	v.pad()
	co.render(c, http.StatusOK, "admin_org", v)
}

// POST /ui/admin/organisations: new=1 for a new one; id, name, procedure,
// step_title[], step_text[], contact_name[], contact_phone[],
// contact_relation[], contact_email[], urn_force[], urn_code[], urn_expiry[],
// default_session, default_checkin, grace, offline_threshold,
// accidental_press_window, heartbeat_interval, location_interval,
// low_battery_percent, contact_wait, and the notification policy's
// notify_<list>_emails and notify_<list>_webhooks (list: close, duress,
// escalation, reports), and the retention's retention_<what>_days (what: audio,
// location, alarm, outbox). Fields the form does not show are kept.
func (co *Console) adminOrgPost(c *gin.Context) {
	isNew := c.PostForm("new") == "1"
	id := strings.TrimSpace(c.PostForm("id"))
	v := adminOrgView{pageBase: co.adminBase(c, "Organisation", "admin_org"), New: isNew}
	fail := func(err error) {
		v.Error, v.ErrorField = formError(err)
		v.pad()
		co.render(c, ui.ErrorStatus(err), "admin_org", v)
	}
	var org monitoring.Organisation
	if !isNew {
		o, err := co.svc.Organisation(id)
		if err != nil {
			fail(err)
			return
		}
		org = *o
	}
	org.ID = id
	org.Name = strings.TrimSpace(c.PostForm("name"))
	org.Procedure = strings.TrimSpace(c.PostForm("procedure"))
	org.ProcedureSteps = nil
	for _, r := range rows(c, "step_title", "step_text") {
		org.ProcedureSteps = append(org.ProcedureSteps, monitoring.ProcedureStep{Title: r[0], Text: r[1]})
	}
	org.Contacts = nil
	for _, r := range rows(c, "contact_name", "contact_phone", "contact_relation", "contact_email") {
		org.Contacts = append(org.Contacts, monitoring.Contact{Name: r[0], Phone: r[1], Relation: r[2], Email: r[3]})
	}
	var urnErr error
	org.URNs, v.URNs, urnErr = readURNs(c)
	v.Org, v.Steps, v.Contacts = org, org.ProcedureSteps, org.Contacts
	v.DefaultSession, v.DefaultCheckIn = c.PostForm("default_session"), c.PostForm("default_checkin")
	v.Grace, v.Offline = c.PostForm("grace"), c.PostForm("offline_threshold")
	v.Accidental, v.Heartbeat, v.LocationEvery = c.PostForm("accidental_press_window"), c.PostForm("heartbeat_interval"), c.PostForm("location_interval")
	v.LowBattery = c.PostForm("low_battery_percent")
	v.ContactWait = c.PostForm("contact_wait")
	v.Notify = map[string]string{}
	for _, f := range notifyFields(&org.Notify) {
		v.Notify[f.name] = c.PostForm(f.name)
		*f.list = splitList(v.Notify[f.name])
	}
	v.Retention = map[string]string{}
	for _, f := range retentionFields(&org.Retention) {
		v.Retention[f.name] = c.PostForm(f.name)
	}
	if err := cmp.Or(tooLong(c), urnErr); err != nil {
		fail(err)
		return
	}
	for _, f := range retentionFields(&org.Retention) {
		*f.days = 0
		typed := strings.TrimSpace(v.Retention[f.name])
		if typed == "" {
			continue
		}
		n, err := strconv.Atoi(typed)
		if err != nil {
			fail(&monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "org.retention." + strings.TrimPrefix(f.name, "retention_"),
				Msg: fmt.Sprintf("%s: %q is not a whole number of days (0 keeps for ever)", f.label, typed)})
			return
		}
		*f.days = n
	}
	var err error
	for _, d := range []struct {
		to          *time.Duration
		name, label string
	}{
		{&org.DefaultSession, "default_session", "Default session"}, {&org.DefaultCheckIn, "default_checkin", "Check-in interval"},
		{&org.Grace, "grace", "Grace period"}, {&org.OfflineThreshold, "offline_threshold", "Offline threshold"},
		{&org.AccidentalPressWindow, "accidental_press_window", "Accidental-press window"},
		{&org.HeartbeatInterval, "heartbeat_interval", "Heartbeat interval"}, {&org.LocationInterval, "location_interval", "Location interval"},
		{&org.ContactWait, "contact_wait", "Wait for a contact's answer"},
	} {
		if *d.to, err = parseDur(c, d.name, d.label); err != nil {
			fail(err)
			return
		}
	}
	org.LowBattery = 0
	if lb := strings.TrimSpace(v.LowBattery); lb != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(lb, "%"))
		if err != nil {
			fail(&monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "org.low_battery_percent",
				Msg: fmt.Sprintf("Low-battery level: %q is not a whole number of percent (such as 15)", lb)})
			return
		}
		org.LowBattery = n
	}
	if isNew {
		if _, err := co.svc.Organisation(id); err == nil {
			fail(&monitoring.RuleError{Code: monitoring.CodeConflict, Field: "org.id", Msg: fmt.Sprintf("an organisation %q exists already", id)})
			return
		}
	}
	saved, err := co.svc.PutOrganisation(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, org)
	if err != nil {
		fail(err)
		return
	}
	co.logger.Info("organisation saved", "org", saved.ID, "by", auth.OperatorOf(c).ID)
	c.Redirect(http.StatusSeeOther, Prefix+"/admin/organisations/"+url.PathEscape(saved.ID)+"?saved=1")
}

// retentionField is one period of an organisation's retention as the form
// names it.
type retentionField struct {
	name, label string
	days        *int
}

// retentionFields returns the periods of r with their form fields.
func retentionFields(r *monitoring.Retention) []retentionField {
	return []retentionField{
		{"retention_audio_days", "Audio", &r.AudioDays}, {"retention_location_days", "Positions", &r.LocationDays},
		{"retention_alarm_days", "Closed alarms", &r.AlarmDays}, {"retention_outbox_days", "Delivered notifications", &r.OutboxDays},
	}
}

// retentionForm returns r's periods by form field, 0 as typed.
func retentionForm(r monitoring.Retention) map[string]string {
	out := map[string]string{}
	for _, f := range retentionFields(&r) {
		out[f.name] = strconv.Itoa(*f.days)
	}
	return out
}

// notifyField is one list of an organisation's notification policy as
// the form names it.
type notifyField struct {
	name string
	list *[]string
}

// notifyFields returns the lists of p with their form fields.
func notifyFields(p *monitoring.NotifyPolicy) []notifyField {
	return []notifyField{
		{"notify_close_emails", &p.Close.Emails}, {"notify_close_webhooks", &p.Close.Webhooks},
		{"notify_duress_emails", &p.Duress.Emails}, {"notify_duress_webhooks", &p.Duress.Webhooks},
		{"notify_escalation_emails", &p.Escalation.Emails}, {"notify_escalation_webhooks", &p.Escalation.Webhooks},
		{"notify_reports_emails", &p.Reports.Emails}, {"notify_reports_webhooks", &p.Reports.Webhooks},
	}
}

// notifyForm returns p's lists as the form shows them.
func notifyForm(p monitoring.NotifyPolicy) map[string]string {
	out := map[string]string{}
	for _, f := range notifyFields(&p) {
		out[f.name] = strings.Join(*f.list, ", ")
	}
	return out
}

// splitList splits a list typed with commas, semicolons, spaces or new
// lines.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// ---- workers ----

type workerRow struct {
	monitoring.Worker
	OrgName string
	Devices int
}

type adminWorkersView struct {
	pageBase
	Orgs    []monitoring.Organisation
	OrgID   string
	Workers []workerRow
	Error   string
}

// GET /ui/admin/workers?org=
func (co *Console) adminWorkers(c *gin.Context) {
	v := adminWorkersView{pageBase: co.adminBase(c, "Workers", "admin_workers"), OrgID: c.Query("org")}
	v.Orgs, _ = co.svc.Organisations()
	orgNames := map[string]string{}
	for _, o := range v.Orgs {
		orgNames[o.ID] = o.Name
	}
	workers, err := co.svc.Workers(v.OrgID)
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	devices, _ := co.svc.Devices()
	dn := map[string]int{}
	for _, d := range devices {
		dn[d.WorkerID]++
	}
	for _, w := range workers {
		v.Workers = append(v.Workers, workerRow{Worker: w, OrgName: cmp.Or(orgNames[w.OrgID], w.OrgID), Devices: dn[w.ID]})
	}
	slices.SortStableFunc(v.Workers, func(a, b workerRow) int {
		return cmp.Or(strings.Compare(a.OrgName, b.OrgName), strings.Compare(a.Name, b.Name))
	})
	co.render(c, http.StatusOK, "admin_workers", v)
}

// urnRow is a police URN as the organisation form shows it.
type urnRow struct {
	Force, URN, Expiry string
}

// readURNs reads the URN rows of the organisation form (urn_force[],
// urn_code[], urn_expiry[]), and the rows as they were sent. An expiry
// date is the first day the URN is no longer used (midnight, local time);
// a row without one is refused by the Service.
func readURNs(c *gin.Context) ([]monitoring.PoliceURN, []urnRow, error) {
	var us []monitoring.PoliceURN
	var sent []urnRow
	var bad error
	for i, r := range rows(c, "urn_force", "urn_code", "urn_expiry") {
		u := monitoring.PoliceURN{Force: r[0], URN: r[1]}
		if r[2] != "" {
			t, err := time.ParseInLocation(dateLayout, r[2], time.Local)
			if err != nil && bad == nil {
				bad = &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: fmt.Sprintf("org.urns[%d].expiry", i),
					Msg: fmt.Sprintf("%q is not a date", r[2])}
			}
			u.Expiry = t
		}
		us = append(us, u)
		sent = append(sent, urnRow{Force: r[0], URN: r[1], Expiry: r[2]})
	}
	return us, sent, bad
}

// urnFieldLabel names a URN row's field for a refusal: "URN 2 expiry"
// for org.urns[1].expiry.
func urnFieldLabel(field string) string {
	rest, ok := strings.CutPrefix(field, "org.urns[")
	if !ok {
		return ""
	}
	n, what, ok := strings.Cut(rest, "].")
	i, err := strconv.Atoi(n)
	if !ok || err != nil {
		return ""
	}
	return fmt.Sprintf("URN %d %s", i+1, map[string]string{"force": "police force", "urn": "code", "expiry": "expiry"}[what])
}

type adminWorkerView struct {
	pageBase
	New               bool
	Worker            monitoring.Worker
	Orgs              []monitoring.Organisation
	Contacts          []monitoring.Contact
	URNs              []urnRow // the worker's own, from before URNs moved to the organisation: shown, not edited
	Devices           []monitoring.Device
	Saved             string
	Error, ErrorField string
	PINError          string
}

func (v *adminWorkerView) pad() {
	v.Contacts = append(slices.Clip(v.Contacts), make([]monitoring.Contact, blankContacts)...)
}

func urnRows(us []monitoring.PoliceURN) []urnRow {
	var out []urnRow
	for _, u := range us {
		r := urnRow{Force: u.Force, URN: u.URN}
		if !u.Expiry.IsZero() {
			r.Expiry = u.Expiry.Format(dateLayout)
		}
		out = append(out, r)
	}
	return out
}

// loadWorkerView reads the worker form of id ("new": empty).
func (co *Console) loadWorkerView(c *gin.Context, id string) (*adminWorkerView, error) {
	v := &adminWorkerView{pageBase: co.adminBase(c, "Worker", "admin_worker")}
	v.Orgs, _ = co.svc.Organisations()
	if id == newRecord {
		v.New, v.Title = true, "New worker"
		v.Worker.OrgID = c.Query("org")
		return v, nil
	}
	w, err := co.svc.Worker(id)
	if err != nil {
		return nil, err
	}
	v.Worker, v.Title, v.Contacts, v.URNs = *w, w.Name, w.Contacts, urnRows(w.URNs)
	if devices, err := co.svc.Devices(); err == nil {
		for _, d := range devices {
			if d.WorkerID == w.ID {
				v.Devices = append(v.Devices, d)
			}
		}
	}
	return v, nil
}

// GET /ui/admin/workers/:id ("new" for a new one)
func (co *Console) adminWorker(c *gin.Context) {
	v, err := co.loadWorkerView(c, c.Param("id"))
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	v.Saved = c.Query("saved")
	v.pad()
	co.render(c, http.StatusOK, "admin_worker", v)
}

// POST /ui/admin/workers: new=1 for a new one; id, name, phone, org_id,
// team, medical, special_handling, duress_word, contact_name[],
// contact_phone[], contact_relation[], contact_email[]. PINs are set apart
// (adminPINsPost). URNs are the organisation's; a worker's own, from
// before, are kept as they are.
func (co *Console) adminWorkerPost(c *gin.Context) {
	isNew := c.PostForm("new") == "1"
	id := strings.TrimSpace(c.PostForm("id"))
	v := &adminWorkerView{pageBase: co.adminBase(c, "Worker", "admin_worker"), New: isNew}
	v.Orgs, _ = co.svc.Organisations()
	fail := func(err error) {
		v.Error, v.ErrorField = formError(err)
		v.pad()
		co.render(c, ui.ErrorStatus(err), "admin_worker", v)
	}
	w := monitoring.Worker{ID: id, Name: strings.TrimSpace(c.PostForm("name")), Phone: strings.TrimSpace(c.PostForm("phone")),
		OrgID: c.PostForm("org_id"), Team: strings.TrimSpace(c.PostForm("team")),
		Important: monitoring.ImportantInfo{Medical: strings.TrimSpace(c.PostForm("medical")),
			SpecialHandling: strings.TrimSpace(c.PostForm("special_handling")), DuressWord: strings.TrimSpace(c.PostForm("duress_word"))}}
	for _, r := range rows(c, "contact_name", "contact_phone", "contact_relation", "contact_email") {
		w.Contacts = append(w.Contacts, monitoring.Contact{Name: r[0], Phone: r[1], Relation: r[2], Email: r[3]})
	}
	var old *monitoring.Worker
	if !isNew {
		old, _ = co.svc.Worker(id)
	}
	if old != nil {
		w.URNs = old.URNs
	}
	v.Worker, v.Contacts, v.URNs = w, w.Contacts, urnRows(w.URNs)
	if old != nil {
		v.Worker.PINVersion, v.Worker.WrongPINs, v.Title = old.PINVersion, old.WrongPINs, old.Name
	}
	if err := tooLong(c); err != nil {
		fail(err)
		return
	}
	if isNew {
		if _, err := co.svc.Worker(id); err == nil {
			fail(&monitoring.RuleError{Code: monitoring.CodeConflict, Field: "worker.id", Msg: fmt.Sprintf("a worker %q exists already", id)})
			return
		}
	}
	saved, err := co.svc.PutWorker(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, w)
	if err != nil {
		fail(err)
		return
	}
	co.logger.Info("worker saved", "worker", saved.ID, "by", auth.OperatorOf(c).ID)
	next := "?saved=worker"
	if isNew {
		next = "?saved=new" // and now the PINs
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/admin/workers/"+url.PathEscape(saved.ID)+next)
}

// POST /ui/admin/workers/:id/pins: safe_pin, duress_pin (optional). The
// PINs are hashed by the Service; they are never shown, logged or sent
// back, not even after a refusal.
func (co *Console) adminPINsPost(c *gin.Context) {
	id := c.Param("id")
	safe, duress := strings.TrimSpace(c.PostForm("safe_pin")), strings.TrimSpace(c.PostForm("duress_pin"))
	var err error
	if safe == "" {
		err = &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "safe_pin", Msg: "give the new Safe PIN (4 to 8 digits)"}
	} else {
		_, err = co.svc.SetPINs(c.Request.Context(), cmdID(c), auth.OperatorOf(c).ID, id, safe, duress)
	}
	if err != nil {
		v, lerr := co.loadWorkerView(c, id)
		if lerr != nil {
			c.String(ui.ErrorStatus(lerr), "%s", ui.ErrorText(lerr))
			return
		}
		v.PINError, _ = formError(err)
		v.pad()
		co.render(c, ui.ErrorStatus(err), "admin_worker", v)
		return
	}
	co.logger.Info("worker PINs set", "worker", id, "by", auth.OperatorOf(c).ID)
	c.Redirect(http.StatusSeeOther, Prefix+"/admin/workers/"+url.PathEscape(id)+"?saved=pins")
}

// ---- devices ----

type adminDevicesView struct {
	pageBase
	Devices []deviceRow
	Saved   string
	Error   string
}

// GET /ui/admin/devices
func (co *Console) adminDevices(c *gin.Context) {
	v := adminDevicesView{pageBase: co.adminBase(c, "Devices", "admin_devices"), Saved: c.Query("saved")}
	names := newNamer(co.svc, nil)
	devices, err := co.svc.Devices()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	for _, d := range devices {
		r := deviceRow{ID: d.ID, Label: d.Label, Kind: kindLabels[d.Kind], Org: d.OrgID, Battery: d.Battery,
			Low: d.Battery >= 0 && d.Battery < lowBattery, Connected: d.Connected, Node: d.Node, LastSeen: d.LastSeen}
		if o := names.org(d.OrgID); o != nil {
			r.Org = o.Name
		}
		if w := names.worker(d.WorkerID); w != nil {
			r.Worker = w.Name
		} else {
			r.Worker = d.WorkerID
		}
		v.Devices = append(v.Devices, r)
	}
	co.render(c, http.StatusOK, "admin_devices", v)
}

// workerOption is a worker in the device form's list.
type workerOption struct {
	ID, Label string
}

type adminDeviceView struct {
	pageBase
	New               bool
	Device            monitoring.Device
	Kinds             []option
	Orgs              []monitoring.Organisation
	Workers           []workerOption
	Credentials       *credentials // shown once, after enrolling or a new secret
	Error, ErrorField string
	Saved             bool
}

// credentials are a device's new secret and its configuration bundle, as
// JSON and as a QR code.
type credentials struct {
	Secret     string
	Bundle     string // indented JSON
	FileName   string
	QR         template.URL // a data: URI of the QR code's PNG; empty when it cannot be made
	QRFileName string
	QRError    string // why there is no QR code
}

// DeviceBundle returns the configuration bundle of device d with its new
// secret: the MQTT listeners of every node of the cluster, TLS first, and
// the CA certificate of Config.CACertPEM.
func (co *Console) DeviceBundle(d *monitoring.Device, secret string) *enrol.Bundle {
	var brokers []string
	for _, n := range co.consoleNodes() {
		brokers = append(brokers, n.MQTT...)
	}
	org, _ := co.svc.Organisation(d.OrgID) // nil: the default intervals
	return enrol.New(d, secret, org, append(brokers, co.cfg.MQTTURLs...), co.cfg.CACertPEM, time.Now())
}

// bundle returns the credentials of device d with secret.
func (co *Console) bundle(d *monitoring.Device, secret string) *credentials {
	b := co.DeviceBundle(d, secret)
	cr := &credentials{Secret: secret, Bundle: string(b.JSON()), FileName: b.FileName(".json"), QRFileName: b.FileName(".png")}
	png, err := b.QRPNG()
	if err != nil {
		co.logger.Error("no QR code of the device's bundle", "device", d.ID, "error", err)
		cr.QRError = "No QR code: " + err.Error() + ". Use the file instead."
		return cr
	}
	// A data: URI in an <img> is refused by html/template unless typed
	// as trusted; this is our own PNG, encoded here.
	cr.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	return cr
}

// deviceForm fills the form's lists.
func (co *Console) deviceForm(v *adminDeviceView) {
	for _, k := range []monitoring.DeviceKind{monitoring.DevicePhoneApp, monitoring.DeviceDedicated, monitoring.DevicePooled} {
		v.Kinds = append(v.Kinds, option{Value: string(k), Label: kindLabels[k]})
	}
	v.Orgs, _ = co.svc.Organisations()
	orgNames := map[string]string{}
	for _, o := range v.Orgs {
		orgNames[o.ID] = o.Name
	}
	workers, _ := co.svc.Workers("")
	for _, w := range workers {
		v.Workers = append(v.Workers, workerOption{ID: w.ID, Label: w.Name + " (" + cmp.Or(orgNames[w.OrgID], w.OrgID) + ")"})
	}
	slices.SortStableFunc(v.Workers, func(a, b workerOption) int { return strings.Compare(a.Label, b.Label) })
}

// GET /ui/admin/devices/:id ("new" to enrol one)
func (co *Console) adminDevice(c *gin.Context) {
	id := c.Param("id")
	v := &adminDeviceView{pageBase: co.adminBase(c, "Device", "admin_device"), Saved: c.Query("saved") != ""}
	if id == newRecord {
		v.New, v.Title = true, "Enrol a device"
		v.Device.Kind = monitoring.DevicePhoneApp
		v.Device.OrgID, v.Device.WorkerID = c.Query("org"), c.Query("worker")
	} else {
		d, err := co.svc.Device(id)
		if err != nil {
			c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
			return
		}
		v.Device, v.Title = *d, "Device "+d.ID
	}
	co.deviceForm(v)
	co.render(c, http.StatusOK, "admin_device", v)
}

// POST /ui/admin/devices: new=1 to enrol; id, kind, label, org_id,
// worker_id. Enrolling also makes the device's secret, shown once.
func (co *Console) adminDevicePost(c *gin.Context) {
	isNew := c.PostForm("new") == "1"
	d := monitoring.Device{ID: strings.TrimSpace(c.PostForm("id")), Kind: monitoring.DeviceKind(c.PostForm("kind")),
		Label: strings.TrimSpace(c.PostForm("label")), OrgID: c.PostForm("org_id"), WorkerID: c.PostForm("worker_id")}
	v := &adminDeviceView{pageBase: co.adminBase(c, "Device", "admin_device"), New: isNew, Device: d}
	fail := func(err error) {
		v.Error, v.ErrorField = formError(err)
		co.deviceForm(v)
		co.render(c, ui.ErrorStatus(err), "admin_device", v)
	}
	if err := tooLong(c); err != nil {
		fail(err)
		return
	}
	if len(d.Label) > monitoring.MaxNameLen {
		fail(&monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "device.label", Msg: fmt.Sprintf("is longer than %d characters", monitoring.MaxNameLen)})
		return
	}
	if isNew {
		if _, err := co.svc.Device(d.ID); err == nil {
			fail(&monitoring.RuleError{Code: monitoring.CodeConflict, Field: "device.id", Msg: fmt.Sprintf("a device %q is enrolled already: open it to issue new credentials", d.ID)})
			return
		}
	}
	id := cmdID(c)
	saved, err := co.svc.PutDevice(c.Request.Context(), id, auth.OperatorOf(c).ID, d)
	if err != nil {
		fail(err)
		return
	}
	if !isNew {
		c.Redirect(http.StatusSeeOther, Prefix+"/admin/devices/"+url.PathEscape(saved.ID)+"?saved=1")
		return
	}
	co.issueCredentials(c, saved, id+"/secret")
}

// POST /ui/admin/devices/:id/credentials: a new secret for the device;
// the old one stops working.
func (co *Console) adminCredentialsPost(c *gin.Context) {
	d, err := co.svc.Device(c.Param("id"))
	if err != nil {
		c.String(ui.ErrorStatus(err), "%s", ui.ErrorText(err))
		return
	}
	co.issueCredentials(c, d, cmdID(c))
}

// issueCredentials makes a device's secret and shows it, with the
// configuration bundle, this once. The page is never cached, and a resent
// form cannot show the secret again.
func (co *Console) issueCredentials(c *gin.Context, d *monitoring.Device, cmd string) {
	v := &adminDeviceView{pageBase: co.adminBase(c, "Device "+d.ID, "admin_device"), Device: *d}
	secret, err := co.svc.SetDeviceSecret(c.Request.Context(), cmd, auth.OperatorOf(c).ID, d.ID)
	if err != nil {
		v.Error, v.ErrorField = formError(err)
		if errors.Is(err, monitoring.ErrConflict) {
			v.Error = "These credentials were shown once already and cannot be shown again. Issue new ones if they were not stored."
		}
		co.deviceForm(v)
		co.render(c, ui.ErrorStatus(err), "admin_device", v)
		return
	}
	co.logger.Info("device credentials issued", "device", d.ID, "by", auth.OperatorOf(c).ID)
	v.Credentials = co.bundle(d, secret)
	co.deviceForm(v)
	c.Header("Cache-Control", "no-store")
	co.render(c, http.StatusOK, "admin_device", v)
}

// ---- operators ----

type operatorRow struct {
	monitoring.Operator
	State string
	Self  bool
}

type adminOperatorsView struct {
	pageBase
	Operators         []operatorRow
	Roles             []monitoring.OperatorRole
	Form              monitoring.Operator // the form: an operator to change, or empty for a new one
	Editing           bool
	Saved             string
	Error, ErrorField string
}

// loadOperatorsView reads the operators page, with the form for edit ("" for
// a new operator).
func (co *Console) loadOperatorsView(c *gin.Context, edit string) *adminOperatorsView {
	v := &adminOperatorsView{pageBase: co.adminBase(c, "Operators", "admin_operators"), Roles: monitoring.OperatorRoles}
	ops, err := co.svc.Operators()
	if err != nil {
		v.Error = ui.ErrorText(err)
	}
	now := time.Now()
	me := auth.OperatorOf(c).ID
	for _, o := range ops {
		r := operatorRow{Operator: o, State: "enabled", Self: o.ID == me}
		switch {
		case o.Disabled:
			r.State = "disabled"
		case o.BackedOff(now):
			r.State = "wrong passwords: new browsers wait until " + o.BackoffUntil().Local().Format("15:04:05")
		}
		v.Operators = append(v.Operators, r)
		if o.ID == edit {
			v.Form, v.Editing = o, true
		}
	}
	if !v.Editing {
		v.Form.Role = monitoring.RoleOperator
	}
	return v
}

// GET /ui/admin/operators?edit=
func (co *Console) adminOperators(c *gin.Context) {
	v := co.loadOperatorsView(c, c.Query("edit"))
	v.Saved = c.Query("saved")
	co.render(c, http.StatusOK, "admin_operators", v)
}

// POST /ui/admin/operators: create=1 for a new one; id, name, role,
// disabled=1, password (empty keeps it), unlock=1.
func (co *Console) adminOperatorPost(c *gin.Context) {
	me := auth.OperatorOf(c)
	req := monitoring.PutOperatorRequest{ID: strings.TrimSpace(c.PostForm("id")), Name: strings.TrimSpace(c.PostForm("name")),
		Role: monitoring.OperatorRole(c.PostForm("role")), Disabled: c.PostForm("disabled") == "1",
		Password: c.PostForm("password"), Create: c.PostForm("create") == "1", Unlock: c.PostForm("unlock") == "1"}
	var err error
	switch {
	case req.ID == me.ID && (req.Disabled || !req.Role.AtLeast(me.Role)):
		err = &monitoring.RuleError{Code: monitoring.CodeConflict, Field: "operator.role",
			Msg: "you cannot disable your own account or lower your own role here; ask another admin"}
	case len(req.Password) > monitoring.MaxPasswordLen || len(req.Name) > monitoring.MaxNameLen:
		err = &monitoring.RuleError{Code: monitoring.CodeInvalid, Field: "password", Msg: "is too long"}
	default:
		_, err = co.svc.PutOperator(c.Request.Context(), cmdID(c), me.ID, req)
	}
	if err != nil {
		v := co.loadOperatorsView(c, "")
		v.Form = monitoring.Operator{ID: req.ID, Name: req.Name, Role: req.Role, Disabled: req.Disabled}
		v.Editing = !req.Create
		v.Error, v.ErrorField = formError(err)
		co.render(c, ui.ErrorStatus(err), "admin_operators", v)
		return
	}
	co.logger.Info("operator changed in the console", "operator", req.ID, "role", req.Role, "by", me.ID)
	c.Redirect(http.StatusSeeOther, Prefix+"/admin/operators?saved="+url.QueryEscape(req.ID))
}
