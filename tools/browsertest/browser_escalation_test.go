package browsertest

// The escalation on the alarm page, in chromium against three real nodes:
// the reminder to call the next contact appears by itself once the
// organisation's wait has passed.

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/uitest"
)

// TestBrowser_EscalationReminderLive: an operator takes a red alert and
// logs "no answer" for the worker's first escalation contact; once the
// organisation's wait (one minute, the shortest) has passed, the leader's
// scheduler fires the deadline and the page, still open, shows the banner
// to call the next contact, without a reload. Briefing that contact takes
// the banner away, and the alarm then closes as genuine.
func TestBrowser_EscalationReminderLive(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser and a three-node cluster")
	}
	chromiumPath(t)
	nodes := mustNodes(t, 3)
	svc := nodes[0].Service()
	f := uitest.MustSeed(t, svc)
	ctx := context.Background()
	org, err := svc.Organisation("northcare")
	if err != nil {
		t.Fatal(err)
	}
	org.ContactWait = monitoring.MinContactWait
	if _, err := svc.PutOrganisation(ctx, "esc-org", "admin", *org); err != nil {
		t.Fatal(err)
	}
	process := mustBrowserProcess(t)
	olivia := newBrowser(t, process, "olivia", nodes[1])
	olivia.SignIn("olivia", uitest.OliviaPassword)

	amira := mustDevice(t, nodes[2].BrokerAddr(), f.Amira)
	alarmID := amira.alarm("red_alert", map[string]any{"lat": 53.48760, "lon": -2.28925, "accuracy_m": 12, "source": "gps"})
	olivia.navigate("/ui/alarms/" + alarmID)
	olivia.waitJS("the alarm page, live", `!!document.getElementById("ack") && document.getElementById("conn").textContent === "live"`)
	olivia.Do("acknowledge", chromedp.Click(chromedp.ID("ack")))
	olivia.waitJS("the claim", `document.getElementById("claimed-by").textContent.includes("Claimed by you")`)
	olivia.waitJS("the contacts, none called", `document.querySelectorAll("#contacts .contact-state").length === 2 && `+
		`Array.from(document.querySelectorAll("#contacts .contact-state")).every((s) => s.textContent.includes("not yet called")) && `+
		`document.getElementById("contact-reminder").hidden`)
	olivia.Do("mark the page", chromedp.Evaluate[chromedp.Void](`window.vigilPageMark = 17`))

	// "No answer" for Priya Nair, the organisation's first contact (Amira
	// has none of her own).
	outcome := func(contact, outcome string) string {
		return `Array.from(document.querySelectorAll("#contacts form")).find((f) => ` +
			`f.elements.namedItem("contact").value === "` + contact + `" && f.elements.namedItem("outcome").value === "` + outcome + `").querySelector("button").click()`
	}
	noAnswerAt := time.Now()
	olivia.Do("log no answer for Priya Nair", chromedp.Evaluate[chromedp.Void](outcome("Priya Nair", "no_answer")))
	olivia.waitJS("Priya's state and Tom next", `document.querySelectorAll("#contacts .contact-state")[0].textContent.includes("no answer at") && `+
		`document.querySelectorAll("#contacts .contact-state")[1].textContent.includes("next, due at")`)
	olivia.shot("24-escalation-no-answer")

	// The wait passes: the banner appears on the open page.
	const banner = `!document.getElementById("contact-reminder").hidden && ` +
		`document.getElementById("contact-reminder").textContent.includes("Call Tom Hughes (on-call team lead), 07700 900461") && ` +
		`document.getElementById("contact-reminder").textContent.includes("Priya Nair did not answer")`
	wait := monitoring.MinContactWait + 45*time.Second
	wctx, cancel := context.WithTimeout(olivia.ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](banner, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(wait))); err != nil {
		body, _ := chromedp.Run(olivia.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		t.Fatalf("the reminder did not appear: %v\n%s", err, body)
	}
	waited := time.Since(noAnswerAt)
	t.Logf("reminder shown %s after the no answer", waited.Round(time.Millisecond))
	if waited < monitoring.MinContactWait {
		t.Fatalf("the reminder came after %s, before the wait of %s", waited, monitoring.MinContactWait)
	}
	if mark := eval[int](olivia, `window.vigilPageMark || 0`); mark != 17 {
		t.Fatal("the page was reloaded to show the reminder")
	}
	olivia.waitJS("Tom due now", `document.querySelectorAll("#contacts .contact-state")[1].textContent.includes("due now")`)
	olivia.shot("25-escalation-reminder")

	// Tom is briefed: the banner goes; the genuine close needs no reason.
	olivia.Do("log Tom Hughes briefed", chromedp.Evaluate[chromedp.Void](outcome("Tom Hughes", "briefed")))
	olivia.waitJS("the banner gone", `document.getElementById("contact-reminder").hidden && `+
		`document.querySelectorAll("#contacts .contact-state")[1].textContent.includes("briefed at")`)
	olivia.Do("close as worker safe", chromedp.SetValue(chromedp.ID("resolution"), "worker_safe"),
		chromedp.SetValue(chromedp.ID("confirmation"), "contact_confirmed"), chromedp.Click(chromedp.ID("close-btn")))
	olivia.waitJS("the alarm closed", `document.getElementById("alarm-status") && document.getElementById("alarm-status").textContent.includes("Closed")`)
	if a, err := svc.Alarm(alarmID); err != nil || a.Status != monitoring.StatusClosed || a.NoBriefingReason != "" {
		t.Fatalf("alarm %+v %v", a, err)
	}
}
