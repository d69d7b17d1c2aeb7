package broker

// Telemetry aggregation: heartbeats, locations, battery levels and presence
// are gathered per device on this node, latest wins, and written to the
// cluster as one DeviceStatus command per flush (DESIGN.md, "High-rate
// traffic"). 50,000 devices at one heartbeat a minute are about 830
// messages a second; they cost one Raft entry a second here, not 830.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

const (
	// DefaultTelemetryFlush is how often the gathered telemetry is written.
	DefaultTelemetryFlush = time.Second
	// telemetryBatch is the most devices in one command (about 200 bytes
	// each).
	telemetryBatch = 1000
	// telemetryStopTimeout bounds the last flush when the broker closes.
	telemetryStopTimeout = 3 * time.Second
)

// telemetry gathers device status on this node and flushes it.
type telemetry struct {
	b       *Broker
	every   time.Duration
	started int64 // Unix nanoseconds; with seq, makes command IDs unique

	mu      sync.Mutex
	pending map[string]monitoring.DeviceStatus

	seq      uint64        // used by the flushing goroutine only
	stopping bool          // the last flush, on close; used by the flushing goroutine only
	kick     chan struct{} // a large backlog: flush now
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	written, batches, failed atomic.Uint64
}

func newTelemetry(b *Broker, every time.Duration) *telemetry {
	if every <= 0 {
		every = DefaultTelemetryFlush
	}
	return &telemetry{
		b: b, every: every, started: time.Now().UnixNano(),
		pending: map[string]monitoring.DeviceStatus{},
		kick:    make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// add gathers one report; it never blocks on the cluster.
func (t *telemetry) add(st monitoring.DeviceStatus) {
	t.mu.Lock()
	if old, ok := t.pending[st.DeviceID]; ok {
		st = mergeStatus(old, st)
	}
	t.pending[st.DeviceID] = st
	n := len(t.pending)
	t.mu.Unlock()
	if n >= telemetryBatch {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// queued returns how many devices wait for the next flush.
func (t *telemetry) queued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// mergeStatus merges two reports of one device. Telemetry: the later
// report's fields win, the earlier one fills what it lacks. Presence: the
// newer connection wins, and for the same connection the later report.
func mergeStatus(a, b monitoring.DeviceStatus) monitoring.DeviceStatus {
	older, out := a, b
	if b.SeenAt.Before(a.SeenAt) {
		older, out = b, a
	}
	if out.Battery == nil {
		out.Battery = older.Battery
	}
	if out.Location == nil {
		out.Location = older.Location
	}
	if out.Firmware == "" {
		out.Firmware = older.Firmware
	}
	if older.Connected != nil && (out.Connected == nil || older.ConnectedAt.After(out.ConnectedAt)) {
		out.Connected, out.Node, out.ConnectedAt, out.Reason = older.Connected, older.Node, older.ConnectedAt, older.Reason
	}
	return out
}

// run flushes every t.every, and at once on a large backlog, until stopped;
// then it flushes what is left, within telemetryStopTimeout.
func (t *telemetry) run() {
	defer close(t.done)
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	// A flush under way when the broker closes stops waiting for the
	// cluster: the last flush, bounded, comes right after.
	running, stopRunning := context.WithCancel(context.Background())
	defer stopRunning()
	go func() {
		select {
		case <-t.stop:
			stopRunning()
		case <-running.Done():
		}
	}()
	for {
		select {
		case <-t.stop:
			ctx, cancel := context.WithTimeout(context.Background(), telemetryStopTimeout)
			t.stopping = true
			t.flush(ctx)
			cancel()
			return
		case <-tick.C:
		case <-t.kick:
		}
		t.flush(running)
	}
}

// close stops the loop after a last flush, and waits for it.
func (t *telemetry) close() {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
}

// flush writes what is gathered, in commands of at most telemetryBatch
// devices. What the cluster did not take goes back, under any newer
// reports, for the next flush: telemetry is never refused for a slow
// cluster, only delayed.
func (t *telemetry) flush(ctx context.Context) {
	t.mu.Lock()
	if len(t.pending) == 0 {
		t.mu.Unlock()
		return
	}
	batch := make([]monitoring.DeviceStatus, 0, len(t.pending))
	for _, st := range t.pending {
		batch = append(batch, st)
	}
	t.pending = make(map[string]monitoring.DeviceStatus, len(batch))
	t.mu.Unlock()
	slices.SortFunc(batch, func(a, b monitoring.DeviceStatus) int { return strings.Compare(a.DeviceID, b.DeviceID) })

	node := t.b.cfg.NodeID
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), telemetryBatch)]
		t.seq++
		cmdID := fmt.Sprintf("telemetry/%s/%d/%d", node, t.started, t.seq)
		cctx, cancel := context.WithTimeout(ctx, t.b.cfg.CommitTimeout)
		_, err := t.b.svc.RecordDeviceStatus(cctx, cmdID, "node:"+node, chunk)
		cancel()
		switch {
		case err == nil:
			t.batches.Add(1)
			t.written.Add(uint64(len(chunk)))
		case isRefusal(err):
			// A report the gateway made is invalid: a bug, not a reason to
			// keep it forever.
			t.failed.Add(1)
			t.b.logger.Error("device telemetry refused: dropped", "devices", len(chunk), "error", err)
		case t.stopping && (errors.Is(err, monitoring.ErrNoLeader) || errors.Is(err, monitoring.ErrUnknownOutcome)):
			// The cluster is stopping too, or this node is cut off: there
			// is no next flush, and the devices report again wherever they
			// reconnect.
			t.failed.Add(1)
			t.b.logger.Info("stopping: the last device telemetry was not written (no quorum to commit it)", "devices", len(batch), "error", err)
			return
		case !t.stopping && ctx.Err() != nil:
			// Cut short by the close: the last flush takes these.
			t.requeue(batch)
			return
		default:
			t.failed.Add(1)
			if t.stopping {
				t.b.logger.Warn("stopping: the last device telemetry was not written", "devices", len(batch), "error", err)
				return
			}
			t.b.logger.Warn("device telemetry not written: kept for the next flush", "devices", len(batch), "error", err)
			t.requeue(batch)
			return
		}
		batch = batch[len(chunk):]
	}
}

// requeue puts reports back, merged with any that arrived since.
func (t *telemetry) requeue(batch []monitoring.DeviceStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range batch {
		if cur, ok := t.pending[st.DeviceID]; ok {
			st = mergeStatus(st, cur)
		}
		t.pending[st.DeviceID] = st
	}
}
