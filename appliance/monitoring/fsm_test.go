package monitoring

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

func mustOpenDB(t testing.TB) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatalf("open badger: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustApply applies one entry in its own transaction, committing it unless
// the FSM refused it, and returns the refusal.
func mustApply(t *testing.T, db *badger.DB, f *FSM, index uint64, data []byte) error {
	t.Helper()
	txn := db.NewTransaction(true)
	defer txn.Discard()
	_, err := f.Apply(txn, cluster.Entry{Index: index, Term: 1, ID: fmt.Sprintf("cmd-%d", index), Data: data})
	if err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return nil
}

func mustRecords(t *testing.T, db *badger.DB, prefix string) []DiagRecord {
	t.Helper()
	var out []DiagRecord
	err := db.View(func(txn *badger.Txn) error {
		var err error
		out, err = DiagRecords(txn, prefix)
		return err
	})
	if err != nil {
		t.Fatalf("DiagRecords(%q): %v", prefix, err)
	}
	return out
}

func TestFSM_DiagRecordAppends(t *testing.T) {
	db := mustOpenDB(t)
	f := NewFSM()
	for i, c := range []struct{ key, value string }{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		if err := mustApply(t, db, f, uint64(10+i), EncodeDiagRecord(c.key, c.value)); err != nil {
			t.Fatalf("apply %v: %v", c, err)
		}
	}
	got := mustRecords(t, db, "")
	want := []DiagRecord{{"a", "1", 10}, {"a", "3", 12}, {"b", "2", 11}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records = %v, want %v", got, want)
	}
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("diag/a/00000000000000000012"))
		return err
	})
	if err != nil {
		t.Fatalf("record is not at its documented key: %v", err)
	}
}

func TestFSM_SameCommandTwiceLeavesTwoRecords(t *testing.T) {
	// The journal appends so that a command applied twice is visible; the
	// cluster's command-ID deduplication is what must prevent it.
	db := mustOpenDB(t)
	f := NewFSM()
	cmd := EncodeDiagRecord("k", "v")
	for _, idx := range []uint64{5, 6} {
		if err := mustApply(t, db, f, idx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustRecords(t, db, "k"); len(got) != 2 {
		t.Fatalf("got %d records, want 2: %v", len(got), got)
	}
}

func TestFSM_DiagRecordsPrefix(t *testing.T) {
	db := mustOpenDB(t)
	f := NewFSM()
	for i, k := range []string{"cmd-0001", "cmd-0002", "cmd-0010", "other"} {
		if err := mustApply(t, db, f, uint64(i+1), EncodeDiagRecord(k, "")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   int
	}{
		{"", 4},
		{"cmd-", 3},
		{"cmd-000", 2},
		{"cmd-0001", 1},
		{"cmd-0001/", 1},
		{"nothing", 0},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			if got := mustRecords(t, db, tc.prefix); len(got) != tc.want {
				t.Fatalf("DiagRecords(%q) returned %d records, want %d: %v", tc.prefix, len(got), tc.want, got)
			}
		})
	}
}

func TestFSM_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    []byte
		field   string // the FieldError's field, or "" for ErrMalformedCommand
		message string // a part of the message
	}{
		{"empty key", EncodeDiagRecord("", "v"), "key", "key must not be empty"},
		{"key too long", EncodeDiagRecord(strings.Repeat("x", MaxDiagKeyLen+1), "v"), "key", "201 bytes"},
		{"key with slash", EncodeDiagRecord("a/b", "v"), "key", "must not contain '/'"},
		{"empty command", nil, "", "empty command"},
		{"bad json", append([]byte{byte(CmdDiagRecord)}, `{"key":`...), "", "CmdDiagRecord"},
		{"wrong json type", append([]byte{byte(CmdDiagRecord)}, `{"key":1}`...), "", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpenDB(t)
			txn := db.NewTransaction(true)
			defer txn.Discard()
			_, err := NewFSM().Apply(txn, cluster.Entry{Index: 1, Data: tc.data})
			if err == nil {
				t.Fatal("Apply accepted the command; want a refusal")
			}
			var fe *FieldError
			switch {
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("error %q is not a FieldError for %q", err, tc.field)
			case tc.field == "" && !errors.Is(err, ErrMalformedCommand):
				t.Fatalf("error %q is not ErrMalformedCommand", err)
			case !strings.Contains(err.Error(), tc.message):
				t.Fatalf("error %q does not contain %q", err, tc.message)
			}
			// A refusal must have written nothing.
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
			if n := mustCountKeys(t, db); n != 0 {
				t.Fatalf("refused command wrote %d keys", n)
			}
		})
	}
}

func TestFSM_KeyLimitIsInclusive(t *testing.T) {
	db := mustOpenDB(t)
	if err := mustApply(t, db, NewFSM(), 1, EncodeDiagRecord(strings.Repeat("x", MaxDiagKeyLen), "v")); err != nil {
		t.Fatalf("a key of exactly %d bytes was refused: %v", MaxDiagKeyLen, err)
	}
}

func TestFSM_UnknownCommandPanics(t *testing.T) {
	db := mustOpenDB(t)
	txn := db.NewTransaction(true)
	defer txn.Discard()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("Apply did not panic on an unknown command type")
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, "unknown command type 200") || !strings.Contains(msg, "entry 7") {
			t.Fatalf("panic message %q does not name the type and the entry", msg)
		}
	}()
	NewFSM().Apply(txn, cluster.Entry{Index: 7, Data: []byte{200, '{', '}'}})
}

func TestFSM_Deterministic(t *testing.T) {
	// Two replicas applying the same log end with identical state.
	log := [][]byte{
		EncodeDiagRecord("a", "1"),
		EncodeDiagRecord("", "refused"),
		EncodeDiagRecord("b", "ünïcode"),
		EncodeDiagRecord("a", "1"),
	}
	dump := func() string {
		db := mustOpenDB(t)
		f := NewFSM()
		for i, c := range log {
			_ = mustApply(t, db, f, uint64(i+1), c)
		}
		var sb strings.Builder
		db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.DefaultIteratorOptions)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, _ := it.Item().ValueCopy(nil)
				fmt.Fprintf(&sb, "%s=%s\n", it.Item().Key(), v)
			}
			return nil
		})
		return sb.String()
	}
	if a, b := dump(), dump(); a != b || a == "" {
		t.Fatalf("replicas differ:\n%s\n---\n%s", a, b)
	}
}

func mustCountKeys(t *testing.T, db *badger.DB) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
