package cluster

import (
	"context"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Badger's defaults (64 MiB memtables x 5, a 256 MiB block cache) suit a
// database server, not a small appliance holding a Raft log and the alarm
// state. These are the sizes Vigil opens both databases with.
const (
	// DefaultBadgerMemTableSize is the size of one memtable.
	DefaultBadgerMemTableSize = 8 << 20
	// DefaultBadgerNumMemtables is how many memtables may be held at once.
	DefaultBadgerNumMemtables = 2
	// DefaultBadgerBlockCacheSize is the block cache (used with compression).
	DefaultBadgerBlockCacheSize = 16 << 20
	// DefaultBadgerIndexCacheSize bounds the table index cache.
	DefaultBadgerIndexCacheSize = 8 << 20
	// DefaultBadgerValueLogFileSize is the size of one value log file, the
	// smallest Badger accepts. Values under ValueThreshold (1 MiB, far above
	// any command) live in the LSM tree, so the value log stays empty; but
	// Badger maps its file at twice this size, which at 64 MiB made an empty
	// value log 128 MiB of the log store's disk use.
	DefaultBadgerValueLogFileSize = 1 << 20
	// DefaultBadgerBaseTableSize is the size of an L0/L1 table.
	DefaultBadgerBaseTableSize = 2 << 20
)

// badgerOptions returns the options Vigil opens a Badger database with.
// syncWrites makes every commit fsync before it returns.
func badgerOptions(dir string, syncWrites bool, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(syncWrites).
		WithMemTableSize(DefaultBadgerMemTableSize).
		WithNumMemtables(DefaultBadgerNumMemtables).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(DefaultBadgerBaseTableSize).
		WithBaseLevelSize(8 << 20).
		WithBlockCacheSize(DefaultBadgerBlockCacheSize).
		WithIndexCacheSize(DefaultBadgerIndexCacheSize).
		WithValueLogFileSize(DefaultBadgerValueLogFileSize).
		WithNumCompactors(2).
		WithCompression(options.Snappy).
		WithNumGoroutines(4).
		WithLogger(badgerLogger{logger})
}

// badgerLogger adapts slog to Badger's logger interface. Badger's info
// messages (replays, compactions) are logged at debug level.
// (Badger's WithLoggingLevel would replace this logger with its own.)
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a...) }

func (b badgerLogger) log(level slog.Level, f string, a ...any) {
	if b.l == nil || !b.l.Enabled(context.Background(), level) {
		return // and skip formatting: Badger logs at debug level on every write
	}
	b.l.Log(context.Background(), level, sprintfTrim(f, a...), "system", "badger")
}
