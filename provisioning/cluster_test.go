package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/provisioning"
)

// recordSM is a real state machine that keeps each command it applies.
type recordSM struct{}

func (recordSM) Apply(txn *badger.Txn, e cluster.Entry) ([]byte, error) {
	return nil, txn.Set([]byte("rec/"+e.ID), e.Data)
}
func (recordSM) Loaded(*badger.Txn) error { return nil }

func has(t *testing.T, n *cluster.Node, id string) bool {
	t.Helper()
	found := false
	if err := n.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("rec/" + id))
		found = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// The cluster port with this package's settings: three nodes of one CA
// form a cluster over mutual TLS and replicate; once the member check no
// longer allows a node, that node, restarted with its still-valid
// certificate, gets nothing more from the others.
func TestPeerTLS_OnTheClusterPort(t *testing.T) {
	ca := mustCA(t, "c-north")
	var mu sync.Mutex
	allowed := map[string]bool{"node-0": true, "node-1": true, "node-2": true}
	allow := func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		if !allowed[id] {
			return errors.New("not a current member")
		}
		return nil
	}
	i := 0
	c := clustertest.MustCluster(t, 3, func() recordSM { return recordSM{} }, func(cfg *cluster.Config) {
		cfg.NodeID = fmt.Sprintf("node-%d", i)
		cfg.ServerTLS, cfg.ClientTLS = provisioning.PeerTLS(ca, mustNode(t, ca, cfg.NodeID), allow)
		i++
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	follower := c.Node(c.Followers()[0])
	if _, err := follower.Apply(ctx, "first", []byte("through a follower")); err != nil {
		t.Fatalf("apply through a follower over mutual TLS: %v", err)
	}
	clustertest.PollUntil(t, 10*time.Second, "every node to apply the first command", func() bool {
		for j := range 3 {
			if !has(t, c.Node(j), "first") {
				return false
			}
		}
		return true
	})

	// Node 2 is removed from the member check (as removing it from the
	// cluster will do) and comes back with its certificate.
	lead := c.WaitForLeader()
	gone := c.Followers()[0]
	other := 3 - gone - lead
	mu.Lock()
	allowed[fmt.Sprintf("node-%d", gone)] = false
	mu.Unlock()
	c.Kill(gone)
	c.Restart(gone)
	if _, err := c.Node(lead).Apply(ctx, "second", []byte("after the removal")); err != nil {
		t.Fatalf("apply with two members: %v", err)
	}
	clustertest.PollUntil(t, 10*time.Second, "the remaining follower to apply the second command", func() bool {
		return has(t, c.Node(other), "second")
	})
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if has(t, c.Node(gone), "second") {
			t.Fatal("the refused node received a command")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
