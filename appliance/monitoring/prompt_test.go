package monitoring

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// promptCmd is a valid prompt to d1 expiring in five minutes.
func (e *dirEnv) promptCmd(id string) devicePromptCmd {
	return devicePromptCmd{Header: e.hdr(), PromptID: id, DeviceID: "d1", Kind: PromptTapTwice,
		ExpiresAt: e.now.Add(5 * time.Minute)}
}

// sendPrompt applies a prompt that must be accepted and returns it.
func (e *dirEnv) sendPrompt(cmd devicePromptCmd) *DevicePrompt {
	e.t.Helper()
	var p DevicePrompt
	if err := json.Unmarshal(e.must(CmdDevicePrompt, cmd), &p); err != nil {
		e.t.Fatal(err)
	}
	return &p
}

func (e *dirEnv) answerCmd(prompt, device string, a PromptAnswer) promptAnswerCmd {
	return promptAnswerCmd{Header: Header{At: e.now, Actor: "device:" + device, Node: "n1"}, PromptID: prompt,
		DeviceID: device, Answer: a, DeviceTime: e.now.Add(-time.Second), AlarmID: "tap-" + prompt}
}

func (e *dirEnv) prompt(id string) *DevicePrompt {
	e.t.Helper()
	var p *DevicePrompt
	if err := e.db.View(func(txn *badger.Txn) (err error) { p, err = getPrompt(txn, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *dirEnv) raise(id string, typ AlarmType, device string) {
	e.t.Helper()
	e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: Header{At: e.now, Actor: "device:" + device, Node: "n1"}, AlarmID: id, Type: typ, DeviceID: device})
}

// lastEntry returns the last timeline entry of an alarm.
func (e *dirEnv) lastEntry(alarm string) TimelineEntry {
	e.t.Helper()
	tl := e.timeline(alarm)
	return tl[len(tl)-1]
}

func TestPrompt_Refusals(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.raise("a1", AlarmRedAlert, "d1")
	e.raise("a2", AlarmRedAlert, "d2")
	e.raise("closed", AlarmTest, "d1")
	e.must(CmdAcknowledge, AcknowledgeCmd{Header: e.hdr(), AlarmID: "closed"})
	e.must(CmdCloseAlarm, CloseAlarmCmd{Header: e.hdr(), AlarmID: "closed", Resolution: ResolutionTest})
	e.sendPrompt(e.promptCmd("taken"))
	for _, tc := range []struct {
		name  string
		edit  func(*devicePromptCmd)
		code  Code
		field string
	}{
		{"no prompt ID", func(c *devicePromptCmd) { c.PromptID = "" }, CodeInvalid, "prompt_id"},
		{"prompt ID taken", func(c *devicePromptCmd) { c.PromptID = "taken" }, CodeConflict, "prompt_id"},
		{"no kind", func(c *devicePromptCmd) { c.Kind = "" }, CodeInvalid, "kind"},
		{"unknown kind", func(c *devicePromptCmd) { c.Kind = "dance" }, CodeInvalid, "kind"},
		{"message without text", func(c *devicePromptCmd) { c.Kind, c.Text = PromptMessage, " " }, CodeInvalid, "text"},
		{"text too long", func(c *devicePromptCmd) { c.Text = strings.Repeat("x", MaxPromptText+1) }, CodeInvalid, "text"},
		{"already expired", func(c *devicePromptCmd) { c.ExpiresAt = e.now }, CodeInvalid, "expires_at"},
		{"expires too late", func(c *devicePromptCmd) { c.ExpiresAt = e.now.Add(MaxPromptTTL + time.Second) }, CodeInvalid, "expires_at"},
		{"unknown device", func(c *devicePromptCmd) { c.DeviceID = "ghost" }, CodeNotFound, "device_id"},
		{"unknown alarm", func(c *devicePromptCmd) { c.AlarmID = "nope" }, CodeNotFound, "alarm_id"},
		{"another worker's alarm", func(c *devicePromptCmd) { c.AlarmID = "a2" }, CodeConflict, "alarm_id"},
		{"closed alarm", func(c *devicePromptCmd) { c.AlarmID = "closed" }, CodeAlarmClosed, "alarm_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := e.promptCmd("p-" + strings.ReplaceAll(tc.name, " ", "-"))
			tc.edit(&cmd)
			e.refused(CmdDevicePrompt, cmd, tc.code, tc.field)
		})
	}
}

// A prompt about an alarm goes on its timeline and out as an event that
// carries what the device is sent.
func TestPrompt_LinkedToAlarm(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.raise("a1", AlarmRedAlert, "d1")
	e.eventTypes()
	cmd := e.promptCmd("p1")
	cmd.AlarmID, cmd.Kind, cmd.Text = "a1", PromptMessage, "Help is on the way"
	p := e.sendPrompt(cmd)
	if p.WorkerID != "w1" || p.SentBy != "tester" || !p.SentAt.Equal(e.now) || p.SilentAlarmID != "" {
		t.Fatalf("prompt %+v", p)
	}
	var got *DevicePrompt
	for _, ev := range e.events {
		if ev.Type == EventDevicePrompt {
			got = ev.Prompt
		}
	}
	if got == nil || got.ID != "p1" || got.Text != "Help is on the way" || !got.ExpiresAt.Equal(cmd.ExpiresAt) {
		t.Fatalf("EventDevicePrompt carried %+v", got)
	}
	if types := e.eventTypes(); len(types) != 2 || types[0] != EventAlarmUpdated || types[1] != EventDevicePrompt {
		t.Fatalf("events %v", types)
	}
	te := e.lastEntry("a1")
	if te.Kind != ActionPrompt || te.Reference != "p1" || te.Text != "message: Help is on the way" || te.Actor != "tester" {
		t.Fatalf("timeline entry %+v", te)
	}
	if a := e.alarm("a1"); a.Actions != len(e.timeline("a1")) {
		t.Fatalf("alarm counts %d actions, timeline has %d", a.Actions, len(e.timeline("a1")))
	}
	var recs []AuditRecord
	if err := e.db.View(func(txn *badger.Txn) (err error) { recs, err = AuditFor(txn, "prompt/p1"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Command != CmdDevicePrompt.String() {
		t.Fatalf("audit records of prompt/p1: %+v, want one", recs)
	}
}

// While the worker has an open silent alarm a prompt is refused, naming the
// alarm, unless overridden; the override is on the silent alarm's timeline.
func TestPrompt_SilentAlarmNeedsOverride(t *testing.T) {
	for _, typ := range []AlarmType{AlarmDuress, AlarmDiscreetPanic} {
		t.Run(string(typ), func(t *testing.T) {
			e := mustDirEnv(t)
			e.seed()
			e.raise("loud", AlarmRedAlert, "d1")
			// The silent alarm is the worker's, raised without a device.
			e.must(CmdRaiseAlarm, RaiseAlarmCmd{Header: e.hdr(), AlarmID: "quiet", Type: typ, WorkerID: "w1"})
			for _, alarm := range []string{"", "loud", "quiet"} {
				cmd := e.promptCmd("p-" + alarm)
				cmd.AlarmID = alarm
				re := e.refused(CmdDevicePrompt, cmd, CodeConflict, "override_silent")
				if !strings.Contains(re.Msg, "quiet") || !strings.Contains(re.Msg, "worker w1") {
					t.Fatalf("refusal %q does not name the silent alarm and worker", re.Msg)
				}
			}
			cmd := e.promptCmd("p-over")
			cmd.AlarmID, cmd.OverrideSilent = "loud", true
			p := e.sendPrompt(cmd)
			if p.SilentAlarmID != "quiet" {
				t.Fatalf("prompt %+v does not record the override", p)
			}
			if te := e.lastEntry("quiet"); te.Kind != ActionPrompt || !strings.Contains(te.Text, "override") || te.Reference != "p-over" {
				t.Fatalf("silent alarm's last entry %+v", te)
			}
			if te := e.lastEntry("loud"); te.Kind != ActionPrompt || strings.Contains(te.Text, "override") {
				t.Fatalf("linked alarm's last entry %+v", te)
			}
			var audit []AuditRecord
			if err := e.db.View(func(txn *badger.Txn) (err error) { audit, err = AuditFor(txn, "prompt/p-over"); return err }); err != nil {
				t.Fatal(err)
			}
			if len(audit) != 1 || !strings.Contains(audit[0].Detail, "overriding open silent alarm quiet") {
				t.Fatalf("audit %+v", audit)
			}
			// Another worker's device is not held back.
			other := e.promptCmd("p-d2")
			other.DeviceID = "d2"
			e.sendPrompt(other)
		})
	}
}

func TestPromptAnswer_Refusals(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	msg := e.promptCmd("msg")
	msg.Kind, msg.Text = PromptMessage, "Call us"
	e.sendPrompt(msg)
	e.sendPrompt(e.promptCmd("tap"))
	e.sendPrompt(e.promptCmd("done"))
	e.must(CmdPromptAnswer, e.answerCmd("done", "d1", AnswerAcknowledged))
	for _, tc := range []struct {
		name   string
		cmd    promptAnswerCmd
		code   Code
		field  string
		saying string
	}{
		{"unknown prompt", e.answerCmd("ghost", "d1", AnswerAcknowledged), CodeNotFound, "prompt_id", `no prompt "ghost"`},
		{"another device's", e.answerCmd("tap", "d2", AnswerTapped), CodeConflict, "prompt_id", "another device"},
		{"answered", e.answerCmd("done", "d1", AnswerDeclined), CodeConflict, "prompt_id", "already answered"},
		{"no answer", e.answerCmd("tap", "d1", ""), CodeInvalid, "answer", "required"},
		{"unknown answer", e.answerCmd("tap", "d1", "maybe"), CodeInvalid, "answer", "not one of"},
		{"tapped a message", e.answerCmd("msg", "d1", AnswerTapped), CodeInvalid, "answer", "only a tap_twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if re := e.refused(CmdPromptAnswer, tc.cmd, tc.code, tc.field); !strings.Contains(re.Msg, tc.saying) {
				t.Fatalf("refusal %q does not say %q", re.Msg, tc.saying)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.now = e.now.Add(5 * time.Minute) // exactly at expires_at
		re := e.refused(CmdPromptAnswer, e.answerCmd("tap", "d1", AnswerTapped), CodeConflict, "prompt_id")
		if !strings.Contains(re.Msg, "expired") {
			t.Fatalf("refusal %q", re.Msg)
		}
	})
}

// An answer is kept on the prompt and on the alarm's timeline.
func TestPromptAnswer_OnAlarmTimeline(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.raise("a1", AlarmRedAlert, "d1")
	cmd := e.promptCmd("p1")
	cmd.AlarmID = "a1"
	e.sendPrompt(cmd)
	e.now = e.now.Add(20 * time.Second)
	e.eventTypes()
	e.must(CmdPromptAnswer, e.answerCmd("p1", "d1", AnswerTapped))
	p := e.prompt("p1")
	if p.Answer != AnswerTapped || !p.AnsweredAt.Equal(e.now) || !p.AnswerDeviceTime.Equal(e.now.Add(-time.Second)) || p.RaisedAlarmID != "" {
		t.Fatalf("prompt %+v", p)
	}
	te := e.lastEntry("a1")
	if te.Kind != ActionPromptAnswer || te.Outcome != string(AnswerTapped) || te.Reference != "p1" || te.Actor != "device:d1" {
		t.Fatalf("timeline entry %+v", te)
	}
	if types := e.eventTypes(); len(types) != 2 || types[0] != EventAlarmUpdated || types[1] != EventPromptAnswered {
		t.Fatalf("events %v", types)
	}
}

// Tapping twice for help when no alarm is open raises a discreet panic: a
// silent alarm, so nothing shows on the device.
func TestPromptAnswer_TappedWithoutAlarmRaisesDiscreetPanic(t *testing.T) {
	e := mustDirEnv(t)
	e.seed()
	e.sendPrompt(e.promptCmd("p1"))
	e.must(CmdPromptAnswer, e.answerCmd("p1", "d1", AnswerTapped))
	p := e.prompt("p1")
	if p.RaisedAlarmID != "tap-p1" {
		t.Fatalf("prompt %+v", p)
	}
	a := e.alarm("tap-p1")
	if a.Type != AlarmDiscreetPanic || !a.Silent || a.WorkerID != "w1" || a.Status != StatusRaised {
		t.Fatalf("alarm %+v", a)
	}
	if te := e.lastEntry("tap-p1"); te.Kind != ActionPromptAnswer || te.Outcome != "tapped" {
		t.Fatalf("timeline entry %+v", te)
	}
	// The worker now has a silent alarm: no prompt without an override.
	e.refused(CmdDevicePrompt, e.promptCmd("p3"), CodeConflict, "override_silent")
	// Acknowledged or declined raises nothing.
	p2 := e.promptCmd("p2")
	p2.DeviceID = "d2"
	e.sendPrompt(p2)
	e.must(CmdPromptAnswer, e.answerCmd("p2", "d2", AnswerDeclined))
	if p := e.prompt("p2"); p.RaisedAlarmID != "" {
		t.Fatalf("declined raised %s", p.RaisedAlarmID)
	}
}

// stepPromptOrUpdate generates a prompt, an answer or an Update message for
// the replicas property (determinism_test.go): mostly valid, some refused
// (unknown devices, silent alarms without override, expired or answered
// prompts, answers that do not fit).
func (g *gen) stepPromptOrUpdate(op string) {
	devices := append(g.deviceIDs(), "ghost")
	switch g.r.IntN(3) {
	case 0:
		id := g.id("p")
		if g.r.IntN(15) == 0 && len(g.prompts) > 0 {
			id = g.pick(g.prompts) // a duplicate
		}
		g.prompts = append(g.prompts, id)
		c := devicePromptCmd{Header: g.hdr(op), PromptID: id, DeviceID: g.pick(devices),
			Kind:      []PromptKind{PromptTapTwice, PromptCallBack, PromptMessage, "dance"}[g.r.IntN(4)],
			ExpiresAt: g.now.Add(time.Duration(g.r.IntN(10)) * time.Minute), OverrideSilent: g.r.IntN(3) != 0}
		if g.r.IntN(4) != 0 {
			c.Text = "tap twice if you need help"
		}
		if g.r.IntN(3) == 0 {
			c.AlarmID = g.alarm()
		}
		g.add(CmdDevicePrompt, c)
		if g.r.IntN(2) == 0 {
			g.now = g.now.Add(time.Duration(g.r.IntN(30)) * time.Second)
			g.answerPrompt(devices)
		}
	case 1:
		g.answerPrompt(devices)
	default:
		c := postUpdateCmd{Header: g.hdr("device"), Text: g.pick([]string{"visiting 14 Elm Road", "call me at 15:30", " "}),
			DeviceTime: g.now.Add(-2 * time.Second)}
		switch g.r.IntN(3) {
		case 0:
			c.DeviceID = g.pick(devices)
		case 1:
			c.WorkerID = g.pick(append(genWorkerIDs, "nobody"))
		default:
			c.DeviceID, c.SessionID = g.pick(g.deviceIDs()), g.pick(g.session)
		}
		g.add(CmdPostUpdate, c)
	}
}

// answerPrompt answers a prompt, mostly one still waiting, from mostly its
// own device.
func (g *gen) answerPrompt(devices []string) {
	// Mostly a prompt still waiting for its answer.
	var waiting []string
	if err := g.a.db.View(func(txn *badger.Txn) error {
		ps, err := listJSON[DevicePrompt](txn, pPrompt, 0)
		for _, p := range ps {
			if p.Answer == "" && g.now.Before(p.ExpiresAt) {
				waiting = append(waiting, p.ID)
			}
		}
		return err
	}); err != nil {
		g.t.Fatal(err)
	}
	p := g.pick(g.prompts)
	if len(waiting) > 0 && g.r.IntN(4) != 0 {
		p = g.pick(waiting)
	}
	device := g.pick(devices)
	var rec DevicePrompt
	if err := g.a.db.View(func(txn *badger.Txn) (err error) { _, err = getJSON(txn, pPrompt+p, &rec); return err }); err != nil {
		g.t.Fatal(err)
	}
	if rec.DeviceID != "" && g.r.IntN(5) != 0 {
		device = rec.DeviceID
	}
	alarm := g.id("tap")
	g.alarms = append(g.alarms, alarm)
	g.add(CmdPromptAnswer, promptAnswerCmd{Header: g.hdr("device:" + device), PromptID: p, DeviceID: device,
		Answer:     []PromptAnswer{AnswerAcknowledged, AnswerTapped, AnswerTapped, AnswerDeclined, "maybe"}[g.r.IntN(5)],
		DeviceTime: g.now.Add(-time.Second), AlarmID: alarm})
}
