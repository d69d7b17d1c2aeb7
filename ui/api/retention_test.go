package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/incident/incidenttest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// A supervisor puts a legal hold on an incident and lifts it, each with a
// reason, through the API; an operator sees the hold but may not put one;
// a missing reason and an unknown incident are refused naming the field;
// an organisation's retention goes in and out through the organisation
// routes, a bad one refused naming its field.
func TestLegalHold_API(t *testing.T) {
	clk := incidenttest.NewClock(incidenttest.Start)
	node := monitoringtest.MustService(t, monitoringtest.Options{Setup: func(s *monitoring.Service) { s.Now = clk.Now }})
	n := &apiNode{Server: uitest.MustServe(t, node, uitest.Options{})}
	inc, err := incidenttest.Demo(t.Context(), n.svc(), clk)
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.svc().Alarm(inc.AlarmID)
	if err != nil {
		t.Fatal(err)
	}
	sup := mustToken(t, n, "sam", monitoring.RoleSupervisor)
	op := mustToken(t, n, "olivia", monitoring.RoleOperator)
	path := "/api/v1/incidents/" + a.IncidentID
	var got api.HoldResponse
	mustSendAs(t, n, op, http.StatusOK, "GET", path+"/hold", nil, &got)
	if got.Hold != nil {
		t.Fatalf("a hold before any: %+v", got)
	}
	mustSendAs(t, n, op, http.StatusForbidden, "POST", path+"/hold", obj{"id": "h0", "reason": "claim"}, nil)
	code, raw := sendAs(t, n, sup, "POST", path+"/hold", obj{"id": "h1", "reason": " "}, nil)
	if code != http.StatusBadRequest || !strings.Contains(raw, `"field":"reason"`) {
		t.Fatalf("a hold without a reason: %d %s", code, raw)
	}
	code, raw = sendAs(t, n, sup, "POST", "/api/v1/incidents/nope/hold", obj{"id": "h2", "reason": "claim"}, nil)
	if code != http.StatusNotFound || !strings.Contains(raw, `"field":"incident_id"`) {
		t.Fatalf("a hold on no incident: %d %s", code, raw)
	}
	mustSendAs(t, n, sup, http.StatusOK, "POST", path+"/hold", obj{"id": "h3", "reason": "solicitor's letter"}, &got)
	if got.Hold == nil || got.Hold.Reason != "solicitor's letter" || got.Hold.By != "token:sam" {
		t.Fatalf("the hold: %+v", got.Hold)
	}
	mustSendAs(t, n, op, http.StatusOK, "GET", path+"/hold", nil, &got)
	if got.Hold == nil || got.Hold.IncidentID != a.IncidentID {
		t.Fatalf("the hold as an operator sees it: %+v", got)
	}
	code, raw = sendAs(t, n, sup, "POST", path+"/hold", obj{"id": "h4", "reason": "again"}, nil)
	if code != http.StatusConflict {
		t.Fatalf("a second hold: %d %s", code, raw)
	}
	mustSendAs(t, n, sup, http.StatusOK, "POST", path+"/release", obj{"id": "h5", "reason": "claim settled"}, &got)
	if got.Hold != nil {
		t.Fatalf("after the release: %+v", got)
	}
	if h, err := n.svc().Hold(a.IncidentID); err != nil || h != nil {
		t.Fatalf("the state keeps a hold: %+v %v", h, err)
	}

	admin := mustToken(t, n, "ada", monitoring.RoleAdmin)
	org := obj{"id": "o-ret", "name": "Retained", "retention": obj{"audio_days": 90, "location_days": 90, "alarm_days": 730, "outbox_days": 30}}
	mustSendAs(t, n, admin, http.StatusCreated, "POST", "/api/v1/organisations", obj{"id": "org-r1", "org": org}, nil)
	o, err := n.svc().Organisation("o-ret")
	if err != nil || o.Retention != monitoring.RecommendedRetention {
		t.Fatalf("the organisation's retention: %+v %v", o, err)
	}
	org["retention"] = obj{"alarm_days": 5}
	code, raw = sendAs(t, n, admin, "POST", "/api/v1/organisations", obj{"id": "org-r2", "org": org}, nil)
	if code != http.StatusBadRequest || !strings.Contains(raw, `"field":"org.retention.alarm_days"`) {
		t.Fatalf("a retention of 5 days: %d %s", code, raw)
	}
}
