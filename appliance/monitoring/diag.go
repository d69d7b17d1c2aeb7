package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// MaxDiagKeyLen is the longest diagnostic record key, in bytes.
const MaxDiagKeyLen = 200

// prefixDiag begins every diagnostic journal key:
// "diag/" + key + "/" + the log index as 20 decimal digits.
const prefixDiag = "diag/"

// diagRecordCmd is the body of CmdDiagRecord.
type diagRecordCmd struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DiagRecord is one record of the diagnostic journal.
type DiagRecord struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Index uint64 `json:"index"` // the Raft log index that appended it
}

// EncodeDiagRecord returns the command that appends a diagnostic record.
func EncodeDiagRecord(key, value string) []byte {
	return encode(CmdDiagRecord, diagRecordCmd{Key: key, Value: value})
}

// ValidateDiagKey reports why key cannot name a diagnostic record, or nil.
// The state machine applies the same rule, so callers may check early.
func ValidateDiagKey(key string) error {
	switch {
	case key == "":
		return fieldErrorf("key", "must not be empty")
	case len(key) > MaxDiagKeyLen:
		return fieldErrorf("key", "is %d bytes, longer than the limit of %d", len(key), MaxDiagKeyLen)
	case strings.Contains(key, "/"):
		return fieldErrorf("key", "%q must not contain '/'", key)
	}
	return nil
}

// applyDiagRecord appends a record; it never overwrites one. A command that
// was applied twice would therefore leave two records, which is what lets a
// test check that each command took effect exactly once.
func applyDiagRecord(txn *badger.Txn, index uint64, body []byte) ([]byte, error) {
	var c diagRecordCmd
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, CmdDiagRecord, err)
	}
	if err := ValidateDiagKey(c.Key); err != nil {
		return nil, err
	}
	v, err := json.Marshal(DiagRecord{Key: c.Key, Value: c.Value, Index: index})
	if err != nil {
		return nil, err
	}
	if err := txn.Set(diagKey(c.Key, index), v); err != nil {
		return nil, err
	}
	return nil, nil
}

func diagKey(key string, index uint64) []byte {
	return fmt.Appendf(nil, "%s%s/%020d", prefixDiag, key, index)
}

// DiagRecords returns the diagnostic records whose key begins with
// keyPrefix (all of them when it is empty), ordered by key, then by index.
func DiagRecords(txn *badger.Txn, keyPrefix string) ([]DiagRecord, error) {
	prefix := []byte(prefixDiag + keyPrefix)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []DiagRecord
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		var r DiagRecord
		err := it.Item().Value(func(v []byte) error {
			return json.NewDecoder(bytes.NewReader(v)).Decode(&r)
		})
		if err != nil {
			return nil, fmt.Errorf("cannot read diagnostic record %q: %w", it.Item().Key(), err)
		}
		out = append(out, r)
	}
	return out, nil
}
