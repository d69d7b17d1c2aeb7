package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func (e *dirEnv) updateCmd(device, worker, session, text string) postUpdateCmd {
	return postUpdateCmd{Header: e.hdr(), DeviceID: device, WorkerID: worker, SessionID: session, Text: text,
		DeviceTime: e.now.Add(-time.Second)}
}

// postUpdate applies an Update that must be accepted and returns its record.
func (e *dirEnv) postUpdate(cmd postUpdateCmd) UpdateRecord {
	e.t.Helper()
	var r UpdateRecord
	if err := json.Unmarshal(e.must(CmdPostUpdate, cmd), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestUpdate_Refusals(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.start("s1", "w1", "d1", time.Hour, 0)
	e.start("ended", "w2", "d2", time.Hour, 0)
	if _, err := e.action("ended", SessionEnd, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cmd   postUpdateCmd
		code  Code
		field string
	}{
		{"empty", e.updateCmd("d1", "", "", "  "), CodeInvalid, "update"},
		{"too long", e.updateCmd("d1", "", "", strings.Repeat("x", MaxTextLen+1)), CodeInvalid, "update"},
		{"unknown device", e.updateCmd("ghost", "", "", "hi"), CodeNotFound, "device_id"},
		{"unknown session", e.updateCmd("d1", "", "nope", "hi"), CodeNotFound, "session_id"},
		{"ended session", e.updateCmd("d2", "", "ended", "hi"), CodeSessionEnded, "session_id"},
		{"another device's session", e.updateCmd("d2", "", "s1", "hi"), CodeNotFound, "session_id"},
		{"another device's ended session", e.updateCmd("d1", "", "ended", "hi"), CodeNotFound, "session_id"},
		{"another worker's session", e.updateCmd("", "w2", "s1", "hi"), CodeConflict, "worker_id"},
		{"pooled device, no worker", e.updateCmd("p1", "", "", "hi"), CodeInvalid, "worker_id"},
		{"device of another worker", e.updateCmd("d1", "w2", "", "hi"), CodeConflict, "worker_id"},
		{"unknown worker", e.updateCmd("", "nobody", "", "hi"), CodeNotFound, "worker_id"},
		{"nobody", e.updateCmd("", "", "", "hi"), CodeInvalid, "worker_id"},
	} {
		t.Run(tc.name, func(t *testing.T) { e.refused(CmdPostUpdate, tc.cmd, tc.code, tc.field) })
	}
}

// An Update replaces the Update of the worker's session, without touching
// its timers, and is kept in the history.
func TestUpdate_ReplacesSessionUpdate(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	before := e.start("s1", "w1", "d1", time.Hour, 15*time.Minute)
	deadlines := fmt.Sprint(e.deadlines())
	e.eventTypes()
	e.now = e.now.Add(10 * time.Minute)
	r := e.postUpdate(e.updateCmd("d1", "", "", "Flat 3: client agitated, call me at 15:30"))
	if r.SessionID != "s1" || r.WorkerID != "w1" || !r.At.Equal(e.now) || r.DeviceID != "d1" {
		t.Fatalf("record %+v", r)
	}
	s := e.session("s1")
	if s.Update != "Flat 3: client agitated, call me at 15:30" || s.Seq != before.Seq || !s.NextDue.Equal(before.NextDue) {
		t.Fatalf("session %+v", s)
	}
	if got := fmt.Sprint(e.deadlines()); got != deadlines {
		t.Fatalf("deadlines changed:\n%s\n%s", deadlines, got)
	}
	if types := e.eventTypes(); len(types) != 1 || types[0] != EventSessionUpdated {
		t.Fatalf("events %v", types)
	}
	if w := e.worker("w1"); w.LastUpdate != "" {
		t.Fatalf("a session's Update became the standing one: %+v", w)
	}
	// Naming the session gives the same.
	e.postUpdate(e.updateCmd("d1", "", "s1", "leaving now"))
	if s := e.session("s1"); s.Update != "leaving now" {
		t.Fatalf("session Update %q", s.Update)
	}
	if keys := e.keys(pUpdate + "w1/"); len(keys) != 2 {
		t.Fatalf("history %v", keys)
	}
}

// Without a session the Update is the worker's standing one, which a
// PutWorker keeps and the next alarm shows.
func TestUpdate_StandingUpdateOnNextAlarm(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.postUpdate(e.updateCmd("d2", "", "", "Lone shift at the depot tonight"))
	left := e.now
	w := e.worker("w2")
	if w.LastUpdate != "Lone shift at the depot tonight" || !w.LastUpdateAt.Equal(left) {
		t.Fatalf("worker %+v", w)
	}
	e.now = e.now.Add(time.Hour)
	e.putWorker("w2", "o1") // an administrator edits the worker
	if w := e.worker("w2"); w.LastUpdate == "" {
		t.Fatal("PutWorker dropped the standing Update")
	}
	e.raise("a1", AlarmRedAlert, "d2")
	tl := e.timeline("a1")
	if len(tl) != 2 || tl[0].Kind != ActionRaised {
		t.Fatalf("timeline %+v", tl)
	}
	if te := tl[1]; te.Kind != ActionUpdate || te.Text != "Lone shift at the depot tonight" || te.Reference != "worker/w2" || !te.At.Equal(left) {
		t.Fatalf("update entry %+v", te)
	}
	if a := e.alarm("a1"); a.Actions != 2 {
		t.Fatalf("actions %d", a.Actions)
	}
	// A worker without any Update gets no entry.
	e.raise("a2", AlarmRedAlert, "d1")
	if tl := e.timeline("a2"); len(tl) != 1 {
		t.Fatalf("timeline %+v", tl)
	}
}

// An alarm shows the session's latest Update, with the time it was left;
// an Update left while an alarm is open goes on its timeline at once.
func TestUpdate_SessionUpdateOnAlarms(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.postUpdate(e.updateCmd("d1", "", "", "standing")) // superseded by the session's
	e.start("s1", "w1", "d1", time.Hour, 0)
	e.raise("a1", AlarmRedAlert, "d1")
	if te := e.timeline("a1")[1]; te.Kind != ActionUpdate || te.Text != "second floor" || te.Reference != "session/s1" {
		t.Fatalf("entry %+v", te)
	}
	e.now = e.now.Add(time.Minute)
	e.postUpdate(e.updateCmd("d1", "", "", "he has a knife"))
	if te := e.lastEntry("a1"); te.Kind != ActionUpdate || te.Text != "he has a knife" || te.Actor != "tester" {
		t.Fatalf("open alarm's last entry %+v", te)
	}
	left := e.now
	e.now = e.now.Add(time.Minute)
	e.raise("a2", AlarmManDown, "d1")
	tl := e.timeline("a2") // raised, linked (a repeat of a1), update
	if te := tl[len(tl)-1]; te.Kind != ActionUpdate || te.Text != "he has a knife" || !te.At.Equal(left) {
		t.Fatalf("entry %+v, want the latest Update at %s", te, left)
	}
}

func TestUpdate_HistoryBounded(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	for i := range MaxUpdateHistory + 5 {
		e.postUpdate(e.updateCmd("", "w1", "", fmt.Sprintf("update %d", i)))
	}
	var hist []UpdateRecord
	if err := e.db.View(func(txn *badger.Txn) (err error) {
		hist, err = listJSON[UpdateRecord](txn, pUpdate+"w1/", 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(hist) != MaxUpdateHistory || hist[0].Text != "update 5" || hist[len(hist)-1].Text != fmt.Sprintf("update %d", MaxUpdateHistory+4) {
		t.Fatalf("%d kept, first %q", len(hist), hist[0].Text)
	}
}
