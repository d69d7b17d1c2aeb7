package monitoring

// Retention: how long an organisation's data is kept, the replicated purge
// that removes what is past it, and the legal hold that keeps an incident
// whatever its age (docs/retention.md).
//
// The purge is a command (CmdPurge) that the leader's scheduler proposes
// every PurgeInterval. It carries no cut-off of its own beyond its time:
// every node computes each organisation's cut-offs from the command's At,
// so every node deletes exactly the same keys. One command deletes at most
// its Max keys (DefaultPurgeBatch), so one Raft entry and one transaction
// stay small; when it stops short it says More, and the scheduler proposes
// the next at once.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// Retention is how long an organisation's data is kept, in days after it
// stopped changing; 0 keeps it for ever.
type Retention struct {
	// AudioDays: the audio of a closed alarm (its chunks, its summary and
	// its audio links), counted from the close.
	AudioDays int `json:"audio_days,omitempty"`
	// LocationDays: the positions of a closed alarm (from the close), of
	// an ended session (from its end), and a device's last fix (from the
	// fix: a device that keeps reporting keeps its current fix).
	LocationDays int `json:"location_days,omitempty"`
	// AlarmDays: a closed alarm and everything kept about it (timeline,
	// indexes, post-incident report, audio, its delivered notifications),
	// counted from the close.
	AlarmDays int `json:"alarm_days,omitempty"`
	// OutboxDays: a delivered notification (state sent), counted from its
	// creation. Messages still to deliver and given up are kept.
	OutboxDays int `json:"outbox_days,omitempty"`
}

// Recommended retention (the console fills a new organisation with it). An
// organisation that sets none keeps everything: an upgrade never starts
// deleting what an administrator has not chosen to delete.
const (
	RecommendedAudioDays    = 90
	RecommendedLocationDays = 90
	RecommendedAlarmDays    = 730 // 2 years
	RecommendedOutboxDays   = 30
)

// RecommendedRetention is the retention the console proposes for a new
// organisation.
var RecommendedRetention = Retention{AudioDays: RecommendedAudioDays, LocationDays: RecommendedLocationDays,
	AlarmDays: RecommendedAlarmDays, OutboxDays: RecommendedOutboxDays}

// Bounds of a retention period, in days (0, keep for ever, is always
// allowed).
const (
	// MinAlarmDays: a closed alarm is kept long enough for its
	// post-incident report and a complaint about its handling.
	MinAlarmDays = 30
	// MinAudioDays and MinLocationDays: a week to review an incident.
	MinAudioDays    = 7
	MinLocationDays = 7
	// MinOutboxDays: a day to check what was sent.
	MinOutboxDays = 1
	// MaxRetentionDays: ten years.
	MaxRetentionDays = 3650
)

// validateRetention checks an organisation's retention.
func validateRetention(r Retention) error {
	for _, f := range []struct {
		field  string
		v, min int
	}{
		{"org.retention.audio_days", r.AudioDays, MinAudioDays},
		{"org.retention.location_days", r.LocationDays, MinLocationDays},
		{"org.retention.alarm_days", r.AlarmDays, MinAlarmDays},
		{"org.retention.outbox_days", r.OutboxDays, MinOutboxDays},
	} {
		if f.v != 0 && (f.v < f.min || f.v > MaxRetentionDays) {
			return invalid(f.field, "is %d days: 0 (keep for ever) or from %d to %d", f.v, f.min, MaxRetentionDays)
		}
	}
	// The alarm's purge takes its audio and positions with it: a longer
	// period for those would not be kept. 0 for them means as long as the
	// alarm.
	if r.AlarmDays != 0 && r.AudioDays > r.AlarmDays {
		return invalid("org.retention.audio_days", "is %d days, longer than the %d days closed alarms are kept (the audio goes with its alarm)", r.AudioDays, r.AlarmDays)
	}
	if r.AlarmDays != 0 && r.LocationDays > r.AlarmDays {
		return invalid("org.retention.location_days", "is %d days, longer than the %d days closed alarms are kept (the positions go with their alarm)", r.LocationDays, r.AlarmDays)
	}
	return nil
}

// cutoff returns the time before which data kept days is due, at now, and
// whether any is (days > 0).
func cutoff(now time.Time, days int) (time.Time, bool) {
	if days <= 0 {
		return time.Time{}, false
	}
	return now.AddDate(0, 0, -days), true
}

// --- Legal hold ---

// pHold keys an incident's legal hold: hold/<incident id> -> LegalHold.
const pHold = "hold/"

// MaxHoldReason bounds a legal hold's reason.
const MaxHoldReason = 500

// LegalHold keeps an incident's alarms, their timelines, audio, positions
// and post-incident reports from the purge until it is lifted.
type LegalHold struct {
	IncidentID string    `json:"incident_id"`
	Reason     string    `json:"reason"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
}

// legalHoldCmd puts a legal hold on an incident, or lifts it.
type legalHoldCmd struct {
	Header
	IncidentID string `json:"incident_id"`
	Hold       bool   `json:"hold"` // false lifts it
	Reason     string `json:"reason"`
}

func getHold(txn *badger.Txn, incidentID string) (*LegalHold, error) {
	var h LegalHold
	ok, err := getJSON(txn, pHold+incidentID, &h)
	if err != nil || !ok {
		return nil, err
	}
	return &h, nil
}

func incidentExists(txn *badger.Txn, incidentID string) (bool, error) {
	found := false
	err := scanPrefix(txn, pIncident+incidentID+"/", false, func(_, _ []byte) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// applyLegalHold puts or lifts a legal hold on an incident. The reason is
// required both ways, and audited.
func applyLegalHold(c *applyCtx, body []byte) ([]byte, error) {
	var cmd legalHoldCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(cmd.Reason)
	switch {
	case cmd.IncidentID == "" || strings.Contains(cmd.IncidentID, "/"):
		return nil, invalid("incident_id", "the incident ID is missing or malformed")
	case reason == "":
		return nil, invalid("reason", "say why the hold is put or lifted")
	case len(reason) > MaxHoldReason:
		return nil, invalid("reason", "is %d bytes, longer than %d", len(reason), MaxHoldReason)
	}
	if err := validDisplay("reason", reason); err != nil {
		return nil, err
	}
	ok, err := incidentExists(c.txn, cmd.IncidentID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ruleErr(CodeNotFound, "incident_id", "no incident %q", cmd.IncidentID)
	}
	cur, err := getHold(c.txn, cmd.IncidentID)
	if err != nil {
		return nil, err
	}
	switch {
	case cmd.Hold && cur != nil:
		return nil, ruleErr(CodeConflict, "incident_id", "incident %s is already on legal hold (%s, by %s)", cmd.IncidentID, cur.Reason, cur.By)
	case !cmd.Hold && cur == nil:
		return nil, ruleErr(CodeConflict, "incident_id", "incident %s is not on legal hold", cmd.IncidentID)
	}

	// Every rule has been checked: write.
	h := LegalHold{IncidentID: cmd.IncidentID, Reason: reason, By: c.hdr.Actor, At: c.now()}
	detail := "legal hold put: " + reason
	if cmd.Hold {
		err = putJSON(c.txn, pHold+h.IncidentID, &h)
	} else {
		err = c.txn.Delete([]byte(pHold + h.IncidentID))
		detail = "legal hold lifted: " + reason
	}
	if err != nil {
		return nil, err
	}
	if err := c.audit(CmdLegalHold, "incident/"+h.IncidentID, detail); err != nil {
		return nil, err
	}
	if !cmd.Hold {
		return []byte("null"), nil
	}
	return json.Marshal(&h)
}

// --- The purge ---

// DefaultPurgeBatch is the most keys one purge command deletes or changes.
const DefaultPurgeBatch = 2000

// purgeCmd deletes what is past its organisation's retention at the
// command's time.
type purgeCmd struct {
	Header
	// Max is the most keys deleted or changed; 0 means DefaultPurgeBatch.
	Max int `json:"max,omitempty"`
}

// PurgeResult says what one purge removed.
type PurgeResult struct {
	Alarms      []string `json:"alarms,omitempty"`       // closed alarms removed with all kept about them
	AudioAlarms []string `json:"audio_alarms,omitempty"` // alarms whose audio was removed (alone)
	AudioChunks int      `json:"audio_chunks"`
	Locations   int      `json:"locations"` // positions cleared: alarms', sessions', devices' last fixes
	Outbox      int      `json:"outbox"`    // delivered notifications removed
	Keys        int      `json:"keys"`      // keys deleted or changed
	// More: the command stopped at its bound; more is due.
	More bool `json:"more,omitempty"`
}

// Empty reports whether the purge removed nothing.
func (r *PurgeResult) Empty() bool { return r.Keys == 0 }

// purger deletes within a bound.
type purger struct {
	c    *applyCtx
	max  int
	res  PurgeResult
	orgs map[string]Retention
}

// full reports whether the bound is reached (and so that more is due).
func (p *purger) full() bool {
	if p.res.Keys >= p.max {
		p.res.More = true
		return true
	}
	return false
}

func (p *purger) del(key []byte) error {
	p.res.Keys++
	return p.c.txn.Delete(key)
}

// keysUnder returns up to limit keys under prefix (copies).
func keysUnder(txn *badger.Txn, prefix string, limit int) ([][]byte, error) {
	var out [][]byte
	err := scanPrefix(txn, prefix, false, func(key, _ []byte) (bool, error) {
		out = append(out, append([]byte(nil), key...))
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// delUnder deletes the keys under prefix within the bound, and reports
// whether none is left.
func (p *purger) delUnder(prefix string) (done bool, n int, err error) {
	room := p.max - p.res.Keys
	if room <= 0 {
		p.res.More = true
		return false, 0, nil
	}
	keys, err := keysUnder(p.c.txn, prefix, room+1)
	if err != nil {
		return false, 0, err
	}
	done = len(keys) <= room
	if !done {
		keys = keys[:room]
		p.res.More = true
	}
	for _, k := range keys {
		if err := p.del(k); err != nil {
			return false, 0, err
		}
	}
	return done, len(keys), nil
}

// purgeAudio deletes an alarm's audio, its summary and its audio links,
// and reports whether all is gone (else the bound stopped it).
func (p *purger) purgeAudio(alarmID string) (bool, error) {
	done, n, err := p.delUnder(pAudio + alarmID + "/")
	p.res.AudioChunks += n
	if err != nil || !done {
		return false, err
	}
	links, err := keysUnder(p.c.txn, pAlarmLink+alarmID+"/", 0)
	if err != nil {
		return false, err
	}
	for _, k := range links {
		if err := p.del([]byte(pAudioLink + lastSegment(k))); err != nil {
			return false, err
		}
		if err := p.del(k); err != nil {
			return false, err
		}
	}
	if ok, err := exists(p.c.txn, pAudioMeta+alarmID); err != nil || !ok {
		return err == nil, err
	}
	return true, p.del([]byte(pAudioMeta + alarmID))
}

// purgeAlarm deletes a closed alarm and everything the state keeps about
// it, and reports whether all is gone.
func (p *purger) purgeAlarm(a *Alarm, rawKey []byte) (bool, error) {
	txn := p.c.txn
	if done, err := p.purgeAudio(a.ID); err != nil || !done {
		return false, err
	}
	// The rest is a few dozen keys at most, and goes at once, past the
	// bound if need be: an alarm is never left with part of its
	// timeline.
	tl, err := keysUnder(txn, pTimeline+a.ID+"/", 0)
	if err != nil {
		return false, err
	}
	for _, k := range tl {
		if err := p.del(k); err != nil {
			return false, err
		}
	}
	r, err := getReport(txn, a.ID)
	switch {
	case err == nil:
		if r.State == ReportDraft {
			if err := p.del(reportDueKey(r)); err != nil {
				return false, err
			}
		}
		if err := p.del([]byte(pReport + a.ID)); err != nil {
			return false, err
		}
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	outbox, err := keysUnder(txn, pOutboxAlarm+a.ID+"/", 0)
	if err != nil {
		return false, err
	}
	for _, k := range outbox {
		var m OutboxMessage
		ok, err := getJSON(txn, pOutbox+lastSegment(k), &m)
		if err != nil {
			return false, err
		}
		if ok && m.Pending() {
			continue // the leader still delivers it; a later purge takes it
		}
		if ok {
			if err := p.del([]byte(pOutboxOrg + m.OrgID + "/" + tkey(m.CreatedAt) + "/" + m.ID)); err != nil {
				return false, err
			}
			if err := p.del([]byte(pOutbox + m.ID)); err != nil {
				return false, err
			}
			p.res.Outbox++
		}
		if err := p.del(k); err != nil {
			return false, err
		}
	}
	owned, err := keysUnder(txn, pDeadlineOf+alarmOwner(a.ID)+"/", 0)
	if err != nil {
		return false, err
	}
	for _, k := range owned {
		if err := clearOwnedDeadline(p.c, alarmOwner(a.ID), lastSegment(k)); err != nil {
			return false, err
		}
	}
	if a.DeviceID != "" {
		if err := p.del(deviceAlarmKey(a)); err != nil {
			return false, err
		}
		var f floodRecord
		ok, err := getJSON(txn, pFlood+a.DeviceID, &f)
		if err != nil {
			return false, err
		}
		if ok && f.AlarmID == a.ID {
			if err := p.del([]byte(pFlood + a.DeviceID)); err != nil {
				return false, err
			}
		}
	}
	for _, k := range [][]byte{[]byte(pIncident + a.IncidentID + "/" + tkey(a.RaisedAt) + "/" + a.ID), rawKey, []byte(pAlarm + a.ID)} {
		if err := p.del(k); err != nil {
			return false, err
		}
	}
	p.res.Alarms = append(p.res.Alarms, a.ID)
	return true, nil
}

// applyPurge deletes, within its bound, what is past each organisation's
// retention at the command's time: closed alarms not on legal hold (with
// all kept about them), their audio, their positions, ended sessions'
// positions, devices' old last fixes, and delivered notifications.
func applyPurge(c *applyCtx, body []byte) ([]byte, error) {
	var cmd purgeCmd
	if err := c.decode(body, &cmd); err != nil {
		return nil, err
	}
	if cmd.Max < 0 {
		return nil, invalid("max", "is %d: at least 0", cmd.Max)
	}
	p := &purger{c: c, max: cmd.Max, orgs: map[string]Retention{}}
	if p.max == 0 {
		p.max = DefaultPurgeBatch
	}
	now := c.now()
	// The latest cut-off of any alarm rule: alarms raised after it are
	// all kept.
	var latest time.Time
	err := scanPrefix(c.txn, pOrg, true, func(_, val []byte) (bool, error) {
		var o Organisation
		if err := json.Unmarshal(val, &o); err != nil {
			return false, err
		}
		p.orgs[o.ID] = o.Retention
		for _, d := range []int{o.Retention.AlarmDays, o.Retention.AudioDays, o.Retention.LocationDays} {
			if t, ok := cutoff(now, d); ok && t.After(latest) {
				latest = t
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.purgeAlarms(latest); err != nil {
		return nil, err
	}
	if err := p.purgeSessionLocations(); err != nil {
		return nil, err
	}
	if err := p.purgeDeviceFixes(); err != nil {
		return nil, err
	}
	if err := p.purgeOutbox(); err != nil {
		return nil, err
	}
	if !p.res.Empty() {
		detail := fmt.Sprintf("purged %d closed alarms, the audio of %d more (%d chunks), %d positions, %d delivered notifications",
			len(p.res.Alarms), len(p.res.AudioAlarms), p.res.AudioChunks, p.res.Locations, p.res.Outbox)
		if len(p.res.Alarms) > 0 {
			detail += "; alarms: " + strings.Join(p.res.Alarms, " ")
		}
		if len(p.res.AudioAlarms) > 0 {
			detail += "; audio of: " + strings.Join(p.res.AudioAlarms, " ")
		}
		if p.res.More {
			detail += "; more to purge"
		}
		if err := c.audit(CmdPurge, "retention", detail); err != nil {
			return nil, err
		}
	}
	return json.Marshal(&p.res)
}

// purgeAlarms goes through the alarms raised before latest, oldest first.
func (p *purger) purgeAlarms(latest time.Time) error {
	if latest.IsZero() {
		return nil
	}
	txn, now := p.c.txn, p.c.now()
	end := pRaised + tkey(latest) + "/\xff"
	keys, err := keysUnder(txn, pRaised, 0)
	if err != nil {
		return err
	}
	held := map[string]bool{}
	for _, k := range keys {
		if string(k) > end || p.full() {
			return nil
		}
		a, err := getAlarm(txn, lastSegment(k))
		if err != nil {
			return err
		}
		r, ok := p.orgs[a.OrgID]
		if !ok || a.Status != StatusClosed || a.ClosedAt.IsZero() {
			continue // open alarms are never purged
		}
		h, seen := held[a.IncidentID]
		if !seen {
			hold, err := getHold(txn, a.IncidentID)
			if err != nil {
				return err
			}
			h = hold != nil
			held[a.IncidentID] = h
		}
		if h {
			continue
		}
		if t, due := cutoff(now, r.AlarmDays); due && !a.ClosedAt.After(t) {
			if _, err := p.purgeAlarm(a, k); err != nil {
				return err
			}
			continue
		}
		if t, due := cutoff(now, r.AudioDays); due && !a.ClosedAt.After(t) {
			had, err := exists(txn, pAudioMeta+a.ID)
			if err != nil {
				return err
			}
			if had {
				done, err := p.purgeAudio(a.ID)
				if err != nil {
					return err
				}
				if done {
					p.res.AudioAlarms = append(p.res.AudioAlarms, a.ID)
				}
			}
		}
		if t, due := cutoff(now, r.LocationDays); due && !a.ClosedAt.After(t) && a.Location != nil && !p.full() {
			a.Location = nil
			p.res.Locations++
			p.res.Keys++
			if err := putJSON(txn, pAlarm+a.ID, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// purgeSessionLocations clears the positions of ended sessions past their
// organisation's location retention.
func (p *purger) purgeSessionLocations() error {
	var due []Session
	err := scanPrefix(p.c.txn, pSession, true, func(_, val []byte) (bool, error) {
		var s Session
		if err := json.Unmarshal(val, &s); err != nil {
			return false, err
		}
		if s.Status != SessionEnded || s.Location == nil {
			return true, nil
		}
		if t, ok := cutoff(p.c.now(), p.orgs[s.OrgID].LocationDays); ok && !s.EndedAt.After(t) {
			due = append(due, s)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, s := range due {
		if p.full() {
			return nil
		}
		s.Location = nil
		p.res.Locations++
		p.res.Keys++
		if err := putJSON(p.c.txn, pSession+s.ID, &s); err != nil {
			return err
		}
	}
	return nil
}

// purgeDeviceFixes clears a device's last fix once the fix itself is past
// its organisation's location retention.
func (p *purger) purgeDeviceFixes() error {
	var due []Device
	err := scanPrefix(p.c.txn, pDevice, true, func(_, val []byte) (bool, error) {
		var d Device
		if err := json.Unmarshal(val, &d); err != nil {
			return false, err
		}
		if d.Location == nil {
			return true, nil
		}
		at := d.Location.At
		if at.IsZero() {
			at = d.LastSeen
		}
		if t, ok := cutoff(p.c.now(), p.orgs[d.OrgID].LocationDays); ok && !at.IsZero() && !at.After(t) {
			due = append(due, d)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, d := range due {
		if p.full() {
			return nil
		}
		d.Location = nil
		p.res.Locations++
		p.res.Keys++
		if err := putJSON(p.c.txn, pDevice+d.ID, &d); err != nil {
			return err
		}
	}
	return nil
}

// purgeOutbox deletes delivered notifications past their organisation's
// outbox retention, oldest first.
func (p *purger) purgeOutbox() error {
	for _, orgID := range sortedKeys(p.orgs) {
		t, ok := cutoff(p.c.now(), p.orgs[orgID].OutboxDays)
		if !ok {
			continue
		}
		end := pOutboxOrg + orgID + "/" + tkey(t) + "/\xff"
		keys, err := keysUnder(p.c.txn, pOutboxOrg+orgID+"/", 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if string(k) > end || p.full() {
				break
			}
			var m OutboxMessage
			ok, err := getJSON(p.c.txn, pOutbox+lastSegment(k), &m)
			if err != nil {
				return err
			}
			if ok && m.State != OutboxSent {
				continue
			}
			if ok {
				if m.AlarmID != "" {
					if err := p.del([]byte(pOutboxAlarm + m.AlarmID + "/" + m.ID)); err != nil {
						return err
					}
				}
				if err := p.del([]byte(pOutbox + m.ID)); err != nil {
					return err
				}
				p.res.Outbox++
			}
			if err := p.del(k); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// --- The Service ---

// LegalHold puts a legal hold on an incident (hold true) or lifts it, with
// a reason, as actor (a supervisor or an admin: the console and the API
// check the role). It returns the hold, nil once lifted.
func (s *Service) LegalHold(ctx context.Context, cmdID, actor, incidentID string, hold bool, reason string) (*LegalHold, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, invalid("actor", "who puts the hold is missing")
	}
	res, err := s.propose(ctx, cmdID, CmdLegalHold, legalHoldCmd{Header: s.header(actor), IncidentID: incidentID,
		Hold: hold, Reason: reason})
	if err != nil {
		return nil, err
	}
	if !hold {
		return nil, nil
	}
	return decodeResponse[LegalHold](res.Response)
}

// Hold returns an incident's legal hold, or nil when it has none.
func (s *Service) Hold(incidentID string) (*LegalHold, error) {
	var h *LegalHold
	err := s.view(func(txn *badger.Txn) (err error) { h, err = getHold(txn, incidentID); return err })
	return h, err
}

// Purge proposes one purge at the Service's time, deleting at most max
// keys (0: DefaultPurgeBatch), and returns what it removed.
func (s *Service) Purge(ctx context.Context, max int) (*PurgeResult, error) {
	res, err := s.propose(ctx, uuid.NewString(), CmdPurge, purgeCmd{Header: s.header("system"), Max: max})
	if err != nil {
		return nil, err
	}
	return decodeResponse[PurgeResult](res.Response)
}
