package monitoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// Defaults of the Scheduler.
const (
	DefaultSchedulerInterval = 200 * time.Millisecond
	DefaultSchedulerBatch    = 256
	DefaultFireTimeout       = 10 * time.Second
)

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Interval is how often the leader scans the state for deadlines that
	// have passed.
	Interval time.Duration
	// Batch is the most deadlines fired per scan.
	Batch int
	// FireTimeout bounds one FireDeadline proposal.
	FireTimeout time.Duration
	// DownNodes, if set, lists the cluster members this node has not heard
	// from for too long. While leading, the scheduler marks the devices
	// still recorded on them as disconnected (presence.go), at most every
	// NodeSweepInterval.
	DownNodes         func() []DownNode
	NodeSweepInterval time.Duration
	// PurgeInterval is how often the leader proposes a purge of what is
	// past its organisation's retention (retention.go); a purge that stops
	// at its bound is followed by the next at once, up to PurgeRounds.
	PurgeInterval time.Duration
	PurgeRounds   int
	Logger        *slog.Logger
}

// DownNode is a cluster member that stopped answering, and the last time it
// was heard from.
type DownNode struct {
	ID    string
	Since time.Time
}

// DefaultNodeSweepInterval is how often the leader looks for devices on
// nodes that stopped answering.
const DefaultNodeSweepInterval = time.Second

// Defaults of the leader's purge (retention.go).
const (
	DefaultPurgeInterval = time.Hour
	DefaultPurgeRounds   = 50
)

// Scheduler acts on the deadlines in the state (ix/deadline/): while this
// node leads, it proposes FireDeadline for each one that has passed, oldest
// first. It keeps no schedule of its own: each scan reads the state, so a
// new leader fires whatever is overdue without rebuilding anything.
//
// A deadline fires at most once: the command ID is the deadline's ID, which
// the cluster deduplicates, and the alarm a deadline raises has an ID
// derived from the deadline's ID (deadlineAlarmID), so a retry by a new
// leader after a failover is the same command.
type Scheduler struct {
	svc      *Service
	isLeader func() bool
	cfg      SchedulerConfig
	logger   *slog.Logger

	refused map[string]bool // deadline IDs the state machine refused; used by the loop only

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewScheduler returns a scheduler for svc that acts only while isLeader
// reports true. It does no I/O.
func NewScheduler(svc *Service, isLeader func() bool, cfg SchedulerConfig) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSchedulerInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultSchedulerBatch
	}
	if cfg.FireTimeout <= 0 {
		cfg.FireTimeout = DefaultFireTimeout
	}
	if cfg.NodeSweepInterval <= 0 {
		cfg.NodeSweepInterval = DefaultNodeSweepInterval
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
	}
	if cfg.PurgeRounds <= 0 {
		cfg.PurgeRounds = DefaultPurgeRounds
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		svc: svc, isLeader: isLeader, cfg: cfg,
		logger:  cfg.Logger.With("system", "scheduler"),
		refused: map[string]bool{},
	}
}

// Open starts the scan loop. It returns at once.
func (s *Scheduler) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("scheduler already open")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx)
	}()
	return nil
}

// Close stops the loop and waits for a proposal in flight. It is safe to
// call twice.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	return nil
}

func (s *Scheduler) loop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var swept, purged time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.isLeader() {
			continue
		}
		if _, err := s.tick(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("cannot fire deadlines", "error", err)
		}
		if s.cfg.DownNodes != nil && time.Since(swept) >= s.cfg.NodeSweepInterval {
			swept = time.Now()
			if err := s.sweepNodes(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("cannot mark the devices of a node that stopped answering", "error", err)
			}
		}
		if time.Since(purged) >= s.cfg.PurgeInterval {
			purged = time.Now()
			if err := s.purge(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("cannot purge what is past its retention", "error", err)
			}
		}
	}
}

// purge proposes purges until one finds nothing more due, or PurgeRounds.
// A new leader purges at once: the commands carry their own time, so a
// purge proposed twice deletes nothing twice.
func (s *Scheduler) purge(ctx context.Context) error {
	for range s.cfg.PurgeRounds {
		if ctx.Err() != nil || !s.isLeader() {
			return ctx.Err()
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.FireTimeout)
		r, err := s.svc.Purge(fctx, 0)
		cancel()
		var re *RuleError
		if errors.As(err, &re) && re.Code == CodeUpgrading {
			return nil // a member does not know the purge yet
		}
		if err != nil {
			return err
		}
		if !r.Empty() {
			s.logger.Info("purged what is past its retention", "alarms", len(r.Alarms), "audio_alarms", len(r.AudioAlarms),
				"audio_chunks", r.AudioChunks, "positions", r.Locations, "notifications", r.Outbox, "more", r.More)
		}
		if !r.More {
			return nil
		}
	}
	return nil
}

// sweepNodes marks the devices still recorded on each down node as
// disconnected, as of the time it was last heard from. Every connection
// recorded on it counts, including one made after the last answer (the
// status is polled, the node may have taken a device just before it died):
// the cut-off is now. A node that stays down costs one command: the next
// sweeps find nothing left to mark. Were the node alive after all, its next
// telemetry would bring its devices back.
func (s *Scheduler) sweepNodes(ctx context.Context) error {
	for _, n := range s.cfg.DownNodes() {
		before := s.svc.Now()
		stale, err := s.svc.HasStaleDevices(n.ID, before)
		if err != nil || !stale {
			if err != nil {
				return err
			}
			continue
		}
		cmdID := fmt.Sprintf("node-down/%s/%d/%d", n.ID, n.Since.UnixNano(), before.UnixNano())
		fctx, cancel := context.WithTimeout(ctx, s.cfg.FireTimeout)
		marked, err := s.svc.MarkNodeDown(fctx, cmdID, "system", n.ID, before, n.Since, DisconnectNodeDown)
		cancel()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.ID, err)
		}
		s.logger.Warn("node stopped answering: its devices are marked disconnected",
			"node", n.ID, "last_heard", n.Since, "devices", marked)
	}
	return nil
}

// Due returns the deadlines that have passed at now, oldest first, at most
// limit of them, from this node's state.
func (s *Service) Due(now time.Time, limit int) ([]Deadline, error) {
	var out []Deadline
	end := pDeadline + tkey(now) + "/\xff"
	err := s.view(func(txn *badger.Txn) error {
		return scanPrefix(txn, pDeadline, true, func(key, val []byte) (bool, error) {
			if string(key) > end {
				return false, nil
			}
			d, err := decodeResponse[Deadline](val)
			if err != nil {
				return false, err
			}
			out = append(out, *d)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// tick fires the deadlines that have passed, oldest first, and returns how
// many it fired (stale ones included).
func (s *Scheduler) tick(ctx context.Context) (int, error) {
	// Refused deadlines stay in the state; ask for enough to get past them.
	due, err := s.svc.Due(s.svc.Now(), s.cfg.Batch+len(s.refused))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		if s.refused[d.ID] {
			continue
		}
		if ctx.Err() != nil || !s.isLeader() {
			return n, ctx.Err()
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.FireTimeout)
		outcome, err := s.svc.fireDeadline(fctx, d)
		cancel()
		var re *RuleError
		switch {
		case errors.As(err, &re):
			// Deterministic: retrying gives the same refusal. Say so loudly
			// once; an operator must look.
			s.refused[d.ID] = true
			s.logger.Error("deadline refused", "deadline", d.ID, "kind", d.Kind, "error", err)
			continue
		case err != nil:
			return n, err
		}
		s.logger.Debug("deadline fired", "deadline", d.ID, "kind", d.Kind, "outcome", outcome)
		n++
	}
	return n, nil
}

// deadlineAlarmNS is the UUID namespace of alarms raised by deadlines.
var deadlineAlarmNS = uuid.MustParse("6f1c7a52-3c1e-4c55-9a55-2f2b1d1e8a01")

// deadlineAlarmID is the ID of the alarm a deadline raises: a name-based
// (SHA-1) UUID of the deadline's ID, the same on every node and every try.
func deadlineAlarmID(deadlineID string) string {
	return uuid.NewSHA1(deadlineAlarmNS, []byte(deadlineID)).String()
}

// fireDeadline proposes FireDeadline for d, with the deadline's ID as the
// command ID, and returns the outcome ("fired" or "stale").
func (s *Service) fireDeadline(ctx context.Context, d Deadline) (string, error) {
	cmd := fireDeadlineCmd{Header: s.header("system"), DeadlineID: d.ID, Due: d.Due, AlarmID: deadlineAlarmID(d.ID)}
	res, err := s.propose(ctx, d.ID, CmdFireDeadline, cmd)
	if err != nil {
		return "", err
	}
	r, err := decodeResponse[fireResult](res.Response)
	if err != nil {
		return "", err
	}
	return r.Outcome, nil
}
