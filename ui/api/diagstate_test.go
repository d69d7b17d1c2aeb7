package api_test

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/ui/api"
	"github.com/vigilarc/vigil/ui/uitest"
)

// The diagnostic routes read the cluster host's records (the applied index,
// the command records) the way cluster/fsm.go writes them: this test fails
// if that format changes under them.
func TestAPIDiagState_ReadsTheClusterRecords(t *testing.T) {
	n := mustServe(t)
	mustSend(t, n, 201, "POST", "/api/v1/organisations", obj{"id": "d-org", "actor": "admin", "org": obj{"id": "trust", "name": "North Trust"}}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/workers", obj{"id": "d-w1", "actor": "admin", "worker": obj{"id": "w1", "name": "Ann Smith", "org_id": "trust"}}, nil)
	mustSend(t, n, 201, "POST", "/api/v1/devices", obj{"id": "d-d1", "actor": "admin", "device": obj{
		"id": "d1", "kind": "phone_app", "org_id": "trust", "worker_id": "w1"}}, nil)
	var alarm monitoring.Alarm
	mustSend(t, n, 201, "POST", "/api/v1/alarms", obj{"id": "chk-1", "actor": "device:d1", "type": "red_alert", "device_id": "d1"}, &alarm)
	// Closing an alarm nobody acknowledged is refused: a refusal has a
	// record too.
	if code, raw := send(t, n, "POST", "/api/v1/alarms/"+alarm.ID+"/close", obj{"id": "chk-2", "actor": "op1", "resolution": "false_alarm", "confirmation": "worker_confirmed"}, nil); code != http.StatusConflict {
		t.Fatalf("close of a raised alarm = %d %s, want 409", code, raw)
	}

	var st api.DiagStateResponse
	mustSend(t, n, 200, "GET", "/api/v1/diag/state", nil, &st)
	status := uitest.Cluster(n.Node).Status()
	if st.NodeID != status.NodeID || st.AppliedIndex != status.AppliedIndex || st.AppliedIndex == 0 {
		t.Errorf("diag state = %+v, cluster status: node %s applied %d", st, status.NodeID, status.AppliedIndex)
	}
	var want []byte
	if err := n.Node.Cluster.View(func(txn *badger.Txn) (err error) {
		want, err = monitoring.StateHash(txn)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st.Hash != hex.EncodeToString(want) {
		t.Errorf("hash %s, want %x", st.Hash, want)
	}

	// The Service prefixes the client's command ID with the command type.
	var cmds, closes api.DiagCommandsResponse
	mustSend(t, n, 200, "GET", "/api/v1/diag/commands?prefix=CmdRaiseAlarm/", nil, &cmds)
	mustSend(t, n, 200, "GET", "/api/v1/diag/commands?prefix=CmdCloseAlarmConfirmed/chk", nil, &closes)
	if len(cmds.Commands) != 1 || len(closes.Commands) != 1 || cmds.AppliedIndex != st.AppliedIndex {
		t.Fatalf("raises %+v, closes %+v: want one each, at index %d", cmds, closes, st.AppliedIndex)
	}
	raised, refused := cmds.Commands[0], closes.Commands[0]
	var got monitoring.Alarm
	if err := json.Unmarshal(raised.Response, &got); err != nil || raised.ID != "CmdRaiseAlarm/chk-1" || raised.Refused != "" || got.ID != alarm.ID {
		t.Errorf("record of the raise = %+v (%v), want alarm %s", raised, err, alarm.ID)
	}
	if refused.ID != "CmdCloseAlarmConfirmed/chk-2" || !strings.Contains(refused.Refused, "acknowledged") || refused.Index <= raised.Index || refused.Response != nil {
		t.Errorf("record of the refused close = %+v", refused)
	}

	var alarms api.DiagAlarmsResponse
	mustSend(t, n, 200, "GET", "/api/v1/diag/alarms", nil, &alarms)
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm.ID != alarm.ID || alarms.Alarms[0].Raised != 1 ||
		len(alarms.Alarms[0].Timeline) == 0 || alarms.Alarms[0].Timeline[0].Kind != monitoring.ActionRaised {
		t.Errorf("alarms = %+v", alarms)
	}

	var audit api.DiagAuditResponse
	mustSend(t, n, 200, "GET", "/api/v1/diag/audit?subject=alarm/", nil, &audit)
	if len(audit.Records) != 1 || audit.Records[0].Subject != "alarm/"+alarm.ID || audit.Records[0].Index != raised.Index {
		t.Errorf("audit of alarms = %+v", audit.Records)
	}
	mustSend(t, n, 200, "GET", "/api/v1/diag/audit", nil, &audit)
	if len(audit.Records) < 4 {
		t.Errorf("whole audit log has %d records, want the organisation, worker, device and alarm", len(audit.Records))
	}
}
