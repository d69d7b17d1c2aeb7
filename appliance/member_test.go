package appliance

import (
	"log/slog"
	"testing"

	"github.com/vigilarc/vigil/cluster"
)

// The cluster port refuses a node this node has seen leave the cluster,
// and no other holder of the cluster CA's certificate: a node that is
// behind reads old configurations from its log, in which the newer
// members (the leader among them) are not yet, and must not refuse them.
// A removal seen before a restart still counts after it.
func TestMemberCheck_RefusesOnlyMembersSeenToLeave(t *testing.T) {
	dir := t.TempDir()
	var conf []cluster.Server
	configuration := func() ([]cluster.Server, error) { return conf, nil }
	members := func(ids ...string) []cluster.Server {
		var out []cluster.Server
		for _, id := range ids {
			out = append(out, cluster.Server{ID: id, Voter: true})
		}
		return out
	}
	check, _ := memberCheck(configuration, dir, slog.New(slog.DiscardHandler))
	// A node replaying the cluster's history: the first members, then a
	// replacement of n2, while the leader is n3-r1, added later still.
	for _, step := range []struct {
		conf []cluster.Server
		id   string
		ok   bool
	}{
		{nil, "anyone", true},                          // no configuration yet: joining
		{members("n1", "n2", "n3"), "n3-r1", true},     // a member newer than this log
		{members("n1", "n2", "n3"), "n2", true},        // a member
		{members("n1", "n2-r1", "n3"), "n2", false},    // n2 was removed
		{members("n1", "n2-r1", "n3"), "n3-r1", true},  // still newer than this log
		{members("n1", "n2-r1", "n3-r1"), "n3", false}, // n3 was replaced
		{members("n1", "n2-r1", "n3-r1"), "n3-r1", true},
	} {
		conf = step.conf
		if err := check(step.id); (err == nil) != step.ok {
			t.Fatalf("configuration %v, peer %s: %v, want allowed %v", step.conf, step.id, err, step.ok)
		}
	}
	// After a restart, with the latest configuration alone.
	check, _ = memberCheck(configuration, dir, slog.New(slog.DiscardHandler))
	for id, ok := range map[string]bool{"n2": false, "n3": false, "n1": true, "n4-new": true} {
		if err := check(id); (err == nil) != ok {
			t.Errorf("after a restart, peer %s: %v, want allowed %v", id, err, ok)
		}
	}
}
