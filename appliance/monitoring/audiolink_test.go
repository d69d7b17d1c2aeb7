package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// testLinkKey is a key of the right length.
var testLinkKey = bytes.Repeat([]byte{7}, LinkKeyBytes)

// refusedAs applies a command that must be refused with code on field;
// apply has checked that the state hash did not change.
func (e *alarmEnv) refusedAs(t CmdType, body any, code Code, field string) {
	e.t.Helper()
	_, err := e.apply(t, body)
	var re *RuleError
	if !errors.As(err, &re) || re.Code != code || re.Field != field {
		e.t.Fatalf("%s: got %v, want a refusal %s on %q", t, err, code, field)
	}
}

func (e *alarmEnv) link(id string) *AudioLink {
	e.t.Helper()
	var l *AudioLink
	e.view(func(txn *badger.Txn) (err error) { l, err = getAudioLink(txn, id); return err })
	return l
}

func (e *alarmEnv) issueLink(id, alarm string, life time.Duration) *AudioLink {
	e.t.Helper()
	resp, err := e.apply(CmdIssueAudioLink, issueAudioLinkCmd{Header: e.hdr("olivia"), LinkID: id, AlarmID: alarm, Expires: e.now.Add(life)})
	if err != nil {
		e.t.Fatalf("issue link %s: %v", id, err)
	}
	var l AudioLink
	if err := json.Unmarshal(resp, &l); err != nil {
		e.t.Fatal(err)
	}
	return &l
}

func (e *alarmEnv) auditDetails(subject string) []string {
	e.t.Helper()
	var out []string
	e.view(func(txn *badger.Txn) error {
		recs, err := listJSON[AuditRecord](txn, pAudit, 0)
		for _, r := range recs {
			if r.Subject == subject {
				out = append(out, r.Command+": "+r.Detail)
			}
		}
		return err
	})
	return out
}

// The link key is made once and never replaced; a link needs it, an
// alarm, a fresh ID and an expiry within bounds; every refusal leaves the
// state hash as it was (alarmEnv.apply checks).
func TestAudioLink_KeyAndIssueRules(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	hdr := e.hdr("olivia")
	e.refusedAs(CmdIssueAudioLink, issueAudioLinkCmd{Header: hdr, LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(time.Hour)}, CodeConflict, "key")
	e.refusedAs(CmdCreateLinkKey, createLinkKeyCmd{Header: e.hdr("system"), Key: []byte("short")}, CodeInvalid, "key")
	if _, err := e.apply(CmdCreateLinkKey, createLinkKeyCmd{Header: e.hdr("system"), Key: testLinkKey}); err != nil {
		t.Fatal(err)
	}
	e.refusedAs(CmdCreateLinkKey, createLinkKeyCmd{Header: e.hdr("system"), Key: bytes.Repeat([]byte{8}, LinkKeyBytes)}, CodeConflict, "key")
	for _, d := range e.auditDetails(kLinkKey) {
		if strings.Contains(d, string(testLinkKey)) {
			t.Fatalf("the audit log shows the key: %q", d)
		}
	}

	for _, tc := range []struct {
		name  string
		cmd   issueAudioLinkCmd
		code  Code
		field string
	}{
		{"empty ID", issueAudioLinkCmd{AlarmID: "a1", Expires: e.now.Add(time.Hour)}, CodeInvalid, "link_id"},
		{"ID with capitals", issueAudioLinkCmd{LinkID: "L1", AlarmID: "a1", Expires: e.now.Add(time.Hour)}, CodeInvalid, "link_id"},
		{"unknown alarm", issueAudioLinkCmd{LinkID: "l1", AlarmID: "nope", Expires: e.now.Add(time.Hour)}, CodeNotFound, "alarm_id"},
		{"too short", issueAudioLinkCmd{LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(time.Minute)}, CodeInvalid, "expires"},
		{"too long", issueAudioLinkCmd{LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(MaxAudioLinkLife + time.Hour)}, CodeInvalid, "expires"},
		{"in the past", issueAudioLinkCmd{LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(-time.Hour)}, CodeInvalid, "expires"},
		{"not whole seconds", issueAudioLinkCmd{LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(time.Hour + time.Millisecond)}, CodeInvalid, "expires"},
		{"note too long", issueAudioLinkCmd{LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(time.Hour), Note: strings.Repeat("x", MaxTextLen+1)}, CodeInvalid, "note"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.Header = hdr
			e.refusedAs(CmdIssueAudioLink, tc.cmd, tc.code, tc.field)
		})
	}
	l := e.issueLink("l1", "a1", DefaultAudioLinkLife)
	if !l.Expires.Equal(t0.Add(DefaultAudioLinkLife)) || l.CreatedBy != "olivia" || l.Revoked || l.Downloads != 0 {
		t.Fatalf("link %+v", l)
	}
	e.refusedAs(CmdIssueAudioLink, issueAudioLinkCmd{Header: hdr, LinkID: "l1", AlarmID: "a1", Expires: e.now.Add(time.Hour)}, CodeConflict, "link_id")
	for i := 2; i <= MaxAudioLinksPerAlarm; i++ {
		e.issueLink("l"+strings.Repeat("x", i), "a1", time.Hour)
	}
	e.refusedAs(CmdIssueAudioLink, issueAudioLinkCmd{Header: hdr, LinkID: "lmore", AlarmID: "a1", Expires: e.now.Add(time.Hour)}, CodeConflict, "alarm_id")
}

// A download is refused for a link that names another alarm or expiry,
// after a revocation and from the expiry on; each one accepted counts on
// the link and writes an audit record naming the link and the client.
func TestAudioLink_DownloadRules(t *testing.T) {
	e := mustAlarmEnv(t)
	e.raise("a1", AlarmRedAlert, "d1")
	e.raise("a2", AlarmRedAlert, "d2")
	e.must2(CmdCreateLinkKey, createLinkKeyCmd{Header: e.hdr("system"), Key: testLinkKey})
	l1 := e.issueLink("l1", "a1", 2*time.Hour)
	l2 := e.issueLink("l2", "a1", time.Hour)
	dl := func(l *AudioLink, alarm string) audioLinkDownloadCmd {
		return audioLinkDownloadCmd{Header: e.hdr(LinkActorPrefix + l.ID), LinkID: l.ID, AlarmID: alarm, Expires: l.Expires, Remote: "192.0.2.7"}
	}
	e.refusedAs(CmdAudioLinkDownload, dl(l1, "a2"), CodeBadLink, "link_id")
	other := dl(l1, "a1")
	other.Expires = other.Expires.Add(time.Hour)
	e.refusedAs(CmdAudioLinkDownload, other, CodeBadLink, "link_id")
	e.refusedAs(CmdAudioLinkDownload, dl(&AudioLink{ID: "ghost", Expires: l1.Expires}, "a1"), CodeNotFound, "link_id")
	long := dl(l1, "a1")
	long.Remote = strings.Repeat("r", MaxRemoteLen+1)
	e.refusedAs(CmdAudioLinkDownload, long, CodeInvalid, "remote")

	e.must2(CmdAudioLinkDownload, dl(l1, "a1"))
	e.tick(time.Minute)
	e.must2(CmdAudioLinkDownload, dl(l1, "a1"))
	if got := e.link("l1"); got.Downloads != 2 || got.LastRemote != "192.0.2.7" || !got.LastAt.Equal(e.now) {
		t.Fatalf("after two downloads: %+v", got)
	}
	var downloads int
	for _, d := range e.auditDetails("alarm/a1") {
		if strings.HasPrefix(d, "CmdAudioLinkDownload: audio downloaded by link l1") && strings.Contains(d, "from 192.0.2.7") {
			downloads++
		}
	}
	if downloads != 2 {
		t.Fatalf("%d download audit records, want 2: %q", downloads, e.auditDetails("alarm/a1"))
	}

	// Revoked: refused at once, on every replica, as the log orders it.
	e.must2(CmdRevokeAudioLink, revokeAudioLinkCmd{Header: e.hdr("sam"), LinkID: "l1"})
	before := e.hash()
	e.must2(CmdRevokeAudioLink, revokeAudioLinkCmd{Header: e.hdr("sam"), LinkID: "l1"}) // again: nothing changes
	if !bytes.Equal(before, e.hash()) {
		t.Fatal("revoking a revoked link changed the state")
	}
	e.refusedAs(CmdRevokeAudioLink, revokeAudioLinkCmd{Header: e.hdr("sam"), LinkID: "nope"}, CodeNotFound, "link_id")
	e.refusedAs(CmdRevokeAudioLink, revokeAudioLinkCmd{Header: e.hdr("sam"), LinkID: "No/pe"}, CodeInvalid, "link_id")
	e.refusedAs(CmdAudioLinkDownload, dl(l1, "a1"), CodeLinkRevoked, "link_id")
	if got := e.link("l1"); !got.Revoked || got.RevokedBy != "sam" || got.Downloads != 2 {
		t.Fatalf("revoked link %+v", got)
	}

	// Expired: the last second works, the expiry itself does not.
	e.now = l2.Expires.Add(-time.Second)
	e.must2(CmdAudioLinkDownload, dl(l2, "a1"))
	e.now = l2.Expires
	e.refusedAs(CmdAudioLinkDownload, dl(l2, "a1"), CodeLinkExpired, "link_id")
}

// must2 applies a command that must be accepted, whatever it responds.
func (e *alarmEnv) must2(t CmdType, body any) {
	e.t.Helper()
	if _, err := e.apply(t, body); err != nil {
		e.t.Fatalf("%s refused: %v", t, err)
	}
}

// A link's signature covers its ID, alarm and expiry: changing any of
// them, or the signature, or using another key, fails the check.
func TestAudioLink_SignatureCoversEveryField(t *testing.T) {
	l := &AudioLink{ID: "0123abcd", AlarmID: "a1", Expires: t0.Add(time.Hour)}
	sig := signLink(testLinkKey, l.ID, l.AlarmID, l.Expires.Unix())
	for _, tc := range []struct {
		name          string
		id, alarm     string
		exp           int64
		key           []byte
		wantSameAsSig bool
	}{
		{"as made", l.ID, l.AlarmID, l.Expires.Unix(), testLinkKey, true},
		{"another ID", "0123abce", l.AlarmID, l.Expires.Unix(), testLinkKey, false},
		{"another alarm", l.ID, "a2", l.Expires.Unix(), testLinkKey, false},
		{"a later expiry", l.ID, l.AlarmID, l.Expires.Unix() + 1, testLinkKey, false},
		{"another key", l.ID, l.AlarmID, l.Expires.Unix(), bytes.Repeat([]byte{8}, LinkKeyBytes), false},
	} {
		if got := signLink(tc.key, tc.id, tc.alarm, tc.exp) == sig; got != tc.wantSameAsSig {
			t.Errorf("%s: same signature %v, want %v", tc.name, got, tc.wantSameAsSig)
		}
	}
	path := audioLinkPath(testLinkKey, l)
	if !strings.HasPrefix(path, "/audio/a1/audio.wav?") || !strings.Contains(path, "sig="+sig) || !strings.Contains(path, "link=0123abcd") {
		t.Fatalf("path %q", path)
	}
}

// afterIncidentEvery is how often a step of the replicas property also
// generates an audio link or report command.
const afterIncidentEvery = 11

// stepAfterIncident generates an audio link or report command for the
// replicas property (determinism_test.go): the key made (and again), links
// made for alarms, revoked and downloaded at times before and after their
// expiry, and report actions on the reports the closes made. It draws from
// its own random source, so that the other commands stay as they were.
func (g *gen) stepAfterIncident() {
	if g.nr == nil {
		g.nr = rand.New(rand.NewPCG(uint64(len(g.cmds)), 0x18))
	}
	r := g.nr
	hdr := Header{At: g.now, Actor: "sam", Node: "n2"}
	var haveKey bool
	if err := g.a.db.View(func(txn *badger.Txn) (err error) { haveKey, err = exists(txn, kLinkKey); return err }); err != nil {
		g.t.Fatal(err)
	}
	var made []string // the links that exist, mostly revoked and downloaded
	if err := g.a.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, pAudioLink, false, func(k, _ []byte) (bool, error) {
			made = append(made, lastSegment(k))
			return true, nil
		})
	}); err != nil {
		g.t.Fatal(err)
	}
	switch n := r.IntN(10); {
	case n == 0 || !haveKey && r.IntN(2) == 0:
		key := bytes.Repeat([]byte{byte(1 + r.IntN(3))}, LinkKeyBytes)
		if r.IntN(5) == 0 {
			key = key[:8]
		}
		g.add(CmdCreateLinkKey, createLinkKeyCmd{Header: hdr, Key: key})
	case n < 4:
		id := "l" + string(rune('a'+r.IntN(12)))
		life := []time.Duration{time.Hour, DefaultAudioLinkLife, 10 * time.Minute, time.Hour, time.Minute, MaxAudioLinkLife + time.Hour}[r.IntN(6)]
		g.links = append(g.links, id)
		alarm := g.pick(g.alarms)
		if r.IntN(8) == 0 {
			alarm = "ghost"
		}
		g.add(CmdIssueAudioLink, issueAudioLinkCmd{Header: hdr, LinkID: id, AlarmID: alarm, Expires: g.now.Add(life)})
	case n < 6:
		id := g.pick(append(g.links, "lz"))
		if len(made) > 0 && r.IntN(4) != 0 {
			id = made[r.IntN(len(made))]
		}
		g.add(CmdRevokeAudioLink, revokeAudioLinkCmd{Header: hdr, LinkID: id})
	case n < 8:
		id := g.pick(append(g.links, "lz"))
		// Mostly links that still work, so that downloads are accepted
		// too: revokes and expiries take most links in a long run.
		live := made
		if err := g.a.db.View(func(txn *badger.Txn) error {
			var ok []string
			for _, m := range made {
				var l AudioLink
				if found, err := getJSON(txn, pAudioLink+m, &l); err != nil {
					return err
				} else if found && !l.Revoked && l.Expires.After(g.now) {
					ok = append(ok, m)
				}
			}
			if len(ok) > 0 {
				live = ok
			}
			return nil
		}); err != nil {
			g.t.Fatal(err)
		}
		if len(live) > 0 && r.IntN(4) != 0 {
			id = live[r.IntN(len(live))]
		}
		var l AudioLink
		if err := g.a.db.View(func(txn *badger.Txn) (err error) { _, err = getJSON(txn, pAudioLink+id, &l); return err }); err != nil {
			g.t.Fatal(err)
		}
		exp := l.Expires
		if r.IntN(6) == 0 {
			exp = exp.Add(time.Second)
		}
		at := g.now
		if r.IntN(3) == 0 && !l.Expires.IsZero() { // sometimes when it has expired
			at = l.Expires.Add(time.Duration(r.IntN(3)-1) * time.Second)
		}
		g.add(CmdAudioLinkDownload, audioLinkDownloadCmd{Header: Header{At: at, Actor: LinkActorPrefix + id, Node: "n3"},
			LinkID: id, AlarmID: l.AlarmID, Expires: exp, Remote: "192.0.2.1"})
	default:
		action := []ReportActionKind{ReportSaveRecommendations, ReportSignOff, ReportSignOff, "publish"}[r.IntN(4)]
		text := []string{"", "Review the lone visit policy for the estate.", "Pair staff for evening visits."}[r.IntN(3)]
		var drafts []string // mostly a report still a draft
		if err := g.a.db.View(func(txn *badger.Txn) error {
			return scanPrefix(txn, pReportDue, false, func(k, _ []byte) (bool, error) {
				drafts = append(drafts, lastSegment(k))
				return true, nil
			})
		}); err != nil {
			g.t.Fatal(err)
		}
		alarm := g.pick(g.closedAlarms())
		if len(drafts) > 0 && r.IntN(4) != 0 {
			alarm = drafts[r.IntN(len(drafts))]
		}
		g.add(CmdReportAction, reportActionCmd{Header: hdr, AlarmID: alarm, Action: action, Recommendations: text})
	}
}
