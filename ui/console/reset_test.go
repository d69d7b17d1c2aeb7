package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// oliviaConsole serves a console over a seeded single node, with olivia
// (an operator) signed in.
func oliviaConsole(t *testing.T) (*monitoringtest.Node, uitest.Fixture, *uitest.Session) {
	t.Helper()
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	f := uitest.MustSeed(t, n.Service)
	s := uitest.NewSession(t, srv.URL)
	if code := s.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	return n, f, s
}

// adaConsole serves a console over a seeded single node, with ada (an
// admin) signed in.
func adaConsole(t *testing.T) (*monitoringtest.Node, *uitest.Session) {
	t.Helper()
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	if _, err := n.Service.PutOperator(context.Background(), "op-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: "ada administers the appliance", Create: true}); err != nil {
		t.Fatal(err)
	}
	s := uitest.NewSession(t, srv.URL)
	if code := s.SignIn("ada", "ada administers the appliance"); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	return n, s
}

// An alarm the worker reset with the Safe PIN stays in the queue, after a
// newer alarm, marked for confirmation; its page says to call the worker
// back; and the close form refuses a close that does not say how the
// worker's safety was confirmed.
func TestConsole_ResetAlarmWaitsForConfirmation(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	reset, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Amira.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Service.CancelAlarm(ctx, "c1", "device:"+f.Amira.Device, reset.ID, "1111"); err != nil {
		t.Fatal(err)
	}
	newer, err := n.Service.RaiseAlarm(ctx, "r2", "device:"+f.Ben.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: f.Ben.Device})
	if err != nil {
		t.Fatal(err)
	}
	_, queue := s.Do(http.MethodGet, "/ui/", nil, nil)
	iReset, iNewer := strings.Index(queue, `data-id="`+reset.ID+`"`), strings.Index(queue, `data-id="`+newer.ID+`"`)
	if iReset < 0 || iNewer < 0 || iReset < iNewer {
		t.Fatalf("queue: the reset alarm at %d, the newer alarm at %d; want both, the reset one after", iReset, iNewer)
	}
	row := queue[iReset:]
	row = row[:strings.Index(row, "</tr>")]
	if !strings.Contains(row, "RESET: CONFIRM SAFE") || !strings.Contains(row, "Reset by worker: confirm safe") {
		t.Errorf("the reset alarm's row: %s", row)
	}

	page := "/ui/alarms/" + reset.ID
	if _, body := s.Do(http.MethodGet, page, nil, nil); !strings.Contains(body, `id="reset"`) || !strings.Contains(body, "call them back") {
		t.Errorf("the alarm page does not say the worker reset it")
	}
	post := func(action string, form url.Values) (int, string) {
		form.Set("csrf", s.CSRF)
		form.Set("cmd_id", action+"-"+reset.ID)
		resp, body := s.Do(http.MethodPost, page+"/"+action, form, map[string]string{"Accept": "application/json"})
		return resp.StatusCode, body
	}
	if code, body := post("acknowledge", url.Values{}); code != http.StatusOK {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	if code, body := post("close", url.Values{"resolution": {"false_alarm"}}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `"field":"confirmation"`) {
		t.Fatalf("close without a confirmation: %d %s", code, body)
	}
	if a, err := n.Service.Alarm(reset.ID); err != nil || a.Status == monitoring.StatusClosed {
		t.Fatalf("closed without a confirmation: %+v %v", a, err)
	}
	form := url.Values{"resolution": {"false_alarm"}, "confirmation": {"worker_confirmed"}, "note": {"rang back: pocket press"}}
	if code, body := post("close", form); code != http.StatusOK {
		t.Fatalf("close: %d %s", code, body)
	}
	if _, body := s.Do(http.MethodGet, page, nil, nil); !strings.Contains(body, "they confirmed they are safe") {
		t.Errorf("the closed alarm's page does not say how safety was confirmed")
	}
}

// Do-not-call is a property of the incident: an alarm linked to a duress
// alarm shows DO NOT CALL, offers no call, and a call logged on it anyway
// is refused.
func TestConsole_DoNotCallAcrossTheIncident(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	dev := "device:" + f.Amira.Device
	missed, err := n.Service.RaiseAlarm(ctx, "r1", dev, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	duress, err := n.Service.RaiseAlarm(ctx, "r2", dev, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDuress, DeviceID: f.Amira.Device})
	if err != nil || duress.IncidentID != missed.IncidentID {
		t.Fatalf("the duress alarm %+v (%v): want it in %s's incident", duress, err, missed.ID)
	}
	page := "/ui/alarms/" + missed.ID
	post := func(action string, form url.Values) (int, string) {
		form.Set("csrf", s.CSRF)
		form.Set("cmd_id", action+"-"+missed.ID)
		resp, body := s.Do(http.MethodPost, page+"/"+action, form, map[string]string{"Accept": "application/json"})
		return resp.StatusCode, body
	}
	if code, body := post("acknowledge", url.Values{}); code != http.StatusOK {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	_, body := s.Do(http.MethodGet, page, nil, nil)
	if !strings.Contains(body, `id="dnc"`) || !strings.Contains(body, "in the incident of a duress or discreet alarm") {
		t.Errorf("the linked alarm's page shows no DO NOT CALL banner")
	}
	if strings.Contains(body, `value="call_worker"`) || !strings.Contains(body, `class="dnc-inline"`) {
		t.Errorf("the linked alarm's page offers a call to the worker")
	}
	if code, body := post("actions", url.Values{"kind": {"call_worker"}, "outcome": {"no_answer"}}); code != http.StatusConflict ||
		!strings.Contains(body, "do not call the worker") {
		t.Fatalf("a call logged on the linked alarm: %d %s; want 409 do not call", code, body)
	}
	_, queue := s.Do(http.MethodGet, "/ui/", nil, nil)
	row := queue[strings.Index(queue, `data-id="`+missed.ID+`"`):]
	if row = row[:strings.Index(row, "</tr>")]; !strings.Contains(row, "DO NOT CALL") || strings.Contains(row, "LINKED") {
		t.Errorf("the first alarm's queue row: %s; want DO NOT CALL, not linked", row)
	}
	row = queue[strings.Index(queue, `data-id="`+duress.ID+`"`):]
	if row = row[:strings.Index(row, "</tr>")]; !strings.Contains(row, "↳ LINKED") {
		t.Errorf("the duress alarm's queue row: %s; want it marked linked", row)
	}
}

// The alarm page asks the device to tap twice; the prompt is on the
// alarm's timeline. A do-not-call alarm offers no prompt, and one posted
// anyway is refused: an onlooker could see it.
func TestConsole_TapTwicePrompt(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	red, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Amira.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	discreet, err := n.Service.RaiseAlarm(ctx, "r2", "device:"+f.Ben.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, DeviceID: f.Ben.Device})
	if err != nil {
		t.Fatal(err)
	}
	prompt := func(id string) (int, string) {
		form := url.Values{"kind": {"tap_twice"}, "csrf": {s.CSRF}, "cmd_id": {"tap-" + id}}
		resp, body := s.Do(http.MethodPost, "/ui/alarms/"+id+"/prompt", form, map[string]string{"Accept": "application/json"})
		return resp.StatusCode, body
	}
	if _, body := s.Do(http.MethodGet, "/ui/alarms/"+red.ID, nil, nil); !strings.Contains(body, `id="prompt-tap"`) {
		t.Fatal("the alarm page offers no tap-twice prompt")
	}
	if code, body := prompt(red.ID); code != http.StatusOK {
		t.Fatalf("tap twice: %d %s", code, body)
	}
	tl, err := n.Service.Timeline(red.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != monitoring.ActionPrompt || !strings.Contains(last.Text, "tap_twice") {
		t.Fatalf("the last timeline entry %+v: want the prompt", last)
	}

	if _, body := s.Do(http.MethodGet, "/ui/alarms/"+discreet.ID, nil, nil); strings.Contains(body, `id="prompt-tap"`) {
		t.Error("a discreet alarm's page offers a prompt")
	}
	if code, body := prompt(discreet.ID); code != http.StatusConflict || !strings.Contains(body, "onlooker") {
		t.Fatalf("a prompt on a discreet alarm: %d %s; want 409", code, body)
	}
}

// The alarm page asks the device for audio, for a discreet alarm too (the
// device shows nothing); the request is on the timeline by the operator,
// in the audit log, and the page says until when the device streams. An
// alarm nobody has taken is refused, naming the alarm.
func TestConsole_ListenInRequest(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	discreet, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Ben.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, DeviceID: f.Ben.Device})
	if err != nil {
		t.Fatal(err)
	}
	listen := func(seconds string) (int, string) {
		form := url.Values{"seconds": {seconds}, "csrf": {s.CSRF}, "cmd_id": {"listen-" + seconds}}
		resp, body := s.Do(http.MethodPost, "/ui/alarms/"+discreet.ID+"/listen", form, map[string]string{"Accept": "application/json"})
		return resp.StatusCode, body
	}
	if code, body := listen("60"); code != http.StatusConflict || !strings.Contains(body, "acknowledge") {
		t.Fatalf("a listen-in before anyone took the alarm: %d %s; want 409", code, body)
	}
	if _, err := n.Service.Acknowledge(ctx, "ack", "olivia", discreet.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, body := s.Do(http.MethodGet, "/ui/alarms/"+discreet.ID, nil, nil); !strings.Contains(body, `id="listen-request"`) ||
		!strings.Contains(body, `<option value="120" selected>2 min</option>`) {
		t.Fatal("the discreet alarm's page offers no listen-in, or not for 2 minutes at first")
	}
	if code, body := listen("5"); code != http.StatusUnprocessableEntity || !strings.Contains(body, `"field":"seconds"`) {
		t.Fatalf("a listen-in of 5 s: %d %s; want 422 naming seconds", code, body)
	}
	if code, body := listen("300"); code != http.StatusOK {
		t.Fatalf("listen-in: %d %s", code, body)
	}
	tl, err := n.Service.Timeline(discreet.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != monitoring.ActionListenIn || last.Actor != "olivia" || !strings.Contains(last.Text, "300 s") {
		t.Fatalf("the last timeline entry %+v: want the listen-in by olivia", last)
	}
	audit, err := n.Service.AuditFor("alarm/" + discreet.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := audit[len(audit)-1]; last.Command != monitoring.CmdListenRequest.String() || last.Actor != "olivia" {
		t.Fatalf("the last audit record %+v: want the listen-in", last)
	}
	if _, body := s.Do(http.MethodGet, "/ui/alarms/"+discreet.ID, nil, nil); !strings.Contains(body, `id="listening-until"`) {
		t.Fatal("the page does not say the device is streaming")
	}
}

// An alarm from a pooled device between sessions names no worker, and its
// page says why, rather than naming its last user.
func TestConsole_PooledDeviceBetweenSessions(t *testing.T) {
	n, _, s := oliviaConsole(t)
	ctx := context.Background()
	if _, err := n.Service.PutDevice(ctx, "pool-1", "admin", monitoring.Device{ID: "pool-7", Kind: monitoring.DevicePooled, OrgID: "northcare"}); err != nil {
		t.Fatal(err)
	}
	a, err := n.Service.RaiseAlarm(ctx, "r1", "device:pool-7", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "pool-7"})
	if err != nil {
		t.Fatal(err)
	}
	if _, body := s.Do(http.MethodGet, "/ui/alarms/"+a.ID, nil, nil); !strings.Contains(body, "A pooled device between sessions") {
		t.Error("the alarm page does not say the pooled device is assigned to no one")
	}
	_, queue := s.Do(http.MethodGet, "/ui/", nil, nil)
	if row := queue[strings.Index(queue, `data-id="`+a.ID+`"`):]; !strings.Contains(row[:strings.Index(row, "</tr>")], "assigned to no one") {
		t.Error("the queue row does not say the device is assigned to no one")
	}
}

// The procedure's steps are ticked by the actions that do them (listening
// in ticks "Listen in and assess"), and the close form lists the steps
// left.
func TestConsole_ProcedureTickedByActions(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	a, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Amira.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Service.Acknowledge(ctx, "ack", "olivia", a.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []monitoring.ActionKind{monitoring.ActionListenIn, monitoring.ActionCallWorker} {
		e := monitoring.TimelineEntry{Kind: k}
		if k == monitoring.ActionCallWorker {
			e.Outcome = monitoring.CallAnsweredSafe
		}
		if _, err := n.Service.LogAction(ctx, "log-"+string(k), "olivia", a.ID, e); err != nil {
			t.Fatal(err)
		}
	}
	_, body := s.Do(http.MethodGet, "/ui/alarms/"+a.ID, nil, nil)
	proc := body[strings.Index(body, `id="procedure"`):]
	proc = proc[:strings.Index(proc, "</section>")]
	if n := strings.Count(proc, `aria-label="done"`); n != 2 {
		t.Errorf("%d steps ticked, want 2 (listen in, call the worker):\n%s", n, proc)
	}
	left := body[strings.Index(body, `id="steps-left"`):]
	left = left[:strings.Index(left, "</p>")]
	for _, want := range []string{"Police if there is a threat now", "Call the escalation contacts in order", "Confirm welfare before closing"} {
		if !strings.Contains(left, want) {
			t.Errorf("the close form's steps left lack %q: %s", want, left)
		}
	}
	if strings.Contains(left, "Listen in and assess") {
		t.Errorf("the close form lists a step done: %s", left)
	}
}
