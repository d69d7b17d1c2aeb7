package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// testClock is a settable clock for the Service.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// The escalation on the alarm page: each contact's state and the four
// outcomes; "no answer" for the first contact makes the next one due, and
// once the wait has passed (the node's own scheduler fires it) the page
// shows the reminder to call them; a genuine close without a briefing is
// refused naming that contact, and the close form keeps the reason asked
// for, with which it closes.
func TestConsole_EscalationReminderAndBriefing(t *testing.T) {
	clk := &testClock{now: time.Now()}
	n := monitoringtest.MustService(t, monitoringtest.Options{
		Scheduler: &monitoring.SchedulerConfig{Interval: 20 * time.Millisecond},
		Setup:     func(svc *monitoring.Service) { svc.Now = clk.Now },
	})
	srv := uitest.MustServe(t, n, uitest.Options{})
	f := uitest.MustSeed(t, n.Service)
	s := uitest.NewSession(t, srv.URL)
	if code := s.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	ctx := context.Background()
	a, err := n.Service.RaiseAlarm(ctx, "r1", "device:"+f.Amira.Device, monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: f.Amira.Device})
	if err != nil {
		t.Fatal(err)
	}
	page := "/ui/alarms/" + a.ID
	seq := 0
	post := func(action string, form url.Values, asJSON bool) (int, string) {
		t.Helper()
		seq++
		form.Set("csrf", s.CSRF)
		form.Set("cmd_id", action+"-"+a.ID+"-"+string(rune('a'+seq)))
		h := map[string]string{}
		if asJSON {
			h["Accept"] = "application/json"
		}
		resp, body := s.Do(http.MethodPost, page+"/"+action, form, h)
		return resp.StatusCode, body
	}
	get := func() string {
		t.Helper()
		resp, body := s.Do(http.MethodGet, page, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page: %d", resp.StatusCode)
		}
		return html.UnescapeString(body)
	}
	// contactState returns what the contacts list says of contact name.
	contactState := func(body, name string) string {
		i := strings.Index(body, "<strong>"+name+"</strong>")
		if i < 0 {
			t.Fatalf("%s not in the contacts list", name)
		}
		rest := body[i:]
		j := strings.Index(rest, `class="meta contact-state">`)
		k := strings.Index(rest, "</li>")
		if j < 0 || j > k {
			t.Fatalf("no state for %s", name)
		}
		st := rest[j+len(`class="meta contact-state">`):]
		return st[:strings.Index(st, "</span></div>")]
	}
	if code, body := post("acknowledge", url.Values{}, true); code != http.StatusOK {
		t.Fatalf("acknowledge: %d %s", code, body)
	}

	body := get()
	for _, o := range []string{"welfare_confirmed", "briefed", "no_answer", "left_message"} {
		if !strings.Contains(body, `name="contact" value="Priya Nair"><input type="hidden" name="outcome" value="`+o+`">`) {
			t.Errorf("no %s button for Priya Nair", o)
		}
	}
	for _, name := range []string{"Priya Nair", "Tom Hughes"} {
		if st := contactState(body, name); !strings.Contains(st, "not yet called") {
			t.Errorf("%s: %q, want not yet called", name, st)
		}
	}
	if !strings.Contains(body, `id="contact-reminder" data-live role="alert" hidden>`) {
		t.Error("a reminder shows before any is due")
	}
	if !strings.Contains(body, `id="no-briefing" name="no_briefing_reason"`) {
		t.Error("the close form does not ask why no contact was briefed")
	}

	// An unknown contact is refused, naming the field and the list.
	if code, body := post("actions", url.Values{"kind": {"escalation_contact"}, "contact": {"Nobody"}, "outcome": {"briefed"}}, true); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `"field":"entry.contact"`) || !strings.Contains(body, "Priya Nair, Tom Hughes") {
		t.Fatalf("unknown contact: %d %s", code, body)
	}
	if code, body := post("actions", url.Values{"kind": {"escalation_contact"}, "contact": {"Priya Nair"}, "outcome": {"no_answer"}}, true); code != http.StatusOK {
		t.Fatalf("no answer: %d %s", code, body)
	}
	body = get()
	if st := contactState(body, "Priya Nair"); !strings.Contains(st, "no answer at") {
		t.Errorf("Priya Nair: %q", st)
	}
	if st := contactState(body, "Tom Hughes"); !strings.Contains(st, "not yet called") || !strings.Contains(st, "next, due at") {
		t.Errorf("Tom Hughes: %q", st)
	}

	// The wait (the default, 5 minutes) passes: the scheduler fires it.
	clk.Add(monitoring.DefaultContactWait + time.Second)
	clustertest.PollUntil(t, 10*time.Second, "the reminder on the page", func() bool {
		return strings.Contains(get(), `id="contact-reminder" data-live role="alert">`)
	})
	body = get()
	reminder := body[strings.Index(body, `id="contact-reminder"`):]
	reminder = reminder[:strings.Index(reminder, "</section>")]
	for _, want := range []string{"Call Tom Hughes (on-call team lead), ", `href="tel:07700900461"`, "Priya Nair did not answer", "ago."} {
		if !strings.Contains(reminder, want) {
			t.Errorf("reminder %q does not say %q", reminder, want)
		}
	}
	if st := contactState(body, "Tom Hughes"); !strings.Contains(st, "due now") {
		t.Errorf("Tom Hughes: %q", st)
	}
	if !strings.Contains(body, "Contact due") {
		t.Error("the timeline has no reminder entry")
	}

	// A genuine close without a briefing: refused, naming Tom Hughes; the
	// page shown (a form post) keeps the form and asks for the reason.
	closeForm := url.Values{"resolution": {"worker_safe"}, "confirmation": {"worker_confirmed"}, "note": {"rang back: safe"}}
	if code, body := post("close", closeForm, true); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `"field":"no_briefing_reason"`) || !strings.Contains(body, "call Tom Hughes (on-call team lead), 07700 900461 next") {
		t.Fatalf("close without a briefing: %d %s", code, body)
	}
	code, refused := post("close", closeForm, false)
	refused = html.UnescapeString(refused)
	if code != http.StatusUnprocessableEntity || !strings.Contains(refused, "needs an escalation contact briefed") ||
		!strings.Contains(refused, `id="no-briefing" name="no_briefing_reason"`) || !strings.Contains(refused, "rang back: safe") {
		t.Fatalf("the refused close's page: %d", code)
	}
	if a, err := n.Service.Alarm(a.ID); err != nil || a.Status == monitoring.StatusClosed {
		t.Fatalf("closed without a briefing: %+v %v", a, err)
	}
	// A false alarm needs none; but this one was genuine: say why not.
	closeForm.Set("no_briefing_reason", "Amira asked us not to call her manager")
	if code, body := post("close", closeForm, true); code != http.StatusOK {
		t.Fatalf("close with a reason: %d %s", code, body)
	}
	body = get()
	if !strings.Contains(body, "No escalation contact briefed: Amira asked us not to call her manager") {
		t.Error("the closed alarm does not show the reason")
	}
	if strings.Contains(body, `id="contact-reminder" data-live role="alert">`) {
		t.Error("the reminder still shows on the closed alarm")
	}
}

// The organisation page edits the wait for a contact's answer, in its own
// panel, within 1m..1h.
func TestConsole_OrgContactWait(t *testing.T) {
	e := mustSecurityEnv(t)
	resp, body := e.ada.Do(http.MethodGet, "/ui/admin/organisations/northcare", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="escalation-panel"`) || !strings.Contains(body, `name="contact_wait" value=""`) {
		t.Fatalf("org page: %d", resp.StatusCode)
	}
	save := func(wait string) (int, string) {
		form := url.Values{"csrf": {e.ada.CSRF}, "id": {"northcare"}, "name": {"North Care Community Health"},
			"contact_name": {"Priya Nair"}, "contact_phone": {"0161 496 0123"}, "contact_relation": {"duty manager"}, "contact_wait": {wait}}
		resp, body := e.ada.Do(http.MethodPost, "/ui/admin/organisations", form, nil)
		return resp.StatusCode, html.UnescapeString(body)
	}
	if code, body := save("30s"); code != http.StatusUnprocessableEntity || !strings.Contains(body, "30s is outside 1m0s..1h0m0s") {
		t.Fatalf("30s: %d", code)
	}
	if o, _ := e.svc.Organisation("northcare"); o.ContactWait != 0 {
		t.Fatalf("a refused wait was saved: %s", o.ContactWait)
	}
	if code, _ := save("2m"); code != http.StatusOK && code != http.StatusSeeOther {
		t.Fatalf("2m: %d", code)
	}
	if o, _ := e.svc.Organisation("northcare"); o.ContactWait != 2*time.Minute {
		t.Fatalf("saved wait %s", o.ContactWait)
	}
	if _, body := e.ada.Do(http.MethodGet, "/ui/admin/organisations/northcare", nil, nil); !strings.Contains(body, `name="contact_wait" value="2m"`) {
		t.Error("the saved wait is not shown")
	}
}
