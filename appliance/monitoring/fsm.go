package monitoring

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// FSM is Vigil's state machine. The cluster calls Apply with every committed
// command in log order; FSM keeps no state outside Badger.
type FSM struct{}

var _ cluster.StateMachine = (*FSM)(nil)

// NewFSM returns the state machine.
func NewFSM() *FSM { return &FSM{} }

// Apply applies one command inside txn. It is deterministic: it reads and
// writes txn and nothing else. A returned error refuses the command, and
// nothing has been written. A command type this version does not know stops
// the node with a panic: applying the rest of the log without it would let
// this node diverge from the others.
func (f *FSM) Apply(txn *badger.Txn, e cluster.Entry) ([]byte, error) {
	t, body, err := decode(e.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	switch t {
	case CmdDiagRecord:
		return applyDiagRecord(txn, e.Index, body)
	default:
		panic(fmt.Sprintf("monitoring: entry %d (command ID %q) has unknown command type %d: "+
			"this node is older than the node that proposed it; upgrade it", e.Index, e.ID, byte(t)))
	}
}

// Loaded implements cluster.StateMachine. FSM keeps nothing in memory, so
// there is nothing to rebuild.
func (f *FSM) Loaded(*badger.Txn) error { return nil }
