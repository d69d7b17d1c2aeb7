package main

// Measurements that need no cluster: the disk's fsync latency, disk use of a
// directory, and a description of the machine.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fsyncFloor appends 1 KiB to a file in dir and syncs it, n times, and
// returns the sorted latencies of each write plus sync. A commit cannot be
// faster than this: the leader and a follower each sync the entry to their
// Raft log before the leader answers.
func fsyncFloor(ctx context.Context, dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return nil, fmt.Errorf("cannot create the fsync probe file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1024)
	lat := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, fmt.Errorf("cannot write the fsync probe file: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("cannot sync the fsync probe file: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat, nil
}

// diskUse is the size of the regular files under a directory.
type diskUse struct {
	files     int
	apparent  int64 // sum of file sizes, as ls shows them
	allocated int64 // blocks actually allocated, as du shows them
	// memApparent and memAllocated count Badger's memtable logs (*.mem),
	// sparse files created at their full size and filled as writes arrive.
	memApparent, memAllocated int64
}

// measureDiskUse walks dir and adds up its regular files.
func measureDiskUse(dir string) (diskUse, error) {
	var u diskUse
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk: Badger rotates files
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		alloc := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			alloc = int64(st.Blocks) * 512
		}
		u.files++
		u.apparent += info.Size()
		u.allocated += alloc
		if strings.HasSuffix(path, ".mem") {
			u.memApparent += info.Size()
			u.memAllocated += alloc
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("cannot measure disk use of %s: %w", dir, err)
	}
	return u, nil
}

// clockTick is the unit of /proc/stat and /proc/PID/stat (USER_HZ), 100 Hz
// on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// cpuSample is a reading of the CPU time used so far.
type cpuSample struct {
	at          time.Time
	busy, total time.Duration // all CPUs, from /proc/stat
	nodes       time.Duration // user and system time of the node processes
	self        time.Duration // user and system time of the bench process
}

// sampleCPU reads the CPU time of the machine, of the processes pids and of
// the bench. What it cannot read stays zero.
func sampleCPU(pids []int) cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		// cpu user nice system idle iowait irq softirq steal ...
		if f := strings.Fields(line); len(f) > 0 && f[0] == "cpu" {
			for i, v := range f[1:] {
				t := ticks(v)
				s.total += t
				if i != 3 && i != 4 { // idle, iowait
					s.busy += t
				}
			}
		}
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the command name, which may hold spaces.
		_, rest, _ := strings.Cut(string(b), ") ")
		if f := strings.Fields(rest); len(f) > 12 {
			s.nodes += ticks(f[11]) + ticks(f[12])
		}
	}
	return s
}

func ticks(s string) time.Duration {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Duration(n) * clockTick
}

// cpuUse is the CPU used between two samples, as shares of all CPUs.
type cpuUse struct {
	busy, nodes, self float64 // -1 when unknown
}

func cpuBetween(a, b cpuSample) cpuUse {
	u := cpuUse{busy: -1, nodes: -1, self: -1}
	if b.total > a.total {
		u.busy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	if capacity := float64(b.at.Sub(a.at)) * float64(runtime.NumCPU()); capacity > 0 {
		u.nodes = float64(b.nodes-a.nodes) / capacity
		u.self = float64(b.self-a.self) / capacity
	}
	return u
}

// machine describes where the bench ran.
type machine struct {
	cpus       int
	cpuModel   string
	kernel     string
	goVersion  string
	vigil      string // vigil version
	dataDir    string
	fsType     string
	loadBefore string // /proc/loadavg before and after the run
	loadAfter  string
}

func describeMachine(vigil, dataDir string) machine {
	m := machine{
		cpus:       runtime.NumCPU(),
		cpuModel:   "unknown",
		kernel:     runtime.GOOS,
		goVersion:  runtime.Version(),
		dataDir:    dataDir,
		fsType:     fsType(dataDir),
		loadBefore: loadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel += " " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(vigil, "version").Output(); err == nil {
		m.vigil = strings.TrimSpace(string(out))
	}
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// fsType returns the type of the filesystem holding dir, from
// /proc/self/mountinfo: tmpfs would make every fsync free.
func fsType(dir string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	dir, _ = filepath.EvalSymlinks(dir)
	best, typ := "", "unknown"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(after) < 1 {
			continue
		}
		mnt := fields[4]
		if within(dir, mnt) && len(mnt) >= len(best) {
			best, typ = mnt, after[0]
		}
	}
	return typ
}

func within(path, mount string) bool {
	rel, err := filepath.Rel(mount, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
