package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

func TestSessionService_SafeAndDuressRepliesIdentical(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	nodes := [2]*monitoringtest.Node{mustSingle(t, now), mustSingle(t, now)}
	for _, n := range nodes {
		seedService(t, n.Service)
		if _, err := n.Service.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	pins := [2]string{"1111", "2222"}
	type step struct {
		name string
		do   func(svc *monitoring.Service, pin string) (monitoring.SessionReply, error)
	}
	for _, st := range []step{
		{"checkin", func(svc *monitoring.Service, pin string) (monitoring.SessionReply, error) {
			return svc.CheckIn(ctx, "c1", "device:d1", "s1", pin)
		}},
		{"extend", func(svc *monitoring.Service, pin string) (monitoring.SessionReply, error) {
			return svc.Extend(ctx, "x1", "device:d1", "s1", pin, 30*time.Minute)
		}},
		{"end", func(svc *monitoring.Service, pin string) (monitoring.SessionReply, error) {
			return svc.EndSession(ctx, "e1", "device:d1", "s1", pin)
		}},
	} {
		var out [2][]byte
		var refs [2]string
		for i, n := range nodes {
			r, err := st.do(n.Service, pins[i])
			if err != nil {
				t.Fatalf("%s with PIN %s: %v", st.name, pins[i], err)
			}
			refs[i] = r.AudioRef
			r.AudioRef = "" // a fresh ID either way: compared by its form below
			out[i], _ = json.Marshal(r)
		}
		if !sameIDForm(refs[0], refs[1]) || refs[0] == refs[1] {
			t.Fatalf("%s: audio references %q and %q: want two IDs of one form", st.name, refs[0], refs[1])
		}
		if !bytes.Equal(out[0], out[1]) {
			t.Fatalf("%s: replies differ:\nsafe   %s\nduress %s", st.name, out[0], out[1])
		}
	}
	// Each duress entry raised a silent alarm; the safe one none.
	for i, want := range []int{0, 3} {
		if got := monitoring.CountAlarms(t, nodes[i].Service, monitoring.AlarmDuress, "s1"); got != want {
			t.Fatalf("PIN %s: %d duress alarms, want %d", pins[i], got, want)
		}
	}
}

// A device that sends an alarm/cancel for the audio reference of a session
// action gets the same refusal whichever PIN made it, though after the
// Duress PIN the reference is an alarm's ID.
func TestSessionService_AudioRefCannotBeCancelled(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var errs [2]string
	for i, pin := range []string{"1111", "2222"} {
		n := mustSingle(t, now)
		seedService(t, n.Service)
		if _, err := n.Service.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
		r, err := n.Service.CheckIn(ctx, "c1", "device:d1", "s1", pin)
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Service.CancelAlarm(ctx, "x1", "device:d1", r.AudioRef, "1111")
		if !errors.Is(err, monitoring.ErrNotFound) {
			t.Fatalf("PIN %s: cancel of the audio reference: %v, want not found", pin, err)
		}
		errs[i] = strings.ReplaceAll(err.Error(), r.AudioRef, "<ref>")
	}
	if errs[0] != errs[1] {
		t.Fatalf("the refusals differ:\nsafe   %s\nduress %s", errs[0], errs[1])
	}
}

// sameIDForm reports whether a and b are IDs of one form: the same length,
// with letters and digits, and anything else, in the same places.
func sameIDForm(a, b string) bool {
	if len(a) != len(b) || a == "" {
		return false
	}
	for i := range len(a) {
		alnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
		if alnum(a[i]) != alnum(b[i]) || !alnum(a[i]) && a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSessionService_WrongPIN(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := mustSingle(t, now)
	seedService(t, n.Service)
	if _, err := n.Service.StartSession(ctx, "start", "device:d1", monitoring.StartSessionRequest{SessionID: "s1", WorkerID: "w1", DeviceID: "d1", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err := n.Service.EndSession(ctx, "end-1", "device:d1", "s1", "9999")
	if !monitoring.IsCode(err, monitoring.CodeWrongPIN) || !errors.Is(err, monitoring.ErrWrongPIN) {
		t.Fatalf("wrong PIN: %v, want wrong_pin", err)
	}
	// The retry of the same request is answered the same and not counted again.
	if _, err := n.Service.EndSession(ctx, "end-1", "device:d1", "s1", "9999"); !monitoring.IsCode(err, monitoring.CodeWrongPIN) {
		t.Fatalf("replayed wrong PIN: %v", err)
	}
	if w, _ := n.Service.Worker("w1"); w.WrongPINs != 1 || w.SafePINHash != "" || w.DuressPINHash != "" {
		t.Fatalf("worker %+v: want 1 wrong PIN and no hashes", w)
	}
	if s, _ := n.Service.Session("s1"); s.Status != monitoring.SessionActive {
		t.Fatalf("session %s after a wrong PIN", s.Status)
	}
	if _, err := n.Service.CheckIn(ctx, "c", "device:d1", "s1", ""); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("no PIN: %v", err)
	}
	if _, err := n.Service.CheckIn(ctx, "c2", "device:d1", "s1", "12x4"); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("malformed PIN: %v", err)
	}
	if r, err := n.Service.EndSession(ctx, "end-2", "device:d1", "s1", "1111"); err != nil || r.Status != monitoring.SessionEnded {
		t.Fatalf("end with the Safe PIN: %+v, %v", r, err)
	}
	if _, err := n.Service.CheckIn(ctx, "c3", "device:d1", "s1", "1111"); !monitoring.IsCode(err, monitoring.CodeSessionEnded) {
		t.Fatalf("check-in after end: %v", err)
	}
}

func TestSessionService_IdempotentReplay(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := mustSingle(t, now)
	seedService(t, n.Service)
	req := monitoring.StartSessionRequest{WorkerID: "w1", DeviceID: "d1", Duration: time.Hour} // the Service makes the session ID
	s1, err := n.Service.StartSession(ctx, "start-1", "device:d1", req)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := n.Service.StartSession(ctx, "start-1", "device:d1", req)
	if err != nil {
		t.Fatalf("replay refused: %v", err)
	}
	if s1.ID != s2.ID {
		t.Fatalf("replay started a second session: %s, %s", s1.ID, s2.ID)
	}
	if as, _ := n.Service.ActiveSessions(); len(as) != 1 {
		t.Fatalf("%d active sessions", len(as))
	}
	r1, err := n.Service.CheckIn(ctx, "ci-1", "device:d1", s1.ID, "1111")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := n.Service.CheckIn(ctx, "ci-1", "device:d1", s1.ID, "2222") // same ID: the first result
	if err != nil || r1 != r2 {
		t.Fatalf("replayed check-in: %+v, %v; first %+v", r2, err, r1)
	}
	if s, _ := n.Service.Session(s1.ID); s.Seq != 2 {
		t.Fatalf("Seq %d: the check-in applied twice", s.Seq)
	}
	if c := monitoring.CountAlarms(t, n.Service, monitoring.AlarmDuress, s1.ID); c != 0 {
		t.Fatal("a replay with the Duress PIN raised an alarm")
	}

	// The end that committed, sent again because its PUBACK was lost: the
	// first reply, not session_ended (found by the chaos harness, seed 6).
	e1, err := n.Service.EndSession(ctx, "end-1", "device:d1", s1.ID, "2222")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := n.Service.EndSession(ctx, "end-1", "device:d1", s1.ID, "2222")
	if err != nil || !reflect.DeepEqual(e1, e2) {
		t.Fatalf("resent end: %+v, %v; first %+v", e2, err, e1)
	}
	if _, err := n.Service.EndSession(ctx, "end-2", "device:d1", s1.ID, "1111"); !monitoring.IsCode(err, monitoring.CodeSessionEnded) {
		t.Fatalf("another end of the ended session: %v, want session_ended", err)
	}
	if c := monitoring.CountAlarms(t, n.Service, monitoring.AlarmDuress, s1.ID); c != 1 {
		t.Fatalf("%d duress alarms, want 1", c)
	}

	// The same for the cancel of an alarm.
	a, err := n.Service.RaiseAlarm(ctx, "raise-1", "device:d1", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := n.Service.CancelAlarm(ctx, "cancel-1", "device:d1", a.ID, "1111")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := n.Service.CancelAlarm(ctx, "cancel-1", "device:d1", a.ID, "1111")
	if err != nil || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("resent cancel: %+v, %v; first %+v", c2, err, c1)
	}
	if _, err := n.Service.CancelAlarm(ctx, "cancel-2", "device:d1", a.ID, "1111"); !monitoring.IsCode(err, monitoring.CodeAlarmClosed) {
		t.Fatalf("another cancel of the closed alarm: %v, want alarm_closed", err)
	}
}

func TestSessionService_QueriesAndActiveSessions(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := mustSingle(t, now)
	seedService(t, n.Service)
	svc := n.Service
	if _, err := svc.PutWorker(ctx, "w2", "admin", monitoring.Worker{ID: "w2", Name: "Bob", OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutDevice(ctx, "p1", "admin", monitoring.Device{ID: "p1", Kind: monitoring.DevicePooled, OrgID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.StartSession(ctx, "a", "admin", monitoring.StartSessionRequest{SessionID: "long", WorkerID: "w1", DeviceID: "d1", Duration: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := svc.StartSession(ctx, "b", "admin", monitoring.StartSessionRequest{SessionID: "short", WorkerID: "w2", DeviceID: "p1"}) // org default: 1 h
	if err != nil {
		t.Fatal(err)
	}
	if !s.EndsAt.Equal(now.Add(monitoring.DefaultSessionDuration)) {
		t.Fatalf("default duration: ends %s", s.EndsAt)
	}
	svc.Now = func() time.Time { return now.Add(10 * time.Minute) }
	as, err := svc.ActiveSessions()
	if err != nil || len(as) != 2 || as[0].ID != "short" || as[1].ID != "long" || as[0].TimeLeft != 50*time.Minute {
		t.Fatalf("ActiveSessions = %+v, %v", as, err)
	}
	ws, err := svc.Workers("o1")
	if err != nil || len(ws) != 2 || ws[0].SafePINHash != "" {
		t.Fatalf("Workers = %+v, %v", ws, err)
	}
	if ws, _ := svc.Workers("other"); len(ws) != 0 {
		t.Fatalf("Workers(other) = %v", ws)
	}
	ds, err := svc.Devices()
	if err != nil || len(ds) != 2 {
		t.Fatalf("Devices = %v, %v", ds, err)
	}
	if d, err := svc.Device("p1"); err != nil || d.WorkerID != "w2" {
		t.Fatalf("Device(p1) = %+v, %v", d, err)
	}
	if _, err := svc.Device("nope"); !errors.Is(err, monitoring.ErrNotFound) {
		t.Fatalf("Device(nope) = %v", err)
	}
	if n, err := svc.RecordDeviceStatus(ctx, "st", "broker", []monitoring.DeviceStatus{{DeviceID: "d1", SeenAt: now, Battery: monitoring.Ptr(50)}, {DeviceID: "ghost", SeenAt: now}}); err != nil || n != 1 {
		t.Fatalf("RecordDeviceStatus = %d, %v", n, err)
	}
}

// A session's start location is checked like an alarm's, and the visit
// address the worker typed is kept with it.
func TestSessionService_StartLocation(t *testing.T) {
	ctx := context.Background()
	n := mustSingle(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	seedService(t, n.Service)
	start := func(id string, l *monitoring.Location) error {
		_, err := n.Service.StartSession(ctx, id, "device:d1", monitoring.StartSessionRequest{SessionID: id, WorkerID: "w1", DeviceID: "d1", Duration: time.Hour, Location: l})
		return err
	}
	for _, tc := range []struct {
		name  string
		loc   monitoring.Location
		field string
	}{
		{"latitude out of range", monitoring.Location{Lat: 91, Lon: 0}, "location.lat"},
		{"longitude out of range", monitoring.Location{Lat: 0, Lon: -181}, "location.lon"},
		{"negative accuracy", monitoring.Location{Lat: 51.5, Lon: -0.1, Accuracy: -1}, "location.accuracy_m"},
		{"address too long", monitoring.Location{Lat: 51.5, Lon: -0.1, Address: strings.Repeat("x", monitoring.MaxAddressLen+1)}, "location.address"},
	} {
		var re *monitoring.RuleError
		if err := start("bad", &tc.loc); !errors.As(err, &re) || re.Code != monitoring.CodeInvalid || re.Field != tc.field {
			t.Errorf("%s: %v; want invalid %s", tc.name, err, tc.field)
		}
	}
	addr := "Flat 3, 12 Mill Lane, Salford M5 4WT"
	if err := start("s1", &monitoring.Location{Lat: 53.48, Lon: -2.29, Accuracy: 12, Source: "manual", Address: addr}); err != nil {
		t.Fatal(err)
	}
	s, err := n.Service.Session("s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Location == nil || s.Location.Address != addr {
		t.Fatalf("session location %+v; want the address %q", s.Location, addr)
	}
}
