package cluster

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A crash between creating a memtable or value log file and writing it
// leaves a 0-byte file; Badger alone then refuses to open the directory
// (dgraph-io/badger#2207). openBadger removes such files and opens, with
// everything written before still there.
func TestOpenBadger_EmptyFilesLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	opts := badgerOptions(dir, true, logger)
	db, err := openBadger(opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00042.mem", "000042.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if db, err := badger.Open(opts); err == nil {
		db.Close()
		t.Logf("Badger opened the directory with empty files itself: the upstream fix has landed")
	} else {
		t.Logf("Badger alone: %v", err)
	}
	for _, name := range []string{"00042.mem", "000042.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	db, err = openBadger(opts, logger)
	if err != nil {
		t.Fatalf("openBadger with empty files left by a crash: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if string(v) != "v" {
				t.Errorf("k = %q, want v", v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read after reopening: %v", err)
	}
}
