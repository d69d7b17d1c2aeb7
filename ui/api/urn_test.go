package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// The URN rule through the API: an organisation's URNs are written with it
// (an expiry is required), GET /alarms/:id/urn says beforehand whether a
// URN call would be accepted, and a refused one is a 422 naming the field
// (route or force) with code urn_refused; an accepted one quotes the URN.
func TestAPIMonitoring_URNRule(t *testing.T) {
	n := mustServe(t)
	op := mustToken(t, n, "op", monitoring.RoleOperator)
	valid, expired := time.Now().AddDate(1, 0, 0).UTC().Truncate(time.Second), time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
	var e api.ErrorResponse
	code, raw := send(t, n, "POST", "/api/v1/organisations", obj{"id": "c-org-0", "org": obj{"id": "trust", "name": "North Trust",
		"urns": []obj{{"force": "Greater Manchester Police", "urn": "GMP-1"}}}}, &e)
	if code != http.StatusBadRequest || e.Field != "org.urns[0].expiry" {
		t.Fatalf("a URN without an expiry: %d %s; want 400 on org.urns[0].expiry", code, raw)
	}
	var org monitoring.Organisation
	mustSend(t, n, 201, "POST", "/api/v1/organisations", obj{"id": "c-org", "org": obj{"id": "trust", "name": "North Trust",
		"urns": []obj{{"force": "Greater Manchester Police", "urn": "GMP-1", "expiry": valid},
			{"force": "Merseyside Police", "urn": "MER-1", "expiry": expired}}}}, &org)
	if len(org.URNs) != 2 || !org.URNs[0].Expiry.Equal(valid) {
		t.Fatalf("organisation URNs = %+v", org.URNs)
	}
	mustSend(t, n, 201, "POST", "/api/v1/workers", obj{"id": "c-w1", "worker": obj{"id": "w1", "name": "Ann", "org_id": "trust"}}, nil)
	alarms := map[string]string{}
	for _, a := range []struct{ dev, typ string }{{"d1", "man_down"}, {"d2", "red_alert"}} {
		mustSend(t, n, 201, "POST", "/api/v1/devices", obj{"id": "c-" + a.dev, "device": obj{"id": a.dev, "kind": "phone_app", "org_id": "trust", "worker_id": "w1"}}, nil)
		var al monitoring.Alarm
		mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "c-raise-" + a.dev, "type": a.typ, "device_id": a.dev}, &al)
		mustSendAs(t, n, op, 200, "POST", "/api/v1/alarms/"+al.ID+"/acknowledge", obj{"id": "c-ack-" + a.dev}, nil)
		alarms[a.typ] = "/api/v1/alarms/" + al.ID
	}

	var chk monitoring.URNCheck
	mustSendAs(t, n, op, 200, "GET", alarms["man_down"]+"/urn", nil, &chk)
	if chk.Eligible || !strings.Contains(chk.Why, "medical emergency") || len(chk.URNs) != 2 ||
		chk.URNs[0].URN != "GMP-1" || chk.URNs[0].Expired || !chk.URNs[1].Expired {
		t.Fatalf("the man-down's URN check = %+v", chk)
	}
	mustSendAs(t, n, op, 200, "GET", alarms["red_alert"]+"/urn", nil, &chk)
	if !chk.Eligible {
		t.Fatalf("the red alert's URN check = %+v", chk)
	}
	if code, _ := sendAs(t, n, op, "GET", "/api/v1/alarms/nope/urn", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the URN check of no alarm: %d", code)
	}

	for _, tc := range []struct {
		alarm, force, field, msg string
	}{
		{alarms["man_down"], "Greater Manchester Police", "route", "medical emergency"},
		{alarms["red_alert"], "Merseyside Police", "force", "expired on"},
		{alarms["red_alert"], "Thames Valley Police", "force", "no URN"},
	} {
		e = api.ErrorResponse{}
		code, raw := sendAs(t, n, op, "POST", tc.alarm+"/actions", obj{"id": "c-urn-" + tc.force + tc.field, "kind": "police", "force": tc.force, "route": "urn"}, &e)
		if code != http.StatusUnprocessableEntity || e.Field != tc.field || e.Code != string(monitoring.CodeURNRefused) ||
			!strings.Contains(e.Error, tc.msg) || !strings.Contains(e.Error, "call 999 if life is at risk, otherwise 101") {
			t.Errorf("a URN call to %s about %s: %d %s; want 422 on %s", tc.force, tc.alarm, code, raw, tc.field)
		}
	}
	mustSendAs(t, n, op, 200, "POST", alarms["man_down"]+"/actions", obj{"id": "c-999", "kind": "police", "force": "Greater Manchester Police", "route": "999"}, nil)
	mustSendAs(t, n, op, 200, "POST", alarms["red_alert"]+"/actions", obj{"id": "c-urn", "kind": "police", "force": "Greater Manchester Police", "route": "urn"}, nil)
	var got api.AlarmResponse
	mustSendAs(t, n, op, 200, "GET", alarms["red_alert"], nil, &got)
	if last := got.Timeline[len(got.Timeline)-1]; last.Kind != monitoring.ActionPolice || last.URN != "GMP-1" {
		t.Fatalf("the URN call's entry = %+v; want GMP-1 quoted", last)
	}
}
