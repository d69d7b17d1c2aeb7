package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// WaitReplicas returns once every voter has applied what the caller's node
// has, so a read on any node right after sees the write; with a voter down
// it does not wait for it, and it says how many have the write.
func TestWaitReplicas_AllThenQuorum(t *testing.T) {
	c := mustCluster(t, 3, nil)
	l := c.WaitForLeader()
	via := c.Node(c.Followers()[0])
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		mustApply(t, via, "w-"+key, key, "v")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, of := via.WaitReplicas(ctx)
		cancel()
		if got != 3 || of != 3 {
			t.Fatalf("write %d: %d of %d voters have it, want 3 of 3", i, got, of)
		}
		for j := range c.Len() {
			if _, ok := kvGet(t, c.Node(j), key); !ok {
				t.Fatalf("write %d: node %d does not have %s right after WaitReplicas", i, j, key)
			}
		}
	}

	down := c.Followers()[1]
	if c.Node(down) == via {
		down = c.Followers()[0]
	}
	c.Kill(down)
	mustApply(t, c.Node(l), "w-after", "after", "v")
	for i := range 3 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		got, of := c.Node(l).WaitReplicas(ctx)
		cancel()
		if got != 2 || of != 3 {
			t.Fatalf("round %d with node %d down: %d of %d, want 2 of 3", i, down, got, of)
		}
		if el := time.Since(start); i > 0 && el > 100*time.Millisecond {
			// The first call may spend the bound finding the node gone;
			// the next ones skip it.
			t.Fatalf("round %d: WaitReplicas took %s with a node known down", i, el)
		}
	}
}
