package browsertest

// Browser tests of the sessions board, the admin pages, the reports and
// the cluster page, against three real nodes in this process, with real
// MQTT devices.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilarc/vigil/appliance"
	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// mustAdmin adds Ada, an admin, to the seed.
func mustAdmin(t *testing.T, svc *monitoring.Service) {
	t.Helper()
	if _, err := svc.PutOperator(context.Background(), "seed-op-ada", "setup", monitoring.PutOperatorRequest{
		ID: "ada", Name: "Ada Lovelace", Role: monitoring.RoleAdmin, Password: adaPassword, Create: true}); err != nil {
		t.Fatal(err)
	}
}

// mustHistory raises, acknowledges and closes alarms on each of the past
// days, through the cluster with times in the past (a command carries its
// own time), so that the reports have weeks to show. About seven in ten
// are acknowledged within 10 s, most others within 40 s.
func mustHistory(t *testing.T, n *appliance.Node, days int) int {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 11))
	apply := func(id string, typ monitoring.CmdType, body any) {
		t.Helper()
		if _, err := n.Cluster().Apply(ctx, typ.String()+"/"+id, monitoring.Encode(typ, body)); err != nil {
			t.Fatalf("history %s %s: %v", typ, id, err)
		}
	}
	devices := []string{"d-amira", "d-ben", "d-eve"}
	ops := []string{"olivia", "sam"}
	types := []monitoring.AlarmType{monitoring.AlarmRedAlert, monitoring.AlarmRedAlert, monitoring.AlarmManDown,
		monitoring.AlarmLowBattery, monitoring.AlarmTest, monitoring.AlarmDiscreetPanic}
	total := 0
	now := time.Now()
	for d := days; d >= 1; d-- {
		day := now.AddDate(0, 0, -d)
		for i := range 2 + r.IntN(7) + 3*((days-d)%7/5) {
			at := time.Date(day.Year(), day.Month(), day.Day(), 7+r.IntN(13), r.IntN(60), r.IntN(60), 0, time.Local)
			id := fmt.Sprintf("hist-%02d-%d", d, i)
			dev, op, typ := devices[r.IntN(len(devices))], ops[r.IntN(len(ops))], types[r.IntN(len(types))]
			hdr := func(at time.Time, actor string) monitoring.Header {
				return monitoring.Header{At: at, Actor: actor, Node: n.Cluster().ID()}
			}
			apply(id, monitoring.CmdRaiseAlarm, monitoring.RaiseAlarmCmd{Header: hdr(at, "device:"+dev), AlarmID: id, Type: typ, DeviceID: dev})
			var delay time.Duration
			switch p := r.IntN(100); {
			case p < 72:
				delay = time.Duration(2000+r.IntN(7500)) * time.Millisecond
			case p < 95:
				delay = time.Duration(11+r.IntN(28)) * time.Second
			default:
				delay = time.Duration(45+r.IntN(100)) * time.Second
			}
			apply(id, monitoring.CmdAcknowledge, monitoring.AcknowledgeCmd{Header: hdr(at.Add(delay), op), AlarmID: id})
			res := monitoring.ResolutionWorkerSafe
			switch {
			case typ == monitoring.AlarmTest:
				res = monitoring.ResolutionTest
			case r.IntN(6) == 0:
				res = monitoring.ResolutionFalseAlarm
			}
			apply(id, monitoring.CmdCloseAlarm, monitoring.CloseAlarmCmd{Header: hdr(at.Add(delay+time.Duration(3+r.IntN(25))*time.Minute), op),
				AlarmID: id, Resolution: res, Note: "Spoke to the worker; all well."})
			total++
		}
	}
	return total
}

// TestBrowser_SessionsAdminReportsCluster: an operator watches the
// sessions board (a session goes overdue, the search filters); an admin
// creates an organisation, a worker with PINs and enrols a device whose
// shown-once credentials connect it; a supervisor reads the KPIs, the
// chart and the open alarms; the cluster page shows the nodes and the
// devices per node. Hostile strings stay inert throughout.
func TestBrowser_SessionsAdminReportsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser and a three-node cluster")
	}
	chromiumPath(t)
	nodes := mustNodes(t, 3)
	svc := nodes[0].Service()
	f := uitest.MustSeed(t, svc)
	mustAdmin(t, svc)
	hist := mustHistory(t, nodes[0], 21)
	t.Logf("%d alarms of history", hist)
	process := mustBrowserProcess(t)

	// Devices on two nodes, with sessions: Ben's runs, Amira's runs out
	// in seconds and goes overdue, Eve's carries a hostile Update.
	amira := mustDevice(t, nodes[2].BrokerAddr(), f.Amira)
	ben := mustDevice(t, nodes[2].BrokerAddr(), f.Ben)
	eve := mustDevice(t, nodes[1].BrokerAddr(), f.Eve)
	amira.send("heartbeat", map[string]any{"battery": 81, "firmware": "2.4.1"})
	ben.send("heartbeat", map[string]any{"battery": 12, "firmware": "2.4.1"})
	eve.send("heartbeat", map[string]any{"battery": 57})
	ben.send("session/start", map[string]any{"session_id": "visit-elm-road", "duration": "45m", "checkin_interval": "15m",
		"update":   "Home visit, 14 Elm Road, Eccles. Client has a history of aggression; second visit this week.",
		"location": map[string]any{"lat": 53.48301, "lon": -2.33417, "address": "14 Elm Road, Eccles M30"}})
	amira.send("session/start", map[string]any{"session_id": "visit-chapel-st", "duration": "4s",
		"update":   "Wound dressing at 3 Chapel Street, ground floor flat. Dog in the back garden.",
		"location": map[string]any{"lat": 53.4875, "lon": -2.2901, "address": "3 Chapel Street, Salford M3"}})
	eve.send("session/start", map[string]any{"session_id": "visit-eve", "duration": "2h", "update": uitest.HostileMedical,
		"location": map[string]any{"lat": 53.48, "lon": -2.24, "address": uitest.HostileStep}})
	if _, err := svc.PutDevice(context.Background(), "seed-pool", "ada", monitoring.Device{ID: "pool-07", Kind: monitoring.DevicePooled,
		Label: "Pooled pendant 7", OrgID: "northcare"}); err != nil {
		t.Fatal(err)
	}
	// Open alarms of different ages, for the supervisor.
	open1, err := svc.RaiseAlarm(context.Background(), "open-1", "device:d-ben", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmManDown, DeviceID: "d-ben"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(context.Background(), "open-1-ack", "olivia", open1.ID, false); err != nil {
		t.Fatal(err)
	}

	// Olivia, an operator, on node 1: the board.
	olivia := newBrowser(t, process, "olivia", nodes[0])
	olivia.SignIn("olivia", uitest.OliviaPassword)
	olivia.navigate("/ui/sessions")
	olivia.waitJS("the sessions", `document.querySelectorAll("#sessions-table tbody tr").length === 3 && document.getElementById("conn").textContent === "live"`)
	clustertest.PollUntil(t, 90*time.Second, "Amira's session to go overdue", func() bool {
		s, err := svc.Session("visit-chapel-st")
		return err == nil && s.Status == monitoring.SessionOverdue
	})
	olivia.waitJS("Amira's session overdue, in amber, without a reload",
		`!!document.querySelector('#sessions-table tr.overdue[data-id="visit-chapel-st"]') && document.querySelector('#sessions-table tr.overdue td.sstatus').textContent.includes("OVERDUE")`)
	olivia.waitJS("Ben's Update message", `document.querySelector('#sessions-table tr[data-id="visit-elm-road"] .update-msg').textContent.includes("history of aggression")`)
	olivia.waitJS("the devices, battery and node", `(() => {
		const ben = document.querySelector('#devices-table tr[data-id="d-ben"]');
		return ben && ben.querySelector("td.low") && ben.textContent.includes("12%") && ben.textContent.includes("connected") &&
			ben.children[4].textContent.trim() === `+fmt.Sprintf("%q", nodes[2].Cluster().ID())+`;
	})()`)
	olivia.waitJS("the pooled device not connected, first", `document.querySelector('#devices-table tbody tr').dataset.id === "pool-07"`)
	if pwned := eval[bool](olivia, `typeof window.pwned !== "undefined"`); pwned {
		t.Fatal("a hostile string ran script on the sessions board")
	}
	// The time left ticks.
	left := eval[string](olivia, `document.querySelector('#sessions-table tr[data-id="visit-elm-road"] [data-until]').textContent`)
	olivia.waitJS("the time left to tick", `document.querySelector('#sessions-table tr[data-id="visit-elm-road"] [data-until]').textContent !== `+fmt.Sprintf("%q", left))
	olivia.shot("08-sessions-board")
	// The search filters both tables as one types.
	olivia.Do("search", chromedp.SendKeys(chromedp.ID("board-q"), "eccles"))
	olivia.waitJS("only Ben's session and device", `(() => {
		const vis = (sel) => Array.from(document.querySelectorAll(sel)).filter((tr) => !tr.hidden).map((tr) => tr.dataset.id).join(",");
		return vis("#sessions-table tbody tr") === "visit-elm-road" && vis("#devices-table tbody tr") === "" && location.search === "?q=eccles";
	})()`)
	olivia.Do("search for a device", chromedp.Evaluate[chromedp.Void](`document.getElementById("board-q").value = ""`),
		chromedp.SendKeys(chromedp.ID("board-q"), "okafor"))
	olivia.waitJS("Ben's session and device", `(() => {
		const vis = (sel) => Array.from(document.querySelectorAll(sel)).filter((tr) => !tr.hidden).map((tr) => tr.dataset.id).join(",");
		return vis("#sessions-table tbody tr") === "visit-elm-road" && vis("#devices-table tbody tr") === "d-ben";
	})()`)
	olivia.shot("09-sessions-search")
	// An operator has no admin or reports link, and is refused there.
	if n := eval[int](olivia, `document.querySelectorAll('header a[href^="/ui/admin"], header a[href^="/ui/reports"]').length`); n != 0 {
		t.Fatalf("an operator sees %d admin or reports links", n)
	}
	olivia.navigate("/ui/admin/operators")
	olivia.waitJS("a refusal", `document.body.innerText.includes("needs the admin role")`)

	// Ada, an admin, on node 2.
	ada := newBrowser(t, process, "ada", nodes[1])
	ada.SignIn("ada", adaPassword)
	ada.navigate("/ui/admin/organisations")
	ada.waitJS("the organisations", `document.querySelectorAll("#orgs-table tbody tr").length === 2`)
	ada.clickAndLoad("#new-org")
	ada.Do("fill the organisation",
		chromedp.SetValue(chromedp.ID("org-id"), "eastside"),
		chromedp.SetValue(chromedp.ID("org-name"), "Eastside Housing Trust"),
		chromedp.SetValue(chromedp.ID("step-title-0"), "Listen in first"),
		chromedp.SetValue(chromedp.ID("step-text-0"), "Before calling, listen for a threat or no speech."),
		chromedp.SetValue(chromedp.ID("step-title-1"), "Call the worker, unless DO NOT CALL"),
		chromedp.SetValue(chromedp.ID("step-title-2"), "Call the duty manager"),
		chromedp.SetValue(chromedp.ID("contact-name-0"), "Dee Okoro"),
		chromedp.SetValue(chromedp.ID("contact-phone-0"), "0161 496 0777"),
		chromedp.SetValue(chromedp.ID("contact-rel-0"), "duty manager"),
		chromedp.SetValue(chromedp.ID("contact-name-1"), "Sol Barnes"),
		chromedp.SetValue(chromedp.ID("contact-phone-1"), "07700 900222"),
		chromedp.SetValue(chromedp.CSS(`input[name=grace]`), "3m"),
		chromedp.SetValue(chromedp.ID("urn-force-0"), "Greater Manchester Police"),
		chromedp.SetValue(chromedp.ID("urn-code-0"), "GMP-LW-30117"),
		chromedp.SetValue(chromedp.ID("urn-exp-0"), time.Now().AddDate(1, 0, 0).Format("2006-01-02")))
	ada.clickAndLoad("#org-save")
	ada.waitJS("saved", `location.pathname === "/ui/admin/organisations/eastside" && !!document.querySelector(".saved")`)
	if o, err := svc.Organisation("eastside"); err != nil || len(o.ProcedureSteps) != 3 || len(o.Contacts) != 2 || o.Grace != 3*time.Minute ||
		len(o.URNs) != 1 || o.URNs[0].URN != "GMP-LW-30117" {
		t.Fatalf("saved organisation %+v, %v", o, err)
	}
	ada.shot("10-admin-organisation")

	// A worker, then the PINs.
	ada.navigate("/ui/admin/workers/new?org=eastside")
	ada.Do("fill the worker",
		chromedp.SetValue(chromedp.ID("worker-id"), "w-joe"),
		chromedp.SetValue(chromedp.ID("worker-name"), "Joe Marsh"),
		chromedp.SetValue(chromedp.ID("worker-phone"), "07700 900333"),
		chromedp.SetValue(chromedp.ID("worker-team"), "Repairs, east"),
		chromedp.SetValue(chromedp.ID("worker-medical"), "Asthma: inhaler in the van."),
		chromedp.SetValue(chromedp.ID("worker-duress-word"), "red kettle"))
	ada.clickAndLoad("#worker-save")
	ada.waitJS("the worker, asking for PINs", `location.pathname === "/ui/admin/workers/w-joe" && document.querySelector(".saved").textContent.includes("set the PINs")`)
	// A refused PIN is not sent back.
	ada.Do("a Duress PIN equal to the Safe PIN", chromedp.SetValue(chromedp.ID("safe-pin"), "2468"), chromedp.SetValue(chromedp.ID("duress-pin"), "2468"))
	ada.clickAndLoad("#pins-save")
	ada.waitJS("the refusal", `document.getElementById("pin-error").textContent.includes("Duress PIN") && document.getElementById("safe-pin").value === ""`)
	if html := eval[string](ada, `document.documentElement.outerHTML`); strings.Contains(html, "2468") {
		t.Fatal("a refused PIN was sent back to the browser")
	}
	ada.Do("set the PINs", chromedp.SetValue(chromedp.ID("safe-pin"), "2468"), chromedp.SetValue(chromedp.ID("duress-pin"), "1357"))
	ada.clickAndLoad("#pins-save")
	ada.waitJS("PINs set", `!!document.getElementById("pins-saved") && document.querySelector(".pins").textContent.includes("PINs are set")`)
	if html := eval[string](ada, `document.documentElement.outerHTML`); strings.Contains(html, "2468") || strings.Contains(html, "1357") {
		t.Fatal("a PIN is on the page")
	}
	ada.shot("11-admin-worker-pins")

	// Enrol a device for Joe: its credentials are shown once and work.
	ada.clickAndLoad(`a[href^="/ui/admin/devices/new"]`)
	ada.Do("fill the device", chromedp.SetValue(chromedp.ID("device-id"), "d-joe"), chromedp.SetValue(chromedp.ID("device-label"), "Joe's phone"))
	ada.waitJS("Joe preselected", `document.getElementById("device-worker").value === "w-joe" && document.getElementById("device-org").value === "eastside"`)
	ada.clickAndLoad("#device-save")
	ada.waitJS("the credentials", `!!document.getElementById("cred-secret") && document.getElementById("bundle").textContent.includes("mqtt_brokers")`)
	secret := eval[string](ada, `document.getElementById("cred-secret").value`)
	bundle := eval[string](ada, `document.getElementById("bundle").textContent`)
	for _, n := range nodes {
		if !strings.Contains(bundle, "tcp://"+n.BrokerAddr()) {
			t.Errorf("the bundle lacks node %s's broker %s:\n%s", n.Cluster().ID(), n.BrokerAddr(), bundle)
		}
	}
	ada.shot("12-device-enrolled")
	joe := mustDevice(t, nodes[0].BrokerAddr(), uitest.DeviceCred{Worker: "w-joe", Device: "d-joe", Secret: secret})
	joe.send("heartbeat", map[string]any{"battery": 95})
	ada.navigate("/ui/admin/devices/d-joe")
	if html := eval[string](ada, `document.documentElement.outerHTML`); strings.Contains(html, secret) {
		t.Fatal("the secret was shown twice")
	}
	ada.waitJS("the credentials form", `!!document.getElementById("new-credentials")`)

	// An operator account.
	ada.navigate("/ui/admin/operators")
	ada.Do("fill the operator", chromedp.SetValue(chromedp.ID("op-id"), "rita"), chromedp.SetValue(chromedp.ID("op-name"), "Rita Shah"),
		chromedp.SetValue(chromedp.ID("op-role"), "supervisor"), chromedp.SetValue(chromedp.ID("op-password"), "rita's night shift pass"))
	ada.clickAndLoad("#op-save")
	ada.waitJS("Rita listed", `document.querySelector(".saved") && document.getElementById("operators-table").textContent.includes("Rita Shah")`)
	if pwned := eval[bool](ada, `typeof window.pwned !== "undefined"`); pwned {
		t.Fatal("a hostile string ran script on an admin page")
	}
	ada.shot("13-admin-operators")
	ada.navigate("/ui/admin/workers")
	ada.waitJS("the workers", `document.querySelectorAll("#workers-table tbody tr").length === 4`)
	ada.shot("14-admin-workers")

	// Sam, a supervisor, on node 1: the reports.
	sam := newBrowser(t, process, "sam", nodes[0])
	sam.SignIn("sam", uitest.SamPassword)
	if _, err := svc.RaiseAlarm(context.Background(), "open-2", "device:d-amira", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, DeviceID: "d-amira"}); err != nil {
		t.Fatal(err)
	}
	sam.navigate("/ui/reports")
	sam.waitJS("the KPIs", `document.getElementById("kpi-10s").textContent.includes("%") && document.querySelectorAll("#per-day rect").length > 20`)
	sam.waitJS("the open alarms", `document.querySelectorAll(".open-table tbody tr").length >= 2`)
	sam.waitJS("the export link", `document.getElementById("csv").getAttribute("href").startsWith("/ui/reports/alarms.csv?from=")`)
	k, err := svc.KPIs("", time.Now().AddDate(0, 0, -29), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%.1f%%", 100*k.AckWithin10s); !strings.Contains(eval[string](sam, `document.getElementById("kpi-10s").textContent`), want) {
		t.Errorf("the 10 s share is not %s", want)
	}
	sam.shot("15-reports")

	// The cluster page, live.
	olivia.navigate("/ui/cluster")
	olivia.waitJS("three nodes, one leader", `document.querySelectorAll("#nodes-table tbody tr").length === 3 && document.querySelectorAll(".leader-tag").length === 1`)
	olivia.waitJS("the devices per node", fmt.Sprintf(`document.querySelector('tr[data-node=%q] td.devices').textContent === "2" && `+
		`document.querySelector('tr[data-node=%q] td.devices').textContent === "1"`, nodes[2].Cluster().ID(), nodes[1].Cluster().ID()))
	olivia.waitJS("every node up to date", `Array.from(document.querySelectorAll("#nodes-table td.lag")).every((td) => td.textContent.includes("up to date") || /^\d+ entries$/.test(td.textContent.trim()))`)
	olivia.shot("16-cluster")
}
