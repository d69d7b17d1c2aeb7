package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// kvSM is a small real state machine for the cluster tests: "set K V" writes
// kv/K, "refuse R" is refused with reason R.
type kvSM struct {
	applies atomic.Int64 // commands the state machine itself applied
	loads   atomic.Int64
}

func newKV() *kvSM { return &kvSM{} }

func (s *kvSM) Apply(txn *badger.Txn, e cluster.Entry) ([]byte, error) {
	f := strings.SplitN(string(e.Data), " ", 3)
	switch {
	case len(f) == 3 && f[0] == "set":
		if err := txn.Set([]byte("kv/"+f[1]), []byte(f[2])); err != nil {
			return nil, err
		}
		s.applies.Add(1)
		return []byte(fmt.Sprintf("ok %d", e.Index)), nil
	case len(f) >= 2 && f[0] == "refuse":
		s.applies.Add(1)
		return nil, errors.New(strings.Join(f[1:], " "))
	}
	panic(fmt.Sprintf("kvSM: bad command %q", e.Data))
}

func (s *kvSM) Loaded(*badger.Txn) error {
	s.loads.Add(1)
	return nil
}

// mustCluster starts n nodes hosting a kvSM each (clustertest.MustCluster).
func mustCluster(t *testing.T, n int, tweak func(*cluster.Config)) *clustertest.Cluster[*kvSM] {
	t.Helper()
	return clustertest.MustCluster(t, n, newKV, tweak)
}

func kvGet(t *testing.T, n *cluster.Node, key string) (string, bool) {
	t.Helper()
	var v []byte
	err := n.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("kv/" + key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read %s on %s: %v", key, n.ID(), err)
	}
	return string(v), true
}

func kvCount(t *testing.T, n *cluster.Node) int {
	t.Helper()
	c := 0
	err := n.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("kv/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("count on %s: %v", n.ID(), err)
	}
	return c
}

// mustApply applies a set command through node n.
func mustApply(t *testing.T, n *cluster.Node, id, key, val string) cluster.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, id, []byte("set "+key+" "+val))
	if err != nil {
		t.Fatalf("apply %s on %s: %v", key, n.ID(), err)
	}
	return res
}
