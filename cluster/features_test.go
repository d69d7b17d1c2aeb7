package cluster_test

import (
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster/clustertest"
)

// Each node reports the features its build knows with its status; a node
// asks for the newest version every member knows, taking a member that
// reports none (an older build) to know the baseline, and one that
// reports others but not this one to know none of it.
func TestFeatureFloor_TheLeastEveryMemberKnows(t *testing.T) {
	c := mustCluster(t, 3, nil)
	c.WaitForLeader()
	n0, n1, n2 := c.Node(0), c.Node(1), c.Node(2)
	n0.SetFeatures(map[string]int{"rules/9": 3, "rules/11": 2})
	n1.SetFeatures(map[string]int{"rules/9": 2, "rules/11": 2})
	// n2 reports nothing: a build from before the features.
	clustertest.PollUntil(t, 10*time.Second, "the first node to hear the second's features", func() bool {
		for _, m := range n0.Status().Members {
			if m.ID == n1.ID() && m.Features["rules/9"] == 2 {
				return true
			}
		}
		return false
	})
	clustertest.PollUntil(t, 10*time.Second, "every member heard from", func() bool {
		_, known := n0.FeatureFloor("rules/9", 3, 1)
		return known
	})
	if got, _ := n0.FeatureFloor("rules/9", 3, 1); got != 1 {
		t.Errorf("with a member reporting nothing: floor %d, want the baseline 1", got)
	}
	n2.SetFeatures(map[string]int{"rules/9": 3})
	clustertest.PollUntil(t, 10*time.Second, "every member's features heard", func() bool {
		got, _ := n0.FeatureFloor("rules/9", 3, 1)
		return got == 2
	})
	if got, _ := n0.FeatureFloor("rules/11", 2, 1); got != 0 {
		t.Errorf("a member reporting features without rules/11: floor %d, want 0", got)
	}
	n1.SetFeatures(map[string]int{"rules/9": 4, "rules/11": 2})
	clustertest.PollUntil(t, 10*time.Second, "the upgraded member heard", func() bool {
		got, _ := n0.FeatureFloor("rules/9", 3, 1)
		return got == 3 // never above this build's own
	})

	// What the peers reported is kept: after a restart, with a peer down,
	// the node still knows what that peer can apply.
	c.Stop(2)
	c.Stop(0)
	n0 = c.Restart(0)
	got, known := n0.FeatureFloor("rules/9", 3, 1)
	if !known || got != 3 {
		t.Errorf("after a restart with node 3 down: floor %d, every member known %v; want 3 from what they last reported", got, known)
	}
}
