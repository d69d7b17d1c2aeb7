package monitoring

// The Service's diagnostic reads and writes (GET and POST
// /api/v1/diag/...): for checking replicas against each other and against
// what clients were told, as the fault-injection harness does after
// healing, and for the bench's commit load. Each read runs in one local
// read transaction and carries the applied index that transaction saw, so
// that two nodes' answers are compared only at the same index. They read
// the whole state (or the whole audit log): they are for tests and
// investigations, not for the console's hot paths.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// DiagState is a node's applied index and the hash of its state.
type DiagState struct {
	// AppliedIndex is the log index of the state the hash is of.
	AppliedIndex uint64
	// Hash is the SHA-256 of the state (StateHash): equal on two nodes of
	// the same applied index unless they diverged.
	Hash []byte
}

// DiagAlarm is one alarm as the diagnostic read of every alarm returns it.
type DiagAlarm struct {
	Alarm    Alarm           `json:"alarm"`
	Timeline []TimelineEntry `json:"timeline"`
	// Raised counts the audit records of the alarm being raised: 1, unless
	// the alarm was raised twice.
	Raised int `json:"raised"`
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

// PutDiagRecord appends a record to the diagnostic journal under key, as
// the command cmdID: a retry with the same ID is applied once. It returns
// the log index of the command's first application and whether this call
// was a retry of one already applied.
func (s *Service) PutDiagRecord(ctx context.Context, cmdID, key, value string) (index uint64, duplicate bool, err error) {
	if cmdID == "" {
		return 0, false, invalid("id", "every command needs an ID; reuse it when retrying")
	}
	if err := ValidateDiagKey(key); err != nil {
		return 0, false, err
	}
	// The journal's command IDs are the caller's own, without the type
	// prefix of the other commands: they predate it, and the bench and the
	// tests look records up by them.
	res, err := s.cluster.Apply(ctx, cmdID, EncodeDiagRecord(key, value))
	if err != nil {
		return 0, false, err
	}
	return res.Index, res.Duplicate, nil
}

// DiagRecords returns the diagnostic records whose key begins with prefix.
// With linearizable, this node first catches up with everything the leader
// had committed when the call began; else it reads its state as it is.
func (s *Service) DiagRecords(ctx context.Context, prefix string, linearizable bool) ([]DiagRecord, error) {
	var recs []DiagRecord
	read := func(txn *badger.Txn) error {
		var err error
		recs, err = DiagRecords(txn, prefix)
		return err
	}
	var err error
	if linearizable {
		err = s.cluster.LinearizableView(ctx, read)
	} else {
		err = s.cluster.View(read)
	}
	return recs, err
}

// DiagState returns this node's applied index and the hash of its state.
func (s *Service) DiagState() (DiagState, error) {
	var out DiagState
	err := s.view(func(txn *badger.Txn) error {
		var err error
		if out.AppliedIndex, err = cluster.AppliedIndex(txn); err != nil {
			return err
		}
		out.Hash, err = StateHash(txn)
		return err
	})
	return out, err
}

// Backup writes this node's whole state, as of one applied index, to w as
// a snapshot stream (cluster.WriteSnapshot), in one read transaction:
// head is called first with that index and the state's hash (StateHash),
// for the caller to write before the state.
func (s *Service) Backup(w io.Writer, head func(applied uint64, hash []byte) error) error {
	return s.view(func(txn *badger.Txn) error {
		applied, err := cluster.AppliedIndex(txn)
		if err != nil {
			return err
		}
		hash, err := StateHash(txn)
		if err != nil {
			return err
		}
		if err := head(applied, hash); err != nil {
			return err
		}
		return cluster.WriteSnapshot(txn, w)
	})
}

// DiagAlarms returns every alarm ever raised, in the order they were
// raised (found through the audit log), with its timeline, and the applied
// index of the state read.
func (s *Service) DiagAlarms() (applied uint64, alarms []DiagAlarm, err error) {
	alarms = []DiagAlarm{}
	raise := CmdRaiseAlarm.String()
	err = s.view(func(txn *badger.Txn) error {
		var err error
		if applied, err = cluster.AppliedIndex(txn); err != nil {
			return err
		}
		recs, err := AuditLog(txn, 0, 0)
		if err != nil {
			return err
		}
		at := map[string]int{} // alarm ID -> its position in alarms
		for _, r := range recs {
			id, ok := strings.CutPrefix(r.Subject, "alarm/")
			if !ok || r.Command != raise {
				continue
			}
			if i, seen := at[id]; seen {
				alarms[i].Raised++
				continue
			}
			al, err := LookupAlarm(txn, id)
			if err != nil {
				return fmt.Errorf("alarm %s, raised at index %d: %w", id, r.Index, err)
			}
			tl, err := AlarmTimeline(txn, id)
			if err != nil {
				return err
			}
			at[id] = len(alarms)
			alarms = append(alarms, DiagAlarm{Alarm: *al, Timeline: tl, Raised: 1})
		}
		return nil
	})
	return applied, alarms, err
}

// DiagAudit returns the audit records whose subject begins with prefix
// ("session/" for every session's; all of them when it is empty), in log
// order, and the applied index of the state read.
func (s *Service) DiagAudit(prefix string) (applied uint64, records []AuditRecord, err error) {
	records = []AuditRecord{}
	err = s.view(func(txn *badger.Txn) error {
		var err error
		if applied, err = cluster.AppliedIndex(txn); err != nil {
			return err
		}
		recs, err := AuditLog(txn, 0, 0)
		for _, r := range recs {
			if strings.HasPrefix(r.Subject, prefix) {
				records = append(records, r)
			}
		}
		return err
	})
	return applied, records, err
}

// DiagCommands returns the cluster's records of the command IDs that begin
// with prefix, by ID, and the applied index of the state read. The Service
// prefixes its callers' IDs with the command type: a device's alarm event
// is "CmdRaiseAlarm/dev/<device>/<event_id>".
func (s *Service) DiagCommands(prefix string) (applied uint64, cmds []DiagCommand, err error) {
	cmds = []DiagCommand{}
	err = s.view(func(txn *badger.Txn) error {
		var err error
		if applied, err = cluster.AppliedIndex(txn); err != nil {
			return err
		}
		recs, err := cluster.CommandRecords(txn, prefix)
		for _, r := range recs {
			d := DiagCommand{ID: r.ID, Index: r.Index, Refused: r.Refused}
			if len(r.Response) > 0 && json.Valid(r.Response) {
				d.Response = r.Response
			}
			cmds = append(cmds, d)
		}
		return err
	})
	return applied, cmds, err
}
