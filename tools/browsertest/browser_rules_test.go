package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// TestBrowser_TheRulesOfTheClose works the rules of a monitoring centre in
// a real browser, with devices on real MQTT over a three-node cluster:
//   - a Red Alert the worker resets with the Safe PIN stays in the queue,
//     marked for confirmation, after the others; it closes only with how
//     the worker was confirmed safe;
//   - a red alert raised by a worker who had just ended a session with the
//     Duress PIN joins the duress incident: it is shown under the duress
//     alarm in the queue, and carries DO NOT CALL everywhere: no call
//     buttons, no device prompts, and a call logged anyway is refused;
//   - the Tap twice button reaches the device, and the worker's taps come
//     back to the alarm page.
func TestBrowser_TheRulesOfTheClose(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser and a three-node cluster")
	}
	chromiumPath(t)
	nodes := mustNodes(t, 3)
	svc := nodes[0].Service()
	f := uitest.MustSeed(t, svc)
	process := mustBrowserProcess(t)
	olivia := newBrowser(t, process, "olivia", nodes[0])
	olivia.SignIn("olivia", uitest.OliviaPassword)

	// Amira presses her Red Alert, then resets it with her Safe PIN.
	amira := mustDevice(t, nodes[1].BrokerAddr(), f.Amira)
	prompts := amira.watch("prompt")
	alarmA := amira.alarm("red_alert", map[string]any{"lat": 53.48760, "lon": -2.28925, "accuracy_m": 12, "source": "gps"})
	olivia.waitJS("Amira's alarm", rowOf(alarmA)+` !== null`)
	amira.send("alarm/cancel", map[string]any{"alarm_id": alarmA, "pin": "1111"})
	olivia.waitJS("the reset, still in the queue", rowOf(alarmA)+` !== null && `+rowOf(alarmA)+`.classList.contains("reset") && `+
		rowOf(alarmA)+`.querySelector(".reset-badge").textContent === "RESET: CONFIRM SAFE"`)

	// Ben ends a session with his Duress PIN, then presses his Red Alert.
	ben := mustDevice(t, nodes[2].BrokerAddr(), f.Ben)
	ben.send("session/start", map[string]any{"session_id": "visit-ash-grove", "duration": "45m",
		"update":   "Visit to 7 Ash Grove; the son has threatened staff before.",
		"location": map[string]any{"lat": 53.48301, "lon": -2.33417, "accuracy_m": 25, "source": "wifi", "address": "7 Ash Grove, Eccles M30"}})
	ben.send("session/end", map[string]any{"session_id": "visit-ash-grove", "pin": "9999"})
	var duress string
	clustertest.PollUntil(t, 10*time.Second, "the duress alarm", func() bool {
		open, _ := svc.OpenAlarms()
		for _, a := range open {
			if a.Type == monitoring.AlarmDuress && a.DeviceID == f.Ben.Device {
				duress = a.ID
			}
		}
		return duress != ""
	})
	alarmB := ben.alarm("red_alert", map[string]any{"lat": 53.48302, "lon": -2.33419, "accuracy_m": 15, "source": "gps"})
	if a, err := svc.Alarm(alarmB); err != nil || a.IncidentID != duress {
		t.Fatalf("Ben's red alert is not in the duress incident: %+v %v", a, err)
	}

	// The queue: the duress alarm, Ben's red alert under it, both DO NOT
	// CALL; Amira's reset alarm last.
	order := `Array.from(document.querySelectorAll("#queue-body tr"), (tr) => tr.dataset.id).join(",")`
	want := duress + "," + alarmB + "," + alarmA
	olivia.waitJS("the incident grouped, the reset last", order+` === `+fmt.Sprintf("%q", want))
	olivia.waitJS("do not call on both", rowOf(duress)+`.querySelector(".dnc-badge") !== null && `+rowOf(alarmB)+`.querySelector(".dnc-badge") !== null && `+
		rowOf(alarmB)+`.classList.contains("grouped") && !`+rowOf(duress)+`.classList.contains("grouped")`)
	olivia.waitJS("where and the Update", rowOf(duress)+`.querySelector("td.where").textContent.includes("7 Ash Grove") && `+
		rowOf(duress)+`.querySelector(".update-badge") !== null`)
	olivia.shot("18-queue-incident-grouped")

	// Ben's red alert: no call, no prompt; a call logged anyway is
	// refused.
	olivia.navigate("/ui/alarms/" + alarmB)
	olivia.waitJS("the alarm page", `document.getElementById("conn").textContent === "live" && !!document.getElementById("ack")`)
	olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	olivia.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you")`)
	olivia.waitJS("the do-not-call banner, no call buttons, no prompts", `document.getElementById("dnc") !== null && `+
		`document.getElementById("dnc").textContent.includes("incident of a duress") && `+
		`!document.querySelector('#actions input[name=kind][value=call_worker]') && document.getElementById("prompts") === null`)
	ctx, cancel := context.WithTimeout(olivia.ctx, browserTimeout)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf(`(async () => {
		const f = new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value, cmd_id: "forced-call", kind: "call_worker", outcome: "no_answer"});
		const r = await fetch("/ui/alarms/%s/actions", {method: "POST", body: f, headers: {Accept: "application/json"}});
		return r.status;
	})()`, alarmB), chromedp.EvalAwaitPromise))
	cancel()
	if err != nil || status < 400 {
		t.Fatalf("a call logged on a do-not-call incident: %v %v", status, err)
	}
	if tl, _ := svc.Timeline(alarmB); containsKind(tl, monitoring.ActionCallWorker) {
		t.Fatal("the refused call is on the timeline")
	}
	olivia.waitJS("the Update Ben left for the visit", `document.getElementById("update-text").textContent.includes("7 Ash Grove")`)
	olivia.shot("19-do-not-call-linked")

	// Amira's reset alarm: take it, ask her device for two taps.
	olivia.navigate("/ui/alarms/" + alarmA)
	olivia.waitJS("the reset banner", `document.getElementById("reset") !== null && document.getElementById("reset").textContent.includes("call them back")`)
	olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	olivia.waitJS("claimed", `document.getElementById("claimed-by").textContent.includes("Claimed by you") && window.vigilRefreshing === false`)
	olivia.Do("tap twice", chromedp.Click(chromedp.ID("prompt-tap")))
	var prompt struct {
		PromptID string `json:"prompt_id"`
		Kind     string `json:"kind"`
		AlarmID  string `json:"alarm_id"`
	}
	select {
	case p := <-prompts:
		if err := json.Unmarshal(p, &prompt); err != nil || prompt.Kind != "tap_twice" || prompt.AlarmID != alarmA {
			t.Fatalf("the device's prompt: %s (%v)", p, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the device got no prompt")
	}
	olivia.waitJS("the prompt on the timeline", `document.querySelector("#timeline").textContent.includes("Prompt sent")`)
	amira.send("prompt/answer", map[string]any{"prompt_id": prompt.PromptID, "answer": "tapped"})
	olivia.waitJS("the taps on the page, without a reload", `document.querySelector("#timeline").textContent.includes("Prompt answered")`)

	// The close: refused without how she was confirmed safe, then done.
	olivia.waitJS("the page to settle", `window.vigilRefreshing === false`)
	olivia.Do("close without a confirmation", chromedp.Evaluate[chromedp.Void](`document.getElementById("confirmation").removeAttribute("required")`),
		chromedp.SetValue(chromedp.ID("resolution"), "false_alarm"), chromedp.Click(chromedp.ID("close-btn")))
	olivia.waitJS("the refusal", `!document.getElementById("action-error").hidden && document.getElementById("action-error").textContent.includes("confirmed")`)
	if a, _ := svc.Alarm(alarmA); a.Status == monitoring.StatusClosed {
		t.Fatal("closed without a confirmation")
	}
	olivia.shot("20-reset-close-refused")
	olivia.Do("close, confirmed by the worker", chromedp.SetValue(chromedp.ID("resolution"), "false_alarm"),
		chromedp.SetValue(chromedp.ID("confirmation"), "worker_confirmed"),
		chromedp.SetValue(chromedp.ID("close-note"), "Rang back: pocket press on the bus."), chromedp.Click(chromedp.ID("close-btn")))
	olivia.waitJS("closed", `document.getElementById("closed") !== null || document.getElementById("alarm-status").textContent.includes("Closed")`)
	a, err := svc.Alarm(alarmA)
	if err != nil || a.Status != monitoring.StatusClosed || a.Confirmation != monitoring.ConfirmedByWorker {
		t.Fatalf("Amira's alarm: %+v %v", a, err)
	}
}

func containsKind(tl []monitoring.TimelineEntry, k monitoring.ActionKind) bool {
	for _, e := range tl {
		if e.Kind == k {
			return true
		}
	}
	return false
}
