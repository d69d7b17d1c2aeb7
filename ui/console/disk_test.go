package console_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring/monitoringtest"
	"github.com/vigilarc/vigil/cluster/clustertest"
	"github.com/vigilarc/vigil/ui/uitest"
)

// The cluster page raises an alarm while a node's disk is nearly full and
// its writes are refused, and drops it once space is freed. The node's
// data directory is a small tmpfs (root only).
func TestClusterPage_DiskFullBanner(t *testing.T) {
	fs := clustertest.MustTmpfs(t, 64<<20)
	const floor = 24 << 20
	n := monitoringtest.MustService(t, monitoringtest.Options{DataDirs: fs, MinFreeBytes: floor})
	srv := uitest.MustServe(t, n, uitest.Options{})
	uitest.MustSeed(t, n.Service)
	s := uitest.NewSession(t, srv.URL)
	if code := s.SignIn("olivia", uitest.OliviaPassword); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	page := func() string {
		resp, body := s.Do(http.MethodGet, "/ui/cluster", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cluster page: %d", resp.StatusCode)
		}
		return body
	}
	if strings.Contains(page(), `id="disk-full"`) {
		t.Fatal("disk banner with room to spare")
	}
	release := clustertest.MustFill(t, fs, floor-4<<20)
	clustertest.PollUntil(t, 5*time.Second, "the disk banner", func() bool {
		b := page()
		return strings.Contains(b, `id="disk-full"`) && strings.Contains(b, "writes refused")
	})
	release()
	clustertest.PollUntil(t, 5*time.Second, "the banner gone", func() bool {
		return !strings.Contains(page(), `id="disk-full"`)
	})
}

// What a member's services report as wrong (its MQTT listener cannot
// accept, say) reaches the other members with its status and shows on
// their cluster pages, until the member reports it no more.
func TestClusterPage_MemberProblems(t *testing.T) {
	c := monitoringtest.MustCluster(t, 3, monitoringtest.Options{})
	c.WaitConverged()
	srv := uitest.MustServe(t, c.Node(0), uitest.Options{})
	uitest.MustSeed(t, c.Leader().Service)
	s := uitest.NewSession(t, srv.URL)
	clustertest.PollUntil(t, 10*time.Second, "signed in", func() bool {
		return s.SignIn("olivia", uitest.OliviaPassword) == http.StatusOK
	})
	page := func() string {
		resp, body := s.Do(http.MethodGet, "/ui/cluster", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cluster page: %d", resp.StatusCode)
		}
		return body
	}
	const problem = "MQTT listener tls cannot accept connections since 2026-12-07T10:00:00Z (12 failed accepts; last: accept4: too many open files); it keeps retrying"
	var on atomic.Bool
	on.Store(true)
	c.Node(2).Cluster.SetProblems(func() []string {
		if on.Load() {
			return []string{problem}
		}
		return nil
	})
	other := c.Node(2).ID()
	clustertest.PollUntil(t, 10*time.Second, "the member's problem on another member's page", func() bool {
		b := page()
		return strings.Contains(b, `class="alarm-box node-problem"`) && strings.Contains(b, other) &&
			strings.Contains(b, "too many open files")
	})
	on.Store(false)
	clustertest.PollUntil(t, 10*time.Second, "the problem gone", func() bool {
		return !strings.Contains(page(), "node-problem")
	})
}
