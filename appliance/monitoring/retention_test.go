package monitoring

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// keysWith returns every key of the state, the audit log aside, that
// contains s.
func (e *alarmEnv) keysWith(s string) []string {
	e.t.Helper()
	var out []string
	e.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, "", false, func(k, _ []byte) (bool, error) {
			if !strings.HasPrefix(string(k), pAudit) && strings.Contains(string(k), s) {
				out = append(out, string(k))
			}
			return true, nil
		})
	})
	return out
}

func (e *alarmEnv) purge(max int) PurgeResult {
	e.t.Helper()
	resp, err := e.apply(CmdPurge, purgeCmd{Header: e.hdr("system"), Max: max})
	if err != nil {
		e.t.Fatalf("purge refused: %v", err)
	}
	var r PurgeResult
	if err := json.Unmarshal(resp, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *alarmEnv) hold(incident string, on bool, reason string) error {
	e.t.Helper()
	_, err := e.apply(CmdLegalHold, legalHoldCmd{Header: e.hdr("sam"), IncidentID: incident, Hold: on, Reason: reason})
	return err
}

// retentionEnv has o1 keeping audio 10 days, positions 7, closed alarms
// 30 and delivered notifications 1; o2 keeps everything. Alarms: a1 (o1,
// genuine, with audio, a link and a report), a2 (o1, false alarm, audio),
// a3 (o2, closed), a4 (o1, open), a5 (o1, closed, its incident held),
// all closed at closedAt; an ended session of o1 and device d2's fix of
// then; a sent and a due notification of o1.
func retentionEnv(t *testing.T) (e *alarmEnv, closedAt time.Time) {
	e = mustAlarmEnv(t)
	e.put(pOrg+"o1", Organisation{ID: "o1", Name: "Trust One",
		Retention: Retention{AudioDays: 10, LocationDays: 7, AlarmDays: 30, OutboxDays: 1}})
	here := &Location{Lat: 51.5, Lon: -0.12, Source: "gps", At: e.now}
	e.put(pDevice+"d2", Device{ID: "d2", Kind: DevicePhoneApp, OrgID: "o1", WorkerID: "w2", Location: here, LastSeen: e.now})
	e.put(pSession+"s1", Session{ID: "s1", WorkerID: "w1", OrgID: "o1", Status: SessionEnded, Location: here, EndedAt: e.now})
	for _, a := range []struct{ id, dev string }{{"a1", "d1"}, {"a2", "d2"}, {"a3", "d3"}, {"a5", "d1"}} {
		e.raiseAt(a.id, a.dev, here)
		e.tick(time.Second)
		c := pcm(0, pcmTone(8000, 1, 0, 80))
		c.AlarmID, c.DeviceID = a.id, a.dev
		e.mustChunk(c)
		c.Seq, c.Data = 1, pcmTone(8000, 1, 80, 80)
		e.mustChunk(c)
		e.ack(a.id, "olivia")
		res := ResolutionWorkerSafe
		if a.id == "a2" {
			res = ResolutionFalseAlarm
		}
		e.closeWith(a.id, res, RulesNotify)
	}
	if _, err := e.apply(CmdCreateLinkKey, createLinkKeyCmd{Header: e.hdr("system"), Key: testLinkKey}); err != nil {
		t.Fatal(err)
	}
	e.issueLink("link1", "a1", 90*24*time.Hour)
	closedAt = e.now
	e.raiseAt("a4", "d2", here)
	for _, m := range []OutboxMessage{
		{ID: "m-sent", OrgID: "o1", AlarmID: "a4", State: OutboxSent, CreatedAt: e.now, Channel: "mail", To: "x@example.org"},
		{ID: "m-due", OrgID: "o1", AlarmID: "a4", State: OutboxDue, CreatedAt: e.now, NextAt: e.now, Channel: "mail", To: "x@example.org"},
	} {
		e.put(pOutbox+m.ID, m)
		e.put(pOutboxAlarm+m.AlarmID+"/"+m.ID, nil)
		e.put(pOutboxOrg+m.OrgID+"/"+tkey(m.CreatedAt)+"/"+m.ID, nil)
	}
	if err := e.hold("a5", true, "claim against the trust, solicitor's letter 12/3"); err != nil {
		t.Fatal(err)
	}
	return e, closedAt
}

// Each purge removes exactly what is due at its time, in order: positions
// after 7 days, audio after 10, closed alarms with everything kept about
// them after 30, delivered notifications after 1; open alarms, another
// organisation's data kept for ever and a held incident stay; a bounded
// purge says there is more and the next one goes on.
func TestPurge_RemovesWhatIsDueAndItsIndexes(t *testing.T) {
	e, closedAt := retentionEnv(t)
	a1Keys := e.keysWith("a1")
	for _, want := range []string{pAlarm + "a1", pTimeline + "a1/", pRaised, pIncident + "a1/", pDeviceAlarm + "d1/", pAudio + "a1/", pAudioMeta + "a1", pAlarmLink + "a1/", pReport + "a1", pReportDue} {
		if !slices.ContainsFunc(a1Keys, func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Fatalf("set-up: no key %s... for a1 in %q", want, a1Keys)
		}
	}

	// A day and a bit later: only the sent notification.
	e.now = closedAt.Add(25 * time.Hour)
	r := e.purge(0)
	if r.Outbox != 1 || len(r.Alarms) != 0 || r.AudioChunks != 0 || r.Locations != 0 {
		t.Fatalf("after a day: %+v", r)
	}
	if got := e.keysWith("m-sent"); len(got) != 0 {
		t.Fatalf("the sent notification left %q", got)
	}
	if got := e.keysWith("m-due"); len(got) != 3 {
		t.Fatalf("the notification still to deliver: keys %q, want 3", got)
	}

	// After 8 days: the positions of o1's closed alarms (a1, a2; not the
	// held a5, not the open a4), its ended session and d2's old fix.
	e.now = closedAt.Add(8 * 24 * time.Hour)
	r = e.purge(0)
	if r.Locations != 4 || r.AudioChunks != 0 {
		t.Fatalf("after 8 days: %+v, want 4 positions", r)
	}
	for id, want := range map[string]bool{"a1": false, "a2": false, "a3": true, "a4": true, "a5": true} {
		if got := e.alarm(id).Location != nil; got != want {
			t.Fatalf("alarm %s has a position: %v, want %v", id, got, want)
		}
	}
	var s Session
	var d Device
	e.view(func(txn *badger.Txn) error {
		_, err := getJSON(txn, pSession+"s1", &s)
		if err == nil {
			_, err = getJSON(txn, pDevice+"d2", &d)
		}
		return err
	})
	if s.Location != nil || d.Location != nil {
		t.Fatalf("session %+v or device %+v keeps its position", s.Location, d.Location)
	}

	// After 11 days: the audio of a1 and a2, their link too.
	e.now = closedAt.Add(11 * 24 * time.Hour)
	r = e.purge(0)
	if !slices.Equal(r.AudioAlarms, []string{"a1", "a2"}) || r.AudioChunks != 4 {
		t.Fatalf("after 11 days: %+v", r)
	}
	for _, id := range []string{"a1", "a2"} {
		for _, k := range e.keysWith(id) {
			if strings.HasPrefix(k, "audio") || strings.HasPrefix(k, pAlarmLink) {
				t.Fatalf("alarm %s keeps %s", id, k)
			}
		}
	}
	if got := e.keysWith("link1"); len(got) != 0 {
		t.Fatalf("the audio link is left: %q", got)
	}
	for _, id := range []string{"a3", "a5"} {
		if n := len(e.keysWith(pAudio + id + "/")); n != 2 {
			t.Fatalf("alarm %s has %d chunks, want its 2", id, n)
		}
	}

	// After 31 days: a1 and a2 go whole, in purges of at most 5 keys.
	e.now = closedAt.Add(31 * 24 * time.Hour)
	rounds, alarms := 0, []string{}
	for {
		rounds++
		r = e.purge(5)
		alarms = append(alarms, r.Alarms...)
		if r.Keys > 5+20 {
			t.Fatalf("a purge bounded at 5 keys changed %d", r.Keys)
		}
		if !r.More {
			break
		}
		if rounds > 20 {
			t.Fatal("the purge never ends")
		}
	}
	if rounds < 2 || !slices.Equal(alarms, []string{"a1", "a2"}) {
		t.Fatalf("%d rounds purged %q", rounds, alarms)
	}
	for _, id := range []string{"a1", "a2"} {
		if got := e.keysWith(id); len(got) != 0 {
			t.Fatalf("purged alarm %s left %q", id, got)
		}
	}
	for _, id := range []string{"a3", "a4", "a5"} {
		if e.alarm(id) == nil {
			t.Fatalf("alarm %s was purged", id)
		}
	}
	if n := len(e.keysWith(pTimeline + "a5/")); n == 0 {
		t.Fatal("the held alarm lost its timeline")
	}
	if rep, err := e.report("a5"); err != nil || rep == nil {
		t.Fatalf("the held alarm's report: %v", err)
	}
	// Nothing more is due: the next purge changes nothing, not even the
	// audit log.
	before := e.hash()
	if r := e.purge(0); !r.Empty() {
		t.Fatalf("a purge with nothing due: %+v", r)
	}
	if !slices.Equal(before, e.hash()) {
		t.Fatal("a purge with nothing due changed the state")
	}
	// The purges are audited with what they removed.
	details := strings.Join(e.auditDetails("retention"), "\n")
	for _, want := range []string{"1 delivered notifications", "4 positions", "audio of: a1 a2", "alarms: a1"} {
		if !strings.Contains(details, want) {
			t.Fatalf("the audit of the purges does not say %q:\n%s", want, details)
		}
	}

	// Once the hold is lifted, a5 goes at the next purge.
	if err := e.hold("a5", false, "claim settled"); err != nil {
		t.Fatal(err)
	}
	if r := e.purge(0); !slices.Equal(r.Alarms, []string{"a5"}) {
		t.Fatalf("after the hold is lifted: %+v", r)
	}
	if got := e.keysWith("a5"); len(got) != 0 {
		t.Fatalf("a5 left %q", got)
	}
	if details := e.auditDetails("incident/a5"); len(details) != 2 || !strings.Contains(details[1], "lifted: claim settled") {
		t.Fatalf("the hold's audit: %q", details)
	}
}

// Every refusal of a hold names its field and leaves the state hash
// unchanged (apply checks it).
func TestLegalHold_Refusals(t *testing.T) {
	e, _ := retentionEnv(t)
	for _, tc := range []struct {
		name, incident, reason string
		hold                   bool
		code                   Code
		field                  string
	}{
		{"no reason", "a1", "  ", true, CodeInvalid, "reason"},
		{"reason too long", "a1", strings.Repeat("x", MaxHoldReason+1), true, CodeInvalid, "reason"},
		{"hidden characters", "a1", "ok\u202e", true, CodeInvalid, "reason"},
		{"no incident", "", "r", true, CodeInvalid, "incident_id"},
		{"unknown incident", "zz", "r", true, CodeNotFound, "incident_id"},
		{"held already", "a5", "again", true, CodeConflict, "incident_id"},
		{"lift what is not held", "a1", "r", false, CodeConflict, "incident_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.refusedAs(CmdLegalHold, legalHoldCmd{Header: e.hdr("sam"), IncidentID: tc.incident, Hold: tc.hold, Reason: tc.reason}, tc.code, tc.field)
		})
	}
	e.t = t
	e.refusedAs(CmdPurge, purgeCmd{Header: e.hdr("system"), Max: -1}, CodeInvalid, "max")
}

// An organisation's retention is bounded, and its audio and positions are
// kept no longer than its closed alarms.
func TestOrganisation_RetentionBounds(t *testing.T) {
	e := mustDirEnv(t)
	ok := Organisation{ID: "o1", Name: "Trust", Retention: RecommendedRetention}
	e.putOrg(ok)
	for _, tc := range []struct {
		r     Retention
		field string
	}{
		{Retention{AudioDays: MinAudioDays - 1}, "org.retention.audio_days"},
		{Retention{LocationDays: -1}, "org.retention.location_days"},
		{Retention{AlarmDays: MinAlarmDays - 1}, "org.retention.alarm_days"},
		{Retention{AlarmDays: MaxRetentionDays + 1}, "org.retention.alarm_days"},
		{Retention{OutboxDays: MaxRetentionDays + 1}, "org.retention.outbox_days"},
		{Retention{AlarmDays: 60, AudioDays: 90}, "org.retention.audio_days"},
		{Retention{AlarmDays: 60, LocationDays: 61}, "org.retention.location_days"},
	} {
		o := ok
		o.Retention = tc.r
		e.refused(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: o}, CodeInvalid, tc.field)
	}
}

// retentionEvery is how often a step of the replicas property also
// generates a purge or a legal hold, from its own source (seeded from the
// count of commands, after the other sources are made) so that the rest of
// the sequence is drawn as before.
const retentionEvery = 13

// stepRetention generates a legal hold put or lifted (on incidents, on
// alarms that are not incidents, on none) or a purge at a time up to 40
// days ahead, so that o1's closed alarms, audio, positions and sent
// notifications fall due while others are held or open.
func (g *gen) stepRetention() {
	r := rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x50))
	hdr := Header{At: g.now, Actor: "sam", Node: "n3"}
	if r.IntN(2) == 0 {
		incident := "ghost"
		if len(g.alarms) > 0 && r.IntN(6) != 0 {
			incident = g.alarms[r.IntN(len(g.alarms))]
		}
		reason := []string{"claim", "inquest", "", "police request"}[r.IntN(4)]
		g.add(CmdLegalHold, legalHoldCmd{Header: hdr, IncidentID: incident, Hold: r.IntN(3) != 0, Reason: reason})
		return
	}
	hdr.At = g.now.Add(time.Duration([]int{0, 10, 20, 40}[r.IntN(4)]) * 24 * time.Hour)
	g.add(CmdPurge, purgeCmd{Header: hdr, Max: []int{0, 3, 40, -1}[r.IntN(4)]})
}
