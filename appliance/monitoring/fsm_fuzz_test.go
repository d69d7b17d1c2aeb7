package monitoring

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
)

// stateHash is a digest of every key and value txn sees, its own writes
// included.
func stateHash(tb testing.TB, txn *badger.Txn) []byte {
	tb.Helper()
	h := sha256.New()
	it := txn.NewIterator(badger.DefaultIteratorOptions)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			tb.Fatal(err)
		}
		h.Write(it.Item().Key())
		h.Write([]byte{0})
		h.Write(v)
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// Every node applies every committed command, so a command body that
// makes Apply panic stops the whole cluster at once. On a state of a few
// organisations, workers, devices, alarms and sessions (the determinism
// generator's), any body of any known command type is applied or refused,
// never a panic; a refusal leaves the transaction untouched, as Apply
// promises; and the same command applied twice to the same state gives the
// same answer. The seeds are the generator's own commands.
func FuzzApply(f *testing.F) {
	g := &gen{t: f, r: rand.New(rand.NewPCG(7, 8)), now: t0, a: newReplica(f)}
	g.setup()
	for range 60 {
		g.step()
	}
	for _, c := range g.cmds {
		f.Add(c.data)
	}
	f.Add([]byte{byte(CmdRaiseAlarm), '{', '}'})
	f.Add([]byte{byte(CmdDeviceStatus), 'n', 'u', 'l', 'l'})
	db, fsm := g.a.db, g.a.f
	var before []byte
	if err := db.View(func(txn *badger.Txn) error { before = stateHash(f, txn); return nil }); err != nil {
		f.Fatal(err)
	}
	index := uint64(len(g.cmds) + 1)
	apply := func(t *testing.T, data []byte) (string, bool) {
		txn := db.NewTransaction(true)
		defer txn.Discard()
		defer fsm.Discarded()
		resp, err := fsm.Apply(txn, cluster.Entry{Index: index, Term: 1, ID: "fuzz", Data: data})
		if err != nil {
			if h := stateHash(t, txn); !bytes.Equal(h, before) {
				t.Fatalf("refused (%v), but the transaction was written to", err)
			}
			return err.Error(), false
		}
		return string(resp), true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 {
			if _, known := handlers[CmdType(data[0])]; !known && CmdType(data[0]) != CmdDiagRecord {
				return // an unknown type stops the node on purpose (TestFSM_UnknownCommandPanics)
			}
			if _, _, newer := rulesTooNew(CmdType(data[0]), data[1:]); newer {
				return // so do rules newer than the node's (TestFSM_NewerRulesPanic)
			}
		}
		out1, ok1 := apply(t, data)
		out2, ok2 := apply(t, data)
		if out1 != out2 || ok1 != ok2 {
			t.Fatalf("the same command on the same state: %v %q, then %v %q", ok1, out1, ok2, out2)
		}
	})
}
