package monitoring

// Monthly statistics per organisation, and the two report notices the
// leader enqueues from a scan of the state (PendingReportNotices): the
// signed-off post-incident report and the month's statistics, both to the
// organisation's Notify.Reports. Like the duress and escalation notices
// (outboxnotice.go), they need no new command: the scan reads replicated
// state only, and the enqueue is idempotent by key, so a retry or a new
// leader sends each once.
//
// Months are calendar months in UTC.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Report notice kinds.
const (
	NoticeIncidentReport = "incident_report" // a post-incident report signed off
	NoticeMonthlyStats   = "monthly_stats"   // an organisation's statistics of the month before
)

// ReportNoticeLookback is how long after its sign-off a report is still
// sent: a policy set later does not send older reports.
const ReportNoticeLookback = 7 * 24 * time.Hour

// TypeCount is the alarms of one type in a month, by how they ended.
type TypeCount struct {
	Type    AlarmType `json:"type"`
	Raised  int       `json:"raised"`
	Genuine int       `json:"genuine"` // closed worker_safe or incident_handled
	False   int       `json:"false"`   // closed false_alarm
	Test    int       `json:"test"`    // closed test
	Open    int       `json:"open"`    // not closed at the time of the figures
}

// MonthlyStats are an organisation's figures of one calendar month (UTC).
type MonthlyStats struct {
	OrgID   string    `json:"org_id"`
	OrgName string    `json:"org_name"`
	Month   string    `json:"month"` // yyyy-mm
	From    time.Time `json:"from"`
	To      time.Time `json:"to"` // exclusive
	// ByType lists every alarm type, in the order of AlarmTypes.
	ByType []TypeCount `json:"by_type"`
	// Total sums ByType.
	Total TypeCount `json:"total"`
	// KPIs are the response times against the 10 s and 40 s targets.
	KPIs *KPIs `json:"kpis"`
	// Sessions is how many timed sessions started in the month;
	// MissedCheckIns how many missed-check-in alarms were raised.
	Sessions       int `json:"sessions"`
	MissedCheckIns int `json:"missed_checkins"`
}

// ParseMonth reads a month written yyyy-mm and returns its first instant,
// UTC.
func ParseMonth(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, invalid("month", "%q is not a month written yyyy-mm, such as 2026-11", s)
	}
	return t.UTC(), nil
}

// monthOf returns the first instant (UTC) of the month of t.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ComputeMonthlyStats returns the figures of organisation orgID for the
// month beginning at month (its first instant, UTC); now decides which
// unacknowledged alarms have missed their targets.
func ComputeMonthlyStats(txn *badger.Txn, orgID string, month, now time.Time) (*MonthlyStats, error) {
	o, err := getOrg(txn, orgID)
	if err != nil {
		return nil, err
	}
	from := monthOf(month)
	to := from.AddDate(0, 1, 0)
	st := &MonthlyStats{OrgID: orgID, OrgName: o.Name, Month: from.Format("2006-01"), From: from, To: to}
	if st.KPIs, err = ComputeKPIs(txn, orgID, from, to, now); err != nil {
		return nil, err
	}
	counts := map[AlarmType]*TypeCount{}
	for _, t := range AlarmTypes {
		st.ByType = append(st.ByType, TypeCount{Type: t})
	}
	for i := range st.ByType {
		counts[st.ByType[i].Type] = &st.ByType[i]
	}
	alarms, _, err := AlarmsRaised(txn, orgID, from, to, 0)
	if err != nil {
		return nil, err
	}
	for _, a := range alarms {
		tc := counts[a.Type]
		if tc == nil { // a type of a later version: counted on its own
			st.ByType = append(st.ByType, TypeCount{Type: a.Type})
			tc = &st.ByType[len(st.ByType)-1]
			counts = map[AlarmType]*TypeCount{}
			for i := range st.ByType {
				counts[st.ByType[i].Type] = &st.ByType[i]
			}
		}
		tc.Raised++
		switch {
		case a.Status != StatusClosed:
			tc.Open++
		case genuine(a.Resolution):
			tc.Genuine++
		case a.Resolution == ResolutionFalseAlarm:
			tc.False++
		case a.Resolution == ResolutionTest:
			tc.Test++
		}
		if a.Type == AlarmMissedCheckIn {
			st.MissedCheckIns++
		}
	}
	st.Total.Type = "total"
	for _, tc := range st.ByType {
		st.Total.Raised += tc.Raised
		st.Total.Genuine += tc.Genuine
		st.Total.False += tc.False
		st.Total.Test += tc.Test
		st.Total.Open += tc.Open
	}
	err = scanPrefix(txn, pSession, true, func(_, val []byte) (bool, error) {
		var s Session
		if err := json.Unmarshal(val, &s); err != nil {
			return false, err
		}
		if s.OrgID == orgID && !s.StartedAt.Before(from) && s.StartedAt.Before(to) {
			st.Sessions++
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// MonthlyStats returns the figures of organisation orgID for month
// (yyyy-mm), from this node's state.
func (s *Service) MonthlyStats(orgID, month string) (*MonthlyStats, error) {
	m, err := ParseMonth(month)
	if err != nil {
		return nil, err
	}
	var st *MonthlyStats
	err = s.view(func(txn *badger.Txn) (err error) {
		st, err = ComputeMonthlyStats(txn, orgID, m, s.Now())
		return err
	})
	return st, err
}

// pct formats a share (0 to 1) as a percentage with one decimal.
func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) }

// CSV writes the figures as CSV: a header row "section,item,value" and
// one row per figure (docs/notifications.md lists them).
func (st *MonthlyStats) CSV() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	row := func(section, item string, v any) { _ = w.Write([]string{section, item, fmt.Sprint(v)}) }
	row("section", "item", "value")
	row("organisation", "id", st.OrgID)
	row("organisation", "name", st.OrgName)
	row("month", "month", st.Month)
	for _, tc := range append(slices.Clone(st.ByType), st.Total) {
		t := string(tc.Type)
		row("alarms."+t, "raised", tc.Raised)
		row("alarms."+t, "genuine", tc.Genuine)
		row("alarms."+t, "false", tc.False)
		row("alarms."+t, "test", tc.Test)
		row("alarms."+t, "open", tc.Open)
	}
	k := st.KPIs
	row("response", "acknowledged", k.Acknowledged)
	row("response", "target_base", k.TargetBase)
	row("response", "ack_within_10s_percent", pct(k.AckWithin10s))
	row("response", "ack_within_40s_percent", pct(k.AckWithin40s))
	row("response", "target_10s_met", k.Target1Met)
	row("response", "target_40s_met", k.Target2Met)
	row("response", "missed_40s", k.Missed)
	row("response", "mean_to_ack_seconds", secs(k.MeanToAck))
	row("response", "median_to_ack_seconds", secs(k.MedianToAck))
	row("sessions", "started", st.Sessions)
	row("sessions", "missed_checkins", st.MissedCheckIns)
	w.Flush()
	return b.Bytes()
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) }

// Text is the figures as the plain text of a mail.
func (st *MonthlyStats) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Monthly statistics of %s, %s (UTC)\n\n", st.OrgName, st.Month)
	fmt.Fprintf(&b, "%-16s %7s %7s %7s %7s %7s\n", "Alarms", "raised", "genuine", "false", "test", "open")
	for _, tc := range append(slices.Clone(st.ByType), st.Total) {
		if tc.Raised == 0 && tc.Type != "total" {
			continue
		}
		fmt.Fprintf(&b, "%-16s %7d %7d %7d %7d %7d\n", tc.Type, tc.Raised, tc.Genuine, tc.False, tc.Test, tc.Open)
	}
	k := st.KPIs
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&b, "\nAcknowledged within 10 s: %s%% (target %.0f%%: %s)\n", pct(k.AckWithin10s), AckTarget1Share*100, met(k.Target1Met))
	fmt.Fprintf(&b, "Acknowledged within 40 s: %s%% (target %.1f%%: %s)\n", pct(k.AckWithin40s), AckTarget2Share*100, met(k.Target2Met))
	fmt.Fprintf(&b, "Not acknowledged within 40 s: %d of %d\n", k.Missed, k.TargetBase)
	fmt.Fprintf(&b, "Median time to acknowledge: %s s\n", secs(k.MedianToAck))
	fmt.Fprintf(&b, "\nSessions started: %d\nMissed check-ins: %d\n", st.Sessions, st.MissedCheckIns)
	return b.String()
}

// monthlyKey is the idempotency key of an organisation's statistics of a
// month.
func monthlyKey(orgID, month string) string { return "monthly/" + orgID + "/" + month }

// reportKey is the idempotency key of a signed-off report's notice.
func reportKey(alarmID string) string { return "report/" + alarmID + "/signed-off" }

// PendingReportNotices returns the report notices the leader is to enqueue
// at now, leaving out those enqueued already: the post-incident reports
// signed off within ReportNoticeLookback, and, for each organisation, the
// statistics of the month before now's (so a month whose first day passed
// while the cluster was down is sent when it is back). Both go to the
// organisation's Notify.Reports; none when it is empty.
func (s *Service) PendingReportNotices(now time.Time) ([]Notification, error) {
	var out []Notification
	err := s.view(func(txn *badger.Txn) error {
		missing := func(n *Notification) (bool, error) {
			for _, m := range n.messages() {
				ok, err := exists(txn, pOutbox+OutboxID(m.Key, m.Channel, m.To))
				if err != nil || !ok {
					return err == nil, err
				}
			}
			return false, nil
		}
		var orgs []Organisation
		err := scanPrefix(txn, pOrg, true, func(_, val []byte) (bool, error) {
			var o Organisation
			if err := json.Unmarshal(val, &o); err != nil {
				return false, err
			}
			orgs = append(orgs, o)
			return true, nil
		})
		if err != nil {
			return err
		}
		policy := map[string]Recipients{}
		prev := monthOf(now).AddDate(0, -1, 0)
		for _, o := range orgs {
			r := o.Notify.Reports
			policy[o.ID] = r
			if len(r.Emails) == 0 && len(r.Webhooks) == 0 {
				continue
			}
			// The key and recipients first: the figures are read only
			// for a month not enqueued yet.
			probe := Notification{Key: monthlyKey(o.ID, prev.Format("2006-01")), Emails: r.Emails, Webhooks: r.Webhooks}
			if ok, err := missing(&probe); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			st, err := ComputeMonthlyStats(txn, o.ID, prev, now)
			if err != nil {
				return err
			}
			out = append(out, *monthlyNotification(st, r))
		}
		return scanPrefix(txn, pReport, true, func(_, val []byte) (bool, error) {
			var rep Report
			if err := json.Unmarshal(val, &rep); err != nil {
				return false, err
			}
			r := policy[rep.OrgID]
			if rep.State != ReportSignedOff || now.Sub(rep.SignedOffAt) > ReportNoticeLookback ||
				len(r.Emails) == 0 && len(r.Webhooks) == 0 {
				return true, nil
			}
			n, err := reportNotification(txn, &rep, r)
			if err != nil {
				return false, err
			}
			ok, err := missing(n)
			if ok {
				out = append(out, *n)
			}
			return err == nil, err
		})
	})
	return out, err
}

// monthlyNotification is the mail and webhook of st to r: the figures in
// the text, the CSV attached to the mail and the figures as the webhook's
// data.
func monthlyNotification(st *MonthlyStats, r Recipients) *Notification {
	data, _ := json.Marshal(st)
	return &Notification{
		Key: monthlyKey(st.OrgID, st.Month), Kind: NoticeMonthlyStats, OrgID: st.OrgID,
		Emails: r.Emails, Webhooks: r.Webhooks,
		Subject: clip(fmt.Sprintf("Monthly statistics %s: %s", st.Month, st.OrgName), maxSubject),
		Text:    st.Text(), Payload: data,
		Link: "/reports/monthly?org=" + st.OrgID + "&month=" + st.Month,
		Attachments: []Attachment{{Name: "vigil-" + st.OrgID + "-" + st.Month + ".csv",
			ContentType: "text/csv", Data: st.CSV()}},
	}
}

// ReportNotice is the data of the webhook of a signed-off report.
type ReportNotice struct {
	Report Report `json:"report"`
	Worker struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"worker"`
	Org struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"org"`
}

// reportNotification is the notice of signed-off report rep to r: the
// summary and the recommendations, and the console link of the full
// report and its PDF. The state machine cannot draw the PDF: the leader
// attaches it to the mails before the enqueue when it fits in
// MaxOutboxMessage (notify.Hooks.Attachments).
func reportNotification(txn *badger.Txn, rep *Report, r Recipients) (*Notification, error) {
	var d ReportNotice
	d.Report, d.Org.ID, d.Worker.ID = *rep, rep.OrgID, rep.WorkerID
	if o, err := getOrg(txn, rep.OrgID); err == nil {
		d.Org.Name = o.Name
	}
	if rep.WorkerID != "" {
		if w, err := getWorker(txn, rep.WorkerID); err == nil {
			d.Worker.Name = w.Name
		}
	}
	who := d.Worker.Name
	if who == "" {
		who = "no worker named"
	}
	var alarmType AlarmType
	if a, err := getAlarm(txn, rep.AlarmID); err == nil {
		alarmType = a.Type
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	recs := rep.Recommendations
	if len(recs) > 32<<10 {
		recs = recs[:32<<10] + "\n[...]"
	}
	text := fmt.Sprintf("Post-incident report of the %s alarm of %s (%s)\n\nAlarm: %s\nClosed: %s\nSigned off by %s at %s\n\nRecommendations:\n%s\n\n"+
		"The full report (timeline, location trail, response times) and its PDF are in the console at the link below.\n",
		alarmType, who, d.Org.Name, rep.AlarmID, fmtNoticeTime(rep.ClosedAt), rep.SignedOffBy, fmtNoticeTime(rep.SignedOffAt), recs)
	return &Notification{
		Key: reportKey(rep.AlarmID), Kind: NoticeIncidentReport, OrgID: rep.OrgID, AlarmID: rep.AlarmID,
		Emails: r.Emails, Webhooks: r.Webhooks,
		Subject: clip(fmt.Sprintf("Post-incident report: %s alarm of %s (%s)", alarmType, who, d.Org.Name), maxSubject),
		Text:    text, Payload: data, Link: "/reports/incidents/" + rep.AlarmID,
	}, nil
}
