package cluster

// The Raft log and stable store on Badger.
//
// Layout. One Badger database per node holds three kinds of keys:
//
//	'l' + uint64 index, big-endian   a Raft log entry (iteration order = index order)
//	's' + raw key                    a stable-store value (current term, last vote...)
//	'm' + name                       the store's own bookkeeping (the pending-batch marker)
//
// Entries are encoded by hand (encodeLogEntry), prefixed with a version byte, and
// are stored inline in the LSM tree: Badger's ValueThreshold (1 MiB) is far above
// MaxCommandSize, so the value log stays empty and no value-log GC is needed.
//
// Atomicity of StoreLogs. A batch is written in one Badger transaction whenever it
// fits, which Badger makes atomic across a crash: on replay it drops a WAL tail
// that lacks the transaction's commit marker. A transaction holds at most 15% of
// a memtable (about 1.2 MiB with our 8 MiB memtables), but a Raft batch can be
// MaxAppendEntries (up to 1024) x MaxCommandSize, tens of MiB; growing memtables to
// fit would cost hundreds of MiB of RAM. So a batch that does not fit is written
// in several transactions, the first of which also records a pending-batch marker
// naming the batch's index range and the last of which deletes it. Open rolls
// back (deletes) the range of a marker it finds, and readers never see entries
// past the cached last index, so a batch is wholly present or wholly absent even
// if the process dies between its transactions.
//
// Tombstones. Raft deletes the head of the log after each snapshot. Badger writes
// a tombstone per key, and both the tombstones and the values they shadow stay on
// disk until a compaction merges them at the bottom of the tree, which leveled
// compaction does late or never for a small, append-only key range. RunGC
// therefore flattens the tree (db.Flatten) when enough has been deleted since the
// last run: every level is compacted into the last, where shadowed values and the
// tombstones themselves are dropped. The live log is small (TrailingLogs entries),
// so a flatten rewrites a few MiB. TestLogStore_DiskBounded writes 200,000
// entries of 1,000 random bytes (200 MB), with a snapshot every 10,000: disk
// use peaked at 58.4 MiB and ended at 34.7 MiB (2026-11-23, 2-core linux/amd64).
//
// Memory (Go heap in use, and RSS, of a process holding one open store, just
// opened / after writing and reading 100,000 entries of 1 KiB / idle 10 s
// later; TestLogStore_Memory, 2026-11-23, linux/amd64, without -race):
//
//	tuned options (badgerOptions):  heap 12 / 51 / 23 MiB, RSS 13 / 66 / 47 MiB
//	Badger defaults (+ SyncWrites): heap 85 / 94 / 94 MiB, RSS 13 / 115 / 115 MiB

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Key prefixes of the log store. Never reuse one for something else.
const (
	logStorePrefixLog    byte = 'l'
	logStorePrefixStable byte = 's'
	logStorePrefixMeta   byte = 'm'
)

// logEntryVersion is the first byte of every encoded log entry.
const logEntryVersion byte = 1

// logEntryHeaderSize is version, index, term, type and appended-at.
const logEntryHeaderSize = 1 + 8 + 8 + 1 + 8

// logStoreGCSlack is how much larger than the live entries the LSM tree may grow
// before RunGC flattens it. A flatten rewrites the whole tree, so it is worth it
// only once dead entries and tombstones take a good share of it; Badger's own
// compactions reclaim most of them anyway, given time.
const logStoreGCSlack = 16 << 20

// logStorePendingKey holds the index range of a batch being written in several
// transactions (see the package notes at the top of this file).
var logStorePendingKey = []byte{logStorePrefixMeta, 'p', 'e', 'n', 'd', 'i', 'n', 'g'}

// LogStore is the Raft log and stable store on Badger.
type LogStore struct {
	db     *badger.DB
	dir    string
	logger *slog.Logger

	// closeMu is held shared by every operation and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool

	// writeMu serialises writes so that the cached bounds match the disk.
	writeMu sync.Mutex
	// failed is set when a multi-transaction batch could not be rolled back;
	// the store then refuses writes until reopened (Open rolls it back).
	failed error
	// liveBytes is the size of the entries on disk (values only).
	liveBytes atomic.Int64

	// first and last cache the lowest and highest index on disk, 0 if empty.
	first atomic.Uint64
	last  atomic.Uint64

	// gcMu makes RunGC run one at a time.
	gcMu sync.Mutex

	// guard, if set, refuses appends and deletions when the disk is nearly
	// full (disk.go): Badger would crash on a full disk, not fail.
	guard *diskGuard

	// afterChunk, if set, is called after each intermediate commit of a batch
	// too large for one transaction. Tests use it to crash mid-batch.
	afterChunk func(commits int)
}

var (
	_ raft.LogStore    = (*LogStore)(nil)
	_ raft.StableStore = (*LogStore)(nil)
)

// OpenLogStore opens the log store in dir, creating it if needed, and rolls back
// a batch left half-written by a crash.
func OpenLogStore(dir string, logger *slog.Logger) (*LogStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return openLogStore(badgerOptions(dir, true, logger), logger)
}

// openLogStore opens the log store with the given Badger options.
func openLogStore(opts badger.Options, logger *slog.Logger) (*LogStore, error) {
	logger = logger.With("system", "raftlog")
	// Writes are serialised by the store: Badger need not detect conflicts.
	db, err := openBadger(opts.WithDetectConflicts(false).WithBlockCacheSize(4<<20), logger)
	if err != nil {
		return nil, fmt.Errorf("cannot open raft log store: %w", err)
	}
	s := &LogStore{db: db, dir: opts.Dir, logger: logger}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cannot open raft log store: %w", err)
	}
	return s, nil
}

// Close closes the store. It is safe to call twice.
func (s *LogStore) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cannot close raft log store: %w", err)
	}
	return nil
}

// acquire takes the shared close lock; it fails once the store is closed.
func (s *LogStore) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return fmt.Errorf("raft log store: %w", ErrClosed)
	}
	return nil
}

func (s *LogStore) release() { s.closeMu.RUnlock() }

// FirstIndex returns the first index written, 0 for an empty log.
func (s *LogStore) FirstIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	return s.first.Load(), nil
}

// LastIndex returns the last index written, 0 for an empty log.
func (s *LogStore) LastIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	return s.last.Load(), nil
}

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	// Entries outside the cached bounds are absent, or belong to a batch not yet
	// (or never to be) complete.
	if index == 0 || index < s.first.Load() || index > s.last.Load() {
		return raft.ErrLogNotFound
	}
	val, err := s.getValue(logEntryKey(index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("cannot read log entry %d: %w", index, err)
	}
	if err := decodeLogEntry(val, log); err != nil {
		return fmt.Errorf("cannot decode log entry %d: %w", index, err)
	}
	if log.Index != index {
		return fmt.Errorf("cannot decode log entry %d: holds index %d", index, log.Index)
	}
	return nil
}

// StoreLog stores one log entry.
func (s *LogStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores a batch of log entries, all of them or none.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode everything before writing anything.
	var size int
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("cannot store log entry: entry %d of the batch is nil", i)
		}
		size += encodedLogEntrySize(l)
	}
	buf := make([]byte, 0, size)
	vals := make([][]byte, len(logs))
	lo, hi := logs[0].Index, logs[0].Index
	for i, l := range logs {
		if l.Index == 0 {
			return fmt.Errorf("cannot store log entry: index 0 is not a valid index")
		}
		start := len(buf)
		buf = appendLogEntry(buf, l)
		vals[i] = buf[start:len(buf):len(buf)]
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}

	if err := s.guard.refuseLogWrite(); err != nil {
		return fmt.Errorf("cannot store %d log entries at %d: %w", len(logs), lo, err)
	}
	unlock, err := s.lockWrite()
	if err != nil {
		return err
	}
	defer unlock()

	err = s.storeOneTxn(logs, vals)
	if errors.Is(err, badger.ErrTxnTooBig) {
		err = s.storeChunked(logs, vals, lo, hi)
	}
	if err != nil {
		return fmt.Errorf("cannot store %d log entries at %d: %w", len(logs), lo, err)
	}
	if first := s.first.Load(); first == 0 || lo < first {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	s.liveBytes.Add(int64(len(buf)))
	return nil
}

// storeOneTxn writes the batch in a single transaction, or returns
// badger.ErrTxnTooBig having written nothing.
func (s *LogStore) storeOneTxn(logs []*raft.Log, vals [][]byte) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for i, l := range logs {
		if err := txn.Set(logEntryKey(l.Index), vals[i]); err != nil {
			return err
		}
	}
	return txn.Commit()
}

// storeChunked writes a batch too large for one transaction in several, under a
// pending-batch marker for [lo, hi] that only the last transaction removes.
func (s *LogStore) storeChunked(logs []*raft.Log, vals [][]byte, lo, hi uint64) error {
	w := s.newWriter()
	w.afterCommit = s.afterChunk
	defer w.discard()
	err := w.set(logStorePendingKey, encodePendingRange(lo, hi))
	for i := 0; err == nil && i < len(logs); i++ {
		err = w.set(logEntryKey(logs[i].Index), vals[i])
	}
	if err == nil {
		err = w.delete(logStorePendingKey)
	}
	if err == nil {
		err = w.commit()
	}
	if err == nil || w.commits == 0 {
		// Done, or failed before anything reached the disk.
		return err
	}
	w.discard()
	if rerr := s.rollbackPending(); rerr != nil {
		s.failed = rerr
		s.logger.Error("cannot roll back a partly written batch; refusing writes until reopened",
			"first", lo, "last", hi, "error", rerr)
	}
	return err
}

// lockWrite takes the close lock and the write lock, and refuses when the
// store is closed or a failed write left it needing a reopen. The caller
// defers the returned unlock.
func (s *LogStore) lockWrite() (unlock func(), err error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	if s.failed != nil {
		s.writeMu.Unlock()
		s.release()
		return nil, fmt.Errorf("raft log store needs reopening: %w", s.failed)
	}
	return func() { s.writeMu.Unlock(); s.release() }, nil
}

// DeleteRange deletes the entries with indexes in [min, max].
//
// It too is refused on a nearly full disk: a deletion writes tombstones, and
// a follower that truncated a conflicting tail and then could not store the
// new entries would leave Raft's idea of its last entry wrong.
func (s *LogStore) DeleteRange(minIdx, maxIdx uint64) error {
	if err := s.guard.refuseLogWrite(); err != nil {
		return fmt.Errorf("cannot delete log entries %d to %d: %w", minIdx, maxIdx, err)
	}
	unlock, err := s.lockWrite()
	if err != nil {
		return err
	}
	defer unlock()

	first, last := s.first.Load(), s.last.Load()
	if first == 0 || minIdx > maxIdx || minIdx > last || maxIdx < first {
		return nil
	}
	lo, hi := max(minIdx, first), min(maxIdx, last)
	// Delete a tail from its end inward, anything else from its start, so that
	// an interruption leaves the log without a hole.
	_, err = s.deleteIndexes(lo, hi, hi == last)
	if err != nil {
		if rerr := s.loadBounds(); rerr != nil {
			s.logger.Error("cannot reload log bounds", "error", rerr)
		}
		return fmt.Errorf("cannot delete log entries %d to %d: %w", lo, hi, err)
	}
	if lo == first && hi == last {
		s.first.Store(0)
		s.last.Store(0)
		return nil
	}
	if hi == last {
		newLast, err := s.seekIndex(lo-1, true)
		if err != nil {
			return fmt.Errorf("cannot find last log index: %w", err)
		}
		s.last.Store(newLast)
	}
	if lo == first {
		newFirst, err := s.seekIndex(hi+1, false)
		if err != nil {
			return fmt.Errorf("cannot find first log index: %w", err)
		}
		s.first.Store(newFirst)
	}
	return nil
}

// deleteIndexes deletes the entries present in [lo, hi], in ascending order or,
// if descending, in descending order, in as many transactions as needed. It
// returns how many it deleted.
func (s *LogStore) deleteIndexes(lo, hi uint64, descending bool) (int, error) {
	const round = 4096 // keys listed per read; a bound on memory only
	deleted := 0
	for lo <= hi {
		keys, size, err := s.listIndexes(lo, hi, descending, round)
		if err != nil || len(keys) == 0 {
			return deleted, err
		}
		w := s.newWriter()
		for _, k := range keys {
			if err = w.delete(k); err != nil {
				break
			}
		}
		if err == nil {
			err = w.commit()
		}
		w.discard()
		if err != nil {
			return deleted, err
		}
		deleted += len(keys)
		s.liveBytes.Add(-size)
		if len(keys) < round {
			return deleted, nil
		}
		next := binary.BigEndian.Uint64(keys[len(keys)-1][1:])
		if descending {
			if next == 0 {
				return deleted, nil
			}
			hi = next - 1
		} else {
			if next == ^uint64(0) {
				return deleted, nil
			}
			lo = next + 1
		}
	}
	return deleted, nil
}

// listIndexes returns the keys of up to limit entries present in [lo, hi], from
// lo upward or from hi downward, and the total size of their values.
func (s *LogStore) listIndexes(lo, hi uint64, descending bool, limit int) ([][]byte, int64, error) {
	var keys [][]byte
	var size int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Reverse:        descending,
			Prefix:         []byte{logStorePrefixLog},
		})
		defer it.Close()
		start, end := logEntryKey(lo), logEntryKey(hi)
		if descending {
			start, end = end, start
		}
		for it.Seek(start); it.Valid() && len(keys) < limit; it.Next() {
			k := it.Item().Key()
			if (!descending && bytes.Compare(k, end) > 0) || (descending && bytes.Compare(k, end) < 0) {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
			size += it.Item().ValueSize()
		}
		return nil
	})
	return keys, size, err
}

// seekIndex returns the first index at or above from (or, if descending, the
// last at or below it), or 0 if there is none.
func (s *LogStore) seekIndex(from uint64, descending bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Reverse:        descending,
			Prefix:         []byte{logStorePrefixLog},
		})
		defer it.Close()
		it.Seek(logEntryKey(from))
		if it.Valid() {
			idx = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		return nil
	})
	return idx, err
}

// loadBounds reads the first and last index from disk into the cache.
func (s *LogStore) loadBounds() error {
	first, err := s.seekIndex(0, false)
	if err != nil {
		return err
	}
	last, err := s.seekIndex(^uint64(0), true)
	if err != nil {
		return err
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// recover rolls back a batch left half-written, loads the bounds and measures
// the live entries.
func (s *LogStore) recover() error {
	if err := s.rollbackPending(); err != nil {
		return err
	}
	if err := s.loadBounds(); err != nil {
		return err
	}
	var size int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{logStorePrefixLog}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			size += it.Item().ValueSize()
		}
		return nil
	})
	s.liveBytes.Store(size)
	return err
}

// rollbackPending deletes the entries of a batch whose pending-batch marker is
// on disk, then the marker. It does nothing if there is no marker.
func (s *LogStore) rollbackPending() error {
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logStorePendingKey)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read pending batch: %w", err)
	}
	lo, hi, err := decodePendingRange(val)
	if err != nil {
		return err
	}
	n, err := s.deleteIndexes(lo, hi, true)
	if err != nil {
		return fmt.Errorf("cannot roll back pending batch %d to %d: %w", lo, hi, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(logStorePendingKey) }); err != nil {
		return fmt.Errorf("cannot clear pending batch: %w", err)
	}
	s.logger.Warn("rolled back a partly written log batch", "first", lo, "last", hi, "entries", n)
	return nil
}

// Set stores a stable-store value. It is never refused for lack of disk
// space: hashicorp/raft panics when it cannot store the current term, and
// the few bytes of a term or a vote fit the headroom kept under the floor.
func (s *LogStore) Set(key, val []byte) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	k := stableKey(key)
	v := bytes.Clone(val)
	if v == nil {
		v = []byte{}
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		return fmt.Errorf("cannot set stable key %q: %w", key, err)
	}
	return nil
}

// Get returns a stable-store value, or nil and ErrKeyNotFound (text "not
// found", which Raft compares) for a key never set.
func (s *LogStore) Get(key []byte) ([]byte, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	val, err := s.getValue(stableKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get stable key %q: %w", key, err)
	}
	if val == nil {
		val = []byte{}
	}
	return val, nil
}

// getValue returns a copy of the value at key, or badger.ErrKeyNotFound.
func (s *LogStore) getValue(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	return val, err
}

// SetUint64 stores a stable-store integer.
func (s *LogStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns a stable-store integer, or 0 and ErrKeyNotFound for a key
// never set.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("cannot get stable key %q: holds %d bytes, not a uint64", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

// DiskUsage returns the bytes of the files in the store's directory.
func (s *LogStore) DiskUsage() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by a compaction meanwhile
		}
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot measure raft log store: %w", err)
	}
	return total, nil
}

// RunGC reclaims the space of deleted entries if they take much of it. It
// returns at once if they do not, or if it is already running.
func (s *LogStore) RunGC() {
	if !s.gcMu.TryLock() {
		return
	}
	defer s.gcMu.Unlock()
	if err := s.acquire(); err != nil {
		return
	}
	defer s.release()

	tree, live := s.treeSize(), s.liveBytes.Load()
	if tree <= live+logStoreGCSlack {
		return
	}
	start := time.Now()
	if err := s.db.Flatten(1); err != nil {
		s.logger.Warn("cannot compact raft log store", "error", err)
		return
	}
	s.logger.Debug("compacted raft log store", "live_bytes", live,
		"tree_bytes_before", tree, "tree_bytes_after", s.treeSize(), "took", time.Since(start))
}

// treeSize returns the size of the LSM tree's tables.
func (s *LogStore) treeSize() int64 {
	var n int64
	for _, l := range s.db.Levels() {
		n += l.Size
	}
	return n
}

// logStoreWriter writes a sequence of changes in as few transactions as
// Badger accepts, committing one whenever the next change does not fit.
type logStoreWriter struct {
	db          *badger.DB
	txn         *badger.Txn
	commits     int
	afterCommit func(commits int)
}

func (s *LogStore) newWriter() *logStoreWriter {
	return &logStoreWriter{db: s.db, txn: s.db.NewTransaction(true)}
}

func (w *logStoreWriter) set(k, v []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (w *logStoreWriter) delete(k []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Delete(k) })
}

func (w *logStoreWriter) do(op func(*badger.Txn) error) error {
	err := op(w.txn)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	if err := w.txn.Commit(); err != nil {
		return err
	}
	w.commits++
	if w.afterCommit != nil {
		w.afterCommit(w.commits)
	}
	w.txn = w.db.NewTransaction(true)
	return op(w.txn) // a single change always fits an empty transaction
}

func (w *logStoreWriter) commit() error { return w.txn.Commit() }

func (w *logStoreWriter) discard() { w.txn.Discard() }

// logEntryKey returns the key of the log entry at index.
func logEntryKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = logStorePrefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// stableKey returns the key of a stable-store value.
func stableKey(key []byte) []byte {
	return append([]byte{logStorePrefixStable}, key...)
}

// encodedLogEntrySize is the exact length appendLogEntry adds.
func encodedLogEntrySize(l *raft.Log) int {
	return logEntryHeaderSize +
		uvarintLen(uint64(len(l.Data))) + len(l.Data) +
		uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
}

// appendLogEntry appends the encoding of l to b:
//
//	version(1) index(8) term(8) type(1) appendedAt(8, Unix ns, 0 = zero time)
//	len(data) uvarint, data, len(extensions) uvarint, extensions
func appendLogEntry(b []byte, l *raft.Log) []byte {
	b = append(b, logEntryVersion)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

// decodeLogEntry decodes b into l. The slices of l alias b.
func decodeLogEntry(b []byte, l *raft.Log) error {
	if len(b) < logEntryHeaderSize {
		return fmt.Errorf("entry of %d bytes is too short", len(b))
	}
	if b[0] != logEntryVersion {
		return fmt.Errorf("unknown entry version %d", b[0])
	}
	l.Index = binary.BigEndian.Uint64(b[1:])
	l.Term = binary.BigEndian.Uint64(b[9:])
	l.Type = raft.LogType(b[17])
	l.AppendedAt = time.Time{}
	if at := int64(binary.BigEndian.Uint64(b[18:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := b[logEntryHeaderSize:]
	var err error
	if l.Data, rest, err = cutLenPrefixed(rest); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if l.Extensions, rest, err = cutLenPrefixed(rest); err != nil {
		return fmt.Errorf("extensions: %w", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

// cutLenPrefixed splits a uvarint-length-prefixed field off b. An empty field
// is returned as nil.
func cutLenPrefixed(b []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errors.New("bad length")
	}
	b = b[k:]
	if n == 0 {
		return nil, b, nil
	}
	return b[:n:n], b[n:], nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// encodePendingRange and decodePendingRange encode the pending-batch marker.
func encodePendingRange(lo, hi uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, lo), hi)
}

func decodePendingRange(b []byte) (lo, hi uint64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("pending batch marker of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
}
