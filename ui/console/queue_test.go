package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// The queue shows a repeat under the alarm of its incident, not where its
// age would put it; and each row says where the worker was last known to
// be and whether they left an Update message.
func TestConsole_QueueGroupsIncidentsAndShowsWhere(t *testing.T) {
	n, f, s := oliviaConsole(t)
	ctx := context.Background()
	amira := "device:" + f.Amira.Device
	if _, err := n.Service.StartSession(ctx, "s1", amira, monitoring.StartSessionRequest{
		SessionID: "visit-1", WorkerID: f.Amira.Worker, DeviceID: f.Amira.Device, Duration: time.Hour,
		Location: &monitoring.Location{Lat: 53.4794, Lon: -2.2453, Address: "Flat 3, 12 Canal Street"},
		Update:   "Tenant known to be aggressive; door code 4411",
	}); err != nil {
		t.Fatal(err)
	}
	raise := func(id, actor, device string, typ monitoring.AlarmType, loc *monitoring.Location) *monitoring.Alarm {
		t.Helper()
		a, err := n.Service.RaiseAlarm(ctx, id, actor, monitoring.RaiseAlarmRequest{Type: typ, DeviceID: device, Location: loc})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	fix := &monitoring.Location{Lat: 53.47941, Lon: -2.24532, Accuracy: 12, Source: "gps", At: time.Now().UTC()}
	first := raise("r1", amira, f.Amira.Device, monitoring.AlarmRedAlert, fix)
	other := raise("r2", "device:"+f.Ben.Device, f.Ben.Device, monitoring.AlarmManDown, nil)
	repeat := raise("r3", amira, f.Amira.Device, monitoring.AlarmRedAlert, fix)
	if repeat.IncidentID != first.ID {
		t.Fatalf("the repeat is not linked: incident %q, want %q", repeat.IncidentID, first.ID)
	}

	_, queue := s.Do(http.MethodGet, "/ui/", nil, nil)
	at := func(id string) int { return strings.Index(queue, `data-id="`+id+`"`) }
	if !(at(first.ID) >= 0 && at(first.ID) < at(repeat.ID) && at(repeat.ID) < at(other.ID)) {
		t.Fatalf("queue order: first %d, repeat %d, other %d; want the repeat under the first, then the other",
			at(first.ID), at(repeat.ID), at(other.ID))
	}
	row := func(id string) string {
		r := queue[strings.LastIndex(queue[:at(id)], "<tr"):]
		return r[:strings.Index(r, "</tr>")]
	}
	if r := row(repeat.ID); !strings.Contains(r, "grouped") || !strings.Contains(r, "LINKED") {
		t.Errorf("the repeat's row is not grouped: %s", r)
	}
	if r := row(first.ID); strings.Contains(r, "grouped") {
		t.Errorf("the incident's first row is grouped: %s", r)
	}
	r := row(first.ID)
	for _, want := range []string{"UPDATE LEFT", "Flat 3, 12 Canal Street", "53.47941, -2.24532 ±12 m"} {
		if !strings.Contains(r, want) {
			t.Errorf("the first row lacks %q: %s", want, r)
		}
	}
	if r := row(other.ID); strings.Contains(r, "UPDATE LEFT") {
		t.Errorf("Ben left no Update, but his row says so: %s", r)
	}

	// The event stream's snapshot carries what the browser groups by.
	_, js := s.Do(http.MethodGet, "/ui/queue.json", nil, nil)
	if !strings.Contains(js, `"incident_id":"`+first.ID+`"`) || !strings.Contains(js, `"update_left":true`) {
		t.Errorf("queue.json lacks the incident or the Update hint: %s", js)
	}
}
