package appliance

// Read-only diagnostic routes for checking replicas against each other and
// against what clients were told: the fault-injection harness
// (appliance/chaos) reads them from every node after healing.
//
//	GET /api/v1/diag/state                  the applied index and the state hash
//	GET /api/v1/diag/alarms                 every alarm ever raised, with its timeline
//	GET /api/v1/diag/audit?subject=         audit records whose subject begins with a prefix
//	GET /api/v1/diag/commands?prefix=       the cluster's record of applied command IDs
//
// Each reply is read in one local read transaction, and carries the applied
// index that transaction saw, so that two nodes' replies can be compared
// only when they are of the same index. They read the whole state (or the
// whole audit log): they are for tests and investigations, not for the
// console's hot paths.

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/gin-gonic/gin"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// Keys the cluster host keeps inside the state database (cluster/fsm.go):
// the applied index, 8 bytes big-endian, written in the same transaction as
// every change; and, per command ID, the index, refusal and response of the
// command's first application. The cluster exports no reader for them yet;
// TestAPIDiagState_ReadsTheClusterRecords pins this reading of them against
// a real cluster node.
var (
	hostKeyApplied   = []byte("\xffcluster/applied")
	hostPrefixCmdRec = []byte("\xffcluster/cmd/")
)

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

// DiagAlarm is one alarm as GET /api/v1/diag/alarms returns it.
type DiagAlarm struct {
	Alarm    monitoring.Alarm           `json:"alarm"`
	Timeline []monitoring.TimelineEntry `json:"timeline"`
	// Raised counts the audit records of the alarm being raised: 1, unless
	// the alarm was raised twice.
	Raised int `json:"raised"`
}

// DiagAlarmsResponse is the reply to GET /api/v1/diag/alarms.
type DiagAlarmsResponse struct {
	NodeID       string      `json:"node_id"`
	AppliedIndex uint64      `json:"applied_index"`
	Alarms       []DiagAlarm `json:"alarms"` // in the order they were raised
}

// DiagAuditResponse is the reply to GET /api/v1/diag/audit.
type DiagAuditResponse struct {
	NodeID       string                   `json:"node_id"`
	AppliedIndex uint64                   `json:"applied_index"`
	Records      []monitoring.AuditRecord `json:"records"` // in log order
}

// DiagCommand is the cluster's record of one command ID: the first
// application of a command with that ID, which every retry returns.
type DiagCommand struct {
	ID    string `json:"id"`
	Index uint64 `json:"index"` // the log index of the first application
	// Refused is the state machine's reason for refusing the command, or
	// empty when it was applied.
	Refused string `json:"refused,omitempty"`
	// Response is what the state machine returned, when it is JSON (for a
	// device's alarm, the alarm as raised).
	Response json.RawMessage `json:"response,omitempty"`
}

// DiagCommandsResponse is the reply to GET /api/v1/diag/commands.
type DiagCommandsResponse struct {
	NodeID       string        `json:"node_id"`
	AppliedIndex uint64        `json:"applied_index"`
	Commands     []DiagCommand `json:"commands"` // by command ID
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
	out := DiagStateResponse{NodeID: a.cluster.Status().NodeID}
	err := a.cluster.View(func(txn *badger.Txn) error {
		var err error
		if out.AppliedIndex, err = readAppliedIndex(txn); err != nil {
			return err
		}
		h, err := monitoring.StateHash(txn)
		out.Hash = hex.EncodeToString(h)
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// GET /api/v1/diag/alarms: every alarm ever raised, found through the audit
// log, with its timeline.
func (a *api) diagAlarms(c *gin.Context) {
	out := DiagAlarmsResponse{NodeID: a.cluster.Status().NodeID, Alarms: []DiagAlarm{}}
	raise := monitoring.CmdRaiseAlarm.String()
	err := a.cluster.View(func(txn *badger.Txn) error {
		var err error
		if out.AppliedIndex, err = readAppliedIndex(txn); err != nil {
			return err
		}
		recs, err := monitoring.AuditLog(txn, 0, 0)
		if err != nil {
			return err
		}
		at := map[string]int{} // alarm ID -> its position in out.Alarms
		for _, r := range recs {
			id, ok := strings.CutPrefix(r.Subject, "alarm/")
			if !ok || r.Command != raise {
				continue
			}
			if i, seen := at[id]; seen {
				out.Alarms[i].Raised++
				continue
			}
			al, err := monitoring.LookupAlarm(txn, id)
			if err != nil {
				return fmt.Errorf("alarm %s, raised at index %d: %w", id, r.Index, err)
			}
			tl, err := monitoring.AlarmTimeline(txn, id)
			if err != nil {
				return err
			}
			at[id] = len(out.Alarms)
			out.Alarms = append(out.Alarms, DiagAlarm{Alarm: *al, Timeline: tl, Raised: 1})
		}
		return nil
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// GET /api/v1/diag/audit?subject=: the audit records whose subject begins
// with subject ("session/" for every session's), all of them without it.
func (a *api) diagAudit(c *gin.Context) {
	prefix := c.Query("subject")
	out := DiagAuditResponse{NodeID: a.cluster.Status().NodeID, Records: []monitoring.AuditRecord{}}
	err := a.cluster.View(func(txn *badger.Txn) error {
		var err error
		if out.AppliedIndex, err = readAppliedIndex(txn); err != nil {
			return err
		}
		recs, err := monitoring.AuditLog(txn, 0, 0)
		for _, r := range recs {
			if strings.HasPrefix(r.Subject, prefix) {
				out.Records = append(out.Records, r)
			}
		}
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// GET /api/v1/diag/commands?prefix=: the records of the command IDs that
// begin with prefix. The Service prefixes its callers' IDs with the command
// type: a device's alarm event is "CmdRaiseAlarm/dev/<device>/<event_id>".
func (a *api) diagCommands(c *gin.Context) {
	prefix := c.Query("prefix")
	out := DiagCommandsResponse{NodeID: a.cluster.Status().NodeID, Commands: []DiagCommand{}}
	err := a.cluster.View(func(txn *badger.Txn) error {
		var err error
		if out.AppliedIndex, err = readAppliedIndex(txn); err != nil {
			return err
		}
		out.Commands, err = readCommandRecords(txn, prefix, out.Commands)
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// readAppliedIndex returns the applied index written with the state txn
// sees; 0 for a new state.
func readAppliedIndex(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(hostKeyApplied)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("applied index has %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// readCommandRecords appends to out the command records whose ID begins
// with prefix, in ID order. A record is the uvarint index, the uvarint
// length of the refusal, the refusal, then the response.
func readCommandRecords(txn *badger.Txn, prefix string, out []DiagCommand) ([]DiagCommand, error) {
	p := append(append([]byte(nil), hostPrefixCmdRec...), prefix...)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		key := it.Item().Key()
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		id := string(key[len(hostPrefixCmdRec):])
		index, w := binary.Uvarint(v)
		if w <= 0 {
			return nil, fmt.Errorf("command record %q is corrupt", id)
		}
		n, w2 := binary.Uvarint(v[w:])
		if w2 <= 0 || uint64(len(v)-w-w2) < n {
			return nil, fmt.Errorf("command record %q is corrupt", id)
		}
		rest := v[w+w2:]
		d := DiagCommand{ID: id, Index: index, Refused: string(rest[:n])}
		if resp := rest[n:]; len(resp) > 0 && json.Valid(resp) {
			d.Response = resp
		}
		out = append(out, d)
	}
	return out, nil
}
