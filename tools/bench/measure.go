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
	"sync"
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
	memory     string // MemTotal and MemAvailable at the start
	disk       string // the device holding dataDir, and whether it spins
	during     *loadSampler
	elapsed    time.Duration // the whole run
}

// loadSampler reads the 1-minute load average every loadEvery while the
// bench runs.
type loadSampler struct {
	mu      sync.Mutex
	samples []float64
	stop    chan struct{}
	done    chan struct{}
}

// loadEvery is how often the load average is read during the run.
const loadEvery = 10 * time.Second

func startLoadSampler() *loadSampler {
	s := &loadSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(loadEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if v, ok := load1(); ok {
					s.mu.Lock()
					s.samples = append(s.samples, v)
					s.mu.Unlock()
				}
			}
		}
	}()
	return s
}

// finish stops the sampling; safe to call twice.
func (s *loadSampler) finish() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// String is the mean and the largest 1-minute load average read.
func (s *loadSampler) String() string {
	if s == nil {
		return "not sampled"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return "not sampled"
	}
	var sum, peak float64
	for _, v := range s.samples {
		sum += v
		peak = max(peak, v)
	}
	return fmt.Sprintf("mean %.1f, max %.1f (1-minute load, %d readings every %s)", sum/float64(len(s.samples)), peak, len(s.samples), loadEvery)
}

// load1 returns the 1-minute load average.
func load1() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// memInfo returns MemTotal and MemAvailable from /proc/meminfo, in MiB.
func memInfo() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	vals := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			vals[k] = n
		}
	}
	return fmt.Sprintf("%d MiB, %d MiB available at the start", vals["MemTotal"]/1024, vals["MemAvailable"]/1024)
}

// diskOf describes the block device holding dir: its name, size and
// whether the kernel takes it for a spinning disk.
func diskOf(dir string) string {
	src := mountSource(dir)
	if !strings.HasPrefix(src, "/dev/") {
		return src
	}
	name := strings.TrimPrefix(src, "/dev/")
	sys := filepath.Join("/sys/class/block", name)
	// A partition's queue is its disk's.
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		if p, err := filepath.EvalSymlinks(sys); err == nil {
			sys = filepath.Dir(p)
		}
	}
	out := src
	if b, err := os.ReadFile(filepath.Join(sys, "size")); err == nil {
		if sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			out += fmt.Sprintf(", %d GiB", sectors*512>>30)
		}
	}
	if b, err := os.ReadFile(filepath.Join(sys, "queue", "rotational")); err == nil {
		out += map[bool]string{true: ", rotational", false: ", non-rotational"}[strings.TrimSpace(string(b)) == "1"]
	}
	if b, err := os.ReadFile(filepath.Join(sys, "device", "model")); err == nil && strings.TrimSpace(string(b)) != "" {
		out += ", " + strings.TrimSpace(string(b))
	}
	return out
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
		memory:     memInfo(),
		disk:       diskOf(dataDir),
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
	typ, _ := mountOf(dir)
	return typ
}

// mountSource returns the device or source of the filesystem holding dir.
func mountSource(dir string) string {
	_, src := mountOf(dir)
	return src
}

// mountOf returns the type and the source of the filesystem holding dir.
func mountOf(dir string) (typ, source string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown", "unknown"
	}
	defer f.Close()
	dir, _ = filepath.EvalSymlinks(dir)
	best := ""
	typ, source = "unknown", "unknown"
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
			if len(after) > 1 {
				source = after[1]
			}
		}
	}
	return typ, source
}

func within(path, mount string) bool {
	rel, err := filepath.Rel(mount, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
