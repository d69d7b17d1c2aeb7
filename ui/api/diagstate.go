package api

// Read-only diagnostic routes for checking replicas against each other and
// against what clients were told: the fault-injection harness
// (tools/chaos) reads them from every node after healing.
//
//	GET /api/v1/diag/state                  the applied index and the state hash
//	GET /api/v1/diag/alarms                 every alarm ever raised, with its timeline
//	GET /api/v1/diag/audit?subject=         audit records whose subject begins with a prefix
//	GET /api/v1/diag/commands?prefix=       the cluster's record of applied command IDs
//
// Each reply is read in one local read transaction by the monitoring
// Service (service_diag.go), and carries the applied index that
// transaction saw, so that two nodes' replies can be compared only when
// they are of the same index.

import (
	"context"
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// diagService is what the diagnostic routes need from the monitoring
// Service.
type diagService interface {
	PutDiagRecord(ctx context.Context, cmdID, key, value string) (uint64, bool, error)
	DiagRecords(ctx context.Context, prefix string, linearizable bool) ([]monitoring.DiagRecord, error)
	DiagState() (monitoring.DiagState, error)
	DiagAlarms() (uint64, []monitoring.DiagAlarm, error)
	DiagAudit(prefix string) (uint64, []monitoring.AuditRecord, error)
	DiagCommands(prefix string) (uint64, []monitoring.DiagCommand, error)
}

// DiagStateResponse is the reply to GET /api/v1/diag/state.
type DiagStateResponse struct {
	NodeID string `json:"node_id"`
	// AppliedIndex is the log index of the state the hash is of.
	AppliedIndex uint64 `json:"applied_index"`
	// Hash is the hex SHA-256 of the state machine's state
	// (monitoring.StateHash): equal on two nodes of the same applied index
	// unless they diverged.
	Hash string `json:"hash"`
}

// DiagAlarmsResponse is the reply to GET /api/v1/diag/alarms.
type DiagAlarmsResponse struct {
	NodeID       string                 `json:"node_id"`
	AppliedIndex uint64                 `json:"applied_index"`
	Alarms       []monitoring.DiagAlarm `json:"alarms"` // in the order they were raised
}

// DiagAuditResponse is the reply to GET /api/v1/diag/audit.
type DiagAuditResponse struct {
	NodeID       string                   `json:"node_id"`
	AppliedIndex uint64                   `json:"applied_index"`
	Records      []monitoring.AuditRecord `json:"records"` // in log order
}

// DiagCommandsResponse is the reply to GET /api/v1/diag/commands.
type DiagCommandsResponse struct {
	NodeID       string                   `json:"node_id"`
	AppliedIndex uint64                   `json:"applied_index"`
	Commands     []monitoring.DiagCommand `json:"commands"` // by command ID
}

// diagStateRoutes adds the routes of this file to v1.
func (a *api) diagStateRoutes(v1 *gin.RouterGroup) {
	v1.GET("/diag/state", a.diagState)
	v1.GET("/diag/alarms", a.diagAlarms)
	v1.GET("/diag/audit", a.diagAudit)
	v1.GET("/diag/commands", a.diagCommands)
}

// GET /api/v1/diag/state: {node_id, applied_index, hash}.
func (a *api) diagState(c *gin.Context) {
	st, err := a.svc.DiagState()
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, DiagStateResponse{NodeID: a.cluster.Status().NodeID, AppliedIndex: st.AppliedIndex, Hash: hex.EncodeToString(st.Hash)})
}

// GET /api/v1/diag/alarms: every alarm ever raised, found through the audit
// log, with its timeline.
func (a *api) diagAlarms(c *gin.Context) {
	applied, alarms, err := a.svc.DiagAlarms()
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, DiagAlarmsResponse{NodeID: a.cluster.Status().NodeID, AppliedIndex: applied, Alarms: alarms})
}

// GET /api/v1/diag/audit?subject=: the audit records whose subject begins
// with subject ("session/" for every session's), all of them without it.
func (a *api) diagAudit(c *gin.Context) {
	applied, recs, err := a.svc.DiagAudit(c.Query("subject"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, DiagAuditResponse{NodeID: a.cluster.Status().NodeID, AppliedIndex: applied, Records: recs})
}

// GET /api/v1/diag/commands?prefix=: the records of the command IDs that
// begin with prefix. The Service prefixes its callers' IDs with the command
// type: a device's alarm event is "CmdRaiseAlarm/dev/<device>/<event_id>".
func (a *api) diagCommands(c *gin.Context) {
	applied, cmds, err := a.svc.DiagCommands(c.Query("prefix"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, DiagCommandsResponse{NodeID: a.cluster.Status().NodeID, AppliedIndex: applied, Commands: cmds})
}
