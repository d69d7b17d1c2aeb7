package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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

// openBadger opens a Badger database after removing the empty write-ahead
// files a crash can leave behind.
//
// Badger creates a memtable's .mem file (and a value log's .vlog file)
// before it sizes and writes it. A process killed in between leaves a file
// of 0 bytes, and Badger v4.9 then fails to open the directory ("while
// opening fid: N err: Create a new file": dgraph-io/badger#2207, fix
// proposed in #2331). The failed open sizes the file, so a second start
// would succeed; but a node SIGKILLed at the wrong moment failed its first
// restart. Found by TestLogStore_CrashMidBatch, which kills a writer at
// random moments. A 0-byte file holds no entry, not even its header, so
// removing it loses nothing.
func openBadger(opts badger.Options, logger *slog.Logger) (*badger.DB, error) {
	if err := removeEmptyWALs(opts.Dir, logger); err != nil {
		return nil, err
	}
	if opts.ValueDir != opts.Dir {
		if err := removeEmptyWALs(opts.ValueDir, logger); err != nil {
			return nil, err
		}
	}
	return badger.Open(opts)
}

// removeEmptyWALs removes the 0-byte .mem and .vlog files in dir.
func removeEmptyWALs(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot list %s: %w", dir, err)
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (!strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog")) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("cannot remove the empty file %s left by a crash: %w", name, err)
		}
		logger.Warn("removed an empty Badger file left by a crash", "dir", dir, "file", name)
		removed++
	}
	if removed > 0 {
		return syncDir(dir)
	}
	return nil
}

// syncDir makes the removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
