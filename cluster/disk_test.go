package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigilarc/vigil/cluster"
	"github.com/vigilarc/vigil/cluster/clustertest"
)

// The floor the disk tests give their nodes, on a file system of
// testFSSize: under it writes are refused, under half of it appends too.
// The floor is large next to what a test writes (under a third of the file
// system) so that Badger's background compactions, which write new tables
// before they drop the old ones, always fit in the half of the floor kept
// as headroom: with a 24 MiB floor on 64 MiB, a compaction after the
// refusal once ran out of space under the race detector and the test
// binary died of SIGBUS.
const (
	testFSSize = 128 << 20
	testFloor  = 96 << 20
)

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// mustFill writes a file in dir until leave bytes are free, and returns
// a function that removes it.
func mustFill(t *testing.T, dir string, leave int64) (remove func()) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i) // tmpfs stores zeros too; this is just to be sure
	}
	for free := freeBytes(t, dir); free > leave; free = freeBytes(t, dir) {
		n := min(int64(len(buf)), free-leave)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatalf("cannot fill %s: %v", dir, err)
		}
	}
	return func() {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func tryApply(n *cluster.Node, id, key, val string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := n.Apply(ctx, id, []byte("set "+key+" "+val))
	return err
}

// A node whose disk is nearly full refuses writes with ErrDiskFull, and
// snapshots, instead of crashing in Badger; it keeps serving reads, shows
// it in its status, refuses to start (rather than crash) while under half
// the floor, and accepts writes again by itself once space is freed.
func TestNode_DiskFullRefusesWrites(t *testing.T) {
	fs := clustertest.MustTmpfs(t, testFSSize)
	c := mustCluster(t, 1, func(cfg *cluster.Config) {
		cfg.DataDir = filepath.Join(fs, "node")
		cfg.MinFreeBytes = testFloor
	})
	n := c.Node(0)
	mustApply(t, n, "a", "a", "1")

	t.Run("under the floor", func(t *testing.T) {
		remove := mustFill(t, fs, testFloor-4<<20)
		err := tryApply(n, "b", "b", "2")
		if !errors.Is(err, cluster.ErrDiskFull) {
			t.Fatalf("write with %d bytes free: %v, want ErrDiskFull", freeBytes(t, fs), err)
		}
		if v, ok := kvGet(t, n, "a"); !ok || v != "1" {
			t.Fatalf("read while full: %q %v, want 1", v, ok)
		}
		if d := n.Status().Disk; d == nil || !d.Full || d.FloorBytes != testFloor {
			t.Fatalf("status disk %+v, want full with floor %d", d, testFloor)
		}
		if err := n.Snapshot(); !errors.Is(err, cluster.ErrDiskFull) {
			t.Fatalf("snapshot while full: %v, want ErrDiskFull", err)
		}
		remove()
		clustertest.PollUntil(t, 10*time.Second, "writes accepted after space was freed", func() bool {
			return tryApply(n, "b", "b", "2") == nil
		})
		if v, _ := kvGet(t, n, "b"); v != "2" {
			t.Fatalf("b = %q after recovery, want 2", v)
		}
		clustertest.PollUntil(t, 5*time.Second, "status not full", func() bool {
			d := n.Status().Disk
			return d != nil && !d.Full
		})
	})

	t.Run("under half the floor, restarted", func(t *testing.T) {
		remove := mustFill(t, fs, 4<<20)
		if err := tryApply(n, "c", "c", "3"); !errors.Is(err, cluster.ErrDiskFull) {
			t.Fatalf("write: %v, want ErrDiskFull", err)
		}
		c.Kill(0)
		cfg := c.Config(0)
		cfg.Bootstrap = false
		node, err := cluster.New(cfg, newKV())
		if err != nil {
			t.Fatal(err)
		}
		err = node.Open(context.Background())
		if err == nil {
			node.Kill()
		}
		if !errors.Is(err, cluster.ErrDiskFull) {
			t.Fatalf("open with %d bytes free: %v, want ErrDiskFull", freeBytes(t, fs), err)
		}
		remove()
		n = c.Restart(0)
		c.WaitForLeader()
		mustApply(t, n, "c", "c", "3")
		for k, want := range map[string]string{"a": "1", "b": "2", "c": "3"} {
			if v, _ := kvGet(t, n, k); v != want {
				t.Fatalf("%s = %q after restart, want %q", k, v, want)
			}
		}
	})
}

// A follower whose disk fills refuses the writes made through it, keeps
// serving reads, and, under half its floor, stops appending the leader's
// entries and falls behind without crashing, while the other two commit.
// Once space is freed it catches up by itself.
func TestCluster_FollowerDiskFull(t *testing.T) {
	var dirs []string
	for range 3 {
		dirs = append(dirs, clustertest.MustTmpfs(t, testFSSize))
	}
	i := 0
	c := mustCluster(t, 3, func(cfg *cluster.Config) {
		cfg.DataDir = filepath.Join(dirs[i], "node")
		cfg.MinFreeBytes = testFloor
		i++
	})
	leader := c.Leader()
	mustApply(t, leader, "a", "a", "1")
	fi := c.Followers()[0]
	f := c.Node(fi)
	clustertest.PollUntil(t, 10*time.Second, "the follower has a", func() bool {
		v, _ := kvGet(t, f, "a")
		return v == "1"
	})

	remove := mustFill(t, dirs[fi], testFloor-4<<20)
	if err := tryApply(f, "b", "b", "2"); !errors.Is(err, cluster.ErrDiskFull) {
		t.Fatalf("write through the full follower: %v, want ErrDiskFull", err)
	}
	mustApply(t, leader, "b", "b", "2") // two of three have room
	clustertest.PollUntil(t, 10*time.Second, "the leader sees the follower's disk full", func() bool {
		for _, m := range leader.Status().Members {
			if m.ID == f.ID() {
				return m.Disk != nil && m.Disk.Full
			}
		}
		return false
	})
	remove()

	remove = mustFill(t, dirs[fi], 4<<20)
	for k := range 20 {
		key := "k" + strconv.Itoa(k)
		mustApply(t, leader, key, key, "v")
	}
	if v, ok := kvGet(t, f, "a"); !ok || v != "1" {
		t.Fatalf("read on the full follower: %q %v", v, ok)
	}
	if got, want := f.AppliedIndex(), leader.AppliedIndex(); got >= want {
		t.Fatalf("full follower applied %d, leader %d: it should have fallen behind", got, want)
	}
	remove()
	clustertest.PollUntil(t, 30*time.Second, "the follower caught up", func() bool {
		v, _ := kvGet(t, f, "k19")
		return v == "v"
	})
	if err := tryApply(f, "c", "c", "3"); err != nil {
		t.Fatalf("write through the follower after space was freed: %v", err)
	}
}

// A snapshot cut short (by a crash, or a full disk that made
// FileSnapshotStore's Cancel fail before its clean-up) leaves a .tmp
// directory that nothing else removes: the node removes it when it opens.
func TestNode_RemovesPartialSnapshots(t *testing.T) {
	c := mustCluster(t, 1, nil)
	mustApply(t, c.Node(0), "a", "a", "1")
	c.Kill(0)
	partial := filepath.Join(c.Config(0).DataDir, "snapshots", "2-100-1700000000000.tmp")
	if err := os.MkdirAll(partial, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "state.bin"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Restart(0)
	c.WaitForLeader()
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial snapshot still there after open: %v", err)
	}
}

// A node that fills its own disk with commands stops at the floor with
// ErrDiskFull; before the floor, Badger ran into the full file system and
// the process died of SIGBUS.
func TestNode_WritesUntilDiskFull(t *testing.T) {
	fs := clustertest.MustTmpfs(t, testFSSize)
	c := mustCluster(t, 1, func(cfg *cluster.Config) {
		cfg.DataDir = filepath.Join(fs, "node")
		cfg.MinFreeBytes = testFloor
	})
	n := c.Node(0)
	val := make([]byte, 32<<10)
	var err error
	for i := 0; i < 4000 && err == nil; i++ {
		rand.Read(val)
		err = tryApply(n, "", "k"+strconv.Itoa(i), hex.EncodeToString(val))
	}
	if !errors.Is(err, cluster.ErrDiskFull) {
		t.Fatalf("writing until the disk is full ended with %v, want ErrDiskFull", err)
	}
	if free := freeBytes(t, fs); free < testFloor/2 {
		t.Fatalf("%d bytes free after the refusal: the floor did not hold", free)
	}
	if _, ok := kvGet(t, n, "k0"); !ok {
		t.Fatal("k0 cannot be read once the disk is full")
	}
}
