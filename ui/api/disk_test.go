package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// A node whose disk is nearly full answers a write with 507 Insufficient
// Storage saying so, still answers reads, and accepts writes again once
// space is freed. The node's data directory is a small tmpfs (root only).
func TestAPI_DiskFullIs507(t *testing.T) {
	fs := clustertest.MustTmpfs(t, 64<<20)
	const floor = 24 << 20
	svc := monitoringtest.MustService(t, monitoringtest.Options{DataDirs: fs, MinFreeBytes: floor})
	n := &apiNode{Server: uitest.MustServe(t, svc, uitest.Options{})}
	n.admin = mustToken(t, n, "test-admin", monitoring.RoleAdmin)

	release := clustertest.MustFill(t, fs, floor-4<<20)
	create := func(id string) (int, string) {
		return send(t, n, "POST", "/api/v1/operators", obj{"id": "mk-" + id, "operator": obj{"id": id, "name": id, "role": "supervisor"},
			"password": id + "'s long passphrase", "create": true}, nil)
	}
	if code, raw := create("ray"); code != http.StatusInsufficientStorage {
		t.Fatalf("write on a nearly full disk: %d %s, want 507", code, raw)
	}
	mustSend(t, n, 200, "GET", "/api/v1/alarms", nil, nil)
	release()
	clustertest.PollUntil(t, 10*time.Second, "writes accepted once space is freed", func() bool {
		code, _ := create("ray")
		return code == http.StatusCreated
	})
}
