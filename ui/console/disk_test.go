package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	var st syscall.Statfs_t
	if err := syscall.Statfs(fs, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(fs, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-(floor-4<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 5*time.Second, "the disk banner", func() bool {
		b := page()
		return strings.Contains(b, `id="disk-full"`) && strings.Contains(b, "writes refused")
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	clustertest.PollUntil(t, 5*time.Second, "the banner gone", func() bool {
		return !strings.Contains(page(), `id="disk-full"`)
	})
}
