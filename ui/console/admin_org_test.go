package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// An administrator sets an organisation's accidental-press window, its
// low-battery level and its devices' intervals on the organisation's
// page; a value out of bounds is refused with a message naming it, and
// changes nothing.
func TestConsole_AdminOrgDeviceSettings(t *testing.T) {
	n, s := adaConsole(t)
	post := func(fields url.Values) (int, string) {
		t.Helper()
		form := url.Values{"csrf": {s.CSRF}, "cmd_id": {"org-" + time.Now().Format(time.RFC3339Nano)},
			"id": {"northcare"}, "name": {"North Care Community Health"}}
		for k, v := range fields {
			form[k] = v
		}
		resp, body := s.Do(http.MethodPost, "/ui/admin/organisations", form, nil)
		return resp.StatusCode, body
	}
	code, body := post(url.Values{"accidental_press_window": {"10s"}, "low_battery_percent": {"20%"},
		"heartbeat_interval": {"30s"}, "location_interval": {"2m"}})
	if code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	o, err := n.Service.Organisation("northcare")
	if err != nil {
		t.Fatal(err)
	}
	if o.AccidentalPressWindow != 10*time.Second || o.LowBattery != 20 || o.HeartbeatInterval != 30*time.Second || o.LocationInterval != 2*time.Minute {
		t.Fatalf("saved: window %s, low battery %d, heartbeat %s, location %s", o.AccidentalPressWindow, o.LowBattery, o.HeartbeatInterval, o.LocationInterval)
	}
	_, page := s.Do(http.MethodGet, "/ui/admin/organisations/northcare", nil, nil)
	for _, want := range []string{`id="org-accidental" title=`, `value="10s"`, `value="20"`, `value="30s"`, `value="2m"`} {
		if !strings.Contains(strings.ReplaceAll(page, "\n          ", " "), want) {
			t.Errorf("the page does not show %s", want)
		}
	}
	for _, tc := range []struct {
		field, value, want string
	}{
		{"accidental_press_window", "5m", "accidental"},
		{"low_battery_percent", "80", "80 is outside"},
		{"low_battery_percent", "lots", `"lots" is not a whole number`},
		{"heartbeat_interval", "soon", `"soon" is not a duration`},
	} {
		code, body := post(url.Values{tc.field: {tc.value}})
		if code < 400 || !strings.Contains(html.UnescapeString(body), tc.want) {
			t.Errorf("%s=%s: %d, want a refusal saying %q", tc.field, tc.value, code, tc.want)
		}
		if now, err := n.Service.Organisation("northcare"); err != nil || now.AccidentalPressWindow != 10*time.Second || now.LowBattery != 20 {
			t.Errorf("%s=%s changed the organisation: %+v %v", tc.field, tc.value, now, err)
		}
	}
}
