package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// StateMachine is what the cluster replicates. It knows nothing of Raft: the
// host hands it each committed command, in log order, inside a Badger
// transaction that also records the applied index, so the state and the index
// it reflects are always written together.
//
// Apply must be deterministic: it may read and write txn and nothing else (no
// clock, no random source, no network). Keys beginning with byte 0xFF belong
// to the host and must not be touched. A non-nil error is a refusal: Apply
// must have written nothing to txn when it returns one; the refusal is
// recorded against the command ID and returned to the proposer as a
// *RefusedError. A state machine that cannot go on (corrupt state, an unknown
// mandatory command) panics, which stops the node rather than let it diverge.
type StateMachine interface {
	Apply(txn *badger.Txn, e Entry) ([]byte, error)

	// Loaded is called when the state has been opened, and again each time a
	// snapshot has replaced it, so that the state machine can rebuild
	// anything it keeps in memory.
	Loaded(txn *badger.Txn) error
}

// TxnObserver may be implemented by a StateMachine that holds side effects of
// Apply (such as events for subscribers) until they are durable in the state.
type TxnObserver interface {
	// Committed says that every entry applied since the last Committed or
	// Discarded call is now committed to the state.
	Committed()
	// Discarded says that those entries were thrown away and will be applied
	// again in a fresh transaction.
	Discarded()
}

// Entry is one committed command as the state machine sees it.
type Entry struct {
	Index uint64 // Raft log index
	Term  uint64 // Raft term
	ID    string // the proposer's command ID; empty when none was given
	Data  []byte // the command itself, opaque to the cluster
}

// RefusedError is a deterministic refusal by the state machine. Every node
// refuses the same command the same way; retrying it is pointless.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }

// Result is the outcome of a committed command.
type Result struct {
	Index     uint64 // log index at which the command was first applied
	Response  []byte // what the state machine returned
	Duplicate bool   // true when the command ID had been applied before
}

// Keys of the host inside the state database. All begin with 0xFF.
var (
	keyApplied  = []byte("\xffcluster/applied")
	prefixCmdID = []byte("\xffcluster/cmd/")
)

// Envelope kinds. This list is append-only: never renumber or reuse a kind.
// The high bit marks a kind that an older node may skip without diverging.
const (
	kindCommand  byte = 1
	kindIgnoreOK byte = 0x80
)

// envelopeVersion is the first byte of every Raft command Vigil writes.
const envelopeVersion byte = 1

// applyChunkEntries and applyChunkBytes bound how much one state transaction
// carries, well under Badger's transaction limit for the memtable size used.
const (
	applyChunkEntries = 256
	applyChunkBytes   = 256 << 10
)

func encodeEnvelope(id string, data []byte) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(id)+len(data))
	b = append(b, envelopeVersion, kindCommand)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	return append(b, data...)
}

func decodeEnvelope(b []byte) (kind byte, id string, data []byte, err error) {
	if len(b) < 2 {
		return 0, "", nil, fmt.Errorf("envelope too short: %d bytes", len(b))
	}
	if b[0] != envelopeVersion {
		return 0, "", nil, fmt.Errorf("unknown envelope version %d", b[0])
	}
	kind = b[1]
	n, w := binary.Uvarint(b[2:])
	if w <= 0 || uint64(len(b)-2-w) < n {
		return 0, "", nil, errors.New("envelope command ID is truncated")
	}
	rest := b[2+w:]
	return kind, string(rest[:n]), rest[n:], nil
}

// cmdRecord is what the host keeps per command ID so a replay returns the
// original result.
func encodeCmdRecord(index uint64, resp []byte, refused string) []byte {
	b := binary.AppendUvarint(nil, index)
	b = binary.AppendUvarint(b, uint64(len(refused)))
	b = append(b, refused...)
	return append(b, resp...)
}

func decodeCmdRecord(b []byte) (index uint64, resp []byte, refused string, err error) {
	index, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, "", errors.New("corrupt command record")
	}
	n, w2 := binary.Uvarint(b[w:])
	if w2 <= 0 || uint64(len(b)-w-w2) < n {
		return 0, nil, "", errors.New("corrupt command record")
	}
	rest := b[w+w2:]
	return index, append([]byte(nil), rest[n:]...), string(rest[:n]), nil
}

// applyOutcome is what the FSM hands back through raft's ApplyFuture.
type applyOutcome struct {
	result  Result
	refused string
}

// fsm hosts a StateMachine on a Badger database for hashicorp/raft. It only
// delegates: decoding, idempotency by command ID, the applied index and
// snapshots are generic; meaning belongs to the StateMachine.
type fsm struct {
	db *badger.DB
	sm StateMachine

	applied atomic.Uint64 // last index applied and committed to the state

	mu      sync.Mutex
	waiters chan struct{} // closed and replaced whenever applied advances
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(db *badger.DB, sm StateMachine) (*fsm, error) {
	f := &fsm{db: db, sm: sm, waiters: make(chan struct{})}
	err := db.View(func(txn *badger.Txn) error {
		idx, err := readApplied(txn)
		if err != nil {
			return err
		}
		f.applied.Store(idx)
		return sm.Loaded(txn)
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load state: %w", err)
	}
	return f, nil
}

func readApplied(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(keyApplied)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read applied index: %w", err)
	}
	var idx uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("applied index has %d bytes", len(v))
		}
		idx = binary.BigEndian.Uint64(v)
		return nil
	})
	return idx, err
}

// Applied returns the index of the last entry applied to the state.
func (f *fsm) Applied() uint64 { return f.applied.Load() }

// waitApplied blocks until the state has applied index or done is closed.
func (f *fsm) waitApplied(done <-chan struct{}, index uint64) bool {
	for {
		f.mu.Lock()
		ch := f.waiters
		f.mu.Unlock()
		if f.applied.Load() >= index {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return f.applied.Load() >= index
		}
	}
}

func (f *fsm) setApplied(idx uint64) {
	f.applied.Store(idx)
	f.mu.Lock()
	close(f.waiters)
	f.waiters = make(chan struct{})
	f.mu.Unlock()
}

// Apply implements raft.FSM for a single entry.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: many committed entries, few state
// transactions. Each chunk commits with the applied index of its last entry.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	for start := 0; start < len(logs); {
		end, size := start, 0
		for end < len(logs) && end-start < applyChunkEntries && (size < applyChunkBytes || end == start) {
			size += len(logs[end].Data)
			end++
		}
		for {
			err := f.applyChunk(logs[start:end], out[start:end])
			if err == nil {
				break
			}
			if errors.Is(err, badger.ErrTxnTooBig) && end-start > 1 {
				end = start + (end-start)/2
				continue
			}
			// The state cannot be written: going on would diverge.
			panic(fmt.Sprintf("cluster: cannot apply entries %d-%d: %v", logs[start].Index, logs[end-1].Index, err))
		}
		start = end
	}
	return out
}

func (f *fsm) applyChunk(logs []*raft.Log, out []interface{}) error {
	obs, _ := f.sm.(TxnObserver)
	txn := f.db.NewTransaction(true)
	defer txn.Discard()
	applied := f.applied.Load()
	last := applied
	for i, l := range logs {
		out[i] = nil
		if l.Index <= applied {
			continue // already in the state: a restart replaying the log tail
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		res, err := f.applyOne(txn, l)
		if err != nil {
			if obs != nil {
				obs.Discarded()
			}
			return err
		}
		out[i] = res
	}
	if last == applied {
		return nil
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], last)
	err := txn.Set(keyApplied, b[:])
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		if obs != nil {
			obs.Discarded()
		}
		return err
	}
	f.setApplied(last)
	if obs != nil {
		obs.Committed()
	}
	return nil
}

func (f *fsm) applyOne(txn *badger.Txn, l *raft.Log) (*applyOutcome, error) {
	kind, id, data, err := decodeEnvelope(l.Data)
	if err != nil {
		panic(fmt.Sprintf("cluster: entry %d: %v", l.Index, err))
	}
	if kind != kindCommand {
		if kind&kindIgnoreOK != 0 {
			return nil, nil
		}
		panic(fmt.Sprintf("cluster: entry %d has unknown kind %d: this node is older than the cluster; upgrade it", l.Index, kind))
	}
	var cmdKey []byte
	if id != "" {
		cmdKey = append(append([]byte(nil), prefixCmdID...), id...)
		item, err := txn.Get(cmdKey)
		switch {
		case err == nil:
			var o applyOutcome
			err = item.Value(func(v []byte) error {
				var derr error
				o.result.Index, o.result.Response, o.refused, derr = decodeCmdRecord(v)
				return derr
			})
			o.result.Duplicate = true
			return &o, err
		case !errors.Is(err, badger.ErrKeyNotFound):
			return nil, err
		}
	}
	resp, aerr := f.sm.Apply(txn, Entry{Index: l.Index, Term: l.Term, ID: id, Data: data})
	o := &applyOutcome{result: Result{Index: l.Index, Response: resp}}
	if aerr != nil {
		if errors.Is(aerr, badger.ErrTxnTooBig) {
			return nil, aerr
		}
		o.result.Response = nil
		o.refused = aerr.Error()
	}
	if cmdKey != nil {
		if err := txn.Set(cmdKey, encodeCmdRecord(l.Index, o.result.Response, o.refused)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Snapshot implements raft.FSM. It runs between applies, so a read
// transaction opened here sees exactly the state at the applied index. The
// state database is synced first: the log below this index may be truncated
// once the snapshot is persisted, so the state must not depend on it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.db.Sync(); err != nil {
		return nil, fmt.Errorf("cannot sync state: %w", err)
	}
	return &fsmSnapshot{txn: f.db.NewTransaction(false)}, nil
}

// Restore implements raft.FSM: wipe the state, then load the snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.DropAll(); err != nil {
		return fmt.Errorf("cannot wipe state: %w", err)
	}
	if err := readSnapshot(rc, f.db); err != nil {
		return fmt.Errorf("cannot restore snapshot: %w", err)
	}
	if err := f.db.Sync(); err != nil {
		return fmt.Errorf("cannot sync restored state: %w", err)
	}
	var idx uint64
	err := f.db.View(func(txn *badger.Txn) error {
		var err error
		if idx, err = readApplied(txn); err != nil {
			return err
		}
		return f.sm.Loaded(txn)
	})
	if err != nil {
		return err
	}
	f.setApplied(idx)
	return nil
}

// CommandApplied reports whether the command with ID id has been applied to
// the state txn reads. A state machine's caller that refuses from its local
// state before proposing (an action on a session that has ended) asks this
// first: a resend of a command that was applied must get the first result,
// which Apply returns, and not a refusal made from the state the command
// itself produced.
func CommandApplied(txn *badger.Txn, id string) (bool, error) {
	_, err := txn.Get(append(append([]byte(nil), prefixCmdID...), id...))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, err
}
