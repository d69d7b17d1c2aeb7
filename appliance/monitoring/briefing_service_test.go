package monitoring_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
)

// TestBriefing_ToTheContactsWithAnEmail: the operator's briefing of a
// discreet alarm goes once to each of the worker's contacts with an email
// (not to the one without), with the warning not to call the worker, and
// is audited as the operator's; a second press adds nothing; an alarm
// whose contacts have no email is refused naming alarm_id.
func TestBriefing_ToTheContactsWithAnEmail(t *testing.T) {
	n := monitoringtest.MustService(t, monitoringtest.Options{})
	svc, ctx := n.Service, context.Background()
	seedService(t, svc)
	if _, err := svc.PutWorker(ctx, "w1-contacts", "admin", monitoring.Worker{ID: "w1", Name: "Ann", OrgID: "o1", Contacts: []monitoring.Contact{
		{Name: "Kim Shaw", Phone: "+44 7700 900001", Email: "kim@home.example"},
		{Name: "Lee", Phone: "+44 7700 900002"},
		{Name: "Mo Khan", Phone: "+44 7700 900003", Relation: "manager", Email: "mo@trust.example"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutWorker(ctx, "w2", "admin", monitoring.Worker{ID: "w2", Name: "Bo", OrgID: "o1",
		Contacts: []monitoring.Contact{{Name: "Lee", Phone: "+44 7700 900002"}}}); err != nil {
		t.Fatal(err)
	}
	a, err := svc.RaiseAlarm(ctx, "ev1", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmDiscreetPanic, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.SendBriefing(ctx, "brief-1", "olivia", a.ID)
	if err != nil || res.New != 2 || len(res.IDs) != 2 {
		t.Fatalf("briefing: %+v, %v", res, err)
	}
	msgs, err := svc.AlarmOutbox(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var to []string
	for _, m := range msgs {
		if m.Kind != monitoring.NoticeBriefing {
			continue
		}
		to = append(to, m.To)
		if m.Key != "alarm/"+a.ID+"/briefing/"+m.To || !strings.Contains(m.Text, "do not call or message the worker") ||
			!strings.HasPrefix(m.Subject, "Briefing: discreet_panic alarm of Ann") {
			t.Errorf("briefing %+v", m)
		}
	}
	if strings.Join(to, ",") != "kim@home.example,mo@trust.example" && strings.Join(to, ",") != "mo@trust.example,kim@home.example" {
		t.Fatalf("briefed %v", to)
	}
	// Pressed again (a new command): nothing new.
	if res, err := svc.SendBriefing(ctx, "brief-2", "olivia", a.ID); err != nil || res.New != 0 {
		t.Fatalf("again: %+v, %v", res, err)
	}
	audit, err := svc.AuditFor("outbox/" + res.IDs[0])
	if err != nil || len(audit) != 1 || audit[0].Actor != "olivia" || !strings.Contains(audit[0].Detail, monitoring.NoticeBriefing) {
		t.Fatalf("audit %+v, %v", audit, err)
	}
	b, err := svc.RaiseAlarm(ctx, "ev2", "system", monitoring.RaiseAlarmRequest{Type: monitoring.AlarmRedAlert, WorkerID: "w2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SendBriefing(ctx, "brief-3", "olivia", b.ID); !isRuleField(err, "alarm_id") {
		t.Fatalf("no address: %v", err)
	}
}
