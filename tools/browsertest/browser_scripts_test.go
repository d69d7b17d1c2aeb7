package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// scriptOrg is the customer of the scripted runs: a community health
// trust whose procedure names the actions that fulfil each step.
var scriptOrg = map[string]any{
	"id": "severnvale", "name": "Severn Vale Community Health",
	"procedure_steps": []map[string]string{
		{"title": "Listen in and assess", "text": "Open the audio before anything else.", "action": "listen_in"},
		{"title": "Verify the location", "text": "Against the Update message and the last fixes.", "action": "location_verified"},
		{"title": "Police if there is a threat now", "text": "Evidence of a threat happening now: the URN. Otherwise 999 or 101.", "action": "police"},
		{"title": "Brief the escalation contacts", "text": "In order, until the worker's welfare is confirmed.", "action": "escalation_contact"},
	},
	"contacts": []map[string]string{{"name": "Hannah Reid", "phone": "01632 960101", "relation": "district nursing duty manager"}},
	"grace":    "3s",
}

// scriptURNs are the organisation's police URNs: Gloucestershire's, and
// last year's, expired, beside it.
func scriptURNs() []map[string]string {
	return []map[string]string{
		{"force": "Gloucestershire Constabulary", "urn": "GLOS-LW-4471", "expiry": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)},
		{"force": "Gloucestershire Constabulary", "urn": "GLOS-LW-3902", "expiry": time.Now().AddDate(0, -1, 0).UTC().Format(time.RFC3339)},
	}
}

// mustScriptDirectory registers the scripted runs' organisation, workers
// and devices through the REST API of p, and the operator olivia, and
// returns the devices' credentials.
func mustScriptDirectory(t *testing.T, p *vigilProc) (ruth, callum uitest.DeviceCred) {
	t.Helper()
	org := map[string]any{"urns": scriptURNs()}
	for k, v := range scriptOrg {
		org[k] = v
	}
	apiPost(t, p, "/api/v1/organisations", map[string]any{"id": "s-org", "org": org}, nil)
	workers := []map[string]any{
		{"id": "w-ruth", "name": "Ruth Okafor", "org_id": "severnvale", "phone": "07700 900301", "team": "District nursing, Stroud",
			"important": map[string]string{"medical": "Type 1 diabetic; glucose tablets in the front pocket of her bag"},
			"contacts": []map[string]string{{"name": "Hannah Reid", "phone": "01632 960101", "relation": "duty manager"},
				{"name": "Daniel Okafor", "phone": "07700 900302", "relation": "next of kin"}}},
		{"id": "w-callum", "name": "Callum Price", "org_id": "severnvale", "phone": "07700 900311", "team": "Mental health outreach",
			"important": map[string]string{"special_handling": "Hard of hearing in the left ear"},
			"contacts":  []map[string]string{{"name": "Hannah Reid", "phone": "01632 960101", "relation": "duty manager"}}},
	}
	creds := make([]uitest.DeviceCred, len(workers))
	for i, w := range workers {
		id := w["id"].(string)
		apiPost(t, p, "/api/v1/workers", map[string]any{"id": "s-" + id, "worker": w}, nil)
		apiPost(t, p, "/api/v1/workers/"+id+"/pins", map[string]any{"id": "s-pins-" + id, "safe_pin": "2468", "duress_pin": "1357"}, nil)
		dev := "d-" + strings.TrimPrefix(id, "w-")
		apiPost(t, p, "/api/v1/devices", map[string]any{"id": "s-" + dev, "device": map[string]any{
			"id": dev, "kind": "phone_app", "org_id": "severnvale", "worker_id": id}}, nil)
		var sec struct{ Secret string }
		apiPost(t, p, "/api/v1/devices/"+dev+"/secret", map[string]any{"id": "s-sec-" + dev}, &sec)
		creds[i] = uitest.DeviceCred{Worker: id, Device: dev, Secret: sec.Secret}
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(uitest.OliviaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := appliance.OperatorCommand(context.Background(), []string{"create", "--id", "olivia", "--name", "Olivia Hart", "--password-file", pw},
		appliance.CommandEnv{Stdout: &out, Stderr: &out, LoadConfig: func(string) (string, string, error) {
			return p.dataDir, p.httpAddr, nil
		}}); err != nil {
		t.Fatalf("vigil operator create: %v\n%s", err, &out)
	}
	return creds[0], creds[1]
}

// apiGet reads a JSON reply of the REST API of p.
func apiGet(t *testing.T, p *vigilProc, path string, out any) {
	t.Helper()
	req, err := apiRequest(p, http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// apiAlarm is an alarm as the REST API shows it, with what the scripts
// check.
type apiAlarm struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	Status       string `json:"status"`
	IncidentID   string `json:"incident_id"`
	DeviceID     string `json:"device_id"`
	Resolution   string `json:"resolution"`
	Confirmation string `json:"confirmation"`
}

// openAlarms returns the open alarms, as node p's API shows them.
func openAlarms(t *testing.T, p *vigilProc) []apiAlarm {
	t.Helper()
	var r struct {
		Alarms []apiAlarm `json:"alarms"`
	}
	apiGet(t, p, "/api/v1/alarms", &r)
	return r.Alarms
}

// expectDown waits for a message on one of a device's down topics that
// contains every one of want, and returns it.
func expectDown(t *testing.T, ch <-chan []byte, what string, want ...string) []byte {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			ok := true
			for _, w := range want {
				ok = ok && bytes.Contains(m, []byte(w))
			}
			if ok {
				return m
			}
		case <-deadline:
			t.Fatalf("the device got no %s (%q)", what, want)
		}
	}
}

// TestBrowser_ScriptedRedAlertAndSession runs, against three vigil
// processes, with devices on real MQTT and an operator in chromium, the
// two ways of working that the seeds describe, end to end:
//
//   - a Red Alert (Reliance-style): the worker raises it and the device
//     streams audio; the operator takes it, listens, verifies the location,
//     calls the police on the lone-worker URN, briefs the escalation
//     contacts, and closes it once the police attended; the device hears
//     each step it may;
//   - a timed session (StaySafe-style): the worker's monitor timer runs out,
//     a reminder reaches the device, the grace passes and a missed
//     check-in alarm is raised; then the worker, forced by an aggressor,
//     ends the session with the Duress PIN: the device sees an ordinary
//     end; the operators see a silent duress alarm joined to the missed
//     check-in, DO NOT CALL on both, and work it through the police.
//
// The console's screenshots of both go in docs/screenshots when
// VIGIL_DOCS_SCREENSHOTS is set.
func TestBrowser_ScriptedRedAlertAndSession(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser and three vigil processes")
	}
	chromiumPath(t)
	bin := mustBuildVigil(t)
	procs := mustVigilCluster(t, bin)
	ruthCred, callumCred := mustScriptDirectory(t, procs[0])

	process := mustBrowserProcess(t)
	olivia := &browser{t: t, name: "olivia", base: procs[0].base()}
	ctx, cancel := chromedp.NewContext(process, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	olivia.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	olivia.SignIn("olivia", uitest.OliviaPassword)

	// ---- The Red Alert ----
	ruth := mustDevice(t, procs[1].mqttAddr, ruthCred)
	ruthAlarms := ruth.watch("alarm")
	alarmR := ruth.alarm("red_alert", map[string]any{"lat": 51.74521, "lon": -2.21877, "accuracy_m": 9, "source": "gps"})
	expectDown(t, ruthAlarms, "the alarm's receipt", alarmR, `"received"`)
	ruth.audio(alarmR, 3)
	olivia.waitJS("the Red Alert in the queue", rowOf(alarmR)+` !== null && window.vigilAlerting === true`)
	olivia.navigate("/ui/alarms/" + alarmR)
	olivia.waitJS("the alarm page", `document.getElementById("conn").textContent === "live" && !!document.getElementById("ack")`)
	olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	olivia.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you") && window.vigilRefreshing === false`)
	expectDown(t, ruthAlarms, "the acknowledgement", alarmR, `"acknowledged"`)
	olivia.waitJS("the audio", `!!document.querySelector("#audio audio[src$='/audio.wav']")`)
	settle := func() { olivia.waitJS("the page to settle", `window.vigilRefreshing === false`) }
	// The operator asks the device for more audio: the device streams it,
	// showing nothing; while the alarm is taken the device hears that an
	// operator is listening.
	listens := ruth.watch("listen")
	olivia.Do("ask the device for audio", chromedp.Click(chromedp.ID("listen-request")))
	expectDown(t, listens, "the listen-in request", alarmR, `"seconds"`)
	ruth.audioFrom(alarmR, 3, 3)
	olivia.waitJS("the listen-in request on the timeline", `document.querySelector("#timeline").textContent.includes("asked the device to stream its audio")`)
	settle()
	expectDown(t, ruthAlarms, "the operator-listening heartbeat", alarmR, `"listening"`)
	olivia.Do("listened in", chromedp.Click(chromedp.ID("log-listen")))
	olivia.waitJS("listening on the timeline", `document.querySelector("#timeline").textContent.includes("Listened in")`)
	settle()
	olivia.Do("location verified", chromedp.Click(chromedp.CSS(`#actions button[value=location_verified], #actions form:has(input[value=location_verified]) button`)))
	olivia.waitJS("the location on the timeline", `document.querySelector("#timeline").textContent.includes("Location verified")`)
	settle()
	olivia.Do("police on the URN", chromedp.SetValue(chromedp.CSS(`.urn-form input[name=reference]`), "GLOS-2612-0871"),
		chromedp.Click(chromedp.CSS(`.urn-form button`)))
	olivia.waitJS("the police call", `document.querySelector("#timeline").textContent.includes("via lone-worker URN")`)
	expectDown(t, ruthAlarms, "the police notice", alarmR, `"police"`)
	settle()
	olivia.Do("brief the first contact", chromedp.Click(chromedp.CSS(`#contacts li:first-child form:has(input[name=outcome][value=briefed]) button`)))
	olivia.waitJS("the contact briefed", `document.querySelector("#contacts li.briefed") !== null`)
	settle()
	olivia.waitJS("every procedure step ticked by the actions", `document.querySelectorAll("#procedure li.done").length === 4`)
	olivia.waitJS("the close form's warnings gone with them, live", `document.getElementById("steps-left") === null && document.getElementById("briefing-hint") === null`)
	olivia.shot("21-red-alert-worked")
	olivia.Do("close", chromedp.SetValue(chromedp.ID("resolution"), "incident_handled"),
		chromedp.SetValue(chromedp.ID("confirmation"), "police_attended"),
		chromedp.SetValue(chromedp.ID("close-note"), "Police attended at 10:52; Ruth safe, back at her car. Patient's son arrested."),
		chromedp.Click(chromedp.ID("close-btn")))
	olivia.waitJS("closed", `document.getElementById("closed") !== null`)
	expectDown(t, ruthAlarms, "the close", alarmR, `"closed"`)

	// ---- The timed session ----
	callum := mustDevice(t, procs[2].mqttAddr, callumCred)
	reminders, sessions := callum.watch("reminder"), callum.watch("session")
	callum.send("session/start", map[string]any{"session_id": "visit-orchard-close", "duration": "4s",
		"update":   "Home visit, 22 Orchard Close, Stonehouse. Client's brother was aggressive last time; keys in the blue van.",
		"location": map[string]any{"lat": 51.74702, "lon": -2.28011, "accuracy_m": 20, "source": "wifi", "address": "22 Orchard Close, Stonehouse GL10"}})
	expectDown(t, sessions, "the session's start", `"visit-orchard-close"`, `"active"`)
	expectDown(t, reminders, "the reminder", `"visit-orchard-close"`)
	var missed apiAlarm
	clustertest.PollUntil(t, 30*time.Second, "the missed check-in alarm", func() bool {
		for _, a := range openAlarms(t, procs[1]) {
			if a.Type == "missed_checkin" && a.DeviceID == callumCred.Device {
				missed = a
			}
		}
		return missed.ID != ""
	})
	olivia.navigate("/ui/")
	olivia.waitJS("the missed check-in in the queue", rowOf(missed.ID)+` !== null`)
	end := callum.send("session/end", map[string]any{"session_id": "visit-orchard-close", "pin": "1357"})
	var ended struct {
		Status   string `json:"status"`
		AudioRef string `json:"audio_ref"`
	}
	if err := json.Unmarshal(end, &ended); err != nil || ended.Status != "ended" || ended.AudioRef == "" {
		t.Fatalf("the device's reply to the Duress-PIN end: %s (%v)", end, err)
	}
	// The device, shown an ordinary end, streams its audio to the
	// reference every PIN action gives it: here it reaches the duress
	// alarm.
	callum.audio(ended.AudioRef, 2)
	var duress apiAlarm
	clustertest.PollUntil(t, 10*time.Second, "the duress alarm", func() bool {
		for _, a := range openAlarms(t, procs[0]) {
			if a.Type == "duress" && a.DeviceID == callumCred.Device {
				duress = a
			}
		}
		return duress.ID != ""
	})
	if duress.IncidentID != missed.ID {
		t.Fatalf("the duress alarm is in incident %q, want the missed check-in's %q", duress.IncidentID, missed.ID)
	}
	olivia.waitJS("the incident grouped, DO NOT CALL on both", rowOf(duress.ID)+` !== null && `+rowOf(missed.ID)+`.classList.contains("grouped") && `+
		rowOf(missed.ID)+`.querySelector(".dnc-badge") !== null && `+rowOf(duress.ID)+`.querySelector(".dnc-badge") !== null`)
	olivia.shot("22-session-duress-queue")
	olivia.navigate("/ui/alarms/" + duress.ID)
	olivia.waitJS("the duress page", `document.getElementById("conn").textContent === "live" && !!document.getElementById("ack") && document.getElementById("dnc") !== null`)
	olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	olivia.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you") && window.vigilRefreshing === false`)
	olivia.waitJS("the Update for the visit", `document.getElementById("update-text").textContent.includes("22 Orchard Close")`)
	olivia.waitJS("the audio sent after the Duress PIN", `!!document.querySelector("#audio audio[src$='/audio.wav']")`)
	if duress.ID != ended.AudioRef {
		t.Errorf("the duress alarm %s is not the audio reference %s the device was given", duress.ID, ended.AudioRef)
	}
	olivia.Do("police on the URN", chromedp.SetValue(chromedp.CSS(`.urn-form input[name=reference]`), "GLOS-2612-0902"),
		chromedp.Click(chromedp.CSS(`.urn-form button`)))
	olivia.waitJS("the police call", `document.querySelector("#timeline").textContent.includes("via lone-worker URN")`)
	settle()
	olivia.Do("brief the contact", chromedp.Click(chromedp.CSS(`#contacts li:first-child form:has(input[name=outcome][value=briefed]) button`)))
	olivia.waitJS("the contact briefed", `document.querySelector("#contacts li.briefed") !== null`)
	settle()
	olivia.shot("23-session-duress-worked")
	for _, id := range []string{duress.ID, missed.ID} {
		if id != duress.ID {
			olivia.navigate("/ui/alarms/" + id)
			olivia.waitJS("the alarm page", `document.getElementById("conn").textContent === "live" && !!document.getElementById("ack")`)
			olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
			olivia.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you") && window.vigilRefreshing === false`)
			olivia.Do("a note", chromedp.SetValue(chromedp.ID("note-text"), "Same incident as the duress alarm: police attended."),
				chromedp.Click(chromedp.CSS(`#note-form button`)))
			olivia.waitJS("the note", `document.querySelector("#timeline").textContent.includes("Same incident")`)
			settle()
			// The contact was briefed on the duress alarm: the genuine close
			// of this one says so.
			olivia.Do("why no briefing here", chromedp.SetValue(chromedp.ID("no-briefing"), "Hannah Reid briefed on the duress alarm of this incident."))
		}
		olivia.Do("close", chromedp.SetValue(chromedp.ID("resolution"), "incident_handled"),
			chromedp.SetValue(chromedp.ID("confirmation"), "police_attended"),
			chromedp.SetValue(chromedp.ID("close-note"), "Police attended 22 Orchard Close; Callum safe, statement taken."),
			chromedp.Click(chromedp.ID("close-btn")))
		olivia.waitJS("closed", `document.getElementById("closed") !== null`)
	}

	// Every node agrees: nothing open, each alarm closed as worked.
	for _, p := range procs {
		if open := openAlarms(t, p); len(open) != 0 {
			t.Errorf("%s still has open alarms: %+v", p.id, open)
		}
		for _, id := range []string{alarmR, missed.ID, duress.ID} {
			var a struct {
				Alarm apiAlarm `json:"alarm"`
			}
			apiGet(t, p, "/api/v1/alarms/"+id, &a)
			if a.Alarm.Status != "closed" || a.Alarm.Resolution != "incident_handled" || a.Alarm.Confirmation != "police_attended" {
				t.Errorf("%s: alarm %s is %+v", p.id, id, a.Alarm)
			}
		}
	}
}
