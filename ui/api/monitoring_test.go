package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
)

// Every refusal names the request field at fault (or says what is
// missing), with the status the error mapping promises, and writes nothing.
func TestAPIMonitoring_BadRequestsNameTheField(t *testing.T) {
	n := mustServe(t)
	cmd := func(extra obj) obj {
		m := obj{"id": "bad-1", "actor": "op1"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	org := func(o obj) obj {
		m := obj{"id": "trust", "name": "Trust"}
		for k, v := range o {
			m[k] = v
		}
		return cmd(obj{"org": m})
	}
	tests := []struct {
		name, method, path string
		body               any
		wantCode           int
		wantField          string
	}{
		{"no command id", "POST", "/api/v1/organisations", obj{"actor": "op1", "org": obj{"id": "o", "name": "O"}}, 400, "id"},
		{"command id too long", "POST", "/api/v1/organisations", obj{"id": strings.Repeat("x", api.MaxCommandIDLen+1), "actor": "op1"}, 400, "id"},
		{"actor too long", "POST", "/api/v1/organisations", obj{"id": "c", "actor": strings.Repeat("a", api.MaxActorLen+1), "org": obj{"id": "o", "name": "O"}}, 400, "actor"},
		{"device actor without device", "POST", "/api/v1/alarms", obj{"id": "c", "actor": "device:", "type": "test", "worker_id": "w"}, 400, "actor"},
		{"unknown field", "POST", "/api/v1/organisations", cmd(obj{"colour": "red"}), 400, "body"},
		{"duration in ns", "POST", "/api/v1/organisations", org(obj{"grace_ns": 2000000000}), 400, "body"},
		{"grace not a duration", "POST", "/api/v1/organisations", org(obj{"grace": "2 minutes"}), 400, "org.grace"},
		{"negative grace", "POST", "/api/v1/organisations", org(obj{"grace": "-1s"}), 400, "org.grace"},
		{"zero grace", "POST", "/api/v1/organisations", org(obj{"grace": "0s"}), 400, "org.grace"},
		{"zero offline threshold", "POST", "/api/v1/organisations", org(obj{"offline_threshold": "0"}), 400, "org.offline_threshold"},
		{"zero session", "POST", "/api/v1/sessions", cmd(obj{"worker_id": "w", "device_id": "d", "duration": "0s"}), 400, "duration"},
		{"update too long", "POST", "/api/v1/sessions/s/update", cmd(obj{"update": strings.Repeat("u", monitoring.MaxTextLen+1)}), 400, "update"},
		{"session update too long", "POST", "/api/v1/sessions", cmd(obj{"worker_id": "w", "device_id": "d", "update": strings.Repeat("u", monitoring.MaxTextLen+1)}), 400, "update"},
		{"duplicate key in org", "POST", "/api/v1/organisations", `{"id":"c","org":{"id":"o","name":"A","name":"B"}}`, 400, "org.name"},
		{"key in capitals in org", "POST", "/api/v1/organisations", `{"id":"c","org":{"id":"o","Name":"A"}}`, 400, "org.Name"},
		{"alarm type in capitals", "POST", "/api/v1/alarms", `{"id":"c","TYPE":"red_alert","device_id":"d"}`, 400, "TYPE"},
		{"alarm in the year 9999", "POST", "/api/v1/alarms", cmd(obj{"type": "red_alert", "device_id": "d", "device_time": "9999-12-31T23:59:59Z"}), 400, "device_time"},
		{"alarm in 1970", "POST", "/api/v1/alarms", cmd(obj{"type": "red_alert", "device_id": "d", "device_time": "1970-01-01T00:00:00Z"}), 400, "device_time"},
		{"worker name with an override", "POST", "/api/v1/workers", cmd(obj{"worker": obj{"id": "w", "name": "Ann\u202e", "org_id": "o"}}), 400, "worker.name"},
		{"checkin default too short", "POST", "/api/v1/organisations", org(obj{"default_checkin": "1m"}), 400, "org.default_checkin"},
		{"org without name", "POST", "/api/v1/organisations", org(obj{"name": ""}), 400, "org.name"},
		{"heartbeat not a duration", "POST", "/api/v1/organisations", org(obj{"heartbeat_interval": "often"}), 400, "org.heartbeat_interval"},
		{"contact wait not a duration", "POST", "/api/v1/organisations", org(obj{"contact_wait": "soon"}), 400, "org.contact_wait"},
		{"contact wait too short", "POST", "/api/v1/organisations", org(obj{"contact_wait": "30s"}), 400, "org.contact_wait"},
		{"contact wait too long", "POST", "/api/v1/organisations", org(obj{"contact_wait": "2h"}), 400, "org.contact_wait"},
		{"worker without org", "POST", "/api/v1/workers", cmd(obj{"worker": obj{"id": "w", "name": "Ann"}}), 400, "worker.org_id"},
		{"worker with pin hash", "POST", "/api/v1/workers", cmd(obj{"worker": obj{"id": "w", "name": "Ann", "org_id": "o", "safe_pin_hash": "x"}}), 400, "body"},
		{"safe pin not digits", "POST", "/api/v1/workers/w/pins", cmd(obj{"safe_pin": "12a4"}), 400, "safe_pin"},
		{"duress pin same as safe", "POST", "/api/v1/workers/w/pins", cmd(obj{"safe_pin": "1234", "duress_pin": "1234"}), 400, "duress_pin"},
		{"device kind", "POST", "/api/v1/devices", cmd(obj{"device": obj{"id": "d", "kind": "pager", "org_id": "o"}}), 400, "device.kind"},
		{"session duration", "POST", "/api/v1/sessions", cmd(obj{"worker_id": "w", "device_id": "d", "duration": "forever"}), 400, "duration"},
		{"session too long", "POST", "/api/v1/sessions", cmd(obj{"worker_id": "w", "device_id": "d", "duration": "25h"}), 400, "duration"},
		{"session check-in interval", "POST", "/api/v1/sessions", cmd(obj{"worker_id": "w", "device_id": "d", "duration": "1h", "checkin_interval": "1m"}), 400, "checkin_interval"},
		{"session without worker", "POST", "/api/v1/sessions", cmd(obj{"device_id": "d", "duration": "1h"}), 400, "worker_id"},
		{"extend without extend_by", "POST", "/api/v1/sessions/s/extend", cmd(obj{"pin": "1234"}), 400, "extend_by"},
		{"extend by nothing", "POST", "/api/v1/sessions/s/extend", cmd(obj{"pin": "1234", "extend_by": "0s"}), 400, "extend_by"},
		{"check-in pin not digits", "POST", "/api/v1/sessions/s/checkin", cmd(obj{"pin": "abcd"}), 400, "pin"},
		{"check-in with extend_by", "POST", "/api/v1/sessions/s/checkin", cmd(obj{"pin": "1234", "extend_by": "1h"}), 400, "body"},
		{"alarm type", "POST", "/api/v1/alarms", cmd(obj{"type": "fire", "device_id": "d"}), 400, "type"},
		{"alarm without source", "POST", "/api/v1/alarms", cmd(obj{"type": "red_alert"}), 400, "device_id"},
		{"alarm device time", "POST", "/api/v1/alarms", cmd(obj{"type": "red_alert", "device_id": "d", "device_time": "yesterday"}), 400, "device_time"},
		{"alarm latitude", "POST", "/api/v1/alarms", cmd(obj{"type": "red_alert", "device_id": "d", "location": obj{"lat": 91, "lon": 0}}), 400, "location.lat"},
		{"action without kind", "POST", "/api/v1/alarms/a/actions", cmd(nil), 400, "kind"},
		{"call without outcome", "POST", "/api/v1/alarms/a/actions", cmd(obj{"kind": "call_worker"}), 400, "outcome"},
		{"police without route", "POST", "/api/v1/alarms/a/actions", cmd(obj{"kind": "police", "force": "Met"}), 400, "route"},
		{"close without resolution", "POST", "/api/v1/alarms/a/close", cmd(nil), 422, "resolution"},
		{"close with unknown resolution", "POST", "/api/v1/alarms/a/close", cmd(obj{"resolution": "sorted"}), 400, "resolution"},
		{"reopen without reason", "POST", "/api/v1/alarms/a/reopen", cmd(nil), 400, "reason"},
		{"kpis from", "GET", "/api/v1/kpis?from=monday", nil, 400, "from"},
		{"kpis period backwards", "GET", "/api/v1/kpis?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z", nil, 400, "to"},
		{"no such organisation", "GET", "/api/v1/organisations/nope", nil, 404, "organisation_id"},
		{"no such alarm", "GET", "/api/v1/alarms/nope", nil, 404, "alarm_id"},
		{"check-in of no session", "POST", "/api/v1/sessions/nope/checkin", cmd(obj{"pin": "1234"}), 404, "session_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e api.ErrorResponse
			code, raw := send(t, n, tt.method, tt.path, tt.body, &e)
			if code != tt.wantCode || e.Field != tt.wantField || e.Error == "" {
				t.Fatalf("got %d %s; want %d naming field %q", code, raw, tt.wantCode, tt.wantField)
			}
			if tt.wantField != "" && tt.wantField != "body" && !strings.Contains(e.Error, tt.wantField) {
				t.Fatalf("message %q does not name the field %q", e.Error, tt.wantField)
			}
		})
	}
	var orgs api.OrganisationsResponse
	mustSend(t, n, 200, "GET", "/api/v1/organisations", nil, &orgs)
	var alarms api.AlarmsResponse
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, &alarms)
	if len(orgs.Organisations) != 0 || len(alarms.Alarms) != 0 {
		t.Fatalf("bad requests wrote: %+v %+v", orgs, alarms)
	}
}

// The whole path of an alarm receiving centre through the API: directory,
// session, a refused PIN, an alarm worked and closed; each write retried
// with its command ID gives the first result again.
func TestAPIMonitoring_SessionAndAlarmLifecycle(t *testing.T) {
	n := mustServe(t)
	op1 := mustToken(t, n, "op1", monitoring.RoleOperator)
	op2 := mustToken(t, n, "op2", monitoring.RoleOperator)
	sup := mustToken(t, n, "sup", monitoring.RoleSupervisor)

	var org monitoring.Organisation
	orgReq := obj{"id": "c-org", "actor": "admin", "org": obj{"id": "trust", "name": "North Trust", "grace": "90s",
		"heartbeat_interval": "30s", "location_interval": "2m", "procedure": "Call the worker, then the manager."}}
	mustSend(t, n, 201, "POST", "/api/v1/organisations", orgReq, &org)
	if org.ID != "trust" || org.Grace != 90*time.Second || org.HeartbeatInterval != 30*time.Second || org.LocationInterval != 2*time.Minute {
		t.Fatalf("organisation = %+v", org)
	}
	var w monitoring.Worker
	mustSend(t, n, 201, "POST", "/api/v1/workers", obj{"id": "c-w1", "actor": "admin", "worker": obj{
		"id": "w1", "name": "Ann Smith", "org_id": "trust", "important": obj{"special_handling": "hard of hearing"}}}, &w)
	if w.ID != "w1" || w.Important.SpecialHandling != "hard of hearing" {
		t.Fatalf("worker = %+v", w)
	}
	var pins api.PINsResponse
	raw := mustSend(t, n, 200, "POST", "/api/v1/workers/w1/pins", obj{"id": "c-pins", "actor": "admin", "safe_pin": "2468", "duress_pin": "1357"}, &pins)
	if pins.WorkerID != "w1" || pins.PINVersion == 0 || strings.Contains(raw, "2468") || strings.Contains(raw, "1357") {
		t.Fatalf("PINs reply = %s", raw)
	}
	raw = mustSend(t, n, 200, "GET", "/api/v1/workers/w1", nil, nil)
	if strings.Contains(raw, "pin_hash") {
		t.Fatalf("worker reply shows PIN hashes: %s", raw)
	}
	var workers api.WorkersResponse
	mustSend(t, n, 200, "GET", "/api/v1/workers?org=trust", nil, &workers)
	if len(workers.Workers) != 1 {
		t.Fatalf("workers = %+v", workers)
	}
	var dev monitoring.Device
	mustSend(t, n, 201, "POST", "/api/v1/devices", obj{"id": "c-d1", "actor": "admin", "device": obj{
		"id": "d1", "kind": "phone_app", "org_id": "trust", "worker_id": "w1"}}, &dev)
	if dev.WorkerID != "w1" {
		t.Fatalf("device = %+v", dev)
	}

	var sess monitoring.Session
	mustSend(t, n, 201, "POST", "/api/v1/sessions", obj{"id": "c-s1", "actor": "w1", "worker_id": "w1", "device_id": "d1",
		"duration": "45m", "update": "high-risk tenant, second floor"}, &sess)
	if sess.Status != monitoring.SessionActive || sess.EndsAt.Sub(sess.StartedAt) != 45*time.Minute {
		t.Fatalf("session = %+v", sess)
	}
	sessPath := "/api/v1/sessions/" + sess.ID

	// A wrong PIN is refused, names the PIN, and leaves the session running;
	// the retry of the same command gives the same refusal.
	for range 2 {
		var e api.ErrorResponse
		code, raw := send(t, n, "POST", sessPath+"/checkin", obj{"id": "c-ci-wrong", "actor": "w1", "pin": "0000"}, &e)
		if code != http.StatusForbidden || e.Field != "pin" || e.Code != string(monitoring.CodeWrongPIN) {
			t.Fatalf("wrong PIN: %d %s", code, raw)
		}
	}
	var got monitoring.Session
	mustSend(t, n, 200, "GET", sessPath, nil, &got)
	if got.Status != monitoring.SessionActive {
		t.Fatalf("after a wrong PIN the session is %s", got.Status)
	}
	var active api.SessionsResponse
	mustSend(t, n, 200, "GET", "/api/v1/sessions", nil, &active)
	if len(active.Sessions) != 1 || active.Sessions[0].TimeLeft <= 0 || active.Sessions[0].TimeLeft > 45*time.Minute {
		t.Fatalf("active sessions = %+v", active)
	}
	var ext monitoring.SessionReply
	mustSend(t, n, 200, "POST", sessPath+"/extend", obj{"id": "c-ext", "actor": "w1", "pin": "2468", "extend_by": "15m"}, &ext)
	if !ext.EndsAt.Equal(sess.EndsAt.Add(15 * time.Minute)) {
		t.Fatalf("extended: %+v, was ending %s", ext, sess.EndsAt)
	}

	// The worker raises an alarm; an operator takes it, works it, and
	// closes it, which needs a resolution.
	var alarm monitoring.Alarm
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "c-raise", "actor": "device", "type": "red_alert", "device_id": "d1", "session_id": sess.ID}, &alarm)
	if alarm.Status != monitoring.StatusRaised || alarm.WorkerID != "w1" || alarm.SessionID != sess.ID {
		t.Fatalf("alarm = %+v", alarm)
	}
	// Times not set yet are absent, not the zero time.
	if raw := mustSend(t, n, 200, "GET", "/api/v1/alarms/"+alarm.ID, nil, nil); strings.Contains(raw, "0001-01-01") ||
		strings.Contains(raw, `"ack_at"`) || strings.Contains(raw, `"closed_at"`) || !strings.Contains(raw, `"raised_at"`) {
		t.Errorf("a new alarm: %s; want raised_at and no ack_at, closed_at or zero time", raw)
	}
	var again monitoring.Alarm
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "c-raise", "actor": "device", "type": "red_alert", "device_id": "d1", "session_id": sess.ID}, &again)
	if again.ID != alarm.ID {
		t.Fatalf("replayed raise made alarm %s, first %s", again.ID, alarm.ID)
	}
	var queue api.AlarmsResponse
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, &queue)
	if len(queue.Alarms) != 1 || queue.Alarms[0].ID != alarm.ID {
		t.Fatalf("queue = %+v", queue)
	}
	alarmPath := "/api/v1/alarms/" + alarm.ID
	var acked monitoring.Alarm
	mustSendAs(t, n, op1, 200, "POST", alarmPath+"/acknowledge", obj{"id": "c-ack"}, &acked)
	if acked.Status != monitoring.StatusAcknowledged || acked.AckBy != "token:op1" {
		t.Fatalf("acknowledged = %+v", acked)
	}
	var e api.ErrorResponse
	if code, raw := sendAs(t, n, op2, "POST", alarmPath+"/acknowledge", obj{"id": "c-ack-2"}, &e); code != http.StatusConflict {
		t.Fatalf("second operator's acknowledge: %d %s; want 409", code, raw)
	}
	mustSendAs(t, n, op1, 200, "POST", alarmPath+"/actions", obj{"id": "c-call", "kind": "call_worker", "outcome": "answered_safe"}, nil)
	// A listen-in: the device is asked to stream its audio; the request is
	// on the timeline by the caller, and a bad length names its field.
	e = api.ErrorResponse{}
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/listen", obj{"id": "c-listen-0", "seconds": 5}, &e); code != http.StatusBadRequest || e.Field != "seconds" {
		t.Fatalf("listen for 5 s: %d %s", code, raw)
	}
	var listening monitoring.Alarm
	mustSendAs(t, n, op1, 200, "POST", alarmPath+"/listen", obj{"id": "c-listen"}, &listening)
	if d := listening.ListenUntil.Sub(listening.ListenAt); d != monitoring.DefaultListenSeconds*time.Second {
		t.Fatalf("listen-in for %s, want the default %d s: %+v", d, monitoring.DefaultListenSeconds, listening)
	}
	e = api.ErrorResponse{}
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/close", obj{"id": "c-close-0"}, &e); code != http.StatusUnprocessableEntity || e.Field != "resolution" {
		t.Fatalf("close without resolution: %d %s", code, raw)
	}
	// The close rule: a close names how the worker's safety was confirmed.
	e = api.ErrorResponse{}
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/close", obj{"id": "c-close-1", "resolution": "worker_safe"}, &e); code != http.StatusUnprocessableEntity ||
		e.Field != "confirmation" || e.Code != string(monitoring.CodeNeedConfirmation) || !strings.Contains(e.Error, "worker_confirmed") {
		t.Fatalf("close without a confirmation: %d %s", code, raw)
	}
	// A genuine close needs an escalation contact briefed, or why not.
	e = api.ErrorResponse{}
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/close", obj{"id": "c-close-2", "resolution": "worker_safe", "confirmation": "worker_confirmed"}, &e); code != http.StatusUnprocessableEntity ||
		e.Field != "no_briefing_reason" || e.Code != string(monitoring.CodeNeedBriefing) || !strings.Contains(e.Error, "no escalation contacts on file") {
		t.Fatalf("close without a briefing: %d %s", code, raw)
	}
	var closed, closedAgain monitoring.Alarm
	closeReq := obj{"id": "c-close", "resolution": "worker_safe", "confirmation": "worker_confirmed", "note": "answered, all fine",
		"no_briefing_reason": "no contacts on file"}
	first := mustSendAs(t, n, op1, 200, "POST", alarmPath+"/close", closeReq, &closed)
	if closed.Status != monitoring.StatusClosed || closed.Resolution != monitoring.ResolutionWorkerSafe || closed.ClosedBy != "token:op1" ||
		closed.Confirmation != monitoring.ConfirmedByWorker || closed.NoBriefingReason != "no contacts on file" {
		t.Fatalf("closed = %+v", closed)
	}
	if replay := mustSendAs(t, n, op1, 200, "POST", alarmPath+"/close", closeReq, &closedAgain); replay != first {
		t.Fatalf("replayed close:\n%s\nfirst:\n%s", replay, first)
	}
	e = api.ErrorResponse{}
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/acknowledge", obj{"id": "c-ack-3"}, &e); code != http.StatusConflict || e.Code != string(monitoring.CodeAlarmClosed) {
		t.Fatalf("acknowledging a closed alarm: %d %s", code, raw)
	}

	var detail api.AlarmResponse
	mustSend(t, n, 200, "GET", alarmPath, nil, &detail)
	var kinds []string
	for _, en := range detail.Timeline {
		kinds = append(kinds, string(en.Kind))
	}
	if got := strings.Join(kinds, ","); got != "raised,update,acknowledged,call_worker,listen_in,closed" || detail.Alarm.Status != monitoring.StatusClosed {
		t.Fatalf("timeline %s, alarm %+v", got, detail.Alarm)
	}
	if li := detail.Timeline[4]; li.Actor != "token:op1" || !strings.Contains(li.Text, "stream its audio for 120 s") {
		t.Fatalf("listen-in entry %+v", li)
	}
	queue = api.AlarmsResponse{}
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, &queue)
	if len(queue.Alarms) != 0 {
		t.Fatalf("queue after close = %+v", queue)
	}
	// Reopening needs a supervisor, as in the console.
	if code, raw := sendAs(t, n, op1, "POST", alarmPath+"/reopen", obj{"id": "c-reopen-op", "reason": "worker called back"}, nil); code != http.StatusForbidden {
		t.Fatalf("an operator's reopen: %d %s; want 403", code, raw)
	}
	var reopened monitoring.Alarm
	mustSendAs(t, n, sup, 200, "POST", alarmPath+"/reopen", obj{"id": "c-reopen", "reason": "worker called back"}, &reopened)
	if reopened.Status == monitoring.StatusClosed || reopened.Reopened != 1 {
		t.Fatalf("reopened = %+v", reopened)
	}

	// Replays of directory writes return the first result, even with
	// another body.
	var orgAgain monitoring.Organisation
	mustSend(t, n, 201, "POST", "/api/v1/organisations", obj{"id": "c-org", "actor": "admin", "org": obj{"id": "trust", "name": "Renamed"}}, &orgAgain)
	if orgAgain.Name != org.Name || !orgAgain.UpdatedAt.Equal(org.UpdatedAt) {
		t.Fatalf("replayed organisation = %+v, first %+v", orgAgain, org)
	}

	// The session ends with the Safe PIN.
	var end monitoring.SessionReply
	mustSend(t, n, 200, "POST", sessPath+"/end", obj{"id": "c-end", "actor": "w1", "pin": "2468"}, &end)
	if end.Status != monitoring.SessionEnded {
		t.Fatalf("end = %+v", end)
	}
	e = api.ErrorResponse{}
	if code, raw := send(t, n, "POST", sessPath+"/checkin", obj{"id": "c-late", "actor": "w1", "pin": "2468"}, &e); code != http.StatusConflict || e.Code != string(monitoring.CodeSessionEnded) {
		t.Fatalf("check-in after the end: %d %s", code, raw)
	}

	var k monitoring.KPIs
	mustSendAs(t, n, sup, 200, "GET", "/api/v1/kpis?org=trust", nil, &k)
	if k.Raised != 1 || k.Acknowledged != 1 {
		t.Fatalf("KPIs = %+v", k)
	}
}

// The Duress PIN gets the Safe PIN's reply and raises a silent duress
// alarm that the API shows as do-not-call.
func TestAPIMonitoring_DuressPINLooksLikeSafePIN(t *testing.T) {
	n := mustServe(t)
	mustSend(t, n, 201, "POST", "/api/v1/organisations", obj{"id": "o", "actor": "admin", "org": obj{"id": "trust", "name": "Trust"}}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/workers", obj{"id": "w", "actor": "admin", "worker": obj{"id": "w1", "name": "Ann", "org_id": "trust"}}, nil)
	mustSend(t, n, 200, "POST", "/api/v1/workers/w1/pins", obj{"id": "p", "actor": "admin", "safe_pin": "2468", "duress_pin": "1357"}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/devices", obj{"id": "d", "actor": "admin", "device": obj{"id": "d1", "kind": "phone_app", "org_id": "trust", "worker_id": "w1"}}, nil)
	var sess monitoring.Session
	mustSend(t, n, 201, "POST", "/api/v1/sessions", obj{"id": "s", "actor": "w1", "worker_id": "w1", "device_id": "d1", "duration": "1h"}, &sess)

	var safe, duress map[string]any
	mustSend(t, n, 200, "POST", "/api/v1/sessions/"+sess.ID+"/checkin", obj{"id": "ci-1", "actor": "w1", "pin": "2468"}, &safe)
	mustSend(t, n, 200, "POST", "/api/v1/sessions/"+sess.ID+"/checkin", obj{"id": "ci-2", "actor": "w1", "pin": "1357"}, &duress)
	// The audio reference is a fresh ID each time, of one form: the
	// duress alarm's ID, or one naming no alarm.
	r1, _ := safe["audio_ref"].(string)
	r2, _ := duress["audio_ref"].(string)
	if len(r1) != len(r2) || r1 == "" || r1 == r2 {
		t.Fatalf("audio references %q and %q: want two fresh IDs of one length", r1, r2)
	}
	for _, m := range []map[string]any{safe, duress} {
		delete(m, "at") // the time of each check-in
		delete(m, "next_due")
		delete(m, "audio_ref")
	}
	s1, _ := json.Marshal(safe)
	s2, _ := json.Marshal(duress)
	if string(s1) != string(s2) {
		t.Fatalf("replies differ:\nsafe   %s\nduress %s", s1, s2)
	}
	var queue api.AlarmsResponse
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, &queue)
	if len(queue.Alarms) != 1 || queue.Alarms[0].Type != monitoring.AlarmDuress || !queue.Alarms[0].DoNotCall || queue.Alarms[0].ID != r2 {
		t.Fatalf("queue = %+v, want the duress alarm %s", queue, r2)
	}
}

// A device cancels its alarm with a PIN: the Duress PIN gets the Safe PIN's
// reply, and leaves the alarm open for the operators.
func TestAPIMonitoring_CancelAlarm(t *testing.T) {
	n := mustServe(t)
	mustSend(t, n, 201, "POST", "/api/v1/organisations", obj{"id": "o", "actor": "admin", "org": obj{"id": "trust", "name": "Trust"}}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/workers", obj{"id": "w", "actor": "admin", "worker": obj{"id": "w1", "name": "Ann", "org_id": "trust"}}, nil)
	mustSend(t, n, 200, "POST", "/api/v1/workers/w1/pins", obj{"id": "p", "actor": "admin", "safe_pin": "2468", "duress_pin": "1357"}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/devices", obj{"id": "d", "actor": "admin", "device": obj{"id": "d1", "kind": "phone_app", "org_id": "trust", "worker_id": "w1"}}, nil)
	var a1, a2 monitoring.Alarm
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "r1", "actor": "device:d1", "type": "red_alert", "device_id": "d1"}, &a1)
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "r2", "actor": "device:d1", "type": "man_down", "device_id": "d1"}, &a2)

	var e api.ErrorResponse
	if code, raw := send(t, n, "POST", "/api/v1/alarms/"+a1.ID+"/cancel", obj{"id": "c0", "actor": "device:d1", "pin": "0000"}, &e); code != http.StatusForbidden || e.Field != "pin" {
		t.Fatalf("wrong PIN: %d %s", code, raw)
	}
	if code, raw := send(t, n, "POST", "/api/v1/alarms/"+a1.ID+"/cancel", obj{"id": "c0b", "actor": "device:d1"}, &e); code != http.StatusBadRequest || e.Field != "pin" {
		t.Fatalf("no PIN: %d %s", code, raw)
	}
	var safe, duress map[string]any
	mustSend(t, n, 200, "POST", "/api/v1/alarms/"+a1.ID+"/cancel", obj{"id": "c1", "actor": "device:d1", "pin": "2468"}, &safe)
	mustSend(t, n, 200, "POST", "/api/v1/alarms/"+a2.ID+"/cancel", obj{"id": "c2", "actor": "device:d1", "pin": "1357"}, &duress)
	for _, m := range []map[string]any{safe, duress} {
		delete(m, "at") // the time of each cancel
		delete(m, "alarm_id")
	}
	s1, _ := json.Marshal(safe)
	s2, _ := json.Marshal(duress)
	if string(s1) != string(s2) {
		t.Fatalf("replies differ:\nsafe   %s\nduress %s", s1, s2)
	}
	if code, raw := send(t, n, "POST", "/api/v1/alarms/"+a1.ID+"/cancel", obj{"id": "c3", "actor": "device:d1", "pin": "2468"}, &e); code != http.StatusConflict || e.Code != string(monitoring.CodeAlarmClosed) {
		t.Fatalf("cancel of a closed alarm: %d %s", code, raw)
	}
	var queue api.AlarmsResponse
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, &queue)
	// The Safe PIN's alarm stays, reset and awaiting an operator's
	// confirmation (the close rule); the Duress PIN's, do-not-call, with
	// its duress alarm.
	if len(queue.Alarms) != 3 {
		t.Fatalf("queue = %+v, want the reset red alert, the man-down alarm and a duress alarm", queue)
	}
	for _, a := range queue.Alarms {
		switch {
		case a.ID == a1.ID:
			// Do-not-call too: its incident holds the duress alarm.
			if !a.AwaitingConfirmation() || !a.DoNotCall || a.Silent || a.Status != monitoring.StatusRaised || a.IncidentID != a2.IncidentID {
				t.Fatalf("the alarm reset with the Safe PIN: %+v", a)
			}
		case !a.DoNotCall || a.Status == monitoring.StatusClosed:
			t.Fatalf("queue alarm %+v", a)
		}
	}
}
