package monitoring

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// The replicas property: a command sequence applied on three replicas, each
// in its own Badger with its own FSM and its own transaction batching, ends
// in identical states and gives identical answers. Replica A applies one
// command per transaction and throws a refused command's transaction away;
// B applies seven per transaction and C as many as fit in one, both keeping
// a refused command's (empty) writes in the batch as the cluster host does.
// A handler that wrote before refusing would make A differ from B and C.

// genCmd is one generated command.
type genCmd struct {
	t    CmdType
	data []byte
}

// gen makes a random but mostly valid command sequence from a seed. It
// applies each command to replica A as it goes, so that it can pick
// deadlines that exist in the state.
type gen struct {
	t       testing.TB
	r       *rand.Rand
	now     time.Time
	a       *replica
	cmds    []genCmd
	alarms  []string
	session []string
	prompts []string // prompt.go
	nextID  int
	// steps counts the steps; every resumeEvery-th also generates a
	// hand-over command (resume_test.go) from its own random source, so
	// that the other commands stay as they were.
	steps    int
	rr       *rand.Rand
	resumeID int
	tr       *rand.Rand // API token commands' own source (apitoken_test.go)
	lr       *rand.Rand // listen-in and audio commands' own source (listenaudio_test.go)
	refs     []string   // audio references made by session actions (audioref.go)
	nr       *rand.Rand // audio link and report commands' own source (audiolink_test.go)
	links    []string   // audio link IDs generated (audiolink.go)
	or       *rand.Rand // outbox commands' own source (outbox_test.go)
}

// replica is one state machine on its own Badger.
type replica struct {
	db       *badger.DB
	f        *FSM
	outcomes []string // per command: the response or the refusal
}

func newReplica(t testing.TB) *replica { return &replica{db: mustOpenDB(t), f: NewFSM()} }

var (
	genOrgs      = []string{"o1", "o2"}
	genWorkers   = map[string]string{"w1": "o1", "w2": "o1", "w3": "o1", "w4": "o2", "w5": "o2"}
	genWorkerIDs = []string{"w1", "w2", "w3", "w4", "w5"}
	genDevices   = []Device{
		{ID: "d1", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w1"},
		{ID: "d2", Kind: DevicePhoneApp, OrgID: "o1", WorkerID: "w2"},
		{ID: "d3", Kind: DeviceDedicated, OrgID: "o1", WorkerID: "w3"},
		{ID: "d4", Kind: DevicePhoneApp, OrgID: "o2", WorkerID: "w4"},
		{ID: "d5", Kind: DevicePooled, OrgID: "o1"},
		{ID: "d6", Kind: DevicePooled, OrgID: "o2"},
	}
	genOperators = []string{"olivia", "sam", "ray"}
)

func (g *gen) pick(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return xs[g.r.IntN(len(xs))]
}

// alarm picks an alarm: mostly an open one of replica A, else any ID
// generated so far (closed, refused or never raised).
// closedAlarms returns the alarms of g that replica A holds closed.
func (g *gen) closedAlarms() []string {
	var out []string
	if err := g.a.db.View(func(txn *badger.Txn) error {
		for _, id := range g.alarms {
			if a, err := LookupAlarm(txn, id); err == nil && a.Status == StatusClosed {
				out = append(out, id)
			}
		}
		return nil
	}); err != nil {
		g.t.Fatal(err)
	}
	return out
}

func (g *gen) alarm() string {
	if g.r.IntN(3) != 0 {
		var open []Alarm
		if err := g.a.db.View(func(txn *badger.Txn) (err error) {
			open, err = OpenAlarms(txn)
			return err
		}); err != nil {
			g.t.Fatal(err)
		}
		if len(open) > 0 {
			return open[g.r.IntN(len(open))].ID
		}
	}
	return g.pick(g.alarms)
}

func (g *gen) hdr(actor string) Header { return Header{At: g.now, Actor: actor, Node: "n1"} }

func (g *gen) id(prefix string) string {
	g.nextID++
	return fmt.Sprintf("%s%d", prefix, g.nextID)
}

// add encodes a command, applies it to replica A and appends it.
func (g *gen) add(t CmdType, body any) {
	c := genCmd{t: t, data: encode(t, body)}
	g.cmds = append(g.cmds, c)
	g.a.outcomes = append(g.a.outcomes, applyOne(g.t, g.a, len(g.cmds), c))
}

// applyOne applies one command in its own transaction, committing it
// unless it was refused.
func applyOne(t testing.TB, r *replica, index int, c genCmd) string {
	t.Helper()
	txn := r.db.NewTransaction(true)
	defer txn.Discard()
	resp, err := r.f.Apply(txn, cluster.Entry{Index: uint64(index), Term: 1, ID: fmt.Sprintf("c%d", index), Data: c.data})
	if err != nil {
		r.f.Discarded()
		return "refused: " + err.Error()
	}
	if err := txn.Commit(); err != nil {
		t.Fatalf("commit %d: %v", index, err)
	}
	r.f.Committed()
	return string(resp)
}

// location returns a fix within about 400 m of a central point.
func (g *gen) location() *Location {
	return &Location{Lat: 53.4808 + (g.r.Float64()-0.5)*0.007, Lon: -2.2426 + (g.r.Float64()-0.5)*0.012, Source: "gps"}
}

func (g *gen) setup() {
	for i, o := range genOrgs {
		org := Organisation{ID: o, Name: "Org " + o, Grace: time.Duration(i+1) * time.Minute}
		if i == 1 {
			org.Priorities = map[AlarmType]int{AlarmLowBattery: 2, AlarmTest: 9, AlarmManDown: 3}
		} else {
			// Escalation contacts (escalation.go) for o1's workers; o2 has
			// none, so its contact entries are refused under the newer rules.
			org.Contacts = []Contact{{Name: "manager", Phone: "0161 496 0001", Email: "manager@o1.example"}, {Name: "next of kin", Phone: "0161 496 0002"}}
			org.ContactWait = time.Minute
		}
		// URNs without new draws: o1 holds GMP's and the Met's, which
		// expires during the run; o2 holds none.
		if i == 0 {
			org.URNs = []PoliceURN{{Force: "GMP", URN: "GMP-1", Expiry: t0.AddDate(1, 0, 0)},
				{Force: "Met", URN: "MET-1", Expiry: t0.Add(20 * time.Minute)}}
		}
		// o1 has a notification policy (outboxnotice.go): its genuine
		// closes enqueue notices under the newest close rules; its reports
		// recipients (monthly.go) are kept with it.
		if i == 0 {
			org.Notify = NotifyPolicy{Close: Recipients{Emails: []string{"duty@o1.example"}, Webhooks: []string{"oncall"}},
				Duress:  Recipients{Emails: []string{"managers@o1.example"}},
				Reports: Recipients{Emails: []string{"quality@o1.example"}, Webhooks: []string{"intranet"}}}
		}
		// o1 keeps little (retention.go): the purges stepRetention makes
		// ahead of time remove its closed alarms; o2 keeps everything.
		if i == 0 {
			org.Retention = Retention{LocationDays: MinLocationDays, AlarmDays: MinAlarmDays, OutboxDays: MinOutboxDays}
		}
		g.add(CmdPutOrganisation, putOrganisationCmd{Header: g.hdr("admin"), Org: org})
	}
	for _, w := range genWorkerIDs {
		g.add(CmdPutWorker, putWorkerCmd{Header: g.hdr("admin"), Worker: Worker{ID: w, Name: "Worker " + w, OrgID: genWorkers[w]}})
	}
	for _, d := range genDevices {
		g.add(CmdPutDevice, putDeviceCmd{Header: g.hdr("admin"), Device: d})
	}
	for _, w := range genWorkerIDs[:3] {
		g.add(CmdSetPINs, setPINsCmd{Header: g.hdr("admin"), WorkerID: w, SafePINHash: testSafeHash, DuressPINHash: testDuressHash})
	}
}

func (g *gen) deviceIDs() []string {
	ids := make([]string, len(genDevices))
	for i, d := range genDevices {
		ids[i] = d.ID
	}
	return ids
}

// step generates one command.
func (g *gen) step() {
	if g.steps++; g.steps%resumeEvery == 0 {
		g.stepResume() // resume_test.go
	}
	if g.steps%apiTokenEvery == 0 {
		g.stepAPIToken() // apitoken_test.go
	}
	if g.steps%listenAudioEvery == 0 {
		g.stepListenAudio() // listenaudio_test.go
	}
	if g.steps%afterIncidentEvery == 0 {
		g.stepAfterIncident() // audiolink_test.go
	}
	// Only once the other sources are made, so that their seeds, taken
	// from the count of commands, stay as they were.
	if g.steps > apiTokenEvery && g.steps%outboxEvery == 0 {
		g.stepOutbox() // outbox_test.go
	}
	if g.steps%retentionEvery == 0 {
		g.stepRetention() // retention_test.go
	}
	g.now = g.now.Add(time.Duration(g.r.IntN(90)) * time.Second)
	op := g.pick(genOperators)
	if g.r.IntN(10) == 0 {
		g.stepPromptOrUpdate(op) // prompt_test.go
		return
	}
	if g.r.IntN(12) == 0 {
		g.stepOperator() // operator_test.go
		return
	}
	switch n := g.r.IntN(100); {
	case n < 8:
		var batch []DeviceStatus
		for range 1 + g.r.IntN(3) {
			b := g.r.IntN(101)
			st := DeviceStatus{DeviceID: g.pick(append(g.deviceIDs(), "ghost")), Battery: &b,
				Location: g.location(), SeenAt: g.now.Add(-time.Duration(g.r.IntN(120)) * time.Second)}
			if g.r.IntN(2) == 0 {
				connected := g.r.IntN(2) == 0
				st.Connected = &connected
				if g.r.IntN(4) != 0 { // presence of a connection on one of three nodes
					st.Node = fmt.Sprintf("n%d", 1+g.r.IntN(3))
					st.ConnectedAt = g.now.Add(-time.Duration(g.r.IntN(600)) * time.Second)
					st.Reason = DisconnectLost
				}
			}
			batch = append(batch, st)
		}
		if g.r.IntN(6) == 0 { // a node stops answering, or restarts
			before := g.now.Add(-time.Duration(g.r.IntN(300)) * time.Second)
			reason := []string{DisconnectNodeDown, DisconnectNodeStop, "crashed"}[g.r.IntN(3)]
			g.add(CmdNodeDown, nodeDownCmd{Header: g.hdr("system"), Node: fmt.Sprintf("n%d", 1+g.r.IntN(3)),
				Before: before, GoneAt: before, Reason: reason})
			return
		}
		// Both rules, without a draw that would change the rest of the sequence.
		g.add(CmdDeviceStatus, deviceStatusCmd{Header: g.hdr("broker"), Devices: batch, Rules: len(batch) % 2})
	case n < 25:
		id := g.id("a")
		if g.r.IntN(15) == 0 && len(g.alarms) > 0 {
			id = g.pick(g.alarms) // a duplicate
		}
		typ := AlarmTypes[g.r.IntN(len(AlarmTypes))]
		if g.r.IntN(25) == 0 {
			typ = "fire"
		}
		r := RaiseAlarmCmd{Header: g.hdr("device"), AlarmID: id, Type: typ, DeviceID: g.pick(append(g.deviceIDs(), "ghost")),
			DeviceTime: g.now.Add(-time.Duration(g.r.IntN(5000)) * time.Millisecond)}
		if g.r.IntN(2) == 0 {
			r.Location = g.location()
		}
		if g.r.IntN(6) == 0 {
			r.DeviceID, r.WorkerID = "", g.pick(genWorkerIDs)
		}
		g.alarms = append(g.alarms, id)
		g.add(CmdRaiseAlarm, r)
	case n < 40:
		// Both rules, without a draw that would change the rest of the sequence.
		g.add(CmdAcknowledge, AcknowledgeCmd{Header: g.hdr(op), AlarmID: g.alarm(), Takeover: g.r.IntN(4) == 0, Rules: len(g.cmds) % 2})
	case n < 55:
		kinds := append(append([]ActionKind{}, LoggableActions...), ActionClosed, "")
		e := TimelineEntry{Kind: kinds[g.r.IntN(len(kinds))]}
		if g.r.IntN(5) != 0 {
			e.Outcome = g.pick([]string{CallAnsweredSafe, CallAnsweredNoSpeech, CallNoAnswer, "answered"})
			e.Force = g.pick([]string{"GMP", "Met"})
			e.Route = g.pick([]string{RouteURN, Route999, Route101, "112"})
			e.Contact = g.pick([]string{"manager", "next of kin"})
			e.Text = g.pick([]string{"note", "tap twice", "siren"})
		}
		// More police calls on the URN route, without new draws: half of
		// the actions that need no checks become one.
		switch e.Kind {
		case ActionNote, ActionListenIn, ActionLocationOK, ActionDeviceCmd:
			if len(g.cmds)%2 == 0 {
				e.Kind, e.Route, e.Force = ActionPolice, RouteURN, cmp.Or(e.Force, "GMP")
			}
		}
		// Every version of the rules, from the same draw as before.
		rules := g.r.IntN(2)
		switch {
		case rules == RulesIncidentDoNotCall && len(g.cmds)%2 == 0:
			// The escalation's rules (and the URN's); mostly with the
			// outcomes they accept.
			rules = RulesContactOutcome
			if e.Kind == ActionContact && len(g.cmds)%3 != 0 {
				e.Outcome = map[string]string{CallAnsweredSafe: ContactWelfareConfirmed, CallAnsweredNoSpeech: ContactLeftMessage,
					CallNoAnswer: ContactNoAnswer, "answered": ContactBriefed}[e.Outcome]
			}
		case rules == RulesIncidentDoNotCall && len(g.alarms)%2 == 0:
			rules = RulesURN
		}
		g.add(CmdLogAction, logActionCmd{Header: g.hdr(op), AlarmID: g.alarm(), Entry: e, Rules: rules})
	case n < 66:
		res := Resolution(g.pick([]string{"worker_safe", "incident_handled", "false_alarm", "test", "", "bored"}))
		if g.r.IntN(3) == 0 { // the rule before confirmations, for older logs
			g.add(CmdCloseAlarm, CloseAlarmCmd{Header: g.hdr(op), AlarmID: g.alarm(), Resolution: res, Note: "n"})
			return
		}
		conf := Confirmation(g.pick([]string{"worker_confirmed", "contact_confirmed", "police_attended", "in_person", "", "accidental_press", "hunch"}))
		// Both rules of the briefing, sometimes with a reason, without a
		// new draw.
		why := []string{"", "", "worker asked us not to"}[len(g.cmds)%3]
		rules := len(g.alarms) % 2
		if rules == RulesBriefing && len(g.cmds)%2 == 0 {
			rules = RulesPostIncidentReport // the report's rules too, without a new draw
			if len(g.alarms)%3 != 1 {
				rules = RulesNotify // and the close notification's
			}
		}
		g.add(CmdCloseAlarmConfirmed, CloseAlarmCmd{Header: g.hdr(op), AlarmID: g.alarm(), Resolution: res, Confirmation: conf, Note: "n",
			NoBriefingReason: why, Rules: rules})
	case n < 71:
		// Half of the time among the closed alarms, without a new draw:
		// closes are rarer under the briefing rule, and a reopen needs one.
		from := g.alarms
		if closed := g.closedAlarms(); len(closed) > 0 && len(g.cmds)%2 == 0 {
			from = closed
		}
		g.add(CmdReopenAlarm, reopenAlarmCmd{Header: g.hdr(op), AlarmID: g.pick(from), Reason: g.pick([]string{"", "rang back"})})
	case n < 79:
		id := g.id("s")
		g.session = append(g.session, id)
		iv := time.Duration(0)
		if g.r.IntN(2) == 0 {
			iv = time.Duration(5+g.r.IntN(20)) * time.Minute
		}
		g.add(CmdStartSession, startSessionCmd{Header: g.hdr("device"), SessionID: id, WorkerID: g.pick(genWorkerIDs),
			DeviceID: g.pick(g.deviceIDs()), Duration: time.Duration(10+g.r.IntN(110)) * time.Minute,
			CheckInInterval: iv, Location: g.location(), Update: "visit"})
	case n < 88:
		pin := []pinOutcome{pinNone, pinSafe, pinDuress, pinWrong}[g.r.IntN(4)]
		c := sessionActionCmd{Header: g.hdr("device"), SessionID: g.pick(g.session),
			Action: []SessionActionKind{SessionCheckIn, SessionExtend, SessionEnd}[g.r.IntN(3)], PIN: pin, Rules: g.r.IntN(2)}
		if c.Action == SessionExtend {
			c.ExtendBy = time.Duration(g.r.IntN(60)) * time.Minute
		}
		// Mostly the PIN version of the session's worker, as the Service
		// would send it.
		if err := g.a.db.View(func(txn *badger.Txn) error {
			if s, err := getSession(txn, c.SessionID); err == nil {
				if w, err := getWorker(txn, s.WorkerID); err == nil && g.r.IntN(8) != 0 {
					c.PINVersion = w.PINVersion
				}
			}
			return nil
		}); err != nil {
			g.t.Fatal(err)
		}
		if pin == pinDuress {
			c.AlarmID = g.id("duress")
			g.alarms = append(g.alarms, c.AlarmID)
		}
		if c.Rules == RulesReleasePooled && len(g.cmds)%2 == 0 {
			// The newest rules, without a draw of their own: every PIN
			// makes an audio reference, now and then one already taken.
			c.Rules = RulesSessionAudioRef
			switch {
			case len(g.cmds)%12 == 0 && len(g.refs) > 0:
				c.AlarmID = g.refs[len(g.refs)-1]
			case c.AlarmID == "":
				c.AlarmID = fmt.Sprintf("ref%d", len(g.cmds))
			}
			g.refs = append(g.refs, c.AlarmID)
		}
		g.add(CmdSessionAction, c)
	case n < 97:
		var ds []Deadline
		if err := g.a.db.View(func(txn *badger.Txn) (err error) {
			ds, err = listJSON[Deadline](txn, pDeadline, 0)
			return err
		}); err != nil {
			g.t.Fatal(err)
		}
		if g.r.IntN(2) == 0 {
			// Half the time leave out the many acknowledgement deadlines,
			// so that the rarer kinds fire too.
			var rare []Deadline
			for _, d := range ds {
				if d.Kind != DeadlineAckOverdue {
					rare = append(rare, d)
				}
			}
			if len(rare) > 0 {
				ds = rare
			}
		}
		d := Deadline{ID: "session/none/1/due", Due: g.now}
		if len(ds) > 0 && g.r.IntN(8) != 0 {
			d = ds[g.r.IntN(len(ds))]
		}
		if d.Due.After(g.now) {
			g.now = d.Due.Add(time.Duration(g.r.IntN(10)) * time.Second)
		}
		alarm := g.id("missed")
		g.alarms = append(g.alarms, alarm)
		g.add(CmdFireDeadline, fireDeadlineCmd{Header: g.hdr("system"), DeadlineID: d.ID, Due: d.Due, AlarmID: alarm})
	default:
		if g.r.IntN(3) != 0 {
			// The worker cancels an alarm from the device, mostly its own.
			id := g.alarm()
			var open []Alarm
			if err := g.a.db.View(func(txn *badger.Txn) (err error) { open, err = OpenAlarms(txn); return err }); err != nil {
				g.t.Fatal(err)
			}
			var cancellable []string // alarms of workers with PINs
			for _, a := range open {
				if a.WorkerID <= "w3" && a.DeviceID != "" && a.Type != AlarmDuress && !a.DuressCancel {
					cancellable = append(cancellable, a.ID)
				}
			}
			if len(cancellable) > 0 && g.r.IntN(4) != 0 {
				id = g.pick(cancellable)
			}
			device := g.pick(g.deviceIDs())
			var a Alarm
			if err := g.a.db.View(func(txn *badger.Txn) (err error) { _, err = getJSON(txn, pAlarm+id, &a); return err }); err != nil {
				g.t.Fatal(err)
			}
			if a.DeviceID != "" && g.r.IntN(4) != 0 {
				device = a.DeviceID
			}
			duress := g.id("cduress")
			g.alarms = append(g.alarms, duress)
			cancel := CmdResetAlarm
			if g.r.IntN(2) == 0 { // the rule before the reset, for older logs
				cancel = CmdCancelAlarm
			}
			g.add(cancel, cancelAlarmCmd{Header: g.hdr("device:" + device), AlarmID: id,
				PIN: []pinOutcome{pinNone, pinSafe, pinSafe, pinDuress, pinDuress, pinWrong}[g.r.IntN(6)], PINVersion: uint64(min(1, g.r.IntN(4))),
				DuressAlarmID: duress})
			return
		}
		// Directory changes under way: priorities, a reassigned device.
		if g.r.IntN(2) == 0 {
			o := Organisation{ID: g.pick(genOrgs), Name: "Renamed", Priorities: map[AlarmType]int{AlarmRedAlert: 1 + g.r.IntN(3)},
				AccidentalPressWindow: []time.Duration{0, 0, 10 * time.Second, time.Hour}[g.r.IntN(4)]}
			g.add(CmdPutOrganisation, putOrganisationCmd{Header: g.hdr("admin"), Org: o})
		} else {
			d := genDevices[g.r.IntN(len(genDevices))]
			if d.Kind == DevicePooled {
				d.WorkerID = ""
			} else {
				d.Label = "relabelled"
			}
			g.add(CmdPutDevice, putDeviceCmd{Header: g.hdr("admin"), Device: d})
		}
	}
}

// applyBatched applies cmds to r, batch commands per transaction (0: all
// that fit), halving a batch that is too big for one transaction.
func applyBatched(t *testing.T, r *replica, cmds []genCmd, batch int) {
	t.Helper()
	if batch <= 0 {
		batch = len(cmds)
	}
	r.outcomes = make([]string, len(cmds))
	for start := 0; start < len(cmds); {
		end := min(start+batch, len(cmds))
		for {
			err := applyChunk(r, cmds, start, end)
			if err == nil {
				break
			}
			if errors.Is(err, badger.ErrTxnTooBig) && end-start > 1 {
				end = start + (end-start)/2
				continue
			}
			t.Fatalf("apply %d-%d: %v", start+1, end, err)
		}
		start = end
	}
}

func applyChunk(r *replica, cmds []genCmd, start, end int) error {
	txn := r.db.NewTransaction(true)
	defer txn.Discard()
	for i := start; i < end; i++ {
		resp, err := r.f.Apply(txn, cluster.Entry{Index: uint64(i + 1), Term: 1, ID: fmt.Sprintf("c%d", i+1), Data: cmds[i].data})
		switch {
		case errors.Is(err, badger.ErrTxnTooBig):
			r.f.Discarded()
			return err
		case err != nil:
			r.outcomes[i] = "refused: " + err.Error()
		default:
			r.outcomes[i] = string(resp)
		}
	}
	if err := txn.Commit(); err != nil {
		r.f.Discarded()
		return err
	}
	r.f.Committed()
	return nil
}

func (r *replica) hash(t *testing.T) ([]byte, string) {
	t.Helper()
	var h []byte
	var dump string
	err := r.db.View(func(txn *badger.Txn) (err error) {
		if h, err = StateHash(txn); err != nil {
			return err
		}
		dump, err = StateDump(txn)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, dump
}

// replicaStats counts what a run exercised.
type replicaStats struct {
	accepted, refused map[CmdType]int
	fired             map[string]int // deadlines fired, by kind
	// Police calls on the URN route: quoting the organisation's URN
	// (RulesURN), accepted without one (older rules), and refused by the
	// URN rule.
	urnQuoted, urnUnquoted, urnRefused int
	noBriefing                         int // genuine closes refused for want of a briefing (escalation.go)
	closeNotices                       int // outbox messages of genuine closes (outboxnotice.go)
	outboxStates                       map[string]int
	purged                             PurgeResult // what the purges removed, added up (retention.go)
}

// checkReplicas generates n commands from seed, applies them on three
// replicas and requires identical outcomes and states.
func checkReplicas(t *testing.T, seed uint64, n int) replicaStats {
	t.Helper()
	g := &gen{t: t, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: t0, a: newReplica(t)}
	g.setup()
	for range n {
		g.step()
	}
	b, c := newReplica(t), newReplica(t)
	applyBatched(t, b, g.cmds, 7)
	applyBatched(t, c, g.cmds, 0)

	st := replicaStats{accepted: map[CmdType]int{}, refused: map[CmdType]int{}, fired: map[string]int{}}
	for i, cmd := range g.cmds {
		if g.a.outcomes[i] != b.outcomes[i] || g.a.outcomes[i] != c.outcomes[i] {
			t.Fatalf("seed %d: command %d (%s) answered differently:\nA %s\nB %s\nC %s",
				seed, i+1, cmd.t, g.a.outcomes[i], b.outcomes[i], c.outcomes[i])
		}
		if strings.HasPrefix(g.a.outcomes[i], "refused: ") {
			st.refused[cmd.t]++
			if strings.HasPrefix(g.a.outcomes[i], "refused: "+string(CodeURNRefused)) {
				st.urnRefused++
			}
			if strings.Contains(g.a.outcomes[i], string(CodeNeedBriefing)) {
				st.noBriefing++
			}
		} else {
			st.accepted[cmd.t]++
		}
		var pr PurgeResult
		if cmd.t == CmdPurge && json.Unmarshal([]byte(g.a.outcomes[i]), &pr) == nil {
			st.purged.Alarms = append(st.purged.Alarms, pr.Alarms...)
			st.purged.Locations += pr.Locations
			st.purged.Outbox += pr.Outbox
		}
		var fr fireResult
		if cmd.t == CmdFireDeadline && json.Unmarshal([]byte(g.a.outcomes[i]), &fr) == nil && fr.Outcome == "fired" {
			st.fired[fr.Kind]++
		}
	}
	ha, da := g.a.hash(t)
	hb, db := b.hash(t)
	hc, dc := c.hash(t)
	if !bytes.Equal(ha, hb) || !bytes.Equal(ha, hc) {
		t.Fatalf("seed %d: state hashes differ: A %x B %x C %x\n%s", seed, ha, hb, hc, firstDiff(da, db, dc))
	}
	if err := g.a.db.View(checkAlarmInvariants); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if err := g.a.db.View(func(txn *badger.Txn) error {
		msgs, err := listJSON[OutboxMessage](txn, pOutbox, 0)
		if err != nil {
			return err
		}
		st.outboxStates = map[string]int{}
		for _, m := range msgs {
			st.outboxStates[m.State]++
			if m.Kind == NoticeAlarmClosed {
				st.closeNotices++
			}
		}
		tl, err := listJSON[TimelineEntry](txn, pTimeline, 0)
		for _, e := range tl {
			switch {
			case e.Kind != ActionPolice || e.Route != RouteURN:
			case e.URN != "":
				st.urnQuoted++
			default:
				st.urnUnquoted++
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// firstDiff shows the first line where the dumps differ.
func firstDiff(dumps ...string) string {
	lines := make([][]string, len(dumps))
	for i, d := range dumps {
		lines[i] = strings.Split(d, "\n")
	}
	for n := 0; ; n++ {
		var row []string
		same := true
		for _, l := range lines {
			s := "<end>"
			if n < len(l) {
				s = l[n]
			}
			row = append(row, s)
			same = same && s == row[0]
		}
		if !same || row[0] == "<end>" {
			return "first difference:\n" + strings.Join(row, "\n")
		}
	}
}

// checkAlarmInvariants checks that the alarm records and their indexes
// agree: an alarm is in the open queue exactly when it is not closed, every
// alarm is in ix/raised and ix/incident, and Actions counts its timeline.
func checkAlarmInvariants(txn *badger.Txn) error {
	alarms, err := listJSON[Alarm](txn, pAlarm, 0)
	if err != nil {
		return err
	}
	open := map[string]bool{}
	err = scanPrefix(txn, pOpen, false, func(k, _ []byte) (bool, error) {
		open[lastSegment(k)] = true
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, a := range alarms {
		if open[a.ID] == (a.Status == StatusClosed) {
			return fmt.Errorf("alarm %s is %s, in the open queue: %v", a.ID, a.Status, open[a.ID])
		}
		delete(open, a.ID)
		for _, k := range []string{string(raisedKey(&a)), string(openKey(&a)),
			pIncident + a.IncidentID + "/" + tkey(a.RaisedAt) + "/" + a.ID} {
			if k == string(openKey(&a)) && a.Status == StatusClosed {
				continue
			}
			if ok, err := exists(txn, k); err != nil || !ok {
				return fmt.Errorf("alarm %s: index %s missing (%v)", a.ID, k, err)
			}
		}
		tl, err := listJSON[TimelineEntry](txn, pTimeline+a.ID+"/", 0)
		if err != nil {
			return err
		}
		if len(tl) != a.Actions || tl[0].Kind != ActionRaised {
			return fmt.Errorf("alarm %s: %d actions, %d timeline entries", a.ID, a.Actions, len(tl))
		}
		for _, e := range tl {
			if e.URN != "" && (e.Kind != ActionPolice || e.Route != RouteURN) {
				return fmt.Errorf("alarm %s: a URN quoted on a %s entry by route %q", a.ID, e.Kind, e.Route)
			}
		}
		if a.DoNotCall {
			for _, e := range tl {
				if e.Kind == ActionCallWorker {
					return fmt.Errorf("do-not-call alarm %s has a call to the worker", a.ID)
				}
			}
		}
	}
	if len(open) != 0 {
		return fmt.Errorf("open queue names unknown alarms: %v", open)
	}
	// Owned deadlines and their index agree, and an acknowledgement
	// deadline belongs to an alarm nobody has acknowledged.
	owned := map[string]bool{}
	err = scanPrefix(txn, pDeadlineOf, true, func(k, v []byte) (bool, error) {
		if ok, err := exists(txn, string(v)); err != nil || !ok {
			return false, fmt.Errorf("%s names missing deadline %s (%v)", k, v, err)
		}
		owned[string(v)] = true
		return true, nil
	})
	if err != nil {
		return err
	}
	ds, err := listJSON[Deadline](txn, pDeadline, 0)
	if err != nil {
		return err
	}
	for _, d := range ds {
		switch d.Kind {
		case DeadlineAckOverdue:
			a, err := getAlarm(txn, d.AlarmID)
			if err != nil {
				return err
			}
			if a.Status == StatusClosed || !a.AckAt.IsZero() {
				return fmt.Errorf("deadline %s of alarm %s, which is %s, acknowledged at %s", d.ID, a.ID, a.Status, a.AckAt)
			}
			fallthrough
		case DeadlineDeviceOffline:
			if !owned[deadlineKey(&d)] {
				return fmt.Errorf("deadline %s is not indexed", d.ID)
			}
		}
	}
	return nil
}

func TestReplicas_SameStateWhateverTheBatching(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 100
	}
	total := replicaStats{accepted: map[CmdType]int{}, refused: map[CmdType]int{}, fired: map[string]int{}, outboxStates: map[string]int{}}
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			st := checkReplicas(t, seed, n)
			for k, v := range st.accepted {
				total.accepted[k] += v
			}
			for k, v := range st.refused {
				total.refused[k] += v
			}
			for k, v := range st.fired {
				total.fired[k] += v
			}
			total.urnQuoted += st.urnQuoted
			total.urnUnquoted += st.urnUnquoted
			total.urnRefused += st.urnRefused
			total.noBriefing += st.noBriefing
			total.closeNotices += st.closeNotices
			total.purged.Alarms = append(total.purged.Alarms, st.purged.Alarms...)
			total.purged.Locations += st.purged.Locations
			total.purged.Outbox += st.purged.Outbox
			for k, v := range st.outboxStates {
				total.outboxStates[k] += v
			}
		})
	}
	// The generator must reach both sides of every alarm rule and the
	// session commands, or the property says little.
	for _, c := range []CmdType{CmdRaiseAlarm, CmdAcknowledge, CmdLogAction, CmdCloseAlarm, CmdCloseAlarmConfirmed, CmdReopenAlarm,
		CmdStartSession, CmdSessionAction, CmdCancelAlarm, CmdResetAlarm, CmdDevicePrompt, CmdPromptAnswer, CmdPostUpdate, CmdNodeDown,
		CmdPutOperator, CmdOperatorLogin, CmdOperatorLogout,
		CmdIssueResumeTicket, CmdRedeemResumeTicket, CmdEndSessionFamily, CmdPutConsoleNode,
		CmdCreateAPIToken, CmdDisableAPIToken, CmdListenRequest, CmdAudioChunk,
		CmdCreateLinkKey, CmdIssueAudioLink, CmdRevokeAudioLink, CmdAudioLinkDownload, CmdReportAction,
		CmdOutboxEnqueue, CmdOutboxOutcome, CmdPurge, CmdLegalHold} {
		if total.accepted[c] == 0 || total.refused[c] == 0 {
			t.Errorf("%s: %d accepted, %d refused; want both", c, total.accepted[c], total.refused[c])
		}
	}
	// Both versions of the URN rule: calls quoting a URN, refused ones,
	// and ones accepted as older logs were.
	if total.urnQuoted == 0 || total.urnUnquoted == 0 || total.urnRefused == 0 {
		t.Errorf("URN calls: %d quoting a URN, %d under older rules, %d refused; want each",
			total.urnQuoted, total.urnUnquoted, total.urnRefused)
	}
	t.Logf("URN calls: %d quoting a URN, %d under older rules, %d refused", total.urnQuoted, total.urnUnquoted, total.urnRefused)
	if total.accepted[CmdFireDeadline] == 0 {
		t.Errorf("no deadline fired")
	}
	for _, k := range []string{DeadlineSessionDue, DeadlineSessionGrace, DeadlineDeviceOffline, DeadlineAckOverdue, DeadlineContactDue} {
		if total.fired[k] == 0 {
			t.Errorf("no %s deadline fired", k)
		}
	}
	if total.noBriefing == 0 {
		t.Errorf("no genuine close refused for want of a briefing")
	}
	// The purges removed closed alarms, positions and sent notifications.
	if len(total.purged.Alarms) == 0 || total.purged.Locations == 0 || total.purged.Outbox == 0 {
		t.Errorf("the purges removed %d alarms, %d positions, %d notifications; want some of each",
			len(total.purged.Alarms), total.purged.Locations, total.purged.Outbox)
	}
	t.Logf("purged: %d alarms, %d positions, %d notifications", len(total.purged.Alarms), total.purged.Locations, total.purged.Outbox)
	if total.closeNotices == 0 || total.outboxStates[OutboxSent] == 0 || total.outboxStates[OutboxFailed] == 0 ||
		total.outboxStates[OutboxGaveUp] == 0 {
		t.Errorf("outbox: %d close notices, states %v; want close notices and every state", total.closeNotices, total.outboxStates)
	}
	t.Logf("outbox: %d close notices, states %v", total.closeNotices, total.outboxStates)
	t.Logf("fired    %v", total.fired)
	t.Logf("accepted %v", total.accepted)
	t.Logf("refused  %v", total.refused)
}

func TestReplicas_LinkedAndDuressAlarmsOccur(t *testing.T) {
	// The generated sequences link incidents and raise duress alarms from
	// sessions, so the property covers those paths too.
	g := &gen{t: t, r: rand.New(rand.NewPCG(3, 3^0x9e3779b97f4a7c15)), now: t0, a: newReplica(t)}
	g.setup()
	for range 400 {
		g.step()
	}
	linked, sessionAlarms := 0, 0
	err := g.a.db.View(func(txn *badger.Txn) error {
		as, err := listJSON[Alarm](txn, pAlarm, 0)
		for _, a := range as {
			if a.IncidentID != a.ID {
				linked++
			}
			if a.SessionID != "" {
				sessionAlarms++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if linked == 0 || sessionAlarms == 0 {
		t.Fatalf("linked %d, from sessions %d; want both", linked, sessionAlarms)
	}
}

// FuzzReplicas runs the replicas property on sequences from random seeds.
// Its seed corpus runs with every `go test`.
func FuzzReplicas(f *testing.F) {
	for _, s := range []struct {
		seed uint64
		n    uint16
	}{{11, 50}, {12, 120}, {13, 200}} {
		f.Add(s.seed, s.n)
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint16) {
		checkReplicas(t, seed, int(n%400)+1)
	})
}

// The generator's commands must be valid JSON for the FSM: a sanity check
// that encode did not fail silently.
func TestReplicas_GeneratorEncodes(t *testing.T) {
	g := &gen{t: t, r: rand.New(rand.NewPCG(1, 2)), now: t0, a: newReplica(t)}
	g.setup()
	for range 20 {
		g.step()
	}
	for i, c := range g.cmds {
		if !json.Valid(c.data[1:]) {
			t.Fatalf("command %d is not JSON", i)
		}
	}
}
