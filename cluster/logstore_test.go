package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// logStoreHelperEnv makes a re-executed test binary act as a helper process
// (see runLogStoreHelper) instead of running the test.
// testMaxCommandSize is the largest command the node accepts (MaxCommandSize).
const testMaxCommandSize = 256 << 10

const (
	logStoreHelperEnv    = "VIGIL_LOGSTORE_HELPER"
	logStoreHelperDirEnv = "VIGIL_LOGSTORE_DIR"
)

func mustOpenLogStore(t testing.TB, dir string) *LogStore {
	t.Helper()
	s, err := OpenLogStore(dir, nil)
	if err != nil {
		t.Fatalf("OpenLogStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustReopenLogStore(t testing.TB, s *LogStore) *LogStore {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return mustOpenLogStore(t, s.dir)
}

func mustStoreLogs(t testing.TB, s *LogStore, logs ...*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d entries from %d): %v", len(logs), logs[0].Index, err)
	}
}

func mustDeleteRange(t testing.TB, s *LogStore, lo, hi uint64) {
	t.Helper()
	if err := s.DeleteRange(lo, hi); err != nil {
		t.Fatalf("DeleteRange(%d, %d): %v", lo, hi, err)
	}
}

func mustBounds(t testing.TB, s *LogStore) (first, last uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err = s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	return first, last
}

func mustDiskUsage(t testing.TB, s *LogStore) int64 {
	t.Helper()
	n, err := s.DiskUsage()
	if err != nil {
		t.Fatalf("DiskUsage: %v", err)
	}
	return n
}

// testLog returns a recognisable entry at index with size bytes of data.
func testLog(index uint64, size int) *raft.Log {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(index + uint64(i))
	}
	return &raft.Log{
		Index:      index,
		Term:       index/100 + 1,
		Type:       raft.LogCommand,
		Data:       data,
		Extensions: []byte(fmt.Sprintf("ext-%d", index)),
		AppendedAt: time.Unix(1700000000, int64(index)),
	}
}

// testLogs returns entries lo..hi of size bytes each.
func testLogs(lo, hi uint64, size int) []*raft.Log {
	logs := make([]*raft.Log, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		logs = append(logs, testLog(i, size))
	}
	return logs
}

// checkLog fails unless the store holds want at want.Index.
func checkLog(t testing.TB, s *LogStore, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

func checkNoLog(t testing.TB, s *LogStore, index uint64) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(index, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", index, err)
	}
}

func TestLogStore_EmptyLog(t *testing.T) {
	s := mustOpenLogStore(t, t.TempDir())
	for range 2 {
		if first, last := mustBounds(t, s); first != 0 || last != 0 {
			t.Fatalf("bounds of an empty log = %d, %d, want 0, 0", first, last)
		}
		checkNoLog(t, s, 1)
		s = mustReopenLogStore(t, s)
	}
}

func TestLogStore_StoreAndGet(t *testing.T) {
	tests := []struct {
		name        string
		batches     [][]*raft.Log
		first, last uint64
	}{
		{"single entry", [][]*raft.Log{{testLog(1, 10)}}, 1, 1},
		{"one batch", [][]*raft.Log{testLogs(1, 64, 1024)}, 1, 64},
		{"batches", [][]*raft.Log{testLogs(1, 10, 100), testLogs(11, 11, 0), testLogs(12, 40, 3000)}, 1, 40},
		{"log not starting at 1", [][]*raft.Log{testLogs(1000, 1009, 10)}, 1000, 1009},
		{"empty data and zero time", [][]*raft.Log{{{Index: 5, Term: 2, Type: raft.LogNoop}}}, 5, 5},
		// 64 entries of 64 KiB do not fit one Badger transaction.
		{"batch larger than a transaction", [][]*raft.Log{testLogs(1, 64, 64<<10)}, 1, 64},
		{"largest command", [][]*raft.Log{testLogs(1, 3, testMaxCommandSize)}, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpenLogStore(t, t.TempDir())
			for _, b := range tt.batches {
				mustStoreLogs(t, s, b...)
			}
			for range 2 { // before and after reopening
				if first, last := mustBounds(t, s); first != tt.first || last != tt.last {
					t.Fatalf("bounds = %d, %d, want %d, %d", first, last, tt.first, tt.last)
				}
				for _, b := range tt.batches {
					for _, l := range b {
						checkLog(t, s, l)
					}
				}
				checkNoLog(t, s, tt.first-1)
				checkNoLog(t, s, tt.last+1)
				s = mustReopenLogStore(t, s)
			}
		})
	}
}

func TestLogStore_StoreLogsLargeBatchUsesSeveralTransactions(t *testing.T) {
	s := mustOpenLogStore(t, t.TempDir())
	var commits int
	s.afterChunk = func(n int) { commits = n }
	mustStoreLogs(t, s, testLogs(1, 256, 64<<10)...) // 16 MiB
	if commits < 2 {
		t.Fatalf("a 16 MiB batch took %d intermediate commits, want several", commits)
	}
	s = mustReopenLogStore(t, s)
	if _, last := mustBounds(t, s); last != 256 {
		t.Fatalf("LastIndex = %d, want 256", last)
	}
	checkLog(t, s, testLog(200, 64<<10))
}

func TestLogStore_DeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		lo, hi      uint64 // deleted, on a log 1..100
		first, last uint64
	}{
		{"head", 1, 40, 41, 100},
		{"head from below the log", 0, 40, 41, 100},
		{"tail", 61, 100, 1, 60},
		{"tail past the log", 61, 1000, 1, 60},
		{"everything", 1, 100, 0, 0},
		{"more than everything", 0, 1 << 40, 0, 0},
		{"single head entry", 1, 1, 2, 100},
		{"single tail entry", 100, 100, 1, 99},
		{"outside the log", 200, 300, 1, 100},
		{"empty range", 50, 40, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpenLogStore(t, t.TempDir())
			logs := testLogs(1, 100, 100)
			mustStoreLogs(t, s, logs...)
			mustDeleteRange(t, s, tt.lo, tt.hi)
			for range 2 {
				if first, last := mustBounds(t, s); first != tt.first || last != tt.last {
					t.Fatalf("bounds = %d, %d, want %d, %d", first, last, tt.first, tt.last)
				}
				for _, l := range logs {
					if l.Index >= tt.lo && l.Index <= tt.hi {
						checkNoLog(t, s, l.Index)
					} else {
						checkLog(t, s, l)
					}
				}
				s = mustReopenLogStore(t, s)
			}
		})
	}
}

func TestLogStore_DeleteRangeThenAppend(t *testing.T) {
	// Raft's two uses: truncate a conflicting tail and write the leader's entries;
	// drop the head after a snapshot and go on appending.
	s := mustOpenLogStore(t, t.TempDir())
	mustStoreLogs(t, s, testLogs(1, 20000, 16)...)
	mustDeleteRange(t, s, 15001, 20000) // more keys than one transaction holds
	replaced := testLog(15001, 32)
	replaced.Term = 999
	mustStoreLogs(t, s, replaced)
	mustDeleteRange(t, s, 1, 10000)
	mustStoreLogs(t, s, testLogs(15002, 15010, 16)...)
	s = mustReopenLogStore(t, s)
	if first, last := mustBounds(t, s); first != 10001 || last != 15010 {
		t.Fatalf("bounds = %d, %d, want 10001, 15010", first, last)
	}
	checkLog(t, s, replaced)
	checkLog(t, s, testLog(15000, 16))
	checkNoLog(t, s, 10000)
}

func TestLogStore_StableStore(t *testing.T) {
	s := mustOpenLogStore(t, t.TempDir())
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	// Stable keys and log entries must not collide.
	mustStoreLogs(t, s, testLog(1, 10))

	for _, reopen := range []bool{false, true} {
		if reopen {
			s = mustReopenLogStore(t, s)
		}
		tests := []struct {
			key     string
			want    []byte
			wantErr error
		}{
			{"k", []byte("v"), nil},
			{"empty", []byte{}, nil},
			{"missing", nil, ErrKeyNotFound},
		}
		for _, tt := range tests {
			got, err := s.Get([]byte(tt.key))
			if !errors.Is(err, tt.wantErr) || !bytes.Equal(got, tt.want) || (tt.want == nil) != (got == nil) {
				t.Fatalf("Get(%q) = %q, %v, want %q, %v", tt.key, got, err, tt.want, tt.wantErr)
			}
		}
		if n, err := s.GetUint64([]byte("CurrentTerm")); n != 42 || err != nil {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v, want 42, nil", n, err)
		}
		// Raft tells a missing key from a failure by the error's text.
		n, err := s.GetUint64([]byte("LastVoteTerm"))
		if n != 0 || err == nil || err.Error() != "not found" {
			t.Fatalf("GetUint64(missing) = %d, %v, want 0, not found", n, err)
		}
		if _, err := s.GetUint64([]byte("k")); err == nil {
			t.Fatal("GetUint64 of a 1-byte value succeeded")
		}
	}
}

func TestLogStore_Close(t *testing.T) {
	s := mustOpenLogStore(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close = %v, want ErrClosed", err)
	}
	if err := s.StoreLog(testLog(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close = %v, want ErrClosed", err)
	}
	s.RunGC() // must not panic
}

func TestLogStore_EntryEncoding(t *testing.T) {
	for _, l := range []*raft.Log{
		{Index: 1},
		{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogConfiguration, Data: []byte{0}, Extensions: []byte{1, 2}},
		testLog(7, 300),
		{Index: 2, Data: bytes.Repeat([]byte{9}, testMaxCommandSize), AppendedAt: time.Now()},
	} {
		b := appendLogEntry(nil, l)
		if len(b) != encodedLogEntrySize(l) {
			t.Fatalf("encoded %d bytes, size said %d", len(b), encodedLogEntrySize(l))
		}
		var got raft.Log
		if err := decodeLogEntry(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != l.Index || got.Term != l.Term || got.Type != l.Type ||
			!bytes.Equal(got.Data, l.Data) || !bytes.Equal(got.Extensions, l.Extensions) ||
			!got.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("decoded %+v, want %+v", got, *l)
		}
	}
	good := appendLogEntry(nil, testLog(3, 10))
	bad := map[string][]byte{
		"empty":           nil,
		"short header":    good[:10],
		"unknown version": append([]byte{99}, good[1:]...),
		"truncated data":  good[:len(good)-5],
		"trailing bytes":  append(bytes.Clone(good), 0),
	}
	for name, b := range bad {
		var got raft.Log
		if err := decodeLogEntry(b, &got); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestLogStore_CrashMidBatch kills a process mid-batch with SIGKILL and checks
// that every batch is wholly present or wholly absent after reopening.
func TestLogStore_CrashMidBatch(t *testing.T) {
	if mode := os.Getenv(logStoreHelperEnv); mode != "" {
		runLogStoreHelper(t, mode, os.Getenv(logStoreHelperDirEnv))
		return
	}

	t.Run("killed between the transactions of a large batch", func(t *testing.T) {
		dir := t.TempDir()
		acks := runLogStoreHelperProcess(t, "kill-mid-chunk", dir, -1)
		if len(acks) != 1 || acks[0] != 10 {
			t.Fatalf("helper acknowledged %v, want [10]", acks)
		}
		s := mustOpenLogStore(t, dir)
		checkBatchLog(t, s, 10)
		if first, last := mustBounds(t, s); first != 1 || last != 10 {
			t.Fatalf("bounds = %d, %d, want 1, 10: the half-written batch 11..266 was not rolled back", first, last)
		}
		// Nothing of the batch is left behind, even past the cached bounds.
		keys, _, err := s.listIndexes(11, 1<<40, false, 10)
		if err != nil || len(keys) != 0 {
			t.Fatalf("entries left past the log: %d, %v", len(keys), err)
		}
		mustStoreLogs(t, s, batchLogs(11, 266, 64<<10)...)
		checkBatchLog(t, s, 266)
	})

	t.Run("killed at random moments", func(t *testing.T) {
		dir := t.TempDir()
		rounds := 6
		if testing.Short() {
			rounds = 2
		}
		r := rand.New(rand.NewPCG(1, 2))
		for round := range rounds {
			acks := runLogStoreHelperProcess(t, "append-forever", dir, 5+r.IntN(30))
			s := mustOpenLogStore(t, dir)
			last := checkBatchLog(t, s, 0)
			if acked := acks[len(acks)-1]; last < acked {
				t.Fatalf("round %d: last index %d, but batch up to %d was acknowledged", round, last, acked)
			}
			t.Logf("round %d: killed after %d acknowledged batches; log ends at %d", round, len(acks), last)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// runLogStoreHelperProcess runs the test binary as a helper in mode on dir, and
// SIGKILLs it once it has acknowledged killAfter batches (if killAfter > 0).
// It returns the last index of each batch the helper acknowledged.
func runLogStoreHelperProcess(t *testing.T, mode, dir string, killAfter int) []uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogStore_CrashMidBatch$")
	cmd.Env = append(os.Environ(), logStoreHelperEnv+"="+mode, logStoreHelperDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []uint64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		idx, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(idx, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, n)
		if len(acks) == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper %s ended with %v, want killed by SIGKILL; stderr:\n%s", mode, err, stderr.String())
	}
	return acks
}

// runLogStoreHelper is the helper process's side of TestLogStore_CrashMidBatch.
// It prints "ack <last index>" after each batch StoreLogs has returned.
func runLogStoreHelper(t *testing.T, mode, dir string) {
	s, err := OpenLogStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "kill-mid-chunk":
		mustStoreLogs(t, s, batchLogs(1, 10, 100)...)
		fmt.Println("ack 10")
		s.afterChunk = func(int) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		mustStoreLogs(t, s, batchLogs(11, 266, 64<<10)...) // 16 MiB: several transactions
	case "append-forever":
		// Batches of 1 to 300 entries of up to 32 KiB: some fit one transaction,
		// some take several.
		r := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
		_, last := mustBounds(t, s)
		for {
			n := uint64(1 + r.IntN(300))
			size := r.IntN(32 << 10)
			mustStoreLogs(t, s, batchLogs(last+1, last+n, size)...)
			last += n
			fmt.Println("ack", last)
		}
	}
	select {} // wait for SIGKILL
}

// batchLogs returns entries lo..hi whose data names the batch lo..hi in its
// first 16 bytes, then pads to size bytes with a pattern of the index.
func batchLogs(lo, hi uint64, size int) []*raft.Log {
	logs := make([]*raft.Log, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		data := make([]byte, max(size, 16))
		binary.BigEndian.PutUint64(data, lo)
		binary.BigEndian.PutUint64(data[8:], hi)
		for j := 16; j < len(data); j++ {
			data[j] = byte(i) ^ byte(j)
		}
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: data})
	}
	return logs
}

// checkBatchLog checks that a log written with batchLogs starts at 1, has no
// gap, ends with a complete batch and at wantLast (if not 0). It returns the
// last index.
func checkBatchLog(t *testing.T, s *LogStore, wantLast uint64) uint64 {
	t.Helper()
	first, last := mustBounds(t, s)
	if wantLast != 0 && last != wantLast {
		t.Fatalf("LastIndex = %d, want %d", last, wantLast)
	}
	if last == 0 {
		return 0
	}
	if first != 1 {
		t.Fatalf("FirstIndex = %d, want 1", first)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d) in a log %d..%d: %v", i, first, last, err)
		}
		lo, hi := binary.BigEndian.Uint64(l.Data), binary.BigEndian.Uint64(l.Data[8:])
		if i < lo || i > hi || (len(l.Data) > 16 && l.Data[len(l.Data)-1] != byte(i)^byte(len(l.Data)-1)) {
			t.Fatalf("entry %d holds batch %d..%d or wrong data", i, lo, hi)
		}
		if i == last && hi != last {
			t.Fatalf("log ends at %d inside batch %d..%d", last, lo, hi)
		}
	}
	return last
}

// countFSM counts the commands applied to it.
type countFSM struct {
	mu sync.Mutex
	n  uint64
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot(f.count()), nil }

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n = binary.BigEndian.Uint64(b[:])
	return nil
}

type countSnapshot uint64

func (c countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(c))); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// mustSingleNodeRaft starts a single-node Raft on store and waits until it leads.
func mustSingleNodeRaft(t *testing.T, s *LogStore, snaps raft.SnapshotStore, fsm raft.FSM, bootstrap bool) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.TrailingLogs = 50
	conf.SnapshotThreshold = 1 << 30 // only when asked
	conf.LogOutput = io.Discard
	addr, trans := raft.NewInmemTransport("n1")
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, s, s, snaps, trans, cfg); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	r, err := raft.NewRaft(conf, fsm, s, s, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	deadline := time.After(10 * time.Second)
	for r.State() != raft.Leader {
		select {
		case <-r.LeaderCh():
		case <-deadline:
			t.Fatalf("no leader after 10 s, state %v", r.State())
		}
	}
	return r
}

func mustApplyCommands(t *testing.T, r *raft.Raft, n int) {
	t.Helper()
	futures := make([]raft.ApplyFuture, n)
	for i := range futures {
		futures[i] = r.Apply(fmt.Appendf(nil, "command %d", i), 5*time.Second)
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
}

func TestLogStore_RaftLog(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenLogStore(t, dir+"/raft")
	snaps, err := raft.NewFileSnapshotStore(dir+"/snapshots", 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := raft.HasExistingState(s, s, snaps); ok || err != nil {
		t.Fatalf("HasExistingState of a new store = %v, %v, want false, nil", ok, err)
	}

	fsm := &countFSM{}
	r := mustSingleNodeRaft(t, s, snaps, fsm, true)
	mustApplyCommands(t, r, 200)
	if err := r.Snapshot().Error(); err != nil { // truncates the log head
		t.Fatalf("Snapshot: %v", err)
	}
	mustApplyCommands(t, r, 100)
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	first, last := mustBounds(t, s)
	if first <= 1 || last < 300 {
		t.Fatalf("bounds after 300 commands and a snapshot = %d, %d", first, last)
	}

	s = mustReopenLogStore(t, s)
	if ok, err := raft.HasExistingState(s, s, snaps); !ok || err != nil {
		t.Fatalf("HasExistingState after reopening = %v, %v, want true, nil", ok, err)
	}
	if f2, l2 := mustBounds(t, s); f2 != first || l2 != last {
		t.Fatalf("bounds after reopening = %d, %d, want %d, %d", f2, l2, first, last)
	}
	fsm = &countFSM{}
	r = mustSingleNodeRaft(t, s, snaps, fsm, false)
	mustApplyCommands(t, r, 10)
	if err := r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if n := fsm.count(); n != 310 {
		t.Fatalf("FSM applied %d commands after restart, want 310", n)
	}
	if _, l3 := mustBounds(t, s); l3 <= last {
		t.Fatalf("LastIndex after restart = %d, want above %d", l3, last)
	}
}

// TestLogStore_DiskBounded runs the pattern Raft imposes for a long time:
// append, and after every snapshot drop all but the trailing entries.
func TestLogStore_DiskBounded(t *testing.T) {
	const (
		total     = 200_000
		batch     = 64
		entrySize = 1000
		every     = 10_000 // entries between snapshots
		trailing  = 10_240 // Raft's default TrailingLogs
		// DiskUsage counts file sizes. Badger's WAL files are sparse files of
		// twice the memtable size, 16 MiB each, and there are up to three (the
		// active memtable and two waiting to be flushed): 48 MiB. The value log
		// file, manifest and key registry add 3 MiB. RunGC keeps the tree within
		// logStoreGCSlack (16 MiB) of the live entries, which are at most 20,240
		// of ~1 KiB: 20 MiB. Hence 87 MiB at worst, against 200 MB written.
		bound = 96 << 20
	)
	s := mustOpenLogStore(t, t.TempDir())
	rnd := rand.NewChaCha8([32]byte{1})
	start := time.Now()
	var peak, peakTree int64
	logs := make([]*raft.Log, batch)
	for next := uint64(1); next <= total; {
		for i := range logs {
			data := make([]byte, entrySize) // incompressible, the worst case
			_, _ = rnd.Read(data)
			logs[i] = &raft.Log{Index: next, Term: 1, Data: data, AppendedAt: time.Now()}
			next++
		}
		mustStoreLogs(t, s, logs...)
		if (next-1)%every >= batch {
			continue
		}
		first, last := mustBounds(t, s)
		if last > trailing {
			mustDeleteRange(t, s, first, last-trailing)
		}
		s.RunGC()
		tree, live := s.treeSize(), s.liveBytes.Load()
		if tree > live+logStoreGCSlack {
			t.Fatalf("after RunGC at %d the tree holds %d B for %d B of entries", last, tree, live)
		}
		peak, peakTree = max(peak, mustDiskUsage(t, s)), max(peakTree, tree)
	}
	used := mustDiskUsage(t, s)
	t.Logf("%d entries of %d B in %v: disk use %.1f MiB at the end, at most %.1f MiB; tree at most %.1f MiB",
		total, entrySize, time.Since(start).Round(time.Millisecond),
		mib(uint64(used)), mib(uint64(peak)), mib(uint64(peakTree)))
	if peak > bound {
		t.Fatalf("disk use reached %d B, above %d B", peak, bound)
	}
	first, last := mustBounds(t, s)
	if last != total || last-first+1 < trailing {
		t.Fatalf("bounds = %d, %d", first, last)
	}
}

// memReport is what the memory helper process prints: Go heap in use and RSS
// with the store just opened, after writing, and after idling.
type memReport struct {
	Open, Written, Idle memFigures
}

// memFigures are Go's heap in use, and the process's resident set: all of it,
// and its anonymous part (without file pages such as Badger's mapped tables).
type memFigures struct{ HeapInuse, RSS, RSSAnon uint64 }

func (f memFigures) String() string {
	return fmt.Sprintf("heap %5.1f MiB, RSS %5.1f MiB (anon %5.1f MiB)", mib(f.HeapInuse), mib(f.RSS), mib(f.RSSAnon))
}

// TestLogStore_Memory measures, in helper processes, the memory of an open
// store with the tuned options and with Badger's defaults.
func TestLogStore_Memory(t *testing.T) {
	if mode := os.Getenv(logStoreHelperEnv); mode != "" {
		runMemoryHelper(t, mode, os.Getenv(logStoreHelperDirEnv))
		return
	}
	// Badger frees its table builders' buffers one per 2 s once idle.
	idle := 10 * time.Second
	if testing.Short() {
		idle = 0
	}
	modes := []string{"tuned", "defaults"}
	reports := make([]memReport, len(modes))
	errs := make([]error, len(modes))
	var wg sync.WaitGroup
	for i, mode := range modes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLogStore_Memory$")
		cmd.Env = append(os.Environ(), logStoreHelperEnv+"="+mode+","+idle.String(),
			logStoreHelperDirEnv+"="+t.TempDir())
		wg.Go(func() {
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w\n%s", mode, err, out)
				return
			}
			for line := range strings.Lines(string(out)) {
				if js, ok := strings.CutPrefix(line, "mem "); ok {
					errs[i] = json.Unmarshal([]byte(js), &reports[i])
				}
			}
		})
	}
	wg.Wait()
	for i, mode := range modes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		r := reports[i]
		t.Logf("%-8s open: %v; after %d x 1 KiB: %v; idle %v: %v", mode, r.Open, memEntries, r.Written, idle, r.Idle)
	}
	if tuned, def := reports[0], reports[1]; tuned.Open.HeapInuse >= def.Open.HeapInuse {
		t.Errorf("tuned heap %d B is not below the defaults' %d B", tuned.Open.HeapInuse, def.Open.HeapInuse)
	}
}

// memEntries is how many entries of 1 KiB the memory helper writes: enough to
// fill Badger's default 64 MiB memtable.
const memEntries = 100_000

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// runMemoryHelper opens a store, writes and reads memEntries entries of 1 KiB,
// idles, and prints its memory use. mode is "tuned|defaults,<idle duration>".
func runMemoryHelper(t *testing.T, mode, dir string) {
	opts, idleStr, _ := strings.Cut(mode, ",")
	idle, err := time.ParseDuration(idleStr)
	if err != nil {
		t.Fatal(err)
	}
	o := badgerOptions(dir, true, nil)
	if opts == "defaults" {
		o = badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil)
	}
	measure := func() memFigures {
		debug.FreeOSMemory() // collect, and return freed memory to the OS
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return memFigures{HeapInuse: ms.HeapInuse, RSS: readStatus("VmRSS"), RSSAnon: readStatus("RssAnon")}
	}
	s, err := openLogStore(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rep memReport
	rep.Open = measure()
	data := make([]byte, 1024)
	for i := uint64(0); i < memEntries; i += 64 {
		logs := make([]*raft.Log, 64)
		for j := range logs {
			logs[j] = &raft.Log{Index: i + uint64(j) + 1, Term: 1, Data: data}
		}
		mustStoreLogs(t, s, logs...)
	}
	for i := uint64(1); i <= memEntries; i += 7 {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
	}
	rep.Written = measure()
	time.Sleep(idle) // the point is to be idle
	rep.Idle = measure()
	js, _ := json.Marshal(rep)
	fmt.Printf("mem %s\n", js)
}

// readStatus returns a size in /proc/self/status (Linux), 0 if unknown.
func readStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func BenchmarkLogStore_StoreLogs(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := mustOpenLogStore(b, b.TempDir())
			b.SetBytes(int64(n * 1024))
			next := uint64(1)
			logs := make([]*raft.Log, n)
			for b.Loop() {
				for i := range logs {
					logs[i] = &raft.Log{Index: next, Term: 1, Data: make([]byte, 1024)}
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
