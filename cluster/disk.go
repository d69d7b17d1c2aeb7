package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// DiskStatus is the free space of a node's data directory against its floor.
type DiskStatus struct {
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	FloorBytes uint64 `json:"floor_bytes"`
	// Full is set while the free space is under the floor: the node refuses
	// new commands (ErrDiskFull) and takes no snapshot.
	Full bool `json:"full"`
}

// diskGuard watches the free space of the data directory so that the node
// refuses writes before Badger runs out of room. Badger writes its memtables
// and tables through mmapped files that it first extends without allocating
// (ftruncate); a store into such a file on a full file system is a SIGBUS,
// which kills the process, not an error it could return. The only defence is
// never to let Badger write on a full disk: see DESIGN.md, "Disk full".
//
// Two thresholds. Under the floor the node refuses new commands (Apply) and
// snapshots. Under half the floor the log store refuses appends and
// deletions too, the leader's internal entries and a follower's copies of the
// leader's included: the other half is the headroom Badger's own flushes and
// compactions of what was already accepted may still use.
type diskGuard struct {
	dir    string
	floor  uint64 // 0: never refuse
	logger *slog.Logger
	statfs func(string) (free, total uint64, err error) // tests replace it

	free  atomic.Uint64
	total atomic.Uint64
	full  atomic.Bool

	mu sync.Mutex // serialises check's logging of changes
}

func newDiskGuard(dir string, floor uint64, logger *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, floor: floor, logger: logger, statfs: statfs}
}

// statfs returns the bytes available to an unprivileged user, and the size,
// of the file system holding dir.
func statfs(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("cannot read free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// check reads the free space now, records it, and logs a change of state.
// It returns the free bytes; when they cannot be read, the last value.
func (g *diskGuard) check() uint64 {
	if g == nil {
		return ^uint64(0)
	}
	free, total, err := g.statfs(g.dir)
	if err != nil {
		g.logger.Warn("cannot check free disk space", "error", err)
		return g.free.Load()
	}
	g.free.Store(free)
	g.total.Store(total)
	full := g.floor > 0 && free < g.floor
	if g.full.Swap(full) != full {
		g.mu.Lock()
		if full {
			g.logger.Error("disk nearly full: refusing writes until space is freed",
				"dir", g.dir, "free_bytes", free, "floor_bytes", g.floor)
		} else {
			g.logger.Info("disk space back above the floor: accepting writes again",
				"dir", g.dir, "free_bytes", free, "floor_bytes", g.floor)
		}
		g.mu.Unlock()
	}
	return free
}

// refuseCommand returns ErrDiskFull when the free space is under the floor.
func (g *diskGuard) refuseCommand() error {
	if g == nil || g.floor == 0 {
		return nil
	}
	if free := g.check(); free < g.floor {
		return fmt.Errorf("%w: %s free on the data directory, floor %s", ErrDiskFull, fmtBytes(free), fmtBytes(g.floor))
	}
	return nil
}

// refuseLogWrite returns ErrDiskFull when the free space is under half the
// floor: the last headroom, kept for Badger's own writes.
func (g *diskGuard) refuseLogWrite() error {
	if g == nil || g.floor == 0 {
		return nil
	}
	if free := g.check(); free < g.floor/2 {
		return fmt.Errorf("%w: %s free on the data directory, under half the floor of %s",
			ErrDiskFull, fmtBytes(free), fmtBytes(g.floor))
	}
	return nil
}

// refuseSnapshot returns ErrDiskFull unless a snapshot of about size bytes
// would leave the floor free.
func (g *diskGuard) refuseSnapshot(size uint64) error {
	if g == nil || g.floor == 0 {
		return nil
	}
	if free := g.check(); free < g.floor+size {
		return fmt.Errorf("%w: %s free on the data directory, a snapshot of about %s would leave less than the floor of %s",
			ErrDiskFull, fmtBytes(free), fmtBytes(size), fmtBytes(g.floor))
	}
	return nil
}

// status returns the last reading.
func (g *diskGuard) status() *DiskStatus {
	if g == nil {
		return nil
	}
	return &DiskStatus{FreeBytes: g.free.Load(), TotalBytes: g.total.Load(), FloorBytes: g.floor, Full: g.full.Load()}
}

// loop checks the free space every interval, so that the status shows it and
// a node recovers (logs it) when space returns even without a write.
func (g *diskGuard) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.check()
		}
	}
}

func fmtBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// removePartialSnapshots removes the temporary directories of snapshots that
// were never finished: hashicorp/raft's FileSnapshotStore writes a snapshot
// in <name>.tmp and renames it when complete, skips .tmp directories when
// listing, and never removes one that a crash or a failed Cancel left
// behind (Cancel returns before its RemoveAll when the final flush fails,
// as it does on a full disk).
func removePartialSnapshots(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot list snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("cannot remove the partial snapshot %s: %w", e.Name(), err)
		}
		logger.Warn("removed a partial snapshot", "dir", dir, "snapshot", e.Name())
	}
	return nil
}

// guardedSnapshots is the file snapshot store with a free-space check before
// each snapshot (this node's own, or one the leader sends), and a sink that
// removes its temporary directory whatever happens to it.
type guardedSnapshots struct {
	*raft.FileSnapshotStore
	dir    string
	guard  *diskGuard
	logger *slog.Logger
}

var _ raft.SnapshotStore = (*guardedSnapshots)(nil)

// Create refuses with ErrDiskFull when a snapshot the size of the newest one
// would leave less than the floor free.
func (s *guardedSnapshots) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if err := s.refuse(); err != nil {
		s.logger.Warn("snapshot skipped", "index", index, "error", err)
		return nil, err
	}
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		// Create may have made the directory before failing to write in it.
		tmps, _ := filepath.Glob(filepath.Join(s.dir, snapshotTmpName(term, index)))
		for _, d := range tmps {
			_ = os.RemoveAll(d)
		}
		return nil, err
	}
	return &cleanSink{SnapshotSink: sink, tmp: filepath.Join(s.dir, sink.ID()+".tmp")}, nil
}

// refuse returns ErrDiskFull when a snapshot the size of the newest one
// would leave less than the floor free.
func (s *guardedSnapshots) refuse() error {
	var size uint64
	if metas, err := s.FileSnapshotStore.List(); err == nil && len(metas) > 0 && metas[0].Size > 0 {
		size = uint64(metas[0].Size)
	}
	return s.guard.refuseSnapshot(size)
}

// snapshotTmpName is the name FileSnapshotStore gives a snapshot's
// temporary directory, as a pattern: the name ends with a time.
func snapshotTmpName(term, index uint64) string {
	return fmt.Sprintf("%d-%d-*.tmp", term, index)
}

// cleanSink removes the temporary directory when Close or Cancel fails.
type cleanSink struct {
	raft.SnapshotSink
	tmp string
}

func (s *cleanSink) Close() error {
	err := s.SnapshotSink.Close()
	if err != nil {
		_ = os.RemoveAll(s.tmp)
	}
	return err
}

func (s *cleanSink) Cancel() error {
	err := s.SnapshotSink.Cancel()
	if rerr := os.RemoveAll(s.tmp); err == nil {
		err = rerr
	}
	return err
}

// isFull reports whether the last reading was under the floor.
func (g *diskGuard) isFull() bool { return g != nil && g.full.Load() }

// refuseForDisk is the leader's check before it appends a command: its own
// disk, and the disks of the voters as their last status reported them. A
// command that no quorum has room for would only time out.
func (n *Node) refuseForDisk() error {
	if err := n.disk.refuseCommand(); err != nil {
		return fmt.Errorf("leader %s: %w", n.id, err)
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	voters, full := 0, 0
	fresh := 3 * n.cfg.StatusInterval
	n.peersMu.Lock()
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if p := n.peers[string(s.ID)]; string(s.ID) != n.id && p != nil && p.Err == nil &&
			time.Since(p.At) < fresh && p.Status.Disk != nil && p.Status.Disk.Full {
			full++
		}
	}
	n.peersMu.Unlock()
	if voters-full < voters/2+1 {
		return fmt.Errorf("%w: %d of %d voters have less than their floor free, too few are left for a quorum", ErrDiskFull, full, voters)
	}
	return nil
}
