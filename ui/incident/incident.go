// Package incident assembles the post-incident report of a genuine alarm
// (appliance/monitoring/postincident.go) from the replicated state, for
// the console's report page and the API, and renders it as a PDF with
// fpdf: no headless browser on the appliance. The console draws the same
// report as HTML (ui/console/postincident.go).
//
// The report is read when it is shown, not stored: the worker and
// organisation, the Update message, the timeline, the location trail, the
// police references, the contacts briefed, the audio's length and a
// signed link to it, the acknowledgement time against BS 8484's 10 s and
// 40 s targets, and the supervisor's recommendations with their sign-off.
package incident

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Source is what a report is read from; *monitoring.Service is one.
type Source interface {
	Alarm(id string) (*monitoring.Alarm, error)
	Timeline(alarmID string) ([]monitoring.TimelineEntry, error)
	Worker(id string) (*monitoring.Worker, error)
	Organisation(id string) (*monitoring.Organisation, error)
	Session(id string) (*monitoring.Session, error)
	AudioInfo(alarmID string) (*monitoring.AudioInfo, error)
	AudioLinks(alarmID string) ([]monitoring.AudioLink, error)
	AudioLinkPath(ctx context.Context, l *monitoring.AudioLink) (string, error)
	Report(alarmID string) (*monitoring.Report, error)
}

var _ Source = (*monitoring.Service)(nil)

// Fix is one position of the trail.
type Fix struct {
	Loc   monitoring.Location
	At    time.Time
	Alarm bool // where the alarm was raised
}

// Row is one line of the timeline.
type Row struct {
	At    time.Time
	Actor string
	What  string
}

// Report is everything the report shows.
type Report struct {
	Report       monitoring.Report
	Alarm        monitoring.Alarm
	WorkerName   string
	WorkerPhone  string
	Team         string
	OrgName      string
	Update       string // the Update message in force, if any
	UpdateAt     time.Time
	Timeline     []Row
	Trail        []Fix // oldest first
	Police       []string
	Briefed      []string
	AudioLength  time.Duration
	HasAudio     bool
	AudioLink    string // a usable link's path ("" when none): a console address goes before it
	AudioLinkExp time.Time
	AckTime      time.Duration // from raised to the first acknowledgement; 0 if never
	Acked        bool
	Generated    time.Time
}

// Build reads the report of alarm alarmID. extra adds fixes the caller
// holds (the console's trail of the device, kept in memory); the alarm's
// own location is always in. now is the time it is generated.
func Build(ctx context.Context, src Source, alarmID string, extra []Fix, now time.Time) (*Report, error) {
	rep, err := src.Report(alarmID)
	if err != nil {
		return nil, err
	}
	a, err := src.Alarm(alarmID)
	if err != nil {
		return nil, err
	}
	r := &Report{Report: *rep, Alarm: *a, Generated: now}
	if a.WorkerID != "" {
		if w, err := src.Worker(a.WorkerID); err == nil {
			r.WorkerName, r.WorkerPhone, r.Team = w.Name, w.Phone, w.Team
			if w.LastUpdate != "" {
				r.Update, r.UpdateAt = w.LastUpdate, w.LastUpdateAt
			}
		} else {
			r.WorkerName = a.WorkerID
		}
	}
	if a.OrgID != "" {
		if o, err := src.Organisation(a.OrgID); err == nil {
			r.OrgName = o.Name
		} else {
			r.OrgName = a.OrgID
		}
	}
	if a.SessionID != "" {
		if s, err := src.Session(a.SessionID); err == nil && s.Update != "" {
			r.Update, r.UpdateAt = s.Update, s.StartedAt
		}
	}
	tl, err := src.Timeline(alarmID)
	if err != nil {
		return nil, err
	}
	for _, e := range tl {
		if e.Kind == monitoring.ActionUpdate {
			r.Update, r.UpdateAt = e.Text, e.At
		}
		r.Timeline = append(r.Timeline, Row{At: e.At, Actor: e.Actor, What: Describe(e)})
		switch {
		case e.Kind == monitoring.ActionPolice:
			r.Police = append(r.Police, police(e))
		case e.Kind == monitoring.ActionContact && (e.Outcome == monitoring.ContactBriefed || e.Outcome == monitoring.ContactWelfareConfirmed):
			r.Briefed = append(r.Briefed, fmt.Sprintf("%s (%s, %s UTC)", e.Contact, strings.ReplaceAll(e.Outcome, "_", " "),
				e.At.UTC().Format("15:04:05")))
		}
	}
	// In time order: an Update message is noted with the time it was left.
	slices.SortStableFunc(r.Timeline, func(x, y Row) int { return x.At.Compare(y.At) })
	if !a.AckAt.IsZero() {
		r.Acked, r.AckTime = true, a.AckAt.Sub(a.RaisedAt)
	}
	if a.Location != nil {
		at := a.Location.At
		if at.IsZero() {
			at = a.RaisedAt
		}
		r.Trail = append(r.Trail, Fix{Loc: *a.Location, At: at, Alarm: true})
	}
	r.Trail = append(r.Trail, extra...)
	slices.SortStableFunc(r.Trail, func(x, y Fix) int { return x.At.Compare(y.At) })
	if info, err := src.AudioInfo(alarmID); err == nil && info.Chunks > 0 {
		r.HasAudio, r.AudioLength = true, info.Duration
	}
	if links, err := src.AudioLinks(alarmID); err == nil {
		for i := len(links) - 1; i >= 0; i-- { // the newest link that still works
			if l := links[i]; l.Usable(now) {
				if p, err := src.AudioLinkPath(ctx, &l); err == nil {
					r.AudioLink, r.AudioLinkExp = p, l.Expires
				}
				break
			}
		}
	}
	return r, nil
}

// police describes a police call for the report.
func police(e monitoring.TimelineEntry) string {
	parts := []string{cmpOr(e.Force, "police")}
	if e.Route != "" {
		parts = append(parts, "by "+e.Route)
	}
	if e.URN != "" {
		parts = append(parts, "URN "+e.URN)
	}
	if e.Reference != "" {
		parts = append(parts, "reference "+e.Reference)
	} else {
		parts = append(parts, "no reference recorded")
	}
	return strings.Join(parts, ", ")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Describe says what a timeline entry did, in words.
func Describe(e monitoring.TimelineEntry) string {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(string(e.Kind), "_", " "))
	add := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "; %s %s", label, strings.ReplaceAll(v, "_", " "))
		}
	}
	add("contact", e.Contact)
	add("outcome", e.Outcome)
	add("force", e.Force)
	add("route", e.Route)
	add("URN", e.URN)
	if e.Kind != monitoring.ActionUpdate {
		add("reference", e.Reference)
	}
	add("confirmed by", string(e.Confirmation))
	if e.Text != "" {
		fmt.Fprintf(&b, ": %s", e.Text)
	}
	return b.String()
}

// Target says how an acknowledgement time compares with BS 8484's targets.
func (r *Report) Target() string {
	switch {
	case !r.Acked:
		return "never acknowledged"
	case r.AckTime <= monitoring.AckTarget1:
		return "within the 10 s target"
	case r.AckTime <= monitoring.AckTarget2:
		return "within the 40 s target, not the 10 s one"
	}
	return "outside both the 10 s and the 40 s targets"
}

// Duration formats a duration for the report: "7.4 s", "3 min 12 s".
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// Title names the report.
func (r *Report) Title() string {
	return fmt.Sprintf("Post-incident report: %s alarm %s", strings.ReplaceAll(string(r.Alarm.Type), "_", " "), r.Alarm.ID)
}
