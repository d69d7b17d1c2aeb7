package monitoring

// Post-incident reports. When a genuine alarm of a worker who may have
// been in danger (BriefingRequired) closes as worker_safe or
// incident_handled, the close makes a draft report in the same
// transaction (CloseAlarmCmd under RulesPostIncidentReport), due
// PostIncidentReportDue after the close: the procedure promises the
// customer a detailed report within 48 hours. A supervisor writes the
// recommendations and signs the report off (CmdReportAction); a
// signed-off report changes no more. The rest of the report (the
// timeline, the trail, the response times) is read from the alarm when
// the report is shown (ui/console/postincident.go), not copied.
//
// A reopened alarm keeps its report; closing it again makes none (the
// first stays, with its due time). Alarms closed before the rule have no
// report.
//
// EventReportDue and EventReportSignedOff are the hooks of the outbox
// (docs/notifications.md): the signed-off report is what is sent to the
// customer.
//
// Keys (a prefix, once used, keeps its meaning forever):
//
//	report/<alarm id>                  Report
//	ix/report-due/<due>/<alarm id>     draft reports by due time

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of reports.
const (
	pReport    = "report/"
	pReportDue = "ix/report-due/"
)

// PostIncidentReportDue is how long after a genuine alarm's close its
// report is due.
const PostIncidentReportDue = 48 * time.Hour

// ReportState is where a post-incident report is.
type ReportState string

// Report states.
const (
	ReportDraft     ReportState = "draft"
	ReportSignedOff ReportState = "signed_off"
)

// ReportActionKind is what a CmdReportAction does to a report.
type ReportActionKind string

// Report actions.
const (
	// ReportSaveRecommendations saves the recommendations of a draft.
	ReportSaveRecommendations ReportActionKind = "recommendations"
	// ReportSignOff saves the recommendations, which must not be empty,
	// and signs the report off.
	ReportSignOff ReportActionKind = "sign_off"
)

// Report is the post-incident report of one genuine alarm.
type Report struct {
	AlarmID         string      `json:"alarm_id"`
	OrgID           string      `json:"org_id,omitempty"`
	WorkerID        string      `json:"worker_id,omitempty"`
	ClosedAt        time.Time   `json:"closed_at"`
	DueAt           time.Time   `json:"due_at"`
	State           ReportState `json:"state"`
	Recommendations string      `json:"recommendations,omitempty"`
	UpdatedBy       string      `json:"updated_by,omitempty"`
	UpdatedAt       time.Time   `json:"updated_at,omitzero"`
	SignedOffBy     string      `json:"signed_off_by,omitempty"`
	SignedOffAt     time.Time   `json:"signed_off_at,omitzero"`
}

// Overdue reports whether the report is a draft past its due time at now.
func (r *Report) Overdue(now time.Time) bool { return r.State == ReportDraft && !now.Before(r.DueAt) }

// reportActionCmd changes a draft report.
type reportActionCmd struct {
	Header
	AlarmID         string           `json:"alarm_id"`
	Action          ReportActionKind `json:"action"`
	Recommendations string           `json:"recommendations"`
}

func reportDueKey(r *Report) []byte { return []byte(pReportDue + tkey(r.DueAt) + "/" + r.AlarmID) }

func getReport(txn *badger.Txn, alarmID string) (*Report, error) {
	var r Report
	ok, err := getJSON(txn, pReport+alarmID, &r)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ruleErr(CodeNotFound, "alarm_id", "alarm %q has no post-incident report", alarmID)
	}
	return &r, nil
}

// reportDue reports whether closing alarm a with resolution res makes a
// report.
func reportDue(a *Alarm, res Resolution) bool { return BriefingRequired(a.Type) && genuine(res) }

// openReport makes the draft report of alarm a, just closed, unless it has
// one. It writes: the close calls it after checking every rule.
func openReport(c *applyCtx, a *Alarm, closeCmd CmdType) error {
	if ok, err := exists(c.txn, pReport+a.ID); err != nil || ok {
		return err
	}
	r := Report{AlarmID: a.ID, OrgID: a.OrgID, WorkerID: a.WorkerID, ClosedAt: a.ClosedAt,
		DueAt: a.ClosedAt.Add(PostIncidentReportDue), State: ReportDraft}
	if err := putJSON(c.txn, pReport+a.ID, &r); err != nil {
		return err
	}
	if err := setIndex(c.txn, reportDueKey(&r)); err != nil {
		return err
	}
	if err := c.audit(closeCmd, "report/"+a.ID, "post-incident report due "+r.DueAt.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	c.emit(Event{Type: EventReportDue, Report: &r})
	return nil
}

// applyReportAction saves a draft's recommendations or signs it off.
// Rules: the action is known; the recommendations are at most MaxTextLen
// bytes, and not empty for a sign-off; the report exists and is a draft.
func applyReportAction(c *applyCtx, body []byte) ([]byte, error) {
	var cmd reportActionCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	text := strings.TrimSpace(cmd.Recommendations)
	switch {
	case cmd.Action != ReportSaveRecommendations && cmd.Action != ReportSignOff:
		return nil, invalid("action", "%q is not a report action: use %s or %s", cmd.Action, ReportSaveRecommendations, ReportSignOff)
	case len(text) > MaxTextLen:
		return nil, invalid("recommendations", "is %d bytes, longer than %d", len(text), MaxTextLen)
	case cmd.Action == ReportSignOff && text == "":
		return nil, invalid("recommendations", "a report is signed off with its recommendations: write them first")
	}
	r, err := getReport(c.txn, cmd.AlarmID)
	if err != nil {
		return nil, err
	}
	if r.State != ReportDraft {
		return nil, ruleErr(CodeConflict, "alarm_id", "the report of alarm %s was signed off by %s at %s UTC: it changes no more",
			r.AlarmID, r.SignedOffBy, r.SignedOffAt.UTC().Format("2006-01-02 15:04"))
	}

	// Every rule has been checked: write.
	r.Recommendations, r.UpdatedBy, r.UpdatedAt = text, c.hdr.Actor, c.now()
	et, detail := EventReportUpdated, fmt.Sprintf("recommendations saved (%d bytes)", len(text))
	if cmd.Action == ReportSignOff {
		if err := c.txn.Delete(reportDueKey(r)); err != nil {
			return nil, err
		}
		r.State, r.SignedOffBy, r.SignedOffAt = ReportSignedOff, c.hdr.Actor, c.now()
		et, detail = EventReportSignedOff, fmt.Sprintf("signed off (%d bytes of recommendations)", len(text))
	}
	if err := putJSON(c.txn, pReport+r.AlarmID, r); err != nil {
		return nil, err
	}
	if err := c.audit(CmdReportAction, "report/"+r.AlarmID, detail); err != nil {
		return nil, err
	}
	ev := *r
	c.emit(Event{Type: et, Report: &ev})
	return json.Marshal(r)
}

// --- The Service ---

// Report returns the post-incident report of an alarm.
func (s *Service) Report(alarmID string) (*Report, error) {
	var r *Report
	err := s.view(func(txn *badger.Txn) (err error) { r, err = getReport(txn, alarmID); return err })
	return r, err
}

// ReportsDue returns the draft reports, the soonest due first (overdue
// ones first of all).
func (s *Service) ReportsDue() ([]Report, error) {
	out := []Report{}
	err := s.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pReportDue, false, func(key, _ []byte) (bool, error) {
			r, err := getReport(txn, lastSegment(key))
			if err != nil {
				return false, err
			}
			out = append(out, *r)
			return true, nil
		})
	})
	return out, err
}

// SignedOffReports returns the signed-off reports, the newest sign-off
// first, at most limit of them.
func (s *Service) SignedOffReports(limit int) ([]Report, error) {
	all, err := listRecords(s, pReport, func(r *Report) bool { return r.State == ReportSignedOff })
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b Report) int { return b.SignedOffAt.Compare(a.SignedOffAt) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// ReportAction saves a draft report's recommendations, or signs the report
// off with them, as actor (a supervisor: the console and the API check the
// role).
func (s *Service) ReportAction(ctx context.Context, cmdID, actor, alarmID string, action ReportActionKind, recommendations string) (*Report, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who changes the report is missing")
	}
	res, err := s.propose(ctx, cmdID, CmdReportAction, reportActionCmd{Header: s.header(actor), AlarmID: alarmID,
		Action: action, Recommendations: recommendations})
	if err != nil {
		return nil, err
	}
	return decodeResponse[Report](res.Response)
}
