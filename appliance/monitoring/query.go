package monitoring

// Read-only queries over the state. Each runs in a read transaction that
// the caller provides, so several queries can see one consistent state.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// OpenAlarms returns the alarms not closed, most urgent first and, within a
// priority, oldest first: the operators' queue.
func OpenAlarms(txn *badger.Txn) ([]Alarm, error) {
	return alarmsUnder(txn, pOpen, 0)
}

// alarmsUnder returns the alarms whose IDs end the index keys under prefix,
// in key order, at most limit of them (0: all).
func alarmsUnder(txn *badger.Txn, prefix string, limit int) ([]Alarm, error) {
	out := []Alarm{}
	err := scanPrefix(txn, prefix, false, func(key, _ []byte) (bool, error) {
		a, err := getAlarm(txn, lastSegment(key))
		if err != nil {
			return false, fmt.Errorf("index %s: %w", key, err)
		}
		out = append(out, *a)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// LookupAlarm returns one alarm, or a *RuleError with CodeNotFound.
func LookupAlarm(txn *badger.Txn, id string) (*Alarm, error) { return getAlarm(txn, id) }

// AlarmTimeline returns an alarm's timeline, in the order it was written.
func AlarmTimeline(txn *badger.Txn, alarmID string) ([]TimelineEntry, error) {
	if _, err := getAlarm(txn, alarmID); err != nil {
		return nil, err
	}
	return listJSON[TimelineEntry](txn, pTimeline+alarmID+"/", 0)
}

// IncidentAlarms returns the alarms of one incident, oldest first.
func IncidentAlarms(txn *badger.Txn, incidentID string) ([]Alarm, error) {
	if incidentID == "" {
		return nil, invalid("incident_id", "no incident ID")
	}
	return alarmsUnder(txn, pIncident+incidentID+"/", 0)
}

// AuditLog returns up to limit audit records (all when limit <= 0) from the
// record written at log index from on, in order.
func AuditLog(txn *badger.Txn, from uint64, limit int) ([]AuditRecord, error) {
	out := []AuditRecord{}
	err := scanFrom(txn, pAudit, ikey(from), func(key []byte) (bool, error) {
		var r AuditRecord
		if _, err := getJSON(txn, string(key), &r); err != nil {
			return false, err
		}
		out = append(out, r)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// AuditFor returns the audit records of one subject ("alarm/<id>",
// "worker/<id>"...), in order. It reads the whole audit log: it is for
// investigations, not for the console's hot paths.
func AuditFor(txn *badger.Txn, subject string) ([]AuditRecord, error) {
	out := []AuditRecord{}
	err := scanPrefix(txn, pAudit, true, func(_, val []byte) (bool, error) {
		var r AuditRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return false, err
		}
		if r.Subject == subject {
			out = append(out, r)
		}
		return true, nil
	})
	return out, err
}

// listJSON decodes the records under prefix, in key order.
func listJSON[T any](txn *badger.Txn, prefix string, limit int) ([]T, error) {
	out := []T{}
	err := scanPrefix(txn, prefix, true, func(key, val []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(val, &v); err != nil {
			return false, fmt.Errorf("cannot decode %s: %w", key, err)
		}
		out = append(out, v)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// StateHash returns a SHA-256 over every key and value of the state
// machine's state, in key order. Keys of the cluster host (first byte 0xFF)
// are left out. Two replicas that applied the same commands have the same
// hash, whatever their transaction batching.
func StateHash(txn *badger.Txn) ([]byte, error) {
	h := NewStateHasher()
	opts := badger.DefaultIteratorOptions
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) > 0 && k[0] == 0xFF {
			continue
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		h.Add(k, v)
	}
	return h.Sum(), nil
}

// StateHasher computes StateHash over keys and values given in key order,
// as a snapshot stream has them: a restore checks a backup's state with it
// before installing it.
type StateHasher struct{ h hash.Hash }

// NewStateHasher returns a StateHasher of an empty state.
func NewStateHasher() *StateHasher { return &StateHasher{h: sha256.New()} }

// Add adds one key and its value; keys of the cluster host are left out.
func (s *StateHasher) Add(k, v []byte) {
	if len(k) > 0 && k[0] == 0xFF {
		return
	}
	var n [binary.MaxVarintLen64]byte
	s.h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	s.h.Write(k)
	s.h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
	s.h.Write(v)
}

// Sum returns the hash of what was added.
func (s *StateHasher) Sum() []byte { return s.h.Sum(nil) }

// StateDump returns every key and value of the state machine's state as
// text, one per line, for a test to show where two replicas differ.
func StateDump(txn *badger.Txn) (string, error) {
	var sb strings.Builder
	it := txn.NewIterator(badger.DefaultIteratorOptions)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) > 0 && k[0] == 0xFF {
			continue
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "%s = %s\n", k, v)
	}
	return sb.String(), nil
}
