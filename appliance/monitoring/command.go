package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
)

// CmdType is the first byte of every command.
//
// This enum is append-only: a value, once released, keeps its meaning
// forever, because old commands stay in the Raft log and in snapshots. Never
// renumber, reuse or remove a value; add new ones at the end.
type CmdType byte

// Command types. Append only; see CmdType.
const (
	// CmdDiagRecord appends a record to the diagnostic journal. Body: DiagRecordCmd.
	CmdDiagRecord CmdType = 1
)

// String returns the command type's name for messages.
func (t CmdType) String() string {
	switch t {
	case CmdDiagRecord:
		return "CmdDiagRecord"
	}
	return fmt.Sprintf("CmdType(%d)", byte(t))
}

// encode returns a command: the type byte, then body as JSON.
func encode(t CmdType, body any) []byte {
	b, err := json.Marshal(body)
	if err != nil {
		// Bodies are plain structs of strings and numbers.
		panic(fmt.Sprintf("monitoring: cannot encode %s: %v", t, err))
	}
	return append([]byte{byte(t)}, b...)
}

// decode splits a command into its type and JSON body.
func decode(data []byte) (CmdType, []byte, error) {
	if len(data) == 0 {
		return 0, nil, errors.New("empty command")
	}
	return CmdType(data[0]), data[1:], nil
}
