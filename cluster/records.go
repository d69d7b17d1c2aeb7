package cluster

// Readers of what the host keeps beside the state machine's own keys in the
// state database (fsm.go): the applied index, written in the same
// transaction as every change, and the record of each command ID's first
// application. They let a caller compare replicas, and check what a client
// was told, without knowing how the host lays out its keys.

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// CommandRecord is the host's record of one command ID: its first
// application, which every retry with the same ID returns.
type CommandRecord struct {
	ID    string
	Index uint64 // the log index of the first application
	// Refused is the state machine's reason for refusing the command, or
	// empty when it was applied.
	Refused  string
	Response []byte // what the state machine returned
}

// AppliedIndex returns the index of the last log entry applied to the
// state that txn reads (a transaction from View or LinearizableView); 0
// for a new state.
func AppliedIndex(txn *badger.Txn) (uint64, error) { return readApplied(txn) }

// CommandRecords returns the records of the command IDs that begin with
// prefix, in ID order, as the state that txn reads has them.
func CommandRecords(txn *badger.Txn, prefix string) ([]CommandRecord, error) {
	p := append(append([]byte(nil), prefixCmdID...), prefix...)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []CommandRecord
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		id := string(it.Item().Key()[len(prefixCmdID):])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		index, resp, refused, err := decodeCmdRecord(v)
		if err != nil {
			return nil, fmt.Errorf("command record %q: %w", id, err)
		}
		out = append(out, CommandRecord{ID: id, Index: index, Refused: refused, Response: resp})
	}
	return out, nil
}
