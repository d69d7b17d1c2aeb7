package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// dirEnv applies commands to the FSM directly, on a real Badger, with
// increasing indexes and a clock it controls. A refused command is checked
// to have written nothing.
type dirEnv struct {
	t      *testing.T
	db     *badger.DB
	f      *FSM
	sub    *Subscription
	index  uint64
	now    time.Time
	events []Event
}

func mustDirEnv(t *testing.T) *dirEnv {
	t.Helper()
	f := NewFSM()
	return &dirEnv{t: t, db: mustOpenDB(t), f: f, sub: f.Bus().Subscribe(1 << 16),
		now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

func (e *dirEnv) hdr() Header { return Header{At: e.now, Actor: "tester", Node: "n1"} }

// dump returns every key and value of the state.
func (e *dirEnv) dump() string {
	e.t.Helper()
	var sb strings.Builder
	err := e.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "%s=%s\n", it.Item().Key(), v)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return sb.String()
}

// apply applies one command at the next index and commits it. A refusal is
// returned, after checking that it left the state untouched.
func (e *dirEnv) apply(typ CmdType, body any) ([]byte, error) {
	e.t.Helper()
	e.index++
	before := e.dump()
	txn := e.db.NewTransaction(true)
	defer txn.Discard()
	resp, err := e.f.Apply(txn, cluster.Entry{Index: e.index, Term: 1, ID: fmt.Sprintf("cmd-%d", e.index), Data: Encode(typ, body)})
	if cerr := txn.Commit(); cerr != nil {
		e.t.Fatalf("commit: %v", cerr)
	}
	if err != nil {
		e.f.Discarded()
		if after := e.dump(); after != before {
			e.t.Fatalf("%s was refused (%v) but wrote to the state", typ, err)
		}
		return nil, err
	}
	e.f.Committed()
	for {
		select {
		case ev := <-e.sub.C:
			e.events = append(e.events, ev)
			continue
		default:
		}
		break
	}
	return resp, nil
}

// must applies a command that must be accepted.
func (e *dirEnv) must(typ CmdType, body any) []byte {
	e.t.Helper()
	resp, err := e.apply(typ, body)
	if err != nil {
		e.t.Fatalf("%s refused: %v", typ, err)
	}
	return resp
}

// refused applies a command that must be refused with code and field.
func (e *dirEnv) refused(typ CmdType, body any, code Code, field string) *RuleError {
	e.t.Helper()
	_, err := e.apply(typ, body)
	var re *RuleError
	if !errors.As(err, &re) {
		e.t.Fatalf("%s: got %v, want a refusal %s (%s)", typ, err, code, field)
	}
	if re.Code != code || (field != "" && re.Field != field) {
		e.t.Fatalf("%s: got %q, want code %s field %q", typ, err, code, field)
	}
	return re
}

func (e *dirEnv) putOrg(o Organisation) {
	e.t.Helper()
	e.must(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: o})
}

func (e *dirEnv) putWorker(id, org string) {
	e.t.Helper()
	e.must(CmdPutWorker, putWorkerCmd{Header: e.hdr(), Worker: Worker{ID: id, Name: "Worker " + id, OrgID: org}})
}

func (e *dirEnv) putDevice(id string, kind DeviceKind, org, worker string) {
	e.t.Helper()
	e.must(CmdPutDevice, putDeviceCmd{Header: e.hdr(), Device: Device{ID: id, Kind: kind, OrgID: org, WorkerID: worker}})
}

// seed makes organisations o1 and o2; workers w1, w2 (o1) and x1 (o2);
// devices d1 (dedicated, w1), d2 (phone, w2), p1 and p2 (pooled, o1).
func (e *dirEnv) seed() {
	e.t.Helper()
	e.putOrg(Organisation{ID: "o1", Name: "Trust", Grace: time.Minute})
	e.putOrg(Organisation{ID: "o2", Name: "Council"})
	e.putWorker("w1", "o1")
	e.putWorker("w2", "o1")
	e.putWorker("x1", "o2")
	e.putDevice("d1", DeviceDedicated, "o1", "w1")
	e.putDevice("d2", DevicePhoneApp, "o1", "w2")
	e.putDevice("p1", DevicePooled, "o1", "")
	e.putDevice("p2", DevicePooled, "o1", "")
}

func (e *dirEnv) worker(id string) *Worker {
	e.t.Helper()
	var w *Worker
	if err := e.db.View(func(txn *badger.Txn) (err error) { w, err = getWorker(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *dirEnv) device(id string) *Device {
	e.t.Helper()
	var d *Device
	if err := e.db.View(func(txn *badger.Txn) (err error) { d, err = getDevice(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *dirEnv) session(id string) *Session {
	e.t.Helper()
	var s *Session
	if err := e.db.View(func(txn *badger.Txn) (err error) { s, err = getSession(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// keys returns the keys under prefix.
func (e *dirEnv) keys(prefix string) []string {
	e.t.Helper()
	var out []string
	err := e.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefix, false, func(k, _ []byte) (bool, error) {
			out = append(out, string(k))
			return true, nil
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// eventTypes returns the types of the events seen so far, and forgets them.
func (e *dirEnv) eventTypes() []EventType {
	var out []EventType
	for _, ev := range e.events {
		out = append(out, ev.Type)
	}
	e.events = nil
	return out
}

func TestDirectory_Refusals(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	h := e.hdr()
	okHash := mustHashPIN(t, "1234")
	for _, tc := range []struct {
		name  string
		typ   CmdType
		body  any
		code  Code
		field string
	}{
		{"org without id", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{Name: "x"}}, CodeInvalid, "org.id"},
		{"org id with slash", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "a/b", Name: "x"}}, CodeInvalid, "org.id"},
		{"org without name", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9"}}, CodeInvalid, "org.name"},
		{"org negative grace", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", Grace: -time.Second}}, CodeInvalid, "org.grace_ns"},
		{"org unknown alarm type", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", Priorities: map[AlarmType]int{"fire": 1}}}, CodeInvalid, "org.priorities"},
		{"org priority 0", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", Priorities: map[AlarmType]int{AlarmTest: 0}}}, CodeInvalid, "org.priorities"},
		{"org priority too high", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", Priorities: map[AlarmType]int{AlarmTest: MaxPriority + 1}}}, CodeInvalid, "org.priorities"},
		{"org check-in 1m", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", DefaultCheckIn: time.Minute}}, CodeInvalid, "org.default_checkin_ns"},
		{"command without time", CmdPutOrganisation, putOrganisationCmd{Header: Header{Actor: "a"}, Org: Organisation{ID: "o9", Name: "x"}}, CodeInvalid, "at"},
		{"command without actor", CmdPutOrganisation, putOrganisationCmd{Header: Header{At: e.now}, Org: Organisation{ID: "o9", Name: "x"}}, CodeInvalid, "actor"},
		{"worker without name", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", OrgID: "o1"}}, CodeInvalid, "worker.name"},
		{"worker unknown org", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", OrgID: "nope"}}, CodeNotFound, "organisation_id"},
		{"worker contact without phone", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", OrgID: "o1", Contacts: []Contact{{Name: "Boss"}}}}, CodeInvalid, "worker.contacts[0].phone"},
		{"worker URN without force", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", OrgID: "o1", URNs: []PoliceURN{{URN: "123"}}}}, CodeInvalid, "worker.urns[0].force"},
		{"pins unknown worker", CmdSetPINs, setPINsCmd{Header: h, WorkerID: "nope", SafePINHash: okHash}, CodeNotFound, "worker_id"},
		{"pins not a hash", CmdSetPINs, setPINsCmd{Header: h, WorkerID: "w1", SafePINHash: "1234"}, CodeInvalid, "safe_pin_hash"},
		{"pins same hash", CmdSetPINs, setPINsCmd{Header: h, WorkerID: "w1", SafePINHash: okHash, DuressPINHash: okHash}, CodeInvalid, "duress_pin_hash"},
		{"pins duress without safe", CmdSetPINs, setPINsCmd{Header: h, WorkerID: "w1", DuressPINHash: okHash}, CodeInvalid, "duress_pin_hash"},
		{"device bad kind", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: "toaster", OrgID: "o1", WorkerID: "w1"}}, CodeInvalid, "device.kind"},
		{"device unknown org", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: DevicePooled, OrgID: "nope"}}, CodeNotFound, "organisation_id"},
		{"device unknown worker", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "nope"}}, CodeNotFound, "worker_id"},
		{"device worker of another org", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "x1"}}, CodeConflict, "device.worker_id"},
		{"dedicated device unassigned", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: DeviceDedicated, OrgID: "o1"}}, CodeInvalid, "device.worker_id"},
		{"status without device", CmdDeviceStatus, deviceStatusCmd{Header: h, Devices: []DeviceStatus{{SeenAt: e.now}}}, CodeInvalid, "devices[0].device_id"},
		{"status without time", CmdDeviceStatus, deviceStatusCmd{Header: h, Devices: []DeviceStatus{{DeviceID: "d1"}}}, CodeInvalid, "devices[0].seen_at"},
		{"status battery 101", CmdDeviceStatus, deviceStatusCmd{Header: h, Devices: []DeviceStatus{{DeviceID: "d1", SeenAt: e.now, Battery: ptr(101)}}}, CodeInvalid, "devices[0].battery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.refused(tc.typ, tc.body, tc.code, tc.field)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDirectory_OrganisationReplaced(t *testing.T) {
	e := mustDirEnv(t)
	e.putOrg(Organisation{ID: "o1", Name: "Trust", Priorities: map[AlarmType]int{AlarmTest: 9}})
	resp := e.must(CmdPutOrganisation, putOrganisationCmd{Header: e.hdr(), Org: Organisation{ID: "o1", Name: "Trust 2"}})
	var o Organisation
	if err := json.Unmarshal(resp, &o); err != nil || o.Name != "Trust 2" || o.Priorities != nil || !o.UpdatedAt.Equal(e.now) {
		t.Fatalf("response %s (%v)", resp, err)
	}
	if got := e.eventTypes(); fmt.Sprint(got) != "[org_updated org_updated]" {
		t.Fatalf("events %v", got)
	}
	if n := len(e.keys(pAudit)); n != 2 {
		t.Fatalf("%d audit records, want 2", n)
	}
}

func TestDirectory_PutWorkerKeepsPINs(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1", SafePINHash: mustHashPIN(t, "1111"), DuressPINHash: mustHashPIN(t, "2222")})
	before := e.worker("w1")
	if before.PINVersion != 1 {
		t.Fatalf("PIN version %d after SetPINs, want 1", before.PINVersion)
	}
	// A PutWorker that carries hashes of its own must not change the PINs.
	e.must(CmdPutWorker, putWorkerCmd{Header: e.hdr(), Worker: Worker{ID: "w1", Name: "Renamed", OrgID: "o1",
		SafePINHash: "evil", PINVersion: 42, WrongPINs: 7}})
	after := e.worker("w1")
	if after.Name != "Renamed" || after.SafePINHash != before.SafePINHash || after.DuressPINHash != before.DuressPINHash ||
		after.PINVersion != 1 || after.WrongPINs != 0 {
		t.Fatalf("PutWorker changed the PINs: %+v", after)
	}
	// No event carries a hash.
	for _, ev := range e.events {
		if ev.Worker != nil && (ev.Worker.SafePINHash != "" || ev.Worker.DuressPINHash != "") {
			t.Fatalf("event %s carries PIN hashes", ev.Type)
		}
	}
	// SetPINs again bumps the version and clears the wrong count.
	e.must(CmdSetPINs, setPINsCmd{Header: e.hdr(), WorkerID: "w1"})
	if w := e.worker("w1"); w.PINVersion != 2 || w.SafePINHash != "" {
		t.Fatalf("after clearing: %+v", w)
	}
}

func TestDirectory_DeviceStatusLatestWins(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	t0 := e.now
	resp := e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{
		{DeviceID: "d1", SeenAt: t0.Add(2 * time.Second), Battery: ptr(80), Connected: ptr(true), Node: "n2",
			Location: &Location{Lat: 51.5, Lon: -0.1}},
		{DeviceID: "d1", SeenAt: t0.Add(time.Second), Battery: ptr(90)}, // older: skipped
		{DeviceID: "ghost", SeenAt: t0, Battery: ptr(10)},               // unknown: skipped
		{DeviceID: "d2", SeenAt: t0, Firmware: "2.1"},
	}})
	var r deviceStatusResult
	if err := json.Unmarshal(resp, &r); err != nil || r.Updated != 2 || r.Skipped != 2 {
		t.Fatalf("response %s", resp)
	}
	d := e.device("d1")
	if d.Battery != 80 || !d.Connected || d.Node != "n2" || d.Location == nil || !d.LastSeen.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("d1 = %+v", d)
	}
	// A later batch with an older time changes nothing; a newer one wins.
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{{DeviceID: "d1", SeenAt: t0, Battery: ptr(5)}}})
	if d := e.device("d1"); d.Battery != 80 {
		t.Fatalf("an older status overwrote battery: %d", d.Battery)
	}
	e.must(CmdDeviceStatus, deviceStatusCmd{Header: e.hdr(), Devices: []DeviceStatus{{DeviceID: "d1", SeenAt: t0.Add(time.Minute), Connected: ptr(false)}}})
	if d := e.device("d1"); d.Battery != 80 || d.Connected {
		t.Fatalf("newer status: %+v", d)
	}
	// Registration keeps the telemetry.
	e.must(CmdPutDevice, putDeviceCmd{Header: e.hdr(), Device: Device{ID: "d1", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w1", Label: "red"}})
	if d := e.device("d1"); d.Battery != 80 || d.Label != "red" || d.Location == nil || d.Firmware != "" && d.Firmware != "2.1" {
		t.Fatalf("PutDevice lost telemetry: %+v", d)
	}
	if d := e.device("p1"); d.Battery != -1 {
		t.Fatalf("new device battery %d, want -1 (unknown)", d.Battery)
	}
}

// TestDirectory_HiddenCharactersRefused: a name an operator reads refuses
// control characters and the Unicode format characters that reorder or
// hide text (a right-to-left override makes "Bob\u202eCOD.exe" read as
// "Bobexe.DOC"), naming the field; the same name without them is stored.
func TestDirectory_HiddenCharactersRefused(t *testing.T) {
	e := mustOperatorEnv(t)
	e.seed()
	h := e.hdr()
	for _, bad := range []struct{ name, s string }{
		{"newline", "Bob\nAlarm closed"},
		{"escape", "Bob\x1b[31m"},
		{"delete", "Bob\x7f"},
		{"C1 control", "Bob\u0085"},
		{"right-to-left override", "Bob\u202eCOD.exe"},
		{"left-to-right embedding", "Bob\u202a"},
		{"pop directional formatting", "Bob\u202c"},
		{"right-to-left isolate", "Bob\u2067x\u2069"},
		{"first strong isolate", "Bob\u2068"},
		{"zero-width space", "B\u200bob"},
		{"byte order mark", "\ufeffBob"},
		{"line separator", "Bob\u2028x"},
	} {
		for _, tc := range []struct {
			what  string
			typ   CmdType
			body  any
			field string
		}{
			{"org name", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: bad.s}}, "org.name"},
			{"org contact", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", Contacts: []Contact{{Name: bad.s, Phone: "1"}}}}, "org.contacts[0].name"},
			{"org step", CmdPutOrganisation, putOrganisationCmd{Header: h, Org: Organisation{ID: "o9", Name: "x", ProcedureSteps: []ProcedureStep{{Title: bad.s}}}}, "org.procedure_steps[0].title"},
			{"worker name", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: bad.s, OrgID: "o1"}}, "worker.name"},
			{"worker team", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", Team: bad.s, OrgID: "o1"}}, "worker.team"},
			{"worker phone", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", Phone: bad.s, OrgID: "o1"}}, "worker.phone"},
			{"worker contact phone", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", OrgID: "o1", Contacts: []Contact{{Name: "Boss", Phone: bad.s}}}}, "worker.contacts[0].phone"},
			{"worker URN force", CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "n", OrgID: "o1", URNs: []PoliceURN{{Force: bad.s, URN: "1"}}}}, "worker.urns[0].force"},
			{"device label", CmdPutDevice, putDeviceCmd{Header: h, Device: Device{ID: "d9", Kind: DevicePooled, OrgID: "o1", Label: bad.s}}, "device.label"},
			{"operator name", CmdPutOperator, putOperatorCmd{Header: h, Create: true, PasswordHash: testSafeHash, Operator: Operator{ID: "x9", Name: bad.s, Role: RoleOperator}}, "operator.name"},
			{"console node name", CmdPutConsoleNode, putConsoleNodeCmd{Header: h, Node: ConsoleNode{NodeID: "n9", Name: bad.s, URL: "https://n9.example.org"}}, "node.name"},
		} {
			t.Run(bad.name+"/"+tc.what, func(t *testing.T) {
				e.t = t
				re := e.refused(tc.typ, tc.body, CodeInvalid, tc.field)
				if !strings.Contains(re.Msg, "U+") {
					t.Fatalf("the refusal %q does not say which character", re.Msg)
				}
			})
		}
	}
	e.t = t
	e.must(CmdPutWorker, putWorkerCmd{Header: h, Worker: Worker{ID: "w9", Name: "Zoë O'Brien-Łukasz שלום", Team: "Night", OrgID: "o1"}})
}

func TestHiddenChar(t *testing.T) {
	for s, want := range map[string]rune{"Bob\u202eX": 0x202e, "a\tb": '\t', "plain": 0, "Zoë שלום 日本": 0} {
		r, ok := HiddenChar(s)
		if r != want || ok != (want != 0) {
			t.Errorf("HiddenChar(%q) = %U, %v; want %U", s, r, ok, want)
		}
	}
}
