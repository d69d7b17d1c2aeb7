package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster"
)

// TestSoak_LogDiskBoundedThroughRaft applies 200,000 commands of 1 KB to a
// three-node cluster with the default snapshot settings, and checks that
// each node's Raft log stays bounded as snapshots truncate it. It takes a
// few minutes, so it runs only with VIGIL_SOAK=1 (make soak).
func TestSoak_LogDiskBoundedThroughRaft(t *testing.T) {
	if os.Getenv("VIGIL_SOAK") == "" {
		t.Skip("soak test: set VIGIL_SOAK=1 (make soak)")
	}
	const (
		total   = 200_000
		workers = 64
		// The log keeps TrailingLogs (10,240) entries after a snapshot taken
		// every SnapshotThreshold (8,192) entries: at most ~18,500 entries of
		// ~1 KiB live, plus Badger's memtable logs and GC slack (see
		// TestLogStore_DiskBounded).
		bound = 128 << 20
	)
	c := mustCluster(t, 3, func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = cluster.DefaultSnapshotThreshold
		cfg.SnapshotInterval = time.Second
		cfg.TrailingLogs = cluster.DefaultTrailingLogs
		cfg.GCInterval = 5 * time.Second
	})
	val := make([]byte, 1000)
	for i := range val {
		val[i] = 'a' + byte(i%26)
	}
	var next atomic.Int64
	var peak [3]atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				cmd := fmt.Sprintf("set k%d %d-%s", i%1000, i, val)
				if _, err := c.Leader().Apply(context.Background(), fmt.Sprintf("soak-%d", i), []byte(cmd)); err != nil {
					t.Errorf("apply %d: %v", i, err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for i := range c.Len() {
				if u, err := c.Node(i).Logs().DiskUsage(); err == nil && u > peak[i].Load() {
					peak[i].Store(u)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-sampled
	elapsed := time.Since(start)
	c.WaitConverged()
	for i := range c.Len() {
		first, _ := c.Node(i).Logs().FirstIndex()
		last, _ := c.Node(i).Logs().LastIndex()
		used, _ := c.Node(i).Logs().DiskUsage()
		t.Logf("node %d: log %d..%d (%d entries), disk use %.1f MiB now, at most %.1f MiB",
			i, first, last, last-first+1, cluster.MiB(uint64(used)), cluster.MiB(uint64(peak[i].Load())))
		if p := peak[i].Load(); p > bound {
			t.Errorf("node %d: log disk use reached %d B, above %d B", i, p, bound)
		}
		if first <= 1 {
			t.Errorf("node %d: log never truncated (first index %d)", i, first)
		}
	}
	t.Logf("%d commands of 1 KB in %v (%.0f/s)", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
}
