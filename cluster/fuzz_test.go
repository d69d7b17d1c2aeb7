package cluster

// Fuzz targets for what the cluster decodes: the command envelope of every
// Raft entry, the record kept per command ID, and the snapshot stream a
// node restores from. Their corpora are in testdata/fuzz; `make fuzz` runs
// them for longer.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// An envelope that decodes is a command ID and data within the entry, and
// one made from them decodes to the same; a refusal says why.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope("dev/d1/a-0001", []byte(`{"alarm_type":"red_alert"}`)))
	f.Add(encodeEnvelope("", []byte{7, '{', '}'}))
	f.Add(encodeEnvelope("x", nil))
	f.Add([]byte{envelopeVersion, kindIgnoreOK | 3, 0})
	f.Add([]byte{envelopeVersion, kindCommand, 0x80, 0x00, 'a'}) // a length written long
	f.Add([]byte{envelopeVersion, kindCommand, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, id, data, err := decodeEnvelope(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal without a reason")
			}
			return
		}
		if b[0] != envelopeVersion || kind != b[1] || len(id)+len(data) > len(b)-2 {
			t.Fatalf("%x decoded as kind %d, ID %q, data %x", b, kind, id, data)
		}
		k2, id2, data2, err := decodeEnvelope(encodeEnvelope(id, data))
		if err != nil || k2 != kindCommand || id2 != id || !bytes.Equal(data2, data) {
			t.Fatalf("ID %q and data %x, encoded again, decode as %d %q %x, %v", id, data, k2, id2, data2, err)
		}
	})
}

// A command record that decodes reads the same when encoded again.
func FuzzDecodeCmdRecord(f *testing.F) {
	f.Add(encodeCmdRecord(42, []byte(`{"alarm_id":"7d4c"}`), ""))
	f.Add(encodeCmdRecord(1<<40, nil, "session_ended: the session has ended"))
	f.Add([]byte{0x80})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		index, resp, refused, err := decodeCmdRecord(b)
		if err != nil {
			return
		}
		i2, r2, ref2, err := decodeCmdRecord(encodeCmdRecord(index, resp, refused))
		if err != nil || i2 != index || !bytes.Equal(r2, resp) || ref2 != refused {
			t.Fatalf("record %d %x %q, encoded again, decodes as %d %x %q, %v", index, resp, refused, i2, r2, ref2, err)
		}
	})
}

// nopSM is a StateMachine that holds nothing: Restore's own work is what
// FuzzRestore exercises.
type nopSM struct{ loaded int }

func (s *nopSM) Apply(*badger.Txn, Entry) ([]byte, error) { return nil, nil }
func (s *nopSM) Loaded(*badger.Txn) error                 { s.loaded++; return nil }

// fuzzFSM opens a state database in a temporary directory, as a node
// does, with an fsm on it.
func fuzzFSM(f testing.TB) (*fsm, *badger.DB) {
	f.Helper()
	db, err := openBadger(badgerOptions(f.TempDir(), false, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	m, err := newFSM(db, &nopSM{})
	if err != nil {
		f.Fatal(err)
	}
	return m, db
}

// snapshotOf is the snapshot stream of db's state.
func snapshotOf(tb testing.TB, db *badger.DB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	txn := db.NewTransaction(false)
	defer txn.Discard()
	if err := writeSnapshot(txn, &buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// A snapshot a node restores from comes from its leader, over the network;
// a bad one must be refused, never crash the node. One that is taken
// leaves a state whose snapshot restores to itself, byte for byte, with
// the applied index it carries.
func FuzzRestore(f *testing.F) {
	m, db := fuzzFSM(f)
	err := db.Update(func(txn *badger.Txn) error {
		var idx [8]byte
		binary.BigEndian.PutUint64(idx[:], 1234)
		for k, v := range map[string][]byte{
			string(keyApplied):                    idx[:],
			string(prefixCmdID) + "dev/d1/a-0001": encodeCmdRecord(1200, []byte(`{"alarm_id":"7d4c"}`), ""),
			"alarm/7d4c":                          []byte(`{"id":"7d4c","type":"red_alert"}`),
			"z":                                   nil,
		} {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	full := snapshotOf(f, db)
	f.Add(full)
	f.Add(full[:len(full)-3])                                                     // cut short
	f.Add(append(append([]byte(nil), full[:len(full)-1]...), ^full[len(full)-1])) // checksum wrong
	f.Add(append(append([]byte(nil), snapMagic...), snapVersion, 0, 0, 0, 0, 0))
	for _, b := range corruptLengths() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := m.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			if errors.Is(err, badger.ErrDBClosed) {
				t.Fatal(err)
			}
			return
		}
		var applied uint64
		if err := db.View(func(txn *badger.Txn) (err error) { applied, err = readApplied(txn); return }); err != nil {
			t.Fatalf("restored a state whose applied index cannot be read: %v", err)
		}
		if m.Applied() != applied {
			t.Fatalf("applied %d after the restore, the state says %d", m.Applied(), applied)
		}
		s1 := snapshotOf(t, db)
		if err := m.Restore(io.NopCloser(bytes.NewReader(s1))); err != nil {
			t.Fatalf("the snapshot of a restored state is refused: %v", err)
		}
		if s2 := snapshotOf(t, db); !bytes.Equal(s1, s2) {
			t.Fatalf("the snapshot of a restored state restores to another state:\n%x\n%x", s1, s2)
		}
	})
}

// corruptLengths are snapshot streams whose lengths promise more than they
// hold: a key of 4 GiB, values of 1 TiB and of 2^63 bytes.
func corruptLengths() [][]byte {
	head := append(append([]byte(nil), snapMagic...), snapVersion)
	rec := func(klen, vlen uint64) []byte {
		b := binary.AppendUvarint(append([]byte(nil), head...), klen)
		b = append(b, bytes.Repeat([]byte("k"), int(min(klen, 3)))...)
		return append(binary.AppendUvarint(b, vlen), "short"...)
	}
	return [][]byte{rec(1<<32, 1), rec(1, 1<<40), rec(1, 1<<63)}
}

// A snapshot whose lengths are corrupt is refused at the end of its bytes.
// Before, a length of 2^63 made the node panic in make, and one of 4 GiB
// allocated it.
func TestRestore_CorruptLengthsRefused(t *testing.T) {
	m, _ := fuzzFSM(t)
	for _, b := range corruptLengths() {
		if err := m.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
			t.Fatalf("restored %x", b)
		}
	}
}
