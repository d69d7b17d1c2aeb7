package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

func (e *dirEnv) start(id, worker, device string, dur, every time.Duration) *Session {
	e.t.Helper()
	resp := e.must(CmdStartSession, startSessionCmd{Header: e.hdr(), SessionID: id, WorkerID: worker, DeviceID: device,
		Duration: dur, CheckInInterval: every, Update: "second floor"})
	var s Session
	if err := json.Unmarshal(resp, &s); err != nil {
		e.t.Fatal(err)
	}
	return &s
}

func (e *dirEnv) action(id string, a SessionActionKind, pin pinOutcome, version uint64) ([]byte, error) {
	e.t.Helper()
	return e.apply(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: id, Action: a, PIN: pin,
		PINVersion: version, ExtendBy: 30 * time.Minute, AlarmID: "duress-" + id})
}

// fire fires the deadline d and returns the outcome.
func (e *dirEnv) fire(d Deadline) string {
	e.t.Helper()
	resp := e.must(CmdFireDeadline, fireDeadlineCmd{Header: e.hdr(), DeadlineID: d.ID, Due: d.Due, AlarmID: deadlineAlarmID(d.ID)})
	var r fireResult
	if err := json.Unmarshal(resp, &r); err != nil {
		e.t.Fatal(err)
	}
	return r.Outcome
}

// deadlines returns the deadlines in the state, in key (due) order.
func (e *dirEnv) deadlines() []Deadline {
	e.t.Helper()
	var out []Deadline
	err := e.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, pDeadline, true, func(k, v []byte) (bool, error) {
			var d Deadline
			if err := json.Unmarshal(v, &d); err != nil {
				return false, err
			}
			if want := deadlineKey(&d); want != string(k) {
				return false, fmt.Errorf("deadline %s stored at %s", want, k)
			}
			out = append(out, d)
			return true, nil
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestSession_StartRefusals(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.start("busy", "w2", "d2", time.Hour, 0)
	h := e.hdr()
	cmd := func(id, w, d string, dur, every time.Duration) startSessionCmd {
		return startSessionCmd{Header: h, SessionID: id, WorkerID: w, DeviceID: d, Duration: dur, CheckInInterval: every}
	}
	for _, tc := range []struct {
		name  string
		cmd   startSessionCmd
		code  Code
		field string
	}{
		{"no session id", cmd("", "w1", "d1", time.Hour, 0), CodeInvalid, "session_id"},
		{"session id with slash", cmd("a/b", "w1", "d1", time.Hour, 0), CodeInvalid, "session_id"},
		{"zero duration", cmd("s", "w1", "d1", 0, 0), CodeInvalid, "duration_ns"},
		{"negative duration", cmd("s", "w1", "d1", -time.Hour, 0), CodeInvalid, "duration_ns"},
		{"over 24h", cmd("s", "w1", "d1", 24*time.Hour+time.Second, 0), CodeInvalid, "duration_ns"},
		{"check-in under 5 min", cmd("s", "w1", "d1", time.Hour, 4*time.Minute), CodeInvalid, "checkin_interval_ns"},
		{"check-in over 24h", cmd("s", "w1", "d1", time.Hour, 25*time.Hour), CodeInvalid, "checkin_interval_ns"},
		{"unknown worker", cmd("s", "nope", "d1", time.Hour, 0), CodeNotFound, "worker_id"},
		{"unknown device", cmd("s", "w1", "nope", time.Hour, 0), CodeNotFound, "device_id"},
		{"device of another organisation", cmd("s", "x1", "p1", time.Hour, 0), CodeConflict, "device_id"},
		{"another worker's dedicated device", cmd("s", "w1", "d2", time.Hour, 0), CodeConflict, "device_id"},
		{"second session for the worker", cmd("s", "w2", "d2", time.Hour, 0), CodeConflict, "worker_id"},
		{"session id exists", cmd("busy", "w1", "d1", time.Hour, 0), CodeConflict, "session_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.refused(CmdStartSession, tc.cmd, tc.code, tc.field)
		})
	}
	e.t = t
	// The limits themselves are allowed.
	e.start("s-min", "w1", "d1", MaxSessionDuration, MinCheckInInterval)
}

func TestSession_StartWritesTimerAndIndexes(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.eventTypes()
	s := e.start("s1", "w1", "d1", 2*time.Hour, 30*time.Minute)
	if s.Status != SessionActive || !s.NextDue.Equal(e.now.Add(30*time.Minute)) || !s.EndsAt.Equal(e.now.Add(2*time.Hour)) || s.Seq != 1 {
		t.Fatalf("session %+v", s)
	}
	ds := e.deadlines()
	if len(ds) != 1 || ds[0].ID != "session/s1/1/due" || ds[0].Kind != DeadlineSessionDue || !ds[0].Due.Equal(s.NextDue) {
		t.Fatalf("deadlines %+v", ds)
	}
	if got := e.keys(pActive); !slices.Equal(got, []string{pActive + "s1"}) {
		t.Fatalf("active index %v", got)
	}
	if got := e.keys(pWorkerSession); !slices.Equal(got, []string{pWorkerSession + "w1"}) {
		t.Fatalf("worker-session index %v", got)
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventSessionStarted}) {
		t.Fatalf("events %v", got)
	}
	// Without a check-in interval the timer is the end.
	s2 := e.start("s2", "w2", "d2", time.Hour, 0)
	if !s2.NextDue.Equal(s2.EndsAt) {
		t.Fatalf("NextDue %s, EndsAt %s", s2.NextDue, s2.EndsAt)
	}
	// A check-in interval longer than the session: the end comes first.
	e.must(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s2", Action: SessionEnd})
	s3 := e.start("s3", "w2", "d2", 10*time.Minute, time.Hour)
	if !s3.NextDue.Equal(s3.EndsAt) {
		t.Fatalf("NextDue %s, EndsAt %s", s3.NextDue, s3.EndsAt)
	}
}

func TestSession_PooledDevice(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.start("s1", "w1", "p1", time.Hour, 0)
	if d := e.device("p1"); d.WorkerID != "w1" {
		t.Fatalf("pooled device assigned to %q, want w1", d.WorkerID)
	}
	// In use: another worker cannot take it, nor can the registry move it.
	re := e.refused(CmdStartSession, startSessionCmd{Header: e.hdr(), SessionID: "s2", WorkerID: "w2", DeviceID: "p1", Duration: time.Hour},
		CodeConflict, "device_id")
	if !bytes.Contains([]byte(re.Msg), []byte("in use")) || !bytes.Contains([]byte(re.Msg), []byte("s1")) {
		t.Fatalf("the refusal does not say the device is in use by s1: %q", re.Msg)
	}
	e.refused(CmdPutDevice, putDeviceCmd{Header: e.hdr(), Device: Device{ID: "p1", Kind: DevicePooled, OrgID: "o1", WorkerID: "w2"}},
		CodeConflict, "device.worker_id")
	// A free pooled device, still assigned to its last user, may be taken.
	e.must(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionEnd})
	e.start("s2", "w2", "p1", time.Hour, 0)
	if d := e.device("p1"); d.WorkerID != "w2" {
		t.Fatalf("pooled device assigned to %q, want w2", d.WorkerID)
	}
	// And another free one, never assigned.
	e.start("s3", "w1", "p2", time.Hour, 0)
}

func TestSession_Actions(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	start := e.now
	e.start("s1", "w1", "d1", 2*time.Hour, 30*time.Minute)

	e.now = start.Add(20 * time.Minute)
	resp, err := e.action("s1", SessionCheckIn, pinNone, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r SessionReply
	if err := json.Unmarshal(resp, &r); err != nil || r.Status != SessionActive || !r.NextDue.Equal(e.now.Add(30*time.Minute)) {
		t.Fatalf("check-in reply %s", resp)
	}
	s := e.session("s1")
	if s.Seq != 2 || !s.LastCheckIn.Equal(e.now) {
		t.Fatalf("after check-in %+v", s)
	}
	if ds := e.deadlines(); len(ds) != 1 || ds[0].ID != "session/s1/2/due" || !ds[0].Due.Equal(s.NextDue) {
		t.Fatalf("deadlines after check-in %+v", ds)
	}

	e.now = start.Add(time.Hour)
	if _, err := e.action("s1", SessionExtend, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	s = e.session("s1")
	if !s.EndsAt.Equal(start.Add(2*time.Hour+30*time.Minute)) || s.Seq != 3 || !s.NextDue.Equal(e.now.Add(30*time.Minute)) {
		t.Fatalf("after extend %+v", s)
	}
	e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionExtend}, CodeInvalid, "extend_by_ns")
	e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: "pause"}, CodeInvalid, "action")
	e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "nope", Action: SessionEnd}, CodeNotFound, "session_id")

	e.eventTypes()
	if _, err := e.action("s1", SessionEnd, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	s = e.session("s1")
	if s.Status != SessionEnded || !s.EndedAt.Equal(e.now) {
		t.Fatalf("after end %+v", s)
	}
	for _, p := range []string{pDeadline, pActive, pWorkerSession} {
		if k := e.keys(p); len(k) != 0 {
			t.Fatalf("end left %v", k)
		}
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventSessionEnded}) {
		t.Fatalf("events %v", got)
	}
	e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn}, CodeSessionEnded, "session_id")
}

func TestSession_PINOutcomes(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: mustHashPIN(t, "1111"), DuressPINHash: mustHashPIN(t, "2222")})
	e.start("s1", "w1", "d1", time.Hour, 0)
	before := e.session("s1")

	t.Run("wrong PIN is counted and the session keeps running", func(t *testing.T) {
		e.t = t
		e.eventTypes()
		resp, err := e.action("s1", SessionEnd, pinWrong, 1)
		if err != nil {
			t.Fatalf("a wrong PIN was refused (a refusal could not count it): %v", err)
		}
		var r sessionActionResult
		if err := json.Unmarshal(resp, &r); err != nil || !r.WrongPIN || r.WrongPINs != 1 {
			t.Fatalf("response %s", resp)
		}
		if w := e.worker("w1"); w.WrongPINs != 1 {
			t.Fatalf("WrongPINs %d", w.WrongPINs)
		}
		if s := e.session("s1"); s.Status != SessionActive || s.Seq != before.Seq {
			t.Fatalf("a wrong PIN changed the session: %+v", s)
		}
		if got := e.eventTypes(); !slices.Equal(got, []EventType{EventWrongPIN}) {
			t.Fatalf("events %v", got)
		}
		for _, ev := range e.events {
			if ev.Worker != nil && ev.Worker.SafePINHash != "" {
				t.Fatal("the wrong-PIN event carries hashes")
			}
		}
	})
	t.Run("stale PIN version is refused", func(t *testing.T) {
		e.t = t
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinSafe, PINVersion: 0},
			CodeStalePIN, "pin")
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinWrong, PINVersion: 2},
			CodeStalePIN, "pin")
	})
	t.Run("a PIN is required when the worker has one", func(t *testing.T) {
		e.t = t
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinNone, PINVersion: 1},
			CodeInvalid, "pin")
	})
	t.Run("duress needs an alarm ID", func(t *testing.T) {
		e.t = t
		e.refused(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionCheckIn, PIN: pinDuress, PINVersion: 1},
			CodeInvalid, "alarm_id")
	})
	t.Run("a right PIN clears the wrong count", func(t *testing.T) {
		e.t = t
		if _, err := e.action("s1", SessionCheckIn, pinSafe, 1); err != nil {
			t.Fatal(err)
		}
		if w := e.worker("w1"); w.WrongPINs != 0 {
			t.Fatalf("WrongPINs %d after the Safe PIN", w.WrongPINs)
		}
	})
}

// TestSession_DuressActsAsSafe applies the same commands to two replicas,
// one with the Safe PIN and one with the Duress PIN: the responses are
// identical, the sessions are identical, and only the duress replica has a
// silent duress alarm.
func TestSession_DuressActsAsSafe(t *testing.T) {
	for _, a := range []SessionActionKind{SessionCheckIn, SessionExtend, SessionEnd} {
		t.Run(string(a), func(t *testing.T) {
			var resps [2][]byte
			var sessions [2]*Session
			var envs [2]*dirEnv
			for i, pin := range []pinOutcome{pinSafe, pinDuress} {
				e := mustDirEnv(t)
				envs[i] = e
				e.seed()
				e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
					DuressPINHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$ZHVyZXNzZHVyZXNzZHVyZQ"})
				e.start("s1", "w1", "d1", time.Hour, 0)
				e.now = e.now.Add(10 * time.Minute)
				resp, err := e.action("s1", a, pin, 1)
				if err != nil {
					t.Fatalf("%s with %s: %v", a, pin, err)
				}
				resps[i], sessions[i] = resp, e.session("s1")
			}
			if !bytes.Equal(resps[0], resps[1]) {
				t.Fatalf("responses differ:\nsafe   %s\nduress %s", resps[0], resps[1])
			}
			s0, _ := json.Marshal(sessions[0])
			s1, _ := json.Marshal(sessions[1])
			if !bytes.Equal(s0, s1) {
				t.Fatalf("sessions differ:\nsafe   %s\nduress %s", s0, s1)
			}
			if n := len(envs[0].keys(pAlarm)); n != 0 {
				t.Fatalf("the Safe PIN raised %d alarms", n)
			}
			var al *Alarm
			if err := envs[1].db.View(func(txn *badger.Txn) (err error) { al, err = getAlarm(txn, "duress-s1"); return err }); err != nil {
				t.Fatalf("no duress alarm: %v", err)
			}
			if al.Type != AlarmDuress || !al.Silent || !al.DoNotCall || al.SessionID != "s1" || al.WorkerID != "w1" || al.DeviceID != "d1" {
				t.Fatalf("duress alarm %+v", al)
			}
		})
	}
}

func TestSession_DeadlinesFire(t *testing.T) {
	e := mustDirEnv(t)
	e.seed() // o1 has a grace of one minute
	start := e.now
	e.start("s1", "w1", "d1", time.Hour, 0)
	due := e.deadlines()[0]

	e.now = start.Add(time.Hour + time.Second) // the leader stamps its own time
	e.eventTypes()
	if got := e.fire(due); got != "fired" {
		t.Fatalf("due fired %q", got)
	}
	s := e.session("s1")
	if s.Status != SessionOverdue || !s.GraceUntil.Equal(due.Due.Add(time.Minute)) || s.Seq != 2 {
		t.Fatalf("after due %+v", s)
	}
	if got := e.eventTypes(); !slices.Equal(got, []EventType{EventCheckInReminder, EventSessionUpdated}) {
		t.Fatalf("events %v", got)
	}
	ds := e.deadlines()
	if len(ds) != 1 || ds[0].Kind != DeadlineSessionGrace || ds[0].ID != "session/s1/2/grace" || !ds[0].Due.Equal(s.GraceUntil) {
		t.Fatalf("deadlines %+v", ds)
	}
	grace := ds[0]

	// The same deadline again (a retry with a new command ID) is stale and
	// writes nothing.
	before := e.dump()
	if got := e.fire(due); got != "stale" {
		t.Fatalf("second firing %q", got)
	}
	if e.dump() != before {
		t.Fatal("a stale deadline wrote to the state")
	}

	e.now = grace.Due
	if got := e.fire(grace); got != "fired" {
		t.Fatalf("grace fired %q", got)
	}
	s = e.session("s1")
	// What is left is the alarm's acknowledgement deadline, not the session's.
	if ds := e.deadlines(); s.Status != SessionAlarm || s.AlarmID != deadlineAlarmID(grace.ID) ||
		len(ds) != 1 || ds[0].Kind != DeadlineAckOverdue || ds[0].AlarmID != s.AlarmID {
		t.Fatalf("after grace %+v, deadlines %v", s, ds)
	}
	var al *Alarm
	if err := e.db.View(func(txn *badger.Txn) (err error) { al, err = getAlarm(txn, s.AlarmID); return err }); err != nil {
		t.Fatal(err)
	}
	if al.Type != AlarmMissedCheckIn || al.SessionID != "s1" || al.Silent {
		t.Fatalf("alarm %+v", al)
	}
	if got := e.fire(grace); got != "stale" {
		t.Fatalf("grace fired twice: %q", got)
	}
	// The worker can still end the session; the alarm stays for operators.
	if _, err := e.action("s1", SessionEnd, pinNone, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSession_StaleDeadlineAfterCheckIn(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.putDevice("xd", DeviceDedicated, "o2", "x1") // o2 has no grace: DefaultGrace
	e.start("s1", "x1", "xd", time.Hour, 30*time.Minute)
	old := e.deadlines()[0]
	e.now = e.now.Add(29 * time.Minute)
	if _, err := e.action("s1", SessionCheckIn, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	// The scheduler read the old deadline before the check-in applied.
	before := e.dump()
	if got := e.fire(old); got != "stale" {
		t.Fatalf("old deadline %q", got)
	}
	if e.dump() != before {
		t.Fatal("a stale deadline wrote to the state")
	}
	if s := e.session("s1"); s.Status != SessionActive {
		t.Fatalf("status %s", s.Status)
	}
	cur := e.deadlines()[0]
	e.now = cur.Due
	e.fire(cur)
	if s := e.session("s1"); !s.GraceUntil.Equal(cur.Due.Add(DefaultGrace)) {
		t.Fatalf("grace until %s, want due + DefaultGrace", s.GraceUntil)
	}
	// Check-in while overdue: back to active, grace cleared.
	if _, err := e.action("s1", SessionCheckIn, pinNone, 0); err != nil {
		t.Fatal(err)
	}
	if s := e.session("s1"); s.Status != SessionActive || !s.GraceUntil.IsZero() {
		t.Fatalf("after check-in while overdue: %+v", s)
	}
	if ds := e.deadlines(); len(ds) != 1 || ds[0].Kind != DeadlineSessionDue {
		t.Fatalf("deadlines %+v", ds)
	}
}

func TestSession_DeadlineOrder(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.putDevice("xd", DeviceDedicated, "o2", "x1")
	e.start("late", "w1", "d1", 3*time.Hour, 0)
	e.start("soon", "w2", "d2", time.Hour, 0)
	e.start("mid", "x1", "xd", 2*time.Hour, 0)
	var ids []string
	for _, d := range e.deadlines() {
		ids = append(ids, d.SessionID)
	}
	if want := []string{"soon", "mid", "late"}; !slices.Equal(ids, want) {
		t.Fatalf("deadlines in order %v, want %v", ids, want)
	}
}

// isCode reports whether err is a *RuleError with code.
func isCode(err error, code Code) bool {
	var re *RuleError
	return errors.As(err, &re) && re.Code == code
}

func TestSessionService_ValidatesBeforeProposing(t *testing.T) {
	fc := &fakeCluster{apply: func(context.Context, string, []byte) (cluster.Result, error) {
		t.Fatal("proposed a command that the Service should have refused")
		return cluster.Result{}, nil
	}}
	svc := NewService(fc, NewFSM(), nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"org without name", func() error { _, err := svc.PutOrganisation(ctx, "c", "a", Organisation{ID: "o"}); return err }, "org.name"},
		{"worker without org", func() error { _, err := svc.PutWorker(ctx, "c", "a", Worker{ID: "w", Name: "n"}); return err }, "worker.org_id"},
		{"short safe PIN", func() error { _, err := svc.SetPINs(ctx, "c", "a", "w", "123", ""); return err }, "safe_pin"},
		{"same PINs", func() error { _, err := svc.SetPINs(ctx, "c", "a", "w", "1234", "1234"); return err }, "duress_pin"},
		{"duress only", func() error { _, err := svc.SetPINs(ctx, "c", "a", "w", "", "1234"); return err }, "duress_pin"},
		{"device kind", func() error {
			_, err := svc.PutDevice(ctx, "c", "a", Device{ID: "d", Kind: "x", OrgID: "o"})
			return err
		}, "device.kind"},
		{"empty status batch", func() error { _, err := svc.RecordDeviceStatus(ctx, "c", "a", nil); return err }, "devices"},
		{"session without worker", func() error {
			_, err := svc.StartSession(ctx, "c", "a", StartSessionRequest{DeviceID: "d", Duration: time.Hour})
			return err
		}, "worker_id"},
		{"session too long", func() error {
			_, err := svc.StartSession(ctx, "c", "a", StartSessionRequest{WorkerID: "w", DeviceID: "d", Duration: 25 * time.Hour})
			return err
		}, "duration"},
		{"extend by 0", func() error { _, err := svc.Extend(ctx, "c", "a", "s", "1234", 0); return err }, "extend_by"},
		{"check-in bad PIN", func() error { _, err := svc.CheckIn(ctx, "c", "a", "s", "12"); return err }, "pin"},
		{"check-in without session", func() error { _, err := svc.CheckIn(ctx, "c", "a", "", "1234"); return err }, "session_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var re *RuleError
			if !errors.As(err, &re) || re.Code != CodeInvalid || re.Field != tc.field {
				t.Fatalf("got %v, want invalid (%s)", err, tc.field)
			}
		})
	}
}

// fakeCluster is a Cluster whose methods are function fields.
type fakeCluster struct {
	apply func(ctx context.Context, id string, data []byte) (cluster.Result, error)
	view  func(fn func(txn *badger.Txn) error) error
}

func (f *fakeCluster) Apply(ctx context.Context, id string, data []byte) (cluster.Result, error) {
	return f.apply(ctx, id, data)
}

func (f *fakeCluster) LinearizableView(_ context.Context, fn func(txn *badger.Txn) error) error {
	return f.View(fn)
}

func (f *fakeCluster) View(fn func(txn *badger.Txn) error) error {
	if f.view == nil {
		return errors.New("no state")
	}
	return f.view(fn)
}

func (f *fakeCluster) ID() string { return "fake" }

// Under RulesReleasePooled a pooled device is released when its session
// ends, whichever PIN ended it, so that an alarm between sessions names no
// worker; a session ended under the older rules (a log written before)
// leaves it with its last worker, as it did.
func TestSession_PooledDeviceReleasedAtTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules int
		pin   pinOutcome
		want  string
	}{
		{"Safe PIN", RulesReleasePooled, pinSafe, ""},
		{"Duress PIN", RulesReleasePooled, pinDuress, ""},
		{"older rules", 0, pinSafe, "w1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustDirEnv(t)
			e.seed()
			e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: testSafeHash, DuressPINHash: testDuressHash})
			e.start("s1", "w1", "p1", time.Hour, 0)
			e.must(CmdSessionAction, sessionActionCmd{Header: e.hdr(), SessionID: "s1", Action: SessionEnd, PIN: tc.pin,
				PINVersion: 1, AlarmID: "duress-s1", Rules: tc.rules})
			if d := e.device("p1"); d.WorkerID != tc.want {
				t.Fatalf("pooled device after the end: worker %q, want %q", d.WorkerID, tc.want)
			}
			// An alarm from it now names whom it does.
			e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "a9", Type: AlarmRedAlert, DeviceID: "p1"})
			if a := e.alarm("a9"); a.WorkerID != tc.want {
				t.Fatalf("alarm from the pooled device names worker %q, want %q", a.WorkerID, tc.want)
			}
		})
	}
}
